"""The plain data of ``crashkit triage``.

The error-log reader (crashkit.nginx.errorlog) and crashkit.analysis.triage
produce these; crashkit.render.triage prints them as text or JSON.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Severity = Literal["critical", "high", "medium", "low"]
SEVERITY_ORDER: dict[str, int] = {"critical": 0, "high": 1, "medium": 2, "low": 3}


@dataclass(frozen=True)
class Count:
    value: str
    count: int


@dataclass(frozen=True)
class Finding:
    kind: str  # stable identifier: "upstream-refused", "worker-oom", …
    severity: Severity
    title: str
    count: int
    first: str | None  # the first line's time, ISO 8601 with the host's local offset
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

    @property
    def needs_attention(self) -> bool:
        return bool(self.findings)
