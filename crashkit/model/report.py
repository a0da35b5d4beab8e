"""The plain data of ``crashkit report``: what was written."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ReportResult:
    bundle: str
    files: tuple[str, ...]
    size: int
    notes: tuple[str, ...]  # what could not be included, and why
    verdict: str
    redacted: bool = True
    include_core: bool = False
    warnings: tuple[str, ...] = ()  # for a person, on stderr (gdb failed, …)

    @property
    def needs_attention(self) -> bool:
        return False  # a bundle written is the job done
