"""The plain data of ``crashkit setup``: what the plan was and what was done."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from crashkit.model.collect import CollectUnit
from crashkit.model.readiness import CoreCheck as Check

if TYPE_CHECKING:
    from crashkit.analysis.setup import NginxPlan
    from crashkit.model.nginx import ConfigLocation, NginxConfig
    from crashkit.writers.config import Reload
    from crashkit.writers.coredir import CoreDir, Worker
    from crashkit.writers.dropins import SystemChange
    from crashkit.writers.record import UndoStep

Mode = Literal["dry-run", "apply", "undo"]


@dataclass(frozen=True)
class FileResult:
    path: str
    diff: str
    backup: str | None  # the backup written (apply) or restored from (undo)
    created: bool = False  # a new file of crashkit's own (the drop-in an include loads)


@dataclass(frozen=True)
class Result:
    mode: Mode
    location: ConfigLocation
    config: NginxConfig
    worker: Worker
    workers: int
    plan: NginxPlan | None  # None for undo
    core_dir: CoreDir | None
    checks: tuple[Check, ...]
    files: tuple[FileResult, ...]
    changed: bool  # files were (or, in a dry run, would be) replaced
    system: tuple[SystemChange, ...] = ()
    system_planned: tuple[tuple[str, str, str], ...] = ()  # dry run: (kind, path, content)
    reload: Reload | None = None
    notes: tuple[str, ...] = field(default=())
    collect_unit: CollectUnit | None = None  # --collect: the collect --watch service
    fixed: tuple[str, ...] = ()  # checks that warned or failed before --system, ok after
    undone: tuple[UndoStep, ...] = ()  # undo: what it took back beyond nginx's files, or left

    @property
    def needs_attention(self) -> bool:
        """Exit 1: the dry run found changes to make, or a check still warns or fails."""
        if self.mode == "dry-run" and (self.changed or (self.core_dir and (
                self.core_dir.actions or self.core_dir.worker_can_reach is False))):
            return True
        return any(c.needs_attention and not self._fixed(c) for c in self.checks)

    def _fixed(self, c: Check) -> bool:
        # The checks after --system judge the kernel settings as they are now;
        # systemd's LimitCORE drop-in counts once written (it applies when
        # nginx next starts, which setup does not do).
        return c.remedy is not None and c.remedy.kind == "systemd" and any(
            s.kind == "systemd" for s in self.system)
