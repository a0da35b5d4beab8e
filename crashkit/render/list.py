"""``crashkit list`` output (schema ``crashkit/list/1``)."""

from __future__ import annotations

import os
from typing import Any

from crashkit import __version__
from crashkit.model.collect import Group, ListResult
from crashkit.model.words import plural
from crashkit.render.collect import ago, iso, local
from crashkit.render.terminal import current, fit, wrap

SCHEMA = "crashkit/list/1"
_BARS = " ▁▂▃▄▅▆▇█"


def sparkline(counts: tuple[int, ...]) -> str:
    """One character per bucket, scaled to the busiest bucket (blank: none)."""
    top = max(counts, default=0)
    if top == 0:
        return _BARS[0] * len(counts)
    return "".join(_BARS[0] if n == 0 else _BARS[max(1, round(n / top * 8))] for n in counts)


def group_json(g: Group) -> dict[str, Any]:
    return {
        "signature": g.signature, "signature_text": g.signature_text, "count": g.count,
        "stored": g.stored, "counted": g.counted, "no_core": g.no_core,
        "first_seen": iso(g.first_time), "last_seen": iso(g.last_time), "exe": g.exe,
        "exe_version": g.exe_version, "summary": g.summary,
        "blamed_module": g.blamed_module, "blamed_function": g.blamed_function,
        "worst_confidence": g.worst_confidence, "histogram": list(g.histogram),
    }


def to_json(r: ListResult) -> dict[str, Any]:
    return {"schema": SCHEMA, "crashkit_version": __version__, "store": r.store,
            "total": r.total, "since": iso(r.since), "bucket": r.bucket,
            "histogram_start": iso(r.histogram_start),
            "groups": [group_json(g) for g in r.groups]}


def _where(g: Group) -> str:
    mod = os.path.basename(g.blamed_module) if g.blamed_module else None
    fn = f"{g.blamed_function}()" if g.blamed_function else None
    return " in ".join(x for x in (fn, mod) if x) or "-"


def text(r: ListResult) -> str:
    if not r.groups:
        return f"no crashes in {r.store}" + (" since then" if r.since else "")
    span = f"last {len(r.groups[0].histogram)} {r.bucket}s"
    lines = [f"{plural(r.total, 'crash', 'crashes')} in {plural(len(r.groups), 'group')} "
             f"({r.store})", ""]
    for g in r.groups:
        exe = os.path.basename(g.exe) if g.exe else "?"
        if g.exe_version:
            exe += f" {g.exe_version}"
        kept = f"{g.stored} stored"
        if g.counted:
            kept += f", {g.counted} counted without their cores"
        if g.no_core:
            kept += f", {g.no_core} without a core (from logs)"
        # Each row on one line, or fitted to a terminal's width (cells whole).
        lines += fit([g.signature, f"{plural(g.count, 'crash', 'crashes')} ({kept})", exe,
                      f"at fault: {_where(g)}",
                      *([f"[{g.worst_confidence} confidence at worst]"]
                        if g.worst_confidence else [])], 0, 4)
        summary = g.summary or "-"
        lines += wrap(summary, 2, 4) if current().columns else [f"  {summary}"]
        lines += fit([f"first {local(g.first_time)}, last {local(g.last_time)} "
                      f"({ago(g.last_time, r.now)})", f"{span}: |{sparkline(g.histogram)}|"],
                     2, 4)
    return "\n".join(lines)


def messages(_r: ListResult) -> list[str]:
    return []
