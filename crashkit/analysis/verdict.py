"""What happened, who is at fault, and the one-line summary: pure functions
over the model."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence

from crashkit import signals as S
from crashkit.model import Analysis, CoreFacts, CrashContext, Frame, Thread

SIGSTOP = 19

# Libraries whose frames are rarely the culprit: a crash inside them almost
# always comes from a bad argument passed by the caller.
_SYSTEM_LIBS = re.compile(
    r"/(ld-linux[^/]*|libc|libpthread|libm|libdl|librt|libgcc_s|libstdc\+\+|libasan)"
    r"(\.so|-[0-9.]+\.so)[^/]*$")

# How the C runtime kills a process on purpose, by the function that does it
# (glibc, libstdc++). Tried in this order over the whole backtrace: the
# stack protector's __stack_chk_fail calls __fortify_fail to print its
# message, so the more specific reason must win over the frame order.
_RUNTIME_REASONS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"__assert_fail|__assert_perror_fail"), "a failed assertion (assert())"),
    (re.compile(r"__stack_chk_fail"),
     "stack smashing detected by the stack protector (a buffer overflow on the stack)"),
    (re.compile(r"malloc_printerr"),
     "heap corruption caught by glibc's malloc (a double free, or a write past a block)"),
    (re.compile(r"std::terminate|__cxa_throw|__cxxabiv1|__verbose_terminate_handler|"
                r"__cxa_rethrow|__cxa_pure_virtual"),
     "an uncaught C++ exception (std::terminate)"),
    (re.compile(r"__fortify_fail|__chk_fail"),
     "a buffer overflow caught by _FORTIFY_SOURCE"),
)

STACK_GUARD_REACH = 64 * 1024  # how far below sp a stack-overflow fault lands


def is_system_library(path: str | None) -> bool:
    return bool(path and _SYSTEM_LIBS.search(path))


def blame_frame(frames: Sequence[Frame], exe: str | None = None) -> Frame | None:
    """The frame whose code is most likely at fault.

    The innermost frame outside the C runtime (the code that passed the bad
    value); and when that is the main program (nginx's own API: a log call
    with a bad format, a pool written past its end), the innermost plug-in
    module further out that called into it, since modules misuse the host's
    API far more often than the host breaks. None when the backtrace never
    leaves the C runtime: it is then incomplete (no gdb, a cut stack)."""
    for i, frame in enumerate(frames):
        # An inlined frame (a header's strcpy wrapper) is its caller's code.
        if frame.inlined:
            continue
        if frame.module and not is_system_library(frame.module):
            if exe is not None and frame.module == exe:
                caller = next((f for f in frames[i + 1:] if f.module and f.module != exe
                               and not is_system_library(f.module)), None)
                if caller is not None:
                    return caller
            return frame
    return None


def frame_label(frame: Frame) -> str:
    if frame.function and frame.trusted:
        name = frame.function
        return name if "(" in name or name.startswith("<") else f"{name}()"
    if frame.module and frame.module_offset is not None:
        return f"{os.path.basename(frame.module)}+{frame.module_offset:#x}"
    return f"{frame.pc:#x}"


def sent_by_other(facts: CoreFacts) -> bool:
    """The signal came from another process (kill -SEGV, a supervisor): the
    code that was running is a bystander. Pid 0 is the kernel itself
    (SIGXFSZ, SIGPIPE…), which acts on what the process did."""
    s, p = facts.signal, facts.process
    return bool(s and s.sender_pid and (p is None or s.sender_pid != p.pid))


def is_snapshot(facts: CoreFacts) -> bool:
    """A core of a live process (gcore, a debugger): stopped, not crashed.
    The kernel writes no section headers (one, when there are over 65535
    segments); gdb's gcore writes many. A kernel core with SIGTRAP is a
    crash (an int3 or a raise(SIGTRAP) with no debugger attached)."""
    s = facts.signal
    if s is None or s.number == SIGSTOP:
        return True
    return facts.sections > 1 and s.number == S.SIGTRAP


def why(facts: CoreFacts, crashed: Thread | None) -> str:
    """What killed the process, in words, using the backtrace where it knows more."""
    s = facts.signal
    if s is None:
        return "no signal recorded"
    frames = crashed.frames if crashed else ()
    if s.number == S.SIGABRT:
        for pattern, reason in _RUNTIME_REASONS:
            if any(f.function and pattern.search(f.function) for f in frames):
                return f"SIGABRT: {reason}"
    if s.sender_pid == 0 and s.code == S.SI_USER:
        return f"{s.name}: raised by the kernel"
    own = facts.process is not None and s.sender_pid == facts.process.pid
    if own and s.number == S.SIGABRT:
        return f"{s.name}: the program aborted itself (abort(), or a library's failed check)"
    if own:
        return f"{s.name}: the program sent it to itself (raise(), kill(getpid(), …))"
    addr = s.fault_address
    if addr is not None and crashed is not None and s.number in (S.SIGSEGV, S.SIGBUS):
        if crashed.pc == addr:
            text = f"{s.name}: jumped to {addr:#x}, which is not code"
            if addr < S.NULL_PAGE_LIMIT:
                text += " — a call through a NULL function pointer"
            return text
        mapped = next((m for m in facts.mappings if m.start <= addr < m.end), None)
        if s.number == S.SIGBUS and mapped is not None:
            return (f"{s.description}, in the mapped file {mapped.path} at offset "
                    f"{addr - mapped.start + mapped.file_offset:#x} (the file is shorter than "
                    "its mapping: truncated while mapped?)")
        sp = crashed.sp
        if sp is not None and addr >= S.NULL_PAGE_LIMIT and s.number == S.SIGSEGV and \
                sp - STACK_GUARD_REACH <= addr < sp + 4096:
            return (f"{s.name}: a stack overflow — the fault at {addr:#x} is just below the "
                    "stack pointer (runaway recursion, or a very large local variable)")
    if s.number == S.SIGILL and s.code in (1, 2):  # ILL_ILLOPC, ILL_ILLOPN
        return (f"{s.description} — a trap instruction (ud2, __builtin_trap(), "
                "__builtin_unreachable() reached) or code that is not code")
    if s.number == S.SIGTRAP and s.code == S.SI_KERNEL:
        return (f"{s.name}: a breakpoint instruction (int3) was executed with no debugger "
                "attached; the pc is just after it")
    return s.description


def _place(facts: CoreFacts, frame: Frame) -> str:
    if frame.module:
        return os.path.basename(frame.module)
    if not facts.mappings:
        return "mapping unknown: the core has no NT_FILE note"
    if any(lo <= frame.pc < hi for lo, hi in facts.exec_ranges):
        return "anonymous executable memory (JIT code?)"
    if any(lo <= frame.pc < hi for lo, hi in facts.memory_ranges):
        return "non-executable memory: heap, stack or data"
    return "unmapped memory"


def summarize(facts: CoreFacts, crashed: Thread | None, blame: Frame | None) -> str:
    crash = crashed.frames[0] if crashed and crashed.frames else None
    who = os.path.basename(facts.exe) if facts.exe else (
        facts.process.fname if facts.process else "?")
    pid = f" (pid {facts.process.pid})" if facts.process else ""
    if is_snapshot(facts):
        how = f"while stopped by {facts.signal.name}" if facts.signal else "with no signal"
        where = f"; it was in {frame_label(crash)}" if crash else ""
        return (f"{who}{pid}: a snapshot taken {how} (gcore or a debugger), not a crash"
                f"{where}")
    text = f"{who}{pid} died of {why(facts, crashed)}"
    if sent_by_other(facts):
        where = f"; it was in {frame_label(crash)} [{_place(facts, crash)}]" if crash else ""
        return (f"{text}. Another process killed it: not a bug in the code that was "
                f"running{where}")
    if crash is not None:
        text += f", in {frame_label(crash)} [{_place(facts, crash)}]"
        if blame is not None and blame is not crash and blame.module != crash.module:
            text += (f", called from {frame_label(blame)} "
                     f"[{os.path.basename(blame.module or '?')}]")
    return text


def module_warnings(facts: CoreFacts, rescued: frozenset[str] = frozenset()) -> list[str]:
    out = []
    if facts.exe and any(m.deleted for m in facts.mappings if m.path == facts.exe):
        exe = next((m for m in facts.modules if m.path == facts.exe), None)
        if exe is None or exe.build_id_match is not True:
            out.append(f"{facts.exe} was deleted or replaced after the process started (an "
                       "upgrade?): the file now at that path may not be the build that crashed")
    for m in facts.modules:
        if m.build_id_match is False and m.path in rescued:
            out.append(f"build-id mismatch: {m.path} on disk is another build, but a debug "
                       f"file of the crashed build ({m.build_id}) was found: names come from "
                       "it (gdb's unwinding still used the file on disk)")
        elif m.build_id_match is False:
            where = m.disk_path if m.disk_path and m.disk_path != m.path else m.path
            out.append(f"BUILD-ID MISMATCH: {where} on disk is {m.file_build_id}, the crashed "
                       f"process had {m.build_id}; names, lines and instructions from this "
                       "file are not trustworthy (install the exact build, or pass "
                       "--sysroot/--exe)")
        elif m.file_status == "missing":
            out.append(f"{m.disk_path or m.path} is not on this host; its frames cannot be "
                       "symbolized")
        elif m.file_status == "not-elf":
            out.append(f"{m.disk_path or m.path} on disk is not an ELF file any more "
                       "(replaced?); its frames cannot be symbolized")
        elif m.file_status == "unreadable":
            out.append(f"{m.disk_path or m.path} cannot be read; its frames cannot be "
                       "symbolized")
    return out


def build_analysis(facts: CoreFacts, threads: tuple[Thread, ...], *, gdb_used: bool,
                   gdb_error: str | None = None, extra_warnings: Sequence[str] = (),
                   context: CrashContext | None = None,
                   rescued: frozenset[str] = frozenset()) -> Analysis:
    crashed = threads[0] if threads else None
    crash = crashed.frames[0] if crashed and crashed.frames else None
    blame = (blame_frame(crashed.frames, facts.exe) if crashed and not sent_by_other(facts)
             and not is_snapshot(facts) else None)
    # The same warning twice (one per module of a partial sysroot) says no more.
    warnings = list(dict.fromkeys([*facts.problems, *module_warnings(facts, rescued),
                                   *extra_warnings]))
    kind = "snapshot" if is_snapshot(facts) else "killed" if sent_by_other(facts) else "crash"
    return Analysis(core=facts, threads=threads, crash_frame=crash,
                    crash_module=blame.module if blame else None,
                    summary=summarize(facts, crashed, blame), warnings=tuple(warnings),
                    gdb_used=gdb_used, gdb_error=gdb_error, context=context,
                    cause=why(facts, crashed), blame=blame, kind=kind)
