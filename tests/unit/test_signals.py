"""The signal tables against the kernel's numbering (pure, no I/O)."""

import pytest

from crashkit.model import signals


@pytest.mark.parametrize(("signo", "code", "name"), [
    (11, 1, "SEGV_MAPERR"), (11, 2, "SEGV_ACCERR"), (7, 2, "BUS_ADRERR"), (7, 1, "BUS_ADRALN"),
    (4, 1, "ILL_ILLOPC"), (8, 1, "FPE_INTDIV"), (5, 1, "TRAP_BRKPT"), (31, 1, "SYS_SECCOMP"),
    (11, 0, "SI_USER"), (6, -6, "SI_TKILL"), (11, 0x80, "SI_KERNEL"), (10, -1, "SI_QUEUE"),
    (14, -2, "SI_TIMER"), (9, 12345, None),
])
def test_code_names(signo: int, code: int, name: str | None) -> None:
    assert signals.code_name(signo, code) == name


def test_fault_address_only_for_cpu_faults() -> None:
    assert signals.has_fault_address(11, 1)
    assert not signals.has_fault_address(11, 0)  # kill -SEGV: no address
    assert not signals.has_fault_address(11, 0x80)  # SI_KERNEL: kernel reports none
    assert not signals.has_fault_address(6, -6)


def test_names() -> None:
    assert signals.signal_name(11) == "SIGSEGV"
    assert signals.signal_name(6) == "SIGABRT"
    assert signals.signal_name(36) == "SIGRTMIN+2"
    assert signals.signal_name(99) == "signal 99"


def test_describe_null_pointer() -> None:
    text = signals.describe(11, 1, 0x10, None, None)
    assert text == ("SIGSEGV: address not mapped to any object at address 0x10 — a NULL pointer "
                    "dereference (or an access 0x10 bytes past one: a struct field or an array "
                    "element)")
    high = signals.describe(11, 2, 0x7F0000001000, None, None)
    assert "NULL" not in high and "invalid permissions" in high


def test_describe_sender_and_abort() -> None:
    assert signals.describe(11, 0, None, 77, 0) == (
        "SIGSEGV: sent by kill() from a process; sender process 77 (uid 0)")
    assert signals.describe(6, -6, None, 5, 33) == (
        "SIGABRT: sent by tkill()/tgkill() (raise(), abort(), pthread_kill()); sender process 5 "
        "(uid 33)")
