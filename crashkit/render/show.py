"""``crashkit show ID`` output (schema ``crashkit/show/1``)."""

from __future__ import annotations

from typing import Any

from crashkit import __version__
from crashkit.model.collect import ShowResult
from crashkit.model.words import plural, size
from crashkit.render.collect import ago, iso, local
from crashkit.render.list import group_json


def to_json(r: ShowResult) -> dict[str, Any]:
    return {
        "schema": "crashkit/show/1", "crashkit_version": __version__, "store": r.store,
        "id": r.crash_id, "core": r.core_path, "stored_name": r.stored_name,
        "source": {"kind": r.source_kind, "path": r.source_path}, "evidence": r.evidence,
        "pid": r.pid, "exe": r.exe, "exe_version": r.exe_version,
        "exe_build_id": r.exe_build_id,
        "signal": {"number": r.signal, "name": r.signal_name, "code": r.si_code}
        if r.signal is not None else None,
        "time": iso(r.time), "collected_at": iso(r.collected_at), "truncated": r.truncated,
        "signature": {"hash": r.signature, "text": r.signature_text},
        "summary": r.summary, "blamed_module": r.blamed_module,
        "blamed_function": r.blamed_function, "confidence": r.confidence,
        "analysis": r.analysis, "host": r.host, "size": r.size, "sha256": r.sha256,
        "compression": r.compression,
        "modules": [{"path": p, "build_id": b} for p, b in r.modules],
        "group": group_json(r.group) if r.group else None,
        "siblings": list(r.siblings),
    }


def text(r: ShowResult) -> str:
    sig = f"{r.signal_name} ({r.signal})" if r.signal is not None else "-"
    lines = [f"crash #{r.crash_id}: {r.summary or '(not analysed)'}", ""]
    rows = [
        ("when", f"{local(r.time)} ({ago(r.time)})"),
        ("process", f"pid {r.pid if r.pid is not None else '?'}  {r.exe or '?'}"
         + (f" {r.exe_version}" if r.exe_version else "")),
        ("signal", sig + (f" code {r.si_code}" if r.si_code is not None else "")),
        ("at fault", " ".join(x for x in (
            f"{r.blamed_function}()" if r.blamed_function else None, r.blamed_module,
            f"({r.confidence} confidence)" if r.confidence else None) if x) or "-"),
        ("signature", f"{r.signature}  {r.signature_text or ''}".rstrip()),
        ("source", f"{r.source_kind}: {r.source_path}"),
        ("core", (f"{r.core_path} ({size(r.size)}"
                  + (", truncated" if r.truncated else "") + ")") if r.core_path else
         ("none: only a log line tells of this crash" if r.evidence == "log"
          else "not kept (let go by a flood or retention limit)")),
        ("analysed", {"gdb": "with gdb", "notes": "from the core's notes (no gdb)"}.get(
            r.analysis or "", "not analysed")),
        ("host", r.host or "-"),
        ("modules", str(len(r.modules))),
    ]
    lines += [f"  {k:<10}{v}" for k, v in rows]
    if r.group is not None:
        g = r.group
        lines += ["", f"group {g.signature}: {plural(g.count, 'crash', 'crashes')}, "
                  f"first {local(g.first_time)}, last {local(g.last_time)}"]
        if r.siblings:
            lines.append("  others: " + " ".join(f"#{i}" for i in r.siblings))
    if r.core_path:
        lines += ["", f"crashkit analyze {r.crash_id}    crashkit report {r.crash_id}"]
    return "\n".join(lines)


def messages(_r: ShowResult) -> list[str]:
    return []
