"""Who is at fault and a one-line summary: pure functions over the model."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence

from crashkit.model import Analysis, CoreFacts, CrashContext, Frame, Thread

SIGSTOP, SIGTRAP, SI_KERNEL = 19, 5, 0x80

# Libraries whose frames are rarely the culprit: a crash inside them almost
# always comes from a bad argument passed by the caller.
_SYSTEM_LIBS = re.compile(
    r"/(ld-linux[^/]*|libc|libpthread|libm|libdl|librt|libgcc_s|libstdc\+\+|libasan)"
    r"(\.so|-[0-9.]+\.so)[^/]*$")


def is_system_library(path: str | None) -> bool:
    return bool(path and _SYSTEM_LIBS.search(path))


def blame_frame(frames: Sequence[Frame]) -> Frame | None:
    """The innermost frame outside the C runtime (the code that passed the bad value)."""
    for frame in frames:
        if frame.module and not is_system_library(frame.module):
            return frame
    return frames[0] if frames else None


def frame_label(frame: Frame) -> str:
    if frame.function and frame.trusted:
        return f"{frame.function}()"
    if frame.module and frame.module_offset is not None:
        return f"{os.path.basename(frame.module)}+{frame.module_offset:#x}"
    return f"{frame.pc:#x}"


def sent_by_other(facts: CoreFacts) -> bool:
    """The signal came from another process (kill -SEGV, the OOM killer's
    friends): the code that was running is a bystander."""
    s, p = facts.signal, facts.process
    return bool(s and s.sender_pid is not None and (p is None or s.sender_pid != p.pid))


def is_snapshot(facts: CoreFacts) -> bool:
    """A core of a live process (gcore, a debugger): stopped, not crashed."""
    s = facts.signal
    return s is None or (s.number in (SIGSTOP, SIGTRAP) and (s.code is None or s.code <= 0
                                                            or s.code == SI_KERNEL))


def summarize(facts: CoreFacts, crash: Frame | None, blame: Frame | None) -> str:
    who = facts.process.fname if facts.process else os.path.basename(facts.exe or "?")
    pid = f" (pid {facts.process.pid})" if facts.process else ""
    if is_snapshot(facts):
        how = f"while stopped by {facts.signal.name}" if facts.signal else "with no signal"
        where = f"; it was in {frame_label(crash)}" if crash else ""
        return (f"{who}{pid}: a snapshot taken {how} (gcore or a debugger), not a crash"
                f"{where}")
    sig = facts.signal.description if facts.signal else "no signal recorded"
    text = f"{who}{pid} died of {sig}"
    if sent_by_other(facts):
        where = f"; it was in {frame_label(crash)}" if crash else ""
        return (f"{text}. Another process killed it: not a bug in the code that was "
                f"running{where}")
    if crash is not None:
        where = frame_label(crash)
        mod = os.path.basename(crash.module) if crash.module else "unmapped memory"
        text += f", in {where} [{mod}]"
        if blame is not None and blame is not crash and blame.module != crash.module:
            text += (f", called from {frame_label(blame)} "
                     f"[{os.path.basename(blame.module or '?')}]")
    return text


def module_warnings(facts: CoreFacts) -> list[str]:
    out = []
    if facts.exe and any(m.deleted for m in facts.mappings if m.path == facts.exe):
        exe = next((m for m in facts.modules if m.path == facts.exe), None)
        if exe is None or exe.build_id_match is not True:
            out.append(f"{facts.exe} was deleted or replaced after the process started (an "
                       "upgrade?): the file now at that path may not be the build that crashed")
    for m in facts.modules:
        if m.build_id_match is False:
            out.append(f"BUILD-ID MISMATCH: {m.path} on disk is {m.file_build_id}, the crashed "
                       f"process had {m.build_id}; names, lines and instructions from this "
                       "file are not trustworthy (install the exact build, or pass "
                       "--sysroot/--exe)")
        elif m.file_status == "missing":
            out.append(f"{m.path} is not on this host; its frames cannot be symbolized")
    return out


def build_analysis(facts: CoreFacts, threads: tuple[Thread, ...], *, gdb_used: bool,
                   gdb_error: str | None = None, extra_warnings: Sequence[str] = (),
                   context: CrashContext | None = None) -> Analysis:
    crashed = threads[0] if threads else None
    crash = crashed.frames[0] if crashed and crashed.frames else None
    blame = (blame_frame(crashed.frames) if crashed and not sent_by_other(facts)
             and not is_snapshot(facts) else None)
    warnings = [*facts.problems, *module_warnings(facts), *extra_warnings]
    return Analysis(core=facts, threads=threads, crash_frame=crash,
                    crash_module=blame.module if blame else None,
                    summary=summarize(facts, crash, blame), warnings=tuple(warnings),
                    gdb_used=gdb_used, gdb_error=gdb_error, context=context)
