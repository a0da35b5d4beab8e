"""A crash as a Sentry event (the protocol Sentry and bugsink speak), from
the analysis alone: pure, no I/O.

The shape follows Sentry's event payload docs (develop.sentry.dev/sdk/
data-model/event-payloads/): a native event (``platform: native``) whose one
exception is the signal, marked ``synthetic`` since no code raised it, with
the crashing thread's frames oldest first, every other thread, and
``debug_meta.images`` naming every mapped ELF file by its build-id so that a
server with symbol files can symbolicate what crashkit could not. Grouping
is crashkit's: the ``fingerprint`` is the signature's hash, which is the
same for the same bug on every host (it is built from function names and
module offsets, never from addresses, pids or times).

What goes in is what ``crashkit report`` would publish: the analysis is
redacted by the caller (the command line's secrets), and neither arguments,
locals, registers, memory nor the environment are included.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Sequence
from typing import Any

from crashkit.analysis.attribution import is_system_library
from crashkit.model.analyze import Analysis, Frame, Module, Thread

# uuid5 namespace of crashkit's event ids: an event id is a function of the
# core's content and the server, so a resend is the same event.
_EVENT_NAMESPACE = uuid.UUID("5f0c2a43-7d8e-4c1b-9a55-0c6b1f7e2d90")
MAX_FRAMES = 128  # per thread; Sentry keeps the outermost and innermost of longer stacks


def event_id(core_sha256: str, target: str) -> str:
    """The event's id (32 hex digits): the same for the same core and server."""
    return uuid.uuid5(_EVENT_NAMESPACE, f"{core_sha256}\0{target}").hex


def debug_id(build_id: str | None) -> str | None:
    """Sentry's debug id of an ELF file: the first 16 bytes of its GNU
    build-id (zero-padded when shorter) read as a little-endian GUID, that
    is with the first three fields byte-swapped (Sentry's "Debug
    Information Files" docs: f1c3bcc0 2798 65fe 3058 404b2831d9e6 ->
    c0bcc3f1-9827-fe65-3058-404b2831d9e6)."""
    if not build_id:
        return None
    try:
        raw = bytes.fromhex(build_id)
    except ValueError:
        return None
    return str(uuid.UUID(bytes_le=raw[:16].ljust(16, b"\0")))


def _in_app(module: str | None, a: Analysis) -> bool:
    """The blamed module and the program are the app; the C runtime and the
    other system libraries are not."""
    if module is None:
        return False
    blamed = a.verdict.module if a.verdict is not None else None
    if module == blamed or module == a.core.exe:
        return True
    return not is_system_library(module) and module.startswith("/") and \
        not os.path.basename(module).startswith(("ld-linux", "linux-vdso"))


def _frame(f: Frame, a: Analysis) -> dict[str, Any]:
    out: dict[str, Any] = {"instruction_addr": f"0x{f.pc:x}"}
    if f.function:
        out["function"] = f.function
    if f.module:
        out["package"] = f.module
    if f.file:
        out["filename"] = os.path.basename(f.file)
        out["abs_path"] = f.file
    if f.line is not None:
        out["lineno"] = f.line
    out["in_app"] = _in_app(f.module, a)
    if f.index == 0:
        out["trust"] = "context"
    elif f.source == "scan":
        out["trust"] = "scan"
    elif f.source == "gdb":
        out["trust"] = "cfi"
    if f.module_offset is not None and not f.function:
        # No name: say where in the module, as the text output does.
        out["symbol"] = f"{os.path.basename(f.module or '?')}+0x{f.module_offset:x}"
    return out


def _stacktrace(frames: Sequence[Frame], a: Analysis) -> dict[str, Any]:
    kept = list(frames[:MAX_FRAMES])
    return {"frames": [_frame(f, a) for f in reversed(kept)]}  # oldest first


def _image(m: Module) -> dict[str, Any] | None:
    if not m.path.startswith("/") or m.end <= m.start:
        return None
    image: dict[str, Any] = {"type": "elf", "code_file": m.path,
                             "image_addr": f"0x{m.start:x}", "image_size": m.end - m.start}
    if m.build_id:
        image["code_id"] = m.build_id
        image["debug_id"] = debug_id(m.build_id)
    return image


def _crashed(a: Analysis) -> Thread | None:
    return next((t for t in a.threads if t.crashed), a.threads[0] if a.threads else None)


def build_event(a: Analysis, *, event_id: str, host: str | None, timestamp: float | None,
                os_context: dict[str, str], nginx_version: str | None = None,
                nginx_configure: str | None = None, crash_id: int | None = None,
                release: str | None = None) -> dict[str, Any]:
    """The event for one crash. ``a`` must already be redacted as report
    redacts; ``os_context`` is Sentry's os context (name, version,
    kernel_version) of the host that crashed."""
    v, sig, sinfo = a.verdict, a.signature, a.core.signal
    crashed = _crashed(a)
    signal_name = sinfo.name if sinfo is not None else "crash"
    mechanism: dict[str, Any] = {"type": "coredump", "synthetic": True, "handled": False,
                                 "description": a.cause or None}
    if sinfo is not None:
        signal_meta: dict[str, Any] = {"number": sinfo.number, "name": sinfo.name}
        if sinfo.code is not None:
            signal_meta["code"] = sinfo.code
        if sinfo.code_name:
            signal_meta["code_name"] = sinfo.code_name
        mechanism["meta"] = {"signal": signal_meta}
        if sinfo.fault_address is not None:
            mechanism["data"] = {"fault_address": f"0x{sinfo.fault_address:x}"}
    mechanism = {k: val for k, val in mechanism.items() if val is not None}
    exception: dict[str, Any] = {"type": signal_name,
                                 "value": v.summary if v is not None else a.summary,
                                 "mechanism": mechanism}
    if crashed is not None:
        exception["thread_id"] = crashed.tid
        if crashed.frames:
            exception["stacktrace"] = _stacktrace(crashed.frames, a)
    threads = []
    for t in a.threads:
        entry: dict[str, Any] = {"id": t.tid, "crashed": t is crashed, "current": t is crashed}
        if t.name:
            entry["name"] = t.name
        if t is not crashed and t.frames:
            entry["stacktrace"] = _stacktrace(t.frames, a)
        threads.append(entry)
    images = [i for i in (_image(m) for m in a.core.modules) if i is not None]
    blamed = next((m for m in a.core.modules if v is not None and m.path == v.module), None)
    tags: dict[str, str] = {"signal": signal_name}
    if host:
        tags["host"] = host
    if nginx_version:
        tags["nginx_version"] = nginx_version
    if v is not None:
        if v.module:
            tags["blamed_module"] = os.path.basename(v.module)
        if blamed is not None and blamed.build_id:
            tags["module_build_id"] = blamed.build_id
        if v.origin:
            tags["origin"] = v.origin
        tags["confidence"] = v.confidence
        tags["meaning"] = v.kind
        if v.function:
            tags["blamed_function"] = v.function
    if sig is not None:
        tags["signature"] = sig.hash
    # Sentry caps tag values at 200 characters.
    tags = {k: val[:200] for k, val in tags.items()}
    contexts: dict[str, Any] = {"os": {"type": "os", **os_context}}
    if nginx_version or nginx_configure:
        contexts["nginx"] = {"type": "default", "version": nginx_version,
                             "nginx -V": nginx_configure}
    process = a.core.process
    extra: dict[str, Any] = {"signature": sig.text if sig is not None else None,
                             "core_truncated": a.core.truncated, "arch": a.core.arch,
                             "analysed_with": "gdb" if a.gdb_used else "the core's notes"}
    if crash_id is not None:
        extra["crashkit_crash_id"] = crash_id
    if process is not None:
        extra.update(pid=process.pid, ppid=process.ppid, uid=process.uid,
                     command_line=process.args)
    if v is not None and v.script is not None:
        extra["script"] = {"interpreter": v.script.interpreter, "language": v.script.language,
                           "places": [p.text for p in v.script.places]}
    event: dict[str, Any] = {
        "event_id": event_id,
        "platform": "native",
        "level": "fatal",
        "logger": "crashkit",
        "exception": {"values": [exception]},
        "threads": {"values": threads},
        "debug_meta": {"images": images},
        "fingerprint": ["crashkit", sig.hash if sig is not None else "unsigned"],
        "tags": tags,
        "contexts": contexts,
        "extra": extra,
    }
    if timestamp is not None:
        event["timestamp"] = timestamp
    if host:
        event["server_name"] = host
    if release:
        event["release"] = release
    if v is not None and v.function:
        event["culprit"] = f"{v.function} ({os.path.basename(v.module or '?')})"
    return event
