"""Names and meanings of Linux signals and ``si_code`` values.

Pure tables, no I/O (the "descriptions" layer). Numbers are the generic Linux
ones shared by x86-64 and aarch64: include/uapi/asm-generic/signal.h and
include/uapi/asm-generic/siginfo.h in the kernel tree.
"""

from __future__ import annotations

SIGNAL_NAMES: dict[int, str] = {
    1: "SIGHUP", 2: "SIGINT", 3: "SIGQUIT", 4: "SIGILL", 5: "SIGTRAP", 6: "SIGABRT",
    7: "SIGBUS", 8: "SIGFPE", 9: "SIGKILL", 10: "SIGUSR1", 11: "SIGSEGV", 12: "SIGUSR2",
    13: "SIGPIPE", 14: "SIGALRM", 15: "SIGTERM", 16: "SIGSTKFLT", 17: "SIGCHLD",
    18: "SIGCONT", 19: "SIGSTOP", 20: "SIGTSTP", 21: "SIGTTIN", 22: "SIGTTOU", 23: "SIGURG",
    24: "SIGXCPU", 25: "SIGXFSZ", 26: "SIGVTALRM", 27: "SIGPROF", 28: "SIGWINCH", 29: "SIGIO",
    30: "SIGPWR", 31: "SIGSYS",
}

SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGTRAP, SIGABRT, SIGSYS = 11, 7, 4, 8, 5, 6, 31

# si_code values any signal can carry (siginfo.h: SI_USER … SI_ASYNCNL).
SI_USER, SI_KERNEL, SI_QUEUE, SI_TKILL = 0, 0x80, -1, -6
_GENERIC_CODES: dict[int, tuple[str, str]] = {
    0: ("SI_USER", "sent by kill() from a process"),
    0x80: ("SI_KERNEL", "sent by the kernel"),
    -1: ("SI_QUEUE", "sent by sigqueue() from a process"),
    -2: ("SI_TIMER", "a POSIX timer expired"),
    -3: ("SI_MESGQ", "a POSIX message queue changed state"),
    -4: ("SI_ASYNCIO", "an asynchronous I/O request completed"),
    -5: ("SI_SIGIO", "queued SIGIO"),
    -6: ("SI_TKILL", "sent by tkill()/tgkill() (raise(), abort(), pthread_kill())"),
    -7: ("SI_DETHREAD", "sent when another thread called execve()"),
    -60: ("SI_ASYNCNL", "an asynchronous name lookup completed"),
}

# Codes that only mean something for one signal (they are positive and overlap).
_SIGNAL_CODES: dict[int, dict[int, tuple[str, str]]] = {
    SIGSEGV: {
        1: ("SEGV_MAPERR", "address not mapped to any object"),
        2: ("SEGV_ACCERR", "invalid permissions for a mapped object"),
        3: ("SEGV_BNDERR", "failed address bound checks"),
        4: ("SEGV_PKUERR", "access denied by memory protection keys"),
        5: ("SEGV_ACCADI", "ADI not enabled for mapped object"),
        6: ("SEGV_ADIDERR", "disrupting MCD error"),
        7: ("SEGV_ADIPERR", "precise MCD exception"),
        8: ("SEGV_MTEAERR", "asynchronous MTE tag check fault"),
        9: ("SEGV_MTESERR", "synchronous MTE tag check fault"),
        10: ("SEGV_CPERR", "control protection fault (shadow stack)"),
    },
    SIGBUS: {
        1: ("BUS_ADRALN", "invalid address alignment"),
        2: ("BUS_ADRERR", "non-existent physical address (e.g. past the end of a mapped file)"),
        3: ("BUS_OBJERR", "object-specific hardware error"),
        4: ("BUS_MCEERR_AR", "hardware memory error consumed on a machine check"),
        5: ("BUS_MCEERR_AO", "hardware memory error detected, action optional"),
    },
    SIGILL: {
        1: ("ILL_ILLOPC", "illegal opcode"),
        2: ("ILL_ILLOPN", "illegal operand"),
        3: ("ILL_ILLADR", "illegal addressing mode"),
        4: ("ILL_ILLTRP", "illegal trap"),
        5: ("ILL_PRVOPC", "privileged opcode"),
        6: ("ILL_PRVREG", "privileged register"),
        7: ("ILL_COPROC", "coprocessor error"),
        8: ("ILL_BADSTK", "internal stack error"),
        9: ("ILL_BADIADDR", "unimplemented instruction address"),
    },
    SIGFPE: {
        1: ("FPE_INTDIV", "integer divide by zero"),
        2: ("FPE_INTOVF", "integer overflow"),
        3: ("FPE_FLTDIV", "floating-point divide by zero"),
        4: ("FPE_FLTOVF", "floating-point overflow"),
        5: ("FPE_FLTUND", "floating-point underflow"),
        6: ("FPE_FLTRES", "floating-point inexact result"),
        7: ("FPE_FLTINV", "floating-point invalid operation"),
        8: ("FPE_FLTSUB", "subscript out of range"),
        9: ("FPE_FLTUNK", "undiagnosed floating-point exception"),
        10: ("FPE_CONDTRAP", "trap on condition"),
    },
    SIGTRAP: {
        1: ("TRAP_BRKPT", "process breakpoint"),
        2: ("TRAP_TRACE", "process trace trap"),
        3: ("TRAP_BRANCH", "process taken branch trap"),
        4: ("TRAP_HWBKPT", "hardware breakpoint/watchpoint"),
        5: ("TRAP_UNK", "undiagnosed trap"),
        6: ("TRAP_PERF", "perf event with sigtrap=1"),
    },
    SIGSYS: {1: ("SYS_SECCOMP", "system call blocked by a seccomp filter")},
}

# Signals whose kernel-generated siginfo carries the faulting address in si_addr.
FAULT_SIGNALS = frozenset({SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGTRAP})

# Codes whose siginfo carries the sender's pid and uid (the _kill/_rt layouts).
SENDER_CODES = frozenset({0, -1, -3, -6})

# Below this, a fault address is almost always a NULL pointer plus a field
# offset (Linux refuses to map anything under vm.mmap_min_addr, 4096 or 65536).
NULL_PAGE_LIMIT = 65536


def signal_name(number: int) -> str:
    if number in SIGNAL_NAMES:
        return SIGNAL_NAMES[number]
    if 34 <= number <= 64:
        return f"SIGRTMIN+{number - 34}"
    return f"signal {number}"


def _code_entry(signo: int, code: int) -> tuple[str, str] | None:
    # Positive codes below SI_KERNEL belong to the signal; the rest are generic.
    entry = _SIGNAL_CODES.get(signo, {}).get(code) if 0 < code < SI_KERNEL else None
    return entry or _GENERIC_CODES.get(code)


def code_name(signo: int, code: int) -> str | None:
    entry = _code_entry(signo, code)
    return entry[0] if entry else None


def code_meaning(signo: int, code: int) -> str | None:
    entry = _code_entry(signo, code)
    return entry[1] if entry else None


def has_fault_address(signo: int, code: int) -> bool:
    """True when si_addr is meaningful: a fault signal raised by the CPU."""
    return signo in FAULT_SIGNALS and 0 < code < SI_KERNEL


def has_sender(code: int) -> bool:
    return code in SENDER_CODES


def describe(signo: int, code: int | None, fault_address: int | None,
             sender_pid: int | None, sender_uid: int | None) -> str:
    """One sentence on what happened, for people."""
    name = signal_name(signo)
    if code is None:
        return f"{name} (the core has no siginfo note, so how it was raised is unknown)"
    meaning = code_meaning(signo, code) or f"si_code {code}"
    if fault_address is not None and signo in (SIGILL, SIGFPE):
        # Here the kernel reports the instruction, not a data address.
        return f"{name}: {meaning} (instruction at {fault_address:#x})"
    if fault_address is not None:
        text = f"{name}: {meaning} at address {fault_address:#x}"
        if signo in (SIGSEGV, SIGBUS) and fault_address < NULL_PAGE_LIMIT:
            text += (" — a NULL pointer dereference"
                     + (f" (or an access {fault_address:#x} bytes past one: a struct field or "
                        "an array element)" if fault_address else ""))
        return text
    if sender_pid is not None:
        who = f"process {sender_pid}" + (f" (uid {sender_uid})" if sender_uid is not None else "")
        return f"{name}: {meaning}; sender {who}"
    if code == SI_KERNEL and signo == SIGSEGV:
        return (f"{name}: general protection fault raised by the kernel; the address is not "
                "reported (often a non-canonical or wild pointer)")
    return f"{name}: {meaning}"
