"""Every thread's frames and the crash's instructions, through gdb/MI.

This reader only asks gdb and converts its MI records into model values
(:class:`GdbFrame`, :class:`CrashContext`); placing frames in modules and
judging them is :mod:`crashkit.analysis.frames`' job.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from crashkit.errors import GdbError
from crashkit.gdb.session import GdbSession, MiResult, has_control
from crashkit.model.analyze import CrashContext, GdbFrame, Instruction

SIGNAL_HANDLER = "<signal handler called>"
_LWP = re.compile(r"\b(?:LWP|process) (\d+)\b")
# Shared anonymous memory shows in NT_FILE under names that are not files.
# gdb's warnings that say nothing about this crash: mappings of files that are
# never on disk, and gdb 13's complaint about the XSAVE note of newer kernels
# (its expected size is from an older xsave layout; the registers gdb reads
# from the note are right all the same).
_NOISE = re.compile(r"Can't open file (/dev/zero|/SYSV|/memfd:|/dev/shm/|/drm)"
                    r"|Unexpected size of section .\.reg-xstate/")


def mi_quote(text: str) -> str:
    """An MI c-string argument (gdb/mi/mi-parse.c: backslash escapes)."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _plain_core_path(session: GdbSession, core: str) -> str:
    """gdb 13's -target-select core takes the rest of the line as the file name,
    quotes and backslashes included; a link with a plain name in gdb's private
    directory sidesteps every quoting rule."""
    if session.home is None or re.fullmatch(r"[\w./+-]+", core):
        return core
    link = os.path.join(session.home, "core")
    os.symlink(core, link)
    return link


@dataclass
class Load:
    settings: list[int]
    exe: int | None
    core: int


def _plain_dir(path: str) -> bool:
    return ":" not in path and not has_control(path)


def start_load(session: GdbSession, exe: str | None, core: str, sysroot: str | None = None,
               debug_dirs: Sequence[str] = (), solib_dirs: Sequence[str] = (),
               files: Sequence[str] | None = None,
               resolved: dict[str, str] | None = None) -> Load:
    """Queue loading the executable (when there is one on disk) and the core
    (absolute paths: gdb runs in a directory of its own). ``solib_dirs``, the
    directories of the files the core maps, let gdb find libraries the link
    map names by a relative path (dlopen("./x.so")) or by another alias of
    the same directory (/lib vs /usr/lib on merged-/usr systems). ``resolved``
    names the file found for a core path where it is not the path itself
    (crashkit.elf.locate: found by build-id)."""
    if files is not None and session.home is not None:
        # gdb opens only files verified here (see crashkit.gdb.sysroot).
        from crashkit.gdb.sysroot import PrivateSysroot

        private = PrivateSysroot(os.path.join(session.home, "sysroot"), sysroot, resolved)
        os.mkdir(private.root, 0o700)
        private.add_all(files)
        sysroot, solib_dirs = private.root, private.dirs()
    settings = session.configure(sysroot, debug_dirs)
    # A directory from the core that cannot be written as one element of a
    # ':'-separated list, on one line, is left out.
    dirs = [os.path.abspath(d) for d in solib_dirs if _plain_dir(d)]
    if dirs:
        settings.append(session.send(f"-gdb-set solib-search-path {':'.join(dirs)}"))
    exe_token = session.send(f"-file-exec-and-symbols {mi_quote(exe)}") if exe else None
    core_token = session.send(f"-target-select core {_plain_core_path(session, core)}")
    return Load(settings, exe_token, core_token)


def finish_load(session: GdbSession, load: Load) -> list[str]:
    """Wait for :func:`start_load`; gdb's warnings come back as text. An
    executable gdb cannot read is a warning (the core still loads without
    it); a core it cannot load is a GdbError."""
    notes: list[str] = []
    results = [session.wait(t) for t in load.settings]
    if load.exe is not None:
        exe = session.wait(load.exe, check=False)
        if exe.message == "error":
            msg = str(exe.payload.get("msg"))
            hint = f"; {session.memory_hint()}" if "memory exhausted" in msg and \
                session.memory_limit is not None else ""
            notes.append(f"gdb could not load the executable ({msg}{hint}); "
                         "backtraces come from the core and its libraries alone")
        results.append(exe)
    results.append(session.wait(load.core))
    for result in results:
        for text in result.console:
            t = text.strip()
            if t.startswith("warning:") and not _NOISE.search(t):
                notes.append("gdb " + " ".join(t.split()))
    return notes


def _lwp(thread: dict[str, Any]) -> int | None:
    m = _LWP.search(str(thread.get("target-id", "")))
    return int(m.group(1)) if m else None


def thread_ids(session: GdbSession) -> dict[int, str]:
    """gdb's thread id for each LWP."""
    payload = session.command("-thread-info").payload
    return {lwp: str(t.get("id")) for t in payload.get("threads", [])
            if (lwp := _lwp(t)) is not None}


@dataclass
class Pending:
    """Everything asked of gdb in one go, right after the notes are read."""

    load: Load
    ends: list[int]  # -thread-info of gdb's first thread
    stacks: list[int]  # -stack-list-frames for gdb threads 1..N
    disassembly: int | None = None  # request_disassembly at the crashing pc
    crash_pc: int | None = None


def request_all(session: GdbSession, exe: str | None, core: str, n_threads: int,
                max_frames: int, sysroot: str | None, debug_dirs: Sequence[str],
                solib_dirs: Sequence[str] = (), crash_pc: int | None = None,
                files: Sequence[str] | None = None,
                resolved: dict[str, str] | None = None) -> Pending:
    """Queue the loads and every thread's stack at once: gdb numbers a core's
    threads in note order, so threads 1..N are known before it answers. The
    LWP of the first thread and every thread's innermost pc check that in
    :func:`collect`."""
    load = start_load(session, exe, core, sysroot, debug_dirs, solib_dirs, files, resolved)
    # Thread 1's LWP checks the numbering where it matters most (the crashing
    # thread); every thread's innermost pc checks the rest. (-thread-info of
    # another thread costs a thread switch, ~10 ms.)
    ends = [session.send("-thread-info 1")]
    # One frame more than kept, to know when a backtrace is deeper.
    stacks = [session.send(f"-stack-list-frames --thread {i} 0 {max_frames}")
              for i in range(1, n_threads + 1)]
    disasm = request_disassembly(session, crash_pc) if crash_pc is not None else None
    return Pending(load, ends, stacks, disasm, crash_pc)


def collect(session: GdbSession, pending: Pending, threads: Sequence[tuple[int, int | None]],
            *, max_frames: int, full_frames: int, redact: Callable[[str], str],
            ) -> tuple[list[tuple[list[GdbFrame], str | None]], list[str]]:
    """See :func:`_collect`; MI records of unexpected shapes become a GdbError."""
    try:
        return _collect(session, pending, threads, max_frames=max_frames,
                        full_frames=full_frames, redact=redact)
    except (AttributeError, TypeError, KeyError, IndexError, ValueError) as exc:
        raise GdbError(f"gdb's answer had an unexpected shape ({type(exc).__name__}: {exc}); "
                       "is --gdb really gdb?") from None


def _collect(session: GdbSession, pending: Pending, threads: Sequence[tuple[int, int | None]],
             *, max_frames: int, full_frames: int, redact: Callable[[str], str],
             ) -> tuple[list[tuple[list[GdbFrame], str | None]], list[str]]:
    """gdb's frames for each (tid, pc) thread of the notes, in that order
    (at most ``max_frames``, and a note when there were more), with gdb's
    error for a thread it could not unwind; and gdb's warnings."""
    warnings = finish_load(session, pending.load)
    ends = [session.wait(t, check=False) for t in pending.ends]
    raws: list[MiResult | None] = [session.wait(t, check=False) for t in pending.stacks]
    ids = [str(i) for i in range(1, len(threads) + 1)]
    end_lwps = [_lwp(r.payload.get("threads", [{}])[0]) if r.payload.get("threads") else None
                for r in ends]
    expected_lwps = [threads[0][0]] if threads else []
    if end_lwps != expected_lwps or any(
            r is not None and _first_pc(r.payload) not in (None, pc)
            for r, (_tid, pc) in zip(raws, threads, strict=True)):
        # gdb numbered the threads otherwise: map them by LWP.
        by_lwp = thread_ids(session)
        ids = [by_lwp.get(tid, "") for tid, _pc in threads]
        raws = [session.command(f"-stack-list-frames --thread {gid} 0 {max_frames}",
                                check=False) if gid else None for gid in ids]
    out: list[tuple[list[GdbFrame], str | None]] = []
    for gid, result in zip(ids, raws, strict=True):
        if result is None:
            out.append(([], "gdb does not know this thread"))
            continue
        error = result.payload.get("msg") if result.message == "error" else None
        raw = result.payload.get("stack", []) if result.message == "done" else []
        if len(raw) > max_frames:
            raw = raw[:max_frames] + _outermost(session, gid, max_frames)
            total = _int(raw[-1].get("level"))
            depth = f"{total + 1} frames" if total is not None and total >= max_frames \
                else f"more than {max_frames} frames"
            warnings.append(f"thread {threads[len(out)][0]}: the backtrace has {depth}; the "
                            f"innermost {max_frames} and the outermost are kept "
                            "(--max-frames)")
        try:
            values = _full_values(session, gid, raw, full_frames, redact)
        except GdbError as exc:  # the frames already read stay; gdb is gone now
            warnings.append(f"no arguments or locals: {exc}")
            values, full_frames = {}, 0
        out.append((_frames(raw, values), error))
    return out, warnings


OUTERMOST = 16  # frames kept from the far end of a backtrace deeper than --max-frames
MAX_DEPTH = 1_000_000


def _outermost(session: GdbSession, gdb_id: str, max_frames: int) -> list[dict[str, Any]]:
    """The outermost frames of a deep stack (where a runaway recursion was
    entered), or nothing if gdb cannot say."""
    res = session.command(f"-stack-info-depth --thread {gdb_id} {MAX_DEPTH}", check=False)
    depth = _int(res.payload.get("depth")) if res.message == "done" else None
    if depth is None or depth <= max_frames:
        return []
    low = max(max_frames, depth - OUTERMOST)
    tail = session.command(f"-stack-list-frames --thread {gdb_id} {low} {depth - 1}",
                           check=False)
    frames = tail.payload.get("stack", []) if tail.message == "done" else []
    return list(frames) if isinstance(frames, list) else []


def _first_pc(payload: dict[str, Any]) -> int | None:
    stack = payload.get("stack") or []
    return _int(stack[0].get("addr")) if stack else None


def _int(value: Any) -> int | None:
    try:
        return int(str(value), 0)
    except (TypeError, ValueError):
        return None


def _values(items: Iterable[Any], redact: Callable[[str], str]) -> tuple[tuple[str, str], ...]:
    out = []
    for item in items:
        # gdb adds name@entry (the value at function entry) beside each
        # argument it can recover it for: once is enough.
        if isinstance(item, dict) and "name" in item and not str(item["name"]).endswith(
                "@entry"):
            out.append((str(item["name"]), redact(str(item.get("value", item.get("type", ""))))))
    return tuple(out)


Values = tuple[tuple[str, str], ...]  # (name, value) pairs


def _full_values(session: GdbSession, gdb_id: str, raw: list[dict[str, Any]],
                 full_frames: int, redact: Callable[[str], str],
                 ) -> dict[int, tuple[Values, Values]]:
    """(arguments, locals) of the innermost ``full_frames`` frames, by position."""
    out: dict[int, tuple[Values, Values]] = {}
    if not full_frames or not raw:
        return out
    top = min(full_frames, len(raw)) - 1
    args: dict[int, Values] = {}
    res = session.command(
        f"-stack-list-arguments --thread {gdb_id} --skip-unavailable 1 0 {top}", check=False)
    for fr in res.payload.get("stack-args", []) if res.message == "done" else []:
        level = _int(fr.get("level"))
        if level is not None:
            args[level] = _values(fr.get("args", []), redact)
    for i in range(top + 1):
        res = session.command(
            f"-stack-list-locals --thread {gdb_id} --frame {i} --skip-unavailable 1",
            check=False)
        locals_ = _values(res.payload.get("locals", []), redact) if res.message == "done" \
            else ()
        out[i] = (args.get(i, ()), locals_)
    return out


def _frames(raw: list[dict[str, Any]], values: dict[int, tuple[Values, Values]],
            ) -> list[GdbFrame]:
    pcs = [_int(fr.get("addr")) for fr in raw]
    frames: list[GdbFrame] = []
    for i, fr in enumerate(raw):
        pc = pcs[i]
        if pc is None:
            continue
        func = fr.get("func")
        signal_frame = func == SIGNAL_HANDLER
        args, locals_ = values.get(i, ((), ()))
        # An inlined frame shares its pc with the frame it was inlined into,
        # and is another function (recursion repeats one pc and one function).
        inlined = (not signal_frame and i + 1 < len(raw) and pcs[i + 1] == pc
                   and raw[i + 1].get("func") != func)
        level = _int(fr.get("level"))
        frames.append(GdbFrame(
            pc=pc, function=str(func) if func and func != "??" else None,
            file=_source_file(fr), line=_int(fr.get("line")), inlined=inlined,
            signal_frame=signal_frame, args=args, locals=locals_,
            level=level if level is not None else i))
    return frames


def _source_file(frame: dict[str, Any]) -> str | None:
    """gdb's fullname when it names a file that exists here; otherwise the name
    the debug info gives (gdb glues the compilation directory onto a relative
    name it could not find, as in ./nptl/./nptl/pthread_kill.c)."""
    full, name = frame.get("fullname"), frame.get("file")
    if full and (not name or os.path.isfile(str(full))):
        return str(full)
    return str(name) if name else None


DISASM_BACK = 48  # bytes before pc where decoding starts when the function start is far


def request_disassembly(session: GdbSession, pc: int) -> int:
    """Queue the usual first try of :func:`disassembly`, so gdb decodes while
    crashkit is still reading the stacks."""
    return session.send(f"-data-disassemble -s {pc - DISASM_BACK:#x} -e {pc + 48:#x} -- 0")


def disassembly(session: GdbSession, pc: int, function_offset: int | None,
                before: int = 8, after: int = 4, queued: int | None = None,
                ) -> CrashContext | None:
    """See :func:`_disassembly`; MI records of unexpected shapes give None."""
    try:
        return _disassembly(session, pc, function_offset, before, after, queued)
    except (AttributeError, TypeError, KeyError, IndexError, ValueError):
        return None


def _disassembly(session: GdbSession, pc: int, function_offset: int | None,
                 before: int, after: int, queued: int | None) -> CrashContext | None:
    """A window of instructions around pc. x86 instructions vary in length, so
    decoding starts at the function's start when it is near, else a little
    before pc, and a start whose decoding does not land on pc is dropped.
    ``queued`` is the token of :func:`request_disassembly` for the same pc."""
    starts: list[int] = []
    if function_offset is not None and 16 <= function_offset <= 4096:
        starts.append(pc - function_offset)
    starts += [pc - DISASM_BACK, pc]
    for start in starts:
        if queued is not None and start == pc - DISASM_BACK:
            res = session.wait(queued, check=False)
        else:
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


