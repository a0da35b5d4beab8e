"""Facts about the live host that several verbs read: kernel-log OOM kills,
listening sockets and who holds them."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class OomKill:
    """A kernel log line saying the OOM killer killed a process."""

    pid: int
    comm: str
    line: str


@dataclass(frozen=True)
class OomEvent:
    """An OOM kill with its time: when the kernel's log line was written
    (seconds since the epoch; None when the line carries no time that can
    be placed)."""

    pid: int
    comm: str
    time: float | None
    line: str  # the message, without its stamps
    raw: str = ""  # the line as the log has it (stable across reads: a key)


@dataclass(frozen=True)
class PortHolder:
    """A process that has a listening socket on an address."""

    address: str  # "127.0.0.1:8080", "[::]:80"
    pid: int
    comm: str
    cmdline: str
