"""The plain data of ``crashkit doctor``: the facts gathered from the live host
(crashkit.commands.doctor), and the checks crashkit.analysis.doctor makes of them."""

from __future__ import annotations

from dataclasses import dataclass, field

from crashkit.model.host import OomKill, PortHolder
from crashkit.model.readiness import Status as CheckStatus


@dataclass(frozen=True)
class WorkerLimits:
    pid: int
    nofile_soft: int | None  # None: unlimited or unreadable
    nofile_hard: int | None


@dataclass(frozen=True)
class ListenState:
    address: str
    where: str  # file:line of the listen directive
    holders: tuple[PortHolder, ...]


@dataclass(frozen=True)
class UpstreamProbe:
    target: str  # as written in the config
    where: str
    kind: str  # proxy_pass, fastcgi_pass, …, server
    address: str | None  # "127.0.0.1:8080", "unix:/run/x.sock"; None: not probed
    errno: int | None  # 0 connected; an errno; None: not probed
    note: str = ""  # why not probed, or what the errno means


@dataclass(frozen=True)
class DoctorFacts:
    """What crashkit.commands.doctor read off the live host."""

    conf: str
    nginx_t_ok: bool
    nginx_t_output: str
    pid_file: str
    master_pid: int | None
    worker_pids: tuple[int, ...]
    expected_workers: int
    worker_user: str
    worker_connections: int
    worker_rlimit_nofile: int | None
    limits: tuple[WorkerLimits, ...]
    listens: tuple[ListenState, ...]
    upstreams: tuple[UpstreamProbe, ...]
    kernel_log: str  # where it was read, or why not
    kernel_log_read: bool
    oom_kills: tuple[OomKill, ...]  # nginx processes only
    core_checks: tuple[Check, ...] = field(default=())
    # The config run by the master in pid_file when that master is not this
    # config's (a config without ``pid`` shares the build's pid file).
    pid_file_other_conf: str | None = None

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
