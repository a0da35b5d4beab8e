"""``crashkit collect``, ``list`` and ``show`` share these helpers; this
module is collect's output (schema ``crashkit/collect/1``)."""

from __future__ import annotations

import time
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

from crashkit import __version__
from crashkit.model.collect import CollectResult, Outcome
from crashkit.model.words import plural, size

SCHEMA = "crashkit/collect/1"
_VERB: dict[Outcome, str] = {
    "stored": "stored", "already": "already stored", "restored": "restored",
    "counted": "counted", "would_store": "would store", "busy": "left (busy)",
    "rejected": "left (not a core)", "failed": "FAILED", "dropped": "dropped"}


def iso(t: int | None) -> str | None:
    """ISO 8601 with the UTC offset: the one time format of crashkit's JSON."""
    if t is None:
        return None
    return datetime.fromtimestamp(t, tz=UTC).isoformat()


def ago(t: int | None, now: float | None = None) -> str:
    if t is None:
        return "unknown time"
    d = int((time.time() if now is None else now) - t)
    if d < 0:
        return "in the future"
    for unit, n in (("d", 86400), ("h", 3600), ("min", 60)):
        if d >= n:
            return f"{d // n} {unit} ago"
    return f"{d} s ago"


def local(t: int | None) -> str:
    if t is None:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(t))


def to_json(r: CollectResult) -> dict[str, Any]:
    return {
        "schema": SCHEMA, "crashkit_version": __version__, "store": r.store,
        "dry_run": r.dry_run,
        "counts": {k: r.count(k) for k in ("stored", "already", "restored", "counted",
                                          "would_store", "busy", "rejected", "failed")},
        "sources": [{
            "kind": s.kind, "path": s.path, "why": s.why, "status": s.status,
            "detail": s.detail, "keeps_source": s.keeps_source,
            "files": [asdict(f) for f in s.files],
        } for s in r.sources],
        "log_crashes": [{**asdict(c), "time": iso(c.time)} for c in r.log_crashes],
        "pruned": [asdict(p) for p in r.pruned],
        "cleaned": list(r.cleaned),
        "notes": list(r.notes),
        "reindexed": r.reindexed,
        "reindex_skipped": [{"name": n, "why": w} for n, w in r.reindex_skipped],
        "export": _export_json(r),
    }


def _export_json(r: CollectResult) -> dict[str, Any] | None:
    if r.export is None:
        return None
    from crashkit.render import export

    return export.to_json(r.export)


def text(r: CollectResult) -> str:
    if r.reindexed is not None:
        lines = [f"index rebuilt from the store's files: {plural(r.reindexed, 'core')} "
                 f"recorded, {len(r.reindex_skipped)} skipped ({r.store})"]
        lines += [f"  skipped {n}: {w}" for n, w in r.reindex_skipped]
        return "\n".join(lines)
    taken = r.count("stored") + r.count("restored")
    head = (f"dry run: {plural(r.count('would_store'), 'core')} would be stored in {r.store}"
            if r.dry_run else f"{plural(taken, 'core')} stored in {r.store}")
    extra = []
    pairs: tuple[tuple[Outcome, str], ...] = (
        ("already", "already stored"), ("busy", "still being written"),
        ("rejected", "left in place (not cores)"), ("failed", "FAILED"))
    for key, words in pairs:
        if r.count(key):
            extra.append(f"{r.count(key)} {words}")
    new_logs = sum(1 for c in r.log_crashes if c.new)
    if new_logs:
        ooms = sum(1 for c in r.log_crashes if c.new and c.cause == "oom-kill")
        extra.append(f"{plural(new_logs, 'crash', 'crashes')} without a core counted from logs"
                     + (f" ({ooms} by the OOM killer)" if ooms else ""))
    if r.pruned:
        extra.append(f"{plural(len(r.pruned), 'core')} let go "
                     f"({size(sum(p.size for p in r.pruned))} freed)")
    lines = [head + (": " + ", ".join(extra) if extra else "")]
    for s in r.sources:
        lines.append("")
        lines.append(f"{s.kind:<17} {s.path}  [{s.status}{': ' + s.detail if s.detail else ''}]")
        lines.append(f"  {s.why}" + ("; cores are copied, the source is left to its tool"
                                     if s.keeps_source else ""))
        for f in s.files:
            what = _VERB[f.outcome]
            tail = f" #{f.crash_id}" if f.crash_id is not None else ""
            if f.summary and f.outcome in ("stored", "restored"):
                tail += f" {f.signature}  {f.summary}"
            elif f.detail:
                tail += f" {f.detail}"
            lines.append(f"  {what:<18} {f.name}{tail}")
    if any(c.new for c in r.log_crashes):
        lines.append("")
        lines.append("without a core (from logs)")
    for c in r.log_crashes:
        if c.new:
            cause = {"oom-kill": "OOM kill", "sigkill": "SIGKILL"}.get(c.cause, "no core")
            lines.append(f"  counted #{c.crash_id} {cause:<9} pid {c.pid}  {c.line}")
    for p in r.pruned:
        lines.append(f"let go    core of #{p.crash_id} ({p.signature}): {p.why}")
    for n in r.notes:
        lines.append(f"note: {n}")
    if r.export is not None:
        from crashkit.render import export

        lines += ["", *export.text(r.export).split("\n")]
    return "\n".join(lines)


def messages(r: CollectResult) -> list[str]:
    out = [f"removed {name}: half-written by a collect that was killed" for name in r.cleaned]
    out += [f"{f.path}: {f.detail}" for s in r.sources for f in s.files if f.outcome == "failed"]
    if r.export is not None:
        from crashkit.render import export

        out += export.messages(r.export)
    return out
