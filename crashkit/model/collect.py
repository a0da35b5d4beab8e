"""What ``crashkit collect``, ``list`` and ``show`` report."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from crashkit.model.export import ExportResult

SourceStatus = Literal["scanned", "absent", "unreadable", "skipped"]
# What became of one file a source holds.
Outcome = Literal["stored", "already", "restored", "counted", "would_store", "busy",
                  "rejected", "failed", "dropped"]


@dataclass(frozen=True)
class CollectUnit:
    """The systemd service that runs ``collect --watch`` (setup --collect)."""

    path: str
    action: Literal["installed", "removed", "unchanged", "absent", "would_install",
                    "would_remove"]
    live: str | None  # what was done to the running systemd, None when nothing


@dataclass(frozen=True)
class FileResult:
    """One file of a source: taken, left for later, or refused (and why)."""

    name: str
    path: str
    outcome: Outcome
    detail: str = ""
    crash_id: int | None = None
    signature: str | None = None
    summary: str | None = None
    size: int | None = None  # of the core, decompressed
    stored_bytes: int | None = None
    method: str | None = None  # "link" or "copy"
    source_removed: bool = False


@dataclass(frozen=True)
class SourceReport:
    """One place cores land, and what was found there."""

    kind: str  # index.SourceKind
    path: str
    why: str  # how crashkit knows cores land here
    status: SourceStatus
    detail: str = ""
    files: tuple[FileResult, ...] = ()
    keeps_source: bool = False  # a tool's own store: cores are copied, never removed


# Why a process died without a core: the kernel's OOM killer (its log names
# the pid at that time), a SIGKILL from anyone else, or another signal that
# left no core (RLIMIT_CORE 0, an unwritable directory, a filter).
LogCause = Literal["oom-kill", "sigkill", "signal"]


@dataclass(frozen=True)
class LogCrash:
    """A crash that only a log line tells of (no core was dumped): nginx's
    error.log, the kernel's log, or both, linked by pid and time."""

    pid: int
    signal: int
    time: int | None
    log: str  # the error log, or the kernel log when only it tells
    line: str
    crash_id: int | None = None
    new: bool = False
    cause: LogCause = "signal"
    kernel_line: str | None = None  # the OOM killer's line for this pid


@dataclass(frozen=True)
class Pruned:
    crash_id: int
    signature: str
    why: str
    size: int


@dataclass(frozen=True)
class CollectResult:
    store: str
    dry_run: bool
    sources: tuple[SourceReport, ...]
    log_crashes: tuple[LogCrash, ...] = ()
    pruned: tuple[Pruned, ...] = ()
    cleaned: tuple[str, ...] = ()  # half-written files of a killed run, removed
    notes: tuple[str, ...] = ()
    reindexed: int | None = None
    reindex_skipped: tuple[tuple[str, str], ...] = ()
    export: ExportResult | None = None  # --sentry: what was sent after collecting

    def count(self, outcome: Outcome) -> int:
        return sum(1 for s in self.sources for f in s.files if f.outcome == outcome)

    @property
    def needs_attention(self) -> bool:
        """Exit 1 when a core could not be taken (it stays where it was), or
        (--sentry) a crash could not be sent."""
        return self.count("failed") > 0 or (self.export is not None
                                            and self.export.needs_attention)


@dataclass(frozen=True)
class Group:
    """One signature: the same bug, however many processes hit it."""

    signature: str
    signature_text: str | None
    count: int
    stored: int  # crashes whose core is kept
    counted: int  # crashes whose core was seen but not kept (flood, retention)
    no_core: int  # crashes that only a log line tells of
    first_time: int | None
    last_time: int | None
    exe: str | None
    exe_version: str | None
    summary: str | None
    blamed_module: str | None
    blamed_function: str | None
    worst_confidence: str | None
    histogram: tuple[int, ...]


@dataclass(frozen=True)
class ListResult:
    store: str
    groups: tuple[Group, ...]
    total: int
    bucket: str  # "hour" or "day"
    histogram_start: int
    now: int
    since: int | None = None

    @property
    def needs_attention(self) -> bool:
        return False


@dataclass(frozen=True)
class ShowResult:
    store: str
    crash_id: int
    stored_name: str | None
    core_path: str | None  # the stored core, when kept
    source_kind: str
    source_path: str
    evidence: str
    pid: int | None
    exe: str | None
    exe_version: str | None
    exe_build_id: str | None
    signal: int | None
    signal_name: str | None
    si_code: int | None
    time: int | None
    collected_at: int | None
    truncated: bool
    signature: str
    signature_text: str | None
    summary: str | None
    blamed_module: str | None
    blamed_function: str | None
    confidence: str | None
    analysis: str | None
    host: str | None
    size: int
    sha256: str
    compression: str | None
    modules: tuple[tuple[str, str | None], ...] = ()
    group: Group | None = None
    siblings: tuple[int, ...] = field(default_factory=tuple)  # other crashes of the group

    @property
    def needs_attention(self) -> bool:
        return False
