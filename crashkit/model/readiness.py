"""Will a crashing worker leave a usable core? The checks' plain data, shared
by ``crashkit setup`` and ``crashkit doctor``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from crashkit.model.words import size

Status = Literal["ok", "warn", "fail", "skip"]

CORE_PATTERN = "kernel.core_pattern"
CORE_USES_PID = "kernel.core_uses_pid"
SUID_DUMPABLE = "fs.suid_dumpable"
NGINX_UNIT = "nginx.service"
SYSTEMD_COREDUMP_DIR = "/var/lib/systemd/coredump"
APPORT_DIR = "/var/crash"
SYSCTL_DROPIN = "etc/sysctl.d/60-crashkit-cores.conf"  # relative to the system root
# Where systemd-coredump (the program the kernel runs) hands each core to its
# service (systemd's src/coredump/coredump.c, the socket unit's ListenSequentialPacket).
COREDUMP_SOCKET = "/run/systemd/coredump"


@dataclass(frozen=True)
class Remedy:
    """A setting ``crashkit setup --system`` can apply."""

    kind: Literal["sysctl", "systemd"]
    key: str  # "kernel.core_uses_pid", or "LimitCORE" (of nginx.service)
    value: str


@dataclass(frozen=True)
class CoreCheck:
    name: str
    status: Status
    detail: str
    fix: str | None = None  # the command that fixes it, for a person
    remedy: Remedy | None = None

    @property
    def needs_attention(self) -> bool:
        return self.status in ("warn", "fail")


@dataclass(frozen=True)
class CoreSetting:
    """What the nginx side will be: who dumps, where, how big, how many."""

    user: str
    uid: int
    gid: int
    core_dir: str
    core_limit: int  # bytes
    workers: int
    master_pid: int | None  # the running master, None when nginx is not running


@dataclass(frozen=True)
class CoreFacts:
    """What the host says about the OS side (crashkit.host.cores gathers it)."""

    core_pattern: str | None  # None: unreadable
    core_uses_pid: str | None
    suid_dumpable: str | None
    systemd_running: bool
    unit: str  # the systemd unit that starts nginx
    unit_limit_core: str | None  # its LimitCORE as systemd loaded it; None: unknown
    master_core_limits: tuple[int | None, int | None] | None  # (soft, hard); None: unreadable
    master_cap_sys_resource: bool
    pattern_dir_writable: bool | None  # can the worker write an absolute pattern's directory
    core_target: str  # the directory cores go to (or the helper's store)
    core_target_probe: str  # its nearest existing parent, where free space was measured
    free_bytes: int | None
    worker_sizes: tuple[int | None, ...] = ()  # resident+swapped bytes of each running worker
    # A piped core_pattern's program: can the kernel run it, and (systemd-coredump)
    # can it reach its service's socket? None: no pipe, or not known.
    pipe_program_runnable: bool | None = None
    coredump_socket: bool | None = None


def core_target(pattern: str | None, core_dir: str) -> str:
    """Where a worker's core lands: the helper's store for a piped pattern,
    the directory of an absolute one, else the worker's working_directory."""
    if pattern is not None and pattern.startswith("|"):
        return SYSTEMD_COREDUMP_DIR if "systemd-coredump" in pattern else APPORT_DIR
    if pattern and pattern.startswith("/"):
        return pattern.rsplit("/", 1)[0] or "/"
    return core_dir


def human(n: int | None) -> str:
    """A limit for a person: its size (crashkit.model.words), or "unlimited"."""
    return "unlimited" if n is None else size(n)
