"""The plain data of ``crashkit triage`` and ``crashkit doctor``.

Readers (crashkit.nginx.errorlog, crashkit.host.*) and the analyses in
crashkit.analysis.triage / crashkit.analysis.doctor produce these; the
renderers in crashkit.render.triage print them as text or JSON.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Severity = Literal["critical", "high", "medium", "low"]
SEVERITY_ORDER: dict[str, int] = {"critical": 0, "high": 1, "medium": 2, "low": 3}
CheckStatus = Literal["ok", "warn", "fail", "skip"]


@dataclass(frozen=True)
class Count:
    value: str
    count: int


@dataclass(frozen=True)
class OomKill:
    """A kernel log line saying the OOM killer killed a process."""

    pid: int
    comm: str
    line: str


@dataclass(frozen=True)
class PortHolder:
    """A process that has a listening socket on an address."""

    address: str  # "127.0.0.1:8080", "[::]:80"
    pid: int
    comm: str
    cmdline: str


@dataclass(frozen=True)
class Finding:
    kind: str  # stable identifier: "upstream-refused", "worker-oom", …
    severity: Severity
    title: str
    count: int
    first: str | None  # ISO local time of the first line
    last: str | None
    fix: str
    upstreams: tuple[Count, ...] = ()
    clients: tuple[Count, ...] = ()
    requests: tuple[Count, ...] = ()
    # Kind-specific facts: addresses, pids, signals, sockets, directives,
    # messages, OOM lines, port holders. Plain JSON-able values.
    details: dict[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class LogSource:
    path: str
    compressed: bool
    bytes: int
    truncated: bool


@dataclass(frozen=True)
class Triage:
    findings: tuple[Finding, ...]
    sources: tuple[LogSource, ...]
    since: str | None
    garbage_lines: int
    skipped_bytes: int
    seconds: float
    kernel_log: str  # where OOM kills were looked for, or why they were not
    approximate_tops: bool = False  # top lists pruned to bound memory
    notes: tuple[str, ...] = ()  # what a person should know about what was read


@dataclass(frozen=True)
class Check:
    name: str  # stable identifier: "nginx-t", "master", "workers", …
    status: CheckStatus
    summary: str
    fix: str | None = None
    details: dict[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class Doctor:
    conf: str
    checks: tuple[Check, ...]

    @property
    def needs_attention(self) -> bool:
        return any(c.status in ("warn", "fail") for c in self.checks)
