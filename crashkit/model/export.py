"""What ``crashkit export`` reports."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

# What became of one crash: sent (the server took it), already (sent by an
# earlier run), failed (kept for the next run to retry), deferred (not tried:
# the server asked to wait), would_send (--dry-run), skipped (no core to read).
ExportOutcome = Literal["sent", "already", "failed", "deferred", "would_send", "skipped"]


@dataclass(frozen=True)
class ExportedCrash:
    crash_id: int
    outcome: ExportOutcome
    event_id: str | None = None
    signature: str | None = None
    summary: str | None = None
    detail: str = ""  # why it failed or was skipped, the server's status
    status: int | None = None  # the server's HTTP status
    attempts: int = 0  # sends tried for this crash and server, this one included


@dataclass(frozen=True)
class ExportResult:
    store: str
    target: str | None  # the server and project (the DSN without its key)
    dry_run: bool
    crashes: tuple[ExportedCrash, ...]
    seconds: float
    events: tuple[dict[str, Any], ...] = field(default_factory=tuple)  # --dry-run: what would go
    dsn_from: str | None = None  # "--sentry", "SENTRY_DSN", or the config file's path

    def count(self, outcome: ExportOutcome) -> int:
        return sum(1 for c in self.crashes if c.outcome == outcome)

    @property
    def needs_attention(self) -> bool:
        """exit 1: a crash could not be sent (it is retried by the next run)."""
        return any(c.outcome in ("failed", "deferred") for c in self.crashes)
