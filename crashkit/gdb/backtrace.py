"""Backtraces of every thread through gdb/MI, turned into model frames.

Where gdb names no function (``??`` in stripped code) the name comes from the
module's ELF symbols and the frame says so (``source="elf"``); a frame in a
module whose on-disk build-id differs from the crashed one is marked
untrusted, whoever named it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from crashkit.elf.symbols import Symbolizer
from crashkit.gdb.session import GdbSession, MiResult
from crashkit.model import CrashContext, Frame, Instruction

SIGNAL_HANDLER = "<signal handler called>"
_LWP = re.compile(r"\bLWP (\d+)\b|\bprocess (\d+)\b|\bThread 0x[0-9a-f]+ \(LWP (\d+)\)")


# Shared anonymous memory shows in NT_FILE under names that are not files.
_NOISE = re.compile(r"Can't open file (/dev/zero|/SYSV|/memfd:|/dev/shm/|/drm)")


def mi_quote(text: str) -> str:
    """An MI c-string argument (gdb/mi/mi-parse.c: backslash escapes)."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def argv_word(text: str) -> str:
    """One word for gdb commands that split their text like a shell
    (libiberty's buildargv): backslash before blanks, quotes and backslashes."""
    return re.sub(r'([\s"\'\\])', r"\\\1", text)


def start_load(session: GdbSession, exe: str | None, core: str, sysroot: str | None = None,
               debug_dirs: Sequence[str] = ()) -> list[int]:
    """Queue loading the executable (when there is one on disk) and the core;
    gdb works on it while crashkit reads build-ids. See :func:`finish_load`."""
    tokens = session.configure(sysroot, debug_dirs)
    if exe is not None:
        tokens.append(session.send(f"-file-exec-and-symbols {mi_quote(exe)}"))
    tokens.append(session.send(f"-target-select core {argv_word(core)}"))
    return tokens


def finish_load(session: GdbSession, tokens: list[int]) -> list[str]:
    """Wait for :func:`start_load`; gdb's warnings come back as text."""
    notes: list[str] = []
    for token in tokens:
        for text in session.wait(token).console:
            t = text.strip()
            if t.startswith("warning:") and not _NOISE.search(t):
                notes.append("gdb " + t)
    return notes


def thread_ids(session: GdbSession) -> list[tuple[str, int | None]]:
    """(gdb thread id, LWP) in gdb's order; gdb's thread 1 took the signal."""
    payload = session.command("-thread-info").payload
    out: list[tuple[str, int | None]] = []
    for t in payload.get("threads", []):
        m = _LWP.search(str(t.get("target-id", "")))
        lwp = int(next(g for g in m.groups() if g)) if m else None
        out.append((str(t.get("id")), lwp))
    out.sort(key=lambda item: int(item[0]) if item[0].isdigit() else 0)
    return out


def _int(value: Any) -> int | None:
    try:
        return int(str(value), 0)
    except (TypeError, ValueError):
        return None


def _values(items: Iterable[Any], redact: Callable[[str], str]) -> tuple[tuple[str, str], ...]:
    out = []
    for item in items:
        if isinstance(item, dict) and "name" in item:
            out.append((str(item["name"]), redact(str(item.get("value", item.get("type", ""))))))
    return tuple(out)


@dataclass
class Pending:
    """Everything asked of gdb in one go, right after the notes are read."""

    load: list[int]
    stacks: list[int]  # -stack-list-frames for gdb threads 1..N


def request_all(session: GdbSession, exe: str | None, core: str, n_threads: int,
                max_frames: int, sysroot: str | None, debug_dirs: Sequence[str]) -> Pending:
    """Queue the loads and every thread's stack at once: gdb numbers a core's
    threads in note order, so threads 1..N are known before it answers (the
    answers are checked against the notes in :func:`collect`)."""
    load = start_load(session, exe, core, sysroot, debug_dirs)
    stacks = [session.send(f"-stack-list-frames --thread {i} 0 {max_frames - 1}")
              for i in range(1, n_threads + 1)]
    return Pending(load, stacks)


def collect(session: GdbSession, pending: Pending, threads: list[tuple[int, int | None]],
            symbolizer: Symbolizer, untrusted: set[str], *, max_frames: int, full_frames: int,
            redact: Callable[[str], str]) -> tuple[list[tuple[list[Frame], str | None]], list[str]]:
    """Frames for each (tid, pc) thread of the notes, in that order, with gdb's
    error for a thread it could not unwind; and gdb's warnings."""
    warnings = finish_load(session, pending.load)
    raws: list[MiResult | None] = [session.wait(t, check=False) for t in pending.stacks]
    ids = [str(i) for i in range(1, len(threads) + 1)]
    if any(r is not None and _first_pc(r.payload) not in (None, pc)
           for r, (_tid, pc) in zip(raws, threads, strict=True)):
        # gdb numbered the threads otherwise: ask it which LWP each one is.
        by_lwp = {lwp: gid for gid, lwp in thread_ids(session)}
        ids = [by_lwp.get(tid, "") for tid, _pc in threads]
        raws = [session.command(f"-stack-list-frames --thread {gid} 0 {max_frames - 1}",
                                check=False) if gid else None for gid in ids]
    out: list[tuple[list[Frame], str | None]] = []
    for gid, result in zip(ids, raws, strict=True):
        if result is None:
            out.append(([], "gdb does not know this thread"))
            continue
        error = result.payload.get("msg") if result.message == "error" else None
        raw = result.payload.get("stack", []) if result.message == "done" else []
        out.append((_frames(session, gid, raw, symbolizer, untrusted, full_frames=full_frames,
                            redact=redact), error))
    return out, warnings


def _first_pc(payload: dict[str, Any]) -> int | None:
    stack = payload.get("stack") or []
    return _int(stack[0].get("addr")) if stack else None


def _frames(session: GdbSession, gdb_id: str, raw: list[dict[str, Any]],
            symbolizer: Symbolizer, untrusted: set[str], *, full_frames: int,
            redact: Callable[[str], str]) -> list[Frame]:
    args: dict[int, tuple[tuple[str, str], ...]] = {}
    if full_frames and raw:
        top = min(full_frames, len(raw)) - 1
        res = session.command(
            f"-stack-list-arguments --thread {gdb_id} --skip-unavailable 1 0 {top}", check=False)
        for fr in res.payload.get("stack-args", []) if res.message == "done" else []:
            level = _int(fr.get("level"))
            if level is not None:
                args[level] = _values(fr.get("args", []), redact)
    frames: list[Frame] = []
    for i, fr in enumerate(raw):
        pc = _int(fr.get("addr"))
        if pc is None:
            continue
        func = fr.get("func")
        signal_frame = func == SIGNAL_HANDLER
        # An inlined frame shares its pc with the frame it was inlined into.
        next_pc = _int(raw[i + 1].get("addr")) if i + 1 < len(raw) else None
        inlined = next_pc == pc and not signal_frame
        # A caller's pc is a return address: look up pc - 1 so a call that
        # ends a function is not charged to the next one. Not after a signal
        # frame: there the pc is where the signal hit.
        after_signal = bool(frames) and frames[-1].signal_frame
        lookup_pc = pc - 1 if frames and not after_signal and not inlined else pc
        sym = symbolizer.symbolize(lookup_pc)
        module = sym.module
        module_offset = sym.module_offset + (pc - lookup_pc) if sym.module_offset is not None \
            else None
        source: str
        function_offset: int | None = None
        if signal_frame:
            function, source = SIGNAL_HANDLER, "gdb"
        elif func and func != "??":
            function, source = str(func), "gdb"
            if sym.function == function and sym.function_offset is not None:
                function_offset = sym.function_offset + (pc - lookup_pc)
        elif sym.function:
            function, source = sym.function, "elf"
            function_offset = (sym.function_offset or 0) + (pc - lookup_pc)
        else:
            function, source = None, "notes" if module is None else "elf"
        locals_: tuple[tuple[str, str], ...] = ()
        if full_frames and i < full_frames:
            res = session.command(
                f"-stack-list-locals --thread {gdb_id} --frame {i} --skip-unavailable 1",
                check=False)
            if res.message == "done":
                locals_ = _values(res.payload.get("locals", []), redact)
        frames.append(Frame(
            index=len(frames), pc=pc, function=function, module=module,
            module_offset=module_offset, function_offset=function_offset,
            file=fr.get("fullname") or fr.get("file"), line=_int(fr.get("line")),
            inlined=inlined, signal_frame=signal_frame, source=source,  # type: ignore[arg-type]
            args=args.get(i, ()), locals=locals_,
            trusted=module not in untrusted))
    return frames


def disassembly(session: GdbSession, pc: int, function_offset: int | None,
                before: int = 8, after: int = 4) -> CrashContext | None:
    """A window of instructions around pc. x86 instructions vary in length, so
    decoding starts at the function's start when it is near, else a little
    before pc, and a start whose decoding does not land on pc is dropped."""
    starts = []
    if function_offset is not None and 16 <= function_offset <= 4096:
        starts.append(pc - function_offset)
    starts += [pc - 48, pc]
    for start in starts:
        res = session.command(f"-data-disassemble -s {start:#x} -e {pc + 48:#x} -- 0",
                              check=False)
        if res.message != "done":
            continue
        insns = [Instruction(a, str(i.get("inst", "")).strip(), i.get("func-name"),
                             _int(i.get("offset")))
                 for i in res.payload.get("asm_insns", [])
                 if (a := _int(i.get("address"))) is not None]
        at = next((k for k, ins in enumerate(insns) if ins.address == pc), None)
        if at is not None:
            window = insns[max(0, at - before):at + after + 1]
            return CrashContext(pc, tuple(window), insns[at])
    return None


_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')


def redact_strings(value: str) -> str:
    """Hide string contents in gdb values: they may hold cookies or passwords."""
    return _STRING.sub(lambda m: f'"<redacted {len(m.group(0)) - 2} chars>"', value)
