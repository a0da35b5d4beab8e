"""The plain data of ``crashkit report``: what was written."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


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
    issue: Issue | None = None  # with --issue
    # --portable: the core and the files it maps are in the bundle, by path
    # and build-id; (name in the bundle, size) of the biggest.
    portable: bool = False
    biggest: tuple[tuple[str, int], ...] = ()

    @property
    def needs_attention(self) -> bool:
        # A bundle written is the job done, unless --submit was asked and
        # did not file.
        return self.issue is not None and self.issue.problem is not None


TrackerKind = Literal["github", "gitlab", "trac", "bugzilla", "debian", "unknown"]


@dataclass(frozen=True)
class Tracker:
    """Where a crash's report goes, and why (crashkit.analysis.trackers.choose)."""

    kind: TrackerKind
    project: str  # "nginx", "OpenSSL", "libnginx-mod-http-echo", the module's name …
    url: str | None  # the project's tracker base: https://github.com/nginx/nginx, …
    reason: str  # why this tracker: "the crash is in nginx's own code", …
    form: str | None = None  # a GitHub issue form's file (bug_report.yml)
    package: str | None = None  # the Debian package, for reportbug
    upstream: str | None = None  # where a Debian package's upstream lives (Homepage/Vcs-*)
    note: str | None = None  # "nginx's tracker asks for a reproduction without …"


@dataclass(frozen=True)
class Issue:
    """The prefilled upstream issue of ``crashkit report --issue``."""

    tracker: Tracker
    title: str
    body: str  # what the URL (or the body file) carries
    url: str | None  # the prefilled new-issue URL; None when the tracker takes none
    search_url: str | None  # a prefilled search for the signature hash
    command: tuple[str, ...] | None  # gh issue create … / reportbug …, to run by hand
    body_file: str | None  # the full body, for --body-file / reportbug
    budget: int
    cut: bool  # the body was cut to fit the budget
    duplicates: tuple[str, ...] = ()  # existing issues that name the signature hash
    filed: str | None = None  # the new issue's URL after --submit
    problem: str | None = None  # why --submit did not file (gh missing, not logged in, …)
