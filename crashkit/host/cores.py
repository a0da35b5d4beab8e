"""The OS side of core dumps on this host, gathered for crashkit.analysis.readiness:
the kernel's core settings, systemd's LimitCORE for nginx's unit, the running
master's limits and capabilities, where cores would land and the free space there."""

from __future__ import annotations

import os
import shutil

from crashkit.errors import CommandError
from crashkit.host import proc
from crashkit.host.run import run
from crashkit.model.readiness import (
    CORE_PATTERN,
    CORE_USES_PID,
    COREDUMP_SOCKET,
    NGINX_UNIT,
    SUID_DUMPABLE,
    CoreFacts,
    CoreSetting,
    core_target,
)


def systemd_limit_core(unit: str = NGINX_UNIT) -> str | None:
    """``LimitCORE`` of the unit as systemd has loaded it, None when unknown."""
    try:
        done = run(["systemctl", "show", unit, "-p", "LimitCORE", "--value"])
    except CommandError:
        return None
    value = done.stdout.strip()
    return value if done.status == 0 and value else None


def pipe_handler(pattern: str | None) -> tuple[str | None, bool | None, bool | None]:
    """A piped core_pattern's program, whether the kernel can run it, and (for
    systemd-coredump) whether its service socket exists; Nones for no pipe."""
    if not pattern or not pattern.startswith("|") or not pattern[1:].split():
        return None, None, None
    program = pattern[1:].split()[0]
    runnable = os.path.isfile(program) and os.access(program, os.X_OK)
    socket = os.path.exists(COREDUMP_SOCKET) \
        if "systemd-coredump" in os.path.basename(program) else None
    return program, runnable, socket


def gather(s: CoreSetting, unit: str = NGINX_UNIT,
           sysctl_root: str = proc.SYSCTL_ROOT) -> CoreFacts:
    """``sysctl_root``: where the kernel settings are read (/proc/sys; a private
    tree in tests, so they never depend on or change the machine's)."""
    pattern = proc.read_sysctl(CORE_PATTERN, sysctl_root)
    writable = None
    if pattern and pattern.startswith("/"):
        writable = proc.user_can_write(proc.existing_parent(os.path.dirname(pattern)),
                                       s.uid, s.gid)
    running = proc.systemd_running()
    master = s.master_pid
    alive = master is not None and os.path.exists(f"/proc/{master}")
    target = core_target(pattern, s.core_dir)
    probe = proc.existing_parent(target)
    try:
        free: int | None = shutil.disk_usage(probe).free
    except OSError:
        free = None
    _program, runnable, socket = pipe_handler(pattern)
    return CoreFacts(
        core_pattern=pattern, core_uses_pid=proc.read_sysctl(CORE_USES_PID, sysctl_root),
        suid_dumpable=proc.read_sysctl(SUID_DUMPABLE, sysctl_root), systemd_running=running,
        unit=unit,
        unit_limit_core=systemd_limit_core(unit) if running else None,
        master_core_limits=proc.core_limits(master) if master is not None else None,
        master_cap_sys_resource=alive and proc.has_cap_sys_resource(master or 0),
        pattern_dir_writable=writable, core_target=target, core_target_probe=probe,
        free_bytes=free,
        worker_sizes=tuple(proc.resident_bytes(p) for p in proc.children(master))
        if master is not None else (),
        pipe_program_runnable=runnable, coredump_socket=socket)
