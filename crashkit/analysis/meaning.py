"""What a signal means: pure functions over the core's facts and the crashing
thread's backtrace.

The kernel's siginfo says which signal, how it was raised (si_code) and, for
faults, which address; the registers say where the stack and the pc were; the
PT_LOAD segments say what was mapped there and with which rights; the frames
say whether the C runtime killed the process on purpose. Together they turn
"SIGSEGV" into "NULL pointer dereference", "stack overflow" or "write to
read-only memory".
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from crashkit.model import signals as S
from crashkit.model.analyze import CoreFacts, Frame, Meaning, MeaningKind, Thread


@dataclass(frozen=True)
class KindInfo:
    title: str | None  # the verdict's first words; None: the signal's name
    # A deliberate stop: the frame that raised the signal is machinery (abort,
    # the stack protector), the interesting place is its caller.
    on_purpose: bool = False


# The registry of meanings: every MeaningKind once (tests/unit check it).
# Adding a meaning is its entry here, its rule below, and its test.
MEANINGS: dict[MeaningKind, KindInfo] = {
    "null-pointer": KindInfo("NULL pointer dereference"),
    "near-null": KindInfo("NULL pointer dereference"),
    "null-function-pointer": KindInfo("Call through a NULL function pointer"),
    "bad-jump": KindInfo("Jump to a bad address"),
    "wild-pointer": KindInfo("Bad pointer"),
    "write-read-only": KindInfo("Write to read-only memory"),
    "guard-page": KindInfo("Access to a guard page"),
    "access-denied": KindInfo("Memory access denied"),
    "stack-overflow": KindInfo("Stack overflow"),
    "bus-mapped-file": KindInfo("Bus error on a mapped file that shrank"),
    "misaligned-access": KindInfo("Misaligned memory access"),
    "bus-error": KindInfo("Bus error"),
    "assertion": KindInfo("Failed assertion", on_purpose=True),
    "stack-protector": KindInfo("Stack buffer overflow caught by the stack protector",
                                on_purpose=True),
    "heap-corruption": KindInfo("Heap corruption caught by glibc's malloc", on_purpose=True),
    "uncaught-exception": KindInfo("Uncaught C++ exception", on_purpose=True),
    "fortify": KindInfo("Buffer overflow caught by _FORTIFY_SOURCE", on_purpose=True),
    "abort": KindInfo("abort()", on_purpose=True),
    "self-signal": KindInfo("A signal the program sent itself", on_purpose=True),
    "sent-by-kernel": KindInfo("A signal from the kernel"),
    "sent-by-process": KindInfo(None),
    "illegal-instruction": KindInfo("Illegal instruction"),
    "breakpoint": KindInfo("Breakpoint trap with no debugger"),
    "divide-by-zero": KindInfo("Integer division by zero"),
    "arithmetic": KindInfo("Arithmetic exception"),
    "seccomp": KindInfo("System call forbidden by seccomp"),
    "snapshot": KindInfo(None),
    "unknown": KindInfo(None),
    "other": KindInfo(None),
}

SIGSTOP = 19
SEGV_MAPERR, SEGV_ACCERR = 1, 2
BUS_ADRALN, BUS_ADRERR = 1, 2
FPE_INTDIV, FPE_INTOVF = 1, 2
SYS_SECCOMP = 1
STACK_GUARD_REACH = 64 * 1024  # how far below sp a stack-overflow fault lands

# How the C runtime kills a process on purpose, by the function that does it
# (glibc, libstdc++), with the meaning's kind. Tried in this order over the
# whole backtrace: the stack protector's __stack_chk_fail calls __fortify_fail
# to print its message, so the more specific reason must win over frame order.
RUNTIME_REASONS: tuple[tuple[re.Pattern[str], MeaningKind, str], ...] = (
    (re.compile(r"__assert_fail|__assert_perror_fail"), "assertion",
     "a failed assertion (assert())"),
    (re.compile(r"__stack_chk_fail"), "stack-protector",
     "stack smashing detected by the stack protector (a buffer overflow on the stack)"),
    (re.compile(r"malloc_printerr"), "heap-corruption",
     "heap corruption caught by glibc's malloc (a double free, or a write past a block)"),
    (re.compile(r"std::terminate|__cxa_throw|__cxxabiv1|__verbose_terminate_handler|"
                r"__cxa_rethrow|__cxa_pure_virtual"), "uncaught-exception",
     "an uncaught C++ exception (std::terminate)"),
    (re.compile(r"__fortify_fail|__chk_fail"), "fortify",
     "a buffer overflow caught by _FORTIFY_SOURCE"),
)


# libstdc++ throws its own exceptions through one function per type:
# std::__throw_system_error(int) throws std::system_error,
# std::__throw_out_of_range_fmt(char const*, ...) std::out_of_range.
_THROWER = re.compile(r"^std::__throw_([a-z_]+?)(?:_fmt)?(?:\(|$)")


def exception_type(frames: Sequence[Frame]) -> str | None:
    """The type of the exception being thrown, where a frame names it."""
    for f in frames:
        m = _THROWER.match(f.function or "")
        if m:
            return f"std::{m.group(1)}"
    return None


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


_ABORT = re.compile(r"^(__GI_|__libc_)?abort$")
_RAISE = re.compile(r"^(__GI_|__libc_)?(raise|gsignal)$")


def segment_at(facts: CoreFacts, address: int) -> tuple[int, int, str] | None:
    return next((seg for seg in facts.segments if seg[0] <= address < seg[1]), None)


def signal_meaning(facts: CoreFacts, crashed: Thread | None) -> Meaning:
    s = facts.signal
    if s is None:
        return Meaning("unknown", "no signal recorded")
    if is_snapshot(facts):
        return Meaning("snapshot", f"{s.name}: stopped for a snapshot (gcore or a debugger)")
    frames = crashed.frames if crashed else ()
    if s.number == S.SIGABRT:
        for pattern, kind, reason in RUNTIME_REASONS:
            if any(f.function and pattern.search(f.function) for f in frames):
                thrown = exception_type(frames) if kind == "uncaught-exception" else None
                if thrown:
                    reason = reason.replace("exception", f"exception of type {thrown}", 1)
                return Meaning(kind, f"SIGABRT: {reason}", exception=thrown)
    if sent_by_other(facts):
        return Meaning("sent-by-process", s.description)
    if s.sender_pid == 0 and s.code == S.SI_USER:
        return Meaning("sent-by-kernel", f"{s.name}: raised by the kernel")
    own = facts.process is not None and s.sender_pid == facts.process.pid
    if own and s.number == S.SIGABRT:
        names = [f.function or "" for f in frames]
        if any(_RAISE.match(n) for n in names) and not any(_ABORT.match(n) for n in names):
            # abort() calls raise() too: only a raise without an abort above it
            # is the program's own raise(SIGABRT).
            return Meaning("self-signal", f"{s.name}: the program raised it itself "
                                          "(raise(SIGABRT), not abort())")
        return Meaning("abort", f"{s.name}: the program aborted itself (abort(), or a "
                                "library's failed check)")
    if own:
        return Meaning("self-signal", f"{s.name}: the program sent it to itself (raise(), "
                                      "kill(getpid(), …))")
    if s.fault_address is not None and s.number in (S.SIGSEGV, S.SIGBUS):
        found = _memory_fault(facts, crashed, s.number, s.code or 0, s.fault_address)
        if found is not None:
            return found
    return _other_fault(s.number, s.code, s.description)


def _memory_fault(facts: CoreFacts, crashed: Thread | None, signo: int, code: int,
                  addr: int) -> Meaning | None:
    name = S.signal_name(signo)
    if crashed is not None and crashed.pc == addr:
        if addr < S.NULL_PAGE_LIMIT:
            return Meaning("null-function-pointer",
                           f"{name}: jumped to {addr:#x}, which is not code — a call through "
                           "a NULL function pointer")
        return Meaning("bad-jump", f"{name}: jumped to {addr:#x}, which is not code (a "
                                   "corrupted function pointer or return address)")
    if signo == S.SIGBUS:
        mapped = next((m for m in facts.mappings if m.start <= addr < m.end), None)
        if mapped is not None:
            return Meaning("bus-mapped-file",
                           f"{name}: {S.code_meaning(signo, code) or 'bus error'}, in the mapped "
                           f"file {mapped.path} at offset "
                           f"{addr - mapped.start + mapped.file_offset:#x} (the file is shorter "
                           "than its mapping: truncated while mapped?)")
        if code == BUS_ADRALN:
            return Meaning("misaligned-access", f"{name}: a misaligned access at {addr:#x}")
        return None
    sp = crashed.sp if crashed is not None else None
    if sp is not None and addr >= S.NULL_PAGE_LIMIT and \
            sp - STACK_GUARD_REACH <= addr < sp + 4096:
        return Meaning("stack-overflow",
                       f"{name}: a stack overflow — the fault at {addr:#x} is just below the "
                       "stack pointer (runaway recursion, or a very large local variable)")
    if code == SEGV_MAPERR:
        if addr == 0:
            return Meaning("null-pointer", f"{name}: a NULL pointer dereference (address 0x0)")
        if addr < S.NULL_PAGE_LIMIT:
            return Meaning("near-null",
                           f"{name}: a NULL pointer dereference at address {addr:#x} (a struct "
                           f"field or an array element {addr:#x} bytes past a NULL pointer)")
        return Meaning("wild-pointer",
                       f"{name}: address {addr:#x} is not mapped — a wild, dangling or "
                       "corrupted pointer (or an index far past an array's end)")
    if code == SEGV_ACCERR:
        seg = segment_at(facts, addr)
        prot = seg[2] if seg else None
        if prot == "---":
            return Meaning("guard-page",
                           f"{name}: an access to a guard page at {addr:#x} (mapped with no "
                           "rights: past the end of a buffer, or another thread's stack "
                           "overflow)")
        if prot is not None and "r" in prot and "w" not in prot:
            return Meaning("write-read-only",
                           f"{name}: a write to read-only memory at {addr:#x} (a string "
                           "literal, a const table, or code)")
        return Meaning("access-denied",
                       f"{name}: {S.code_meaning(signo, code)} at address {addr:#x}")
    return None


def _other_fault(signo: int, code: int | None, description: str) -> Meaning:
    if signo == S.SIGSEGV and code == S.SI_KERNEL:
        return Meaning("wild-pointer", description)  # a general protection fault
    if signo == S.SIGILL:
        if code in (1, 2):  # ILL_ILLOPC, ILL_ILLOPN
            return Meaning("illegal-instruction",
                           f"{description} — a trap instruction (ud2, __builtin_trap(), "
                           "__builtin_unreachable() reached) or code that is not code")
        return Meaning("illegal-instruction", description)
    if signo == S.SIGTRAP and code == S.SI_KERNEL:
        return Meaning("breakpoint", "SIGTRAP: a breakpoint instruction (int3) was executed "
                                     "with no debugger attached; the pc is just after it")
    if signo == S.SIGFPE:
        if code == FPE_INTDIV:
            return Meaning("divide-by-zero", f"{description} (an integer division by zero, or "
                                             "INT_MIN / -1)")
        return Meaning("arithmetic", description)
    if signo == S.SIGSYS and code == SYS_SECCOMP:
        return Meaning("seccomp", f"{description}: a system call forbidden by a seccomp "
                                  "filter")
    if signo == S.SIGBUS:
        return Meaning("bus-error", description)
    return Meaning("other", description)
