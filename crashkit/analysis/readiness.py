"""Will a crashing nginx worker leave a usable core on this host? The OS side, checked.

:func:`core_checks` returns one :class:`Check` per setting that decides it:
kernel.core_pattern, kernel.core_uses_pid, fs.suid_dumpable, systemd's
LimitCORE for nginx.service, the running master's hard RLIMIT_CORE, and the
free space where the cores go. Each check says what it found, why it matters
for nginx's workers, and (when something needs doing) the exact command that
fixes it; ``remedy`` is the same fix as data, for ``crashkit setup --system``.
"""

from __future__ import annotations

import os

from crashkit.model.readiness import (
    APPORT_DIR,
    CORE_PATTERN,
    CORE_USES_PID,
    COREDUMP_SOCKET,
    SUID_DUMPABLE,
    SYSCTL_DROPIN,
    SYSTEMD_COREDUMP_DIR,
    CoreCheck,
    CoreFacts,
    CoreSetting,
    Remedy,
    human,
)
from crashkit.model.words import plural

Check = CoreCheck


# ---------------------------------------------------------------- checks

def core_checks(s: CoreSetting, f: CoreFacts) -> list[Check]:
    """Every OS-side check, in the order a person would fix them."""
    pattern = f.core_pattern
    return [check_core_pattern(pattern, s, f.pattern_dir_writable, f),
            check_core_uses_pid(pattern, f.core_uses_pid),
            check_suid_dumpable(f.suid_dumpable), check_limit_core_unit(f),
            check_hard_limit(s, f), check_disk_space(pattern, s, f)]


def check_core_pattern(pattern: str | None, s: CoreSetting,
                       writable: bool | None = None, f: CoreFacts | None = None) -> Check:
    """``writable``: can the worker user write the directory of an absolute
    pattern (its nearest existing parent); None when unknown. ``f``: whether a
    piped pattern's program can run (None: not known)."""
    if pattern is None:
        return Check(CORE_PATTERN, "skip", "cannot read /proc/sys/kernel/core_pattern")
    if pattern.startswith("|"):
        program = pattern[1:].split()[0] if pattern[1:].split() else "?"
        helper = os.path.basename(program)
        if f is not None and f.pipe_program_runnable is False:
            return Check(CORE_PATTERN, "fail",
                         f"cores are piped to {program} ({pattern!r}), which does not exist "
                         "or is not executable: the kernel drops every core",
                         fix="sysctl -w kernel.core_pattern=core (or reinstall the package "
                             f"that provides {program})")
        if f is not None and f.coredump_socket is False:
            why = ("systemd is not running here" if not f.systemd_running
                   else "systemd-coredump.socket is not listening")
            return Check(CORE_PATTERN, "fail",
                         f"cores are piped to systemd-coredump ({pattern!r}), but its service "
                         f"socket {COREDUMP_SOCKET} does not exist ({why}): it logs "
                         "\"Failed to connect to coredump service\" and every core is lost",
                         fix="systemctl start systemd-coredump.socket" if f.systemd_running
                         else "sysctl -w kernel.core_pattern=core")
        if "systemd-coredump" in helper:
            return Check(CORE_PATTERN, "ok",
                         f"cores are piped to systemd-coredump ({pattern!r}), not written to "
                         f"working_directory: they are stored in {SYSTEMD_COREDUMP_DIR} (see "
                         "coredumpctl list nginx; its own size limits are in "
                         "/etc/systemd/coredump.conf)")
        if "apport" in helper:
            return Check(CORE_PATTERN, "warn",
                         f"cores are piped to apport ({pattern!r}), not written to "
                         f"working_directory: apport keeps them inside crash reports in "
                         f"{APPORT_DIR} and drops crashes it "
                         "is not configured for",
                         fix="systemctl disable --now apport && sysctl -w kernel.core_pattern=core")
        return Check(CORE_PATTERN, "warn",
                     f"cores are piped to {helper} ({pattern!r}) and never reach "
                     f"working_directory {s.core_dir}: they are wherever that program "
                     "stores them",
                     fix="sysctl -w kernel.core_pattern=core")
    name = pattern or "core"
    if os.path.isabs(name):
        target = os.path.dirname(name)
        can = writable
        detail = (f"cores are written to {name} (an absolute pattern: working_directory "
                  "does not decide where they go)")
        if can is False:
            return Check(CORE_PATTERN, "fail",
                         f"{detail}, but {s.user} cannot write to {target}",
                         fix=f"install -d -o {s.user} -m 0700 {target}")
        return Check(CORE_PATTERN, "ok", detail)
    return Check(CORE_PATTERN, "ok",
                 f"cores are written as {name!r} in the crashing worker's working directory "
                 f"({s.core_dir})")


def check_core_uses_pid(pattern: str | None, value: str | None) -> Check:
    if pattern is None or value is None:
        return Check(CORE_USES_PID, "skip", "cannot read the kernel's core settings")
    if pattern.startswith("|"):
        return Check(CORE_USES_PID, "skip", "not used: core_pattern pipes cores to a program")
    if "%p" in pattern:
        return Check(CORE_USES_PID, "ok", f"core_pattern {pattern!r} has the pid (%p) already")
    if value.strip() == "1":
        return Check(CORE_USES_PID, "ok", "core file names end in the crashing process's pid")
    return Check(CORE_USES_PID, "warn",
                 f"0: every core is named {pattern or 'core'!r}, so each crash overwrites the "
                 "previous worker's core (and workers often crash in a burst)",
                 fix=f"sysctl -w {CORE_USES_PID}=1 && echo '{CORE_USES_PID} = 1' >> "
                     f"/{SYSCTL_DROPIN} (or: crashkit setup --apply --system)",
                 remedy=Remedy("sysctl", CORE_USES_PID, "1"))


def check_suid_dumpable(value: str | None) -> Check:
    if value is None:
        return Check(SUID_DUMPABLE, "skip", "cannot read /proc/sys/fs/suid_dumpable")
    # ngx_worker_process_init(): after setgid()/setuid() to the worker user the
    # kernel marks the process non-dumpable (it changed credentials), and
    # nginx then calls prctl(PR_SET_DUMPABLE, 1) on Linux builds, so workers
    # dump whatever this sysctl says. Leaving it at 0 keeps other set-uid
    # programs' memory out of core files.
    return Check(SUID_DUMPABLE, "ok",
                 f"{value.strip()}: not needed for nginx: its workers call "
                 "prctl(PR_SET_DUMPABLE, 1) after switching to the worker user, so they are "
                 "dumpable whatever this says (no need to raise it)")


def check_limit_core_unit(f: CoreFacts) -> Check:
    unit = f.unit
    name = f"systemd LimitCORE ({unit})"
    if not f.systemd_running:
        return Check(name, "skip", "systemd is not running here (no /run/systemd/system): "
                                   "no unit limits apply")
    value = f.unit_limit_core
    if value is None:
        return Check(name, "skip", f"systemctl show {unit} gave no LimitCORE (no such unit?)")
    if value == "infinity":
        return Check(name, "ok", "infinity")
    service = unit.removesuffix(".service")
    dropin = f"/etc/systemd/system/{unit}.d/crashkit-core.conf"
    return Check(name, "warn",
                 f"{value}: nginx's master starts with this core limit; its workers get "
                 "worker_rlimit_core only because the master is root with CAP_SYS_RESOURCE, "
                 "and the master itself cannot dump a larger core",
                 fix=f"mkdir -p {os.path.dirname(dropin)} && printf '[Service]\\nLimitCORE="
                     f"infinity\\n' > {dropin} && systemctl daemon-reload && "
                     f"systemctl restart {service}",
                 remedy=Remedy("systemd", "LimitCORE", "infinity"))


def check_hard_limit(s: CoreSetting, f: CoreFacts) -> Check:
    name = "RLIMIT_CORE (hard, nginx master)"
    if s.master_pid is None:
        return Check(name, "skip", "nginx is not running (no live master in its pid file)")
    limits = f.master_core_limits
    if limits is None:
        return Check(name, "skip", f"cannot read /proc/{s.master_pid}/limits")
    soft, hard = limits
    if hard is None or hard >= s.core_limit:
        return Check(name, "ok", f"{human(hard)} (master PID {s.master_pid}; soft {human(soft)})")
    if f.master_cap_sys_resource:
        return Check(name, "ok",
                     f"{human(hard)} (master PID {s.master_pid}), below the core limit "
                     f"{human(s.core_limit)}, but the master has CAP_SYS_RESOURCE: "
                     "worker_rlimit_core raises both limits for the workers")
    return Check(name, "fail",
                 f"{human(hard)} (master PID {s.master_pid}) and the master cannot raise it: "
                 f"worker_rlimit_core {human(s.core_limit)} fails with EPERM",
                 fix="set LimitCORE=infinity for the service that starts nginx, then restart it",
                 remedy=Remedy("systemd", "LimitCORE", "infinity"))


def check_disk_space(pattern: str | None, s: CoreSetting, f: CoreFacts) -> Check:
    name = "free disk space"
    where, probe = f.core_target, f.core_target_probe
    if f.free_bytes is None:
        return Check(name, "skip", f"cannot read the free space of {probe}")
    measured = max((x for x in f.worker_sizes if x is not None), default=None)
    per_worker = min(measured, s.core_limit) if measured is not None else s.core_limit
    how = (f"the largest running worker holds {human(measured)}" if measured is not None
           else f"nginx is not running: each core counted at the limit, {human(s.core_limit)}")
    need = per_worker * s.workers
    detail = (f"{human(f.free_bytes)} free on the filesystem of {where}; "
              + plural(s.workers, "worker crashing needs", "workers crashing together need")
              + f" about {human(need)} ({how})")
    if f.free_bytes < need:
        return Check(name, "warn", detail,
                     fix=f"free space under {probe}, or choose --core-dir on a larger filesystem")
    return Check(name, "ok", detail)
