"""The ``--json`` form of an analysis: schema ``crashkit/analysis/1``.

The schema is documented in crashkit/schema/analysis-1.json (JSON Schema) and
the README; fields are only ever added within a schema version.
"""

from __future__ import annotations

from typing import Any

from crashkit import __version__
from crashkit.model.analyze import Analysis, Frame, Module, Package, Thread, Verdict

SCHEMA = "crashkit/analysis/1"


def frame_json(f: Frame) -> dict[str, Any]:
    # Names, files and lines read from another build than the crashed one are
    # never given as the frame's own: a script reading .function must not get
    # a wrong name. They are kept, labelled, under other_build.
    own = not f.other_build
    return {
        "index": f.index, "pc": f.pc, "function": f.function if own else None,
        "function_offset": f.function_offset if own else None, "module": _p(f.module),
        "module_offset": f.module_offset, "file": f.file if own else None,
        "line": f.line if own else None,
        "other_build": None if own else {"function": f.function, "file": f.file,
                                         "line": f.line},
        "elf_symbol": None if f.elf_symbol is None else {"name": f.elf_symbol,
                                                         "offset": f.elf_offset},
        "inlined": f.inlined, "signal_frame": f.signal_frame, "source": f.source,
        "args": [{"name": n, "value": v} for n, v in f.args],
        "locals": [{"name": n, "value": v} for n, v in f.locals],
        "trusted": f.trusted,
    }


def thread_json(t: Thread) -> dict[str, Any]:
    # pc, sp and fp under those names on every architecture, then the
    # architecture's own (rip, rsp, rbp, … or pc, sp, x29, …).
    neutral = {k: v for k, v in (("pc", t.pc), ("sp", t.sp), ("fp", t.fp)) if v is not None}
    return {"tid": t.tid, "crashed": t.crashed, "name": t.name,
            "registers": {**neutral, **t.registers},
            "frames": [frame_json(f) for f in t.frames]}


def module_json(m: Module, package: Package | None = None) -> dict[str, Any]:
    return {"package": package_json(package), "path": _p(m.path), "start": m.start,
            "end": m.end, "build_id": m.build_id,
            "file_build_id": m.file_build_id, "build_id_match": m.build_id_match,
            "file_status": m.file_status, "deleted": m.deleted, "file": _p(m.disk_path)}


def _p(value: str | None) -> str | None:
    """A path as JSON text. Paths from a core may hold bytes that are not UTF-8;
    they are kept as lone surrogates (so the file can still be opened) and
    shown here as \\xNN, since lone surrogates are not valid JSON for strict
    parsers. Other strings never hold them (they are decoded with 'replace')."""
    if value is None or value.isascii():
        return value
    return value.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def package_json(p: Package | None) -> dict[str, Any] | None:
    return None if p is None else {"name": p.name, "version": p.version, "source": p.source,
                                   "homepage": p.homepage}


def verdict_json(a: Analysis, v: Verdict) -> dict[str, Any]:
    s = a.core.signal
    sender = None
    if a.kind == "killed" and s is not None:
        sender = {"pid": s.sender_pid, "uid": s.sender_uid, "user": a.host.sender_user,
                  "command_now": a.host.sender_command}
    return {"summary": v.summary, "kind": v.kind, "module": _p(v.module),
            "function": v.function, "module_offset": v.module_offset, "origin": v.origin,
            "confidence": v.confidence,
            "reason": v.reason, "frame": v.frame, "package": package_json(v.package),
            "report_to": v.report_to, "sender": sender,
            "log": {"path": _p(a.host.log_path), "lines": list(a.host.log_lines)}
            if a.host.log_path else None}


def analysis_json(a: Analysis) -> dict[str, Any]:
    c = a.core
    p = c.process
    s = c.signal
    return {
        "schema": SCHEMA,
        "crashkit_version": __version__,
        "summary": a.summary,
        "verdict": verdict_json(a, a.verdict) if a.verdict else None,
        "signature": None if a.signature is None else {
            "text": a.signature.text, "hash": a.signature.hash,
            "frames": list(a.signature.frames), "basis": a.signature.basis},
        "core": {
            "path": _p(c.path), "size": c.size, "truncated": c.truncated,
            "expected_size": c.expected_size, "arch": c.arch,
            "pid": p.pid if p else None, "ppid": p.ppid if p else None,
            "uid": p.uid if p else None, "gid": p.gid if p else None,
            "program": p.fname if p else None,
            "exe": _p(c.exe), "execfn": c.execfn,
            "cmdline": p.args if p else None,
            "cmdline_truncated": p.args_truncated if p else None,
        },
        "signal": None if s is None else {
            "number": s.number, "name": s.name, "code": s.code, "code_name": s.code_name,
            "errno": s.errno, "fault_address": s.fault_address, "sender_pid": s.sender_pid,
            "sender_uid": s.sender_uid, "description": s.description,
        },
        "crash": {
            "kind": a.kind,
            "cause": a.cause,
            "module": _p(a.crash_module),
            "frame": frame_json(a.crash_frame) if a.crash_frame else None,
            "blamed_frame": frame_json(a.blame) if a.blame else None,
        },
        "threads": [thread_json(t) for t in a.threads],
        "modules": [module_json(m, a.host.packages.get(m.path)) for m in c.modules],
        "mappings": [{"start": m.start, "end": m.end, "file_offset": m.file_offset,
                      "path": _p(m.path), "deleted": m.deleted} for m in c.mappings],
        "auxv": dict(c.auxv),
        "gdb_used": a.gdb_used,
        "gdb_error": a.gdb_error,
        "context": None if a.context is None else {
            "pc": a.context.pc,
            "instructions": [{"address": i.address, "text": i.text, "function": i.function,
                              "offset": i.offset} for i in a.context.instructions],
            "faulting_instruction": None if a.context.faulting is None else
            a.context.faulting.text,
            "trusted": a.context.trusted,
        },
        "warnings": list(a.warnings),
    }
