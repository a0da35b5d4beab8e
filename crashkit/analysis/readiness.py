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
import re
import shutil
import subprocess
from dataclasses import dataclass
from typing import Literal

Status = Literal["ok", "warn", "fail", "skip"]

CORE_PATTERN = "kernel.core_pattern"
CORE_USES_PID = "kernel.core_uses_pid"
SUID_DUMPABLE = "fs.suid_dumpable"
NGINX_UNIT = "nginx.service"
SYSTEMD_COREDUMP_DIR = "/var/lib/systemd/coredump"
APPORT_DIR = "/var/crash"
SYSCTL_DROPIN = "etc/sysctl.d/60-crashkit-cores.conf"  # relative to the system root
_CAP_SYS_RESOURCE = 24


@dataclass(frozen=True)
class Remedy:
    """A setting ``crashkit setup --system`` can apply."""

    kind: Literal["sysctl", "systemd"]
    key: str  # "kernel.core_uses_pid", or "LimitCORE" (of nginx.service)
    value: str


@dataclass(frozen=True)
class Check:
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


# ---------------------------------------------------------------- readers

def read_sysctl(name: str, proc: str = "/proc") -> str | None:
    try:
        with open(os.path.join(proc, "sys", *name.split(".")), encoding="utf-8",
                  errors="replace") as f:
            return f.read().rstrip("\n")
    except OSError:
        return None


def systemd_running() -> bool:
    """systemd is PID 1 (sd_booted(3): /run/systemd/system exists)."""
    return os.path.isdir("/run/systemd/system")


def systemd_limit_core(unit: str = NGINX_UNIT) -> str | None:
    """``LimitCORE`` of the unit as systemd has loaded it, None when unknown."""
    try:
        proc = subprocess.run(["systemctl", "show", unit, "-p", "LimitCORE", "--value"],
                              capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    value = proc.stdout.strip()
    return value if proc.returncode == 0 and value else None


def core_limits(pid: int) -> tuple[int | None, int | None] | None:
    """(soft, hard) RLIMIT_CORE of a process in bytes, None meaning unlimited."""
    return proc_limits(pid, "Max core file size")


def proc_limits(pid: int, label: str) -> tuple[int | None, int | None] | None:
    """(soft, hard) of one line of /proc/PID/limits ("Max open files", …),
    None meaning unlimited; None when unreadable."""
    try:
        with open(f"/proc/{pid}/limits", encoding="utf-8") as f:
            text = f.read()
    except OSError:
        return None
    m = re.search(rf"^{re.escape(label)}\s+(\S+)\s+(\S+)", text, re.M)
    if not m:
        return None

    def value(v: str) -> int | None:
        return None if v == "unlimited" else int(v)
    return value(m.group(1)), value(m.group(2))


def _status_field(pid: int, field: str) -> str | None:
    try:
        with open(f"/proc/{pid}/status", encoding="utf-8") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        return None
    return None


def has_cap_sys_resource(pid: int) -> bool:
    eff = _status_field(pid, "CapEff")
    return eff is not None and bool(int(eff, 16) >> _CAP_SYS_RESOURCE & 1)


def nginx_master(pid_file: str) -> int | None:
    """The pid in nginx's pid file, when that process is alive and runs an nginx binary."""
    try:
        with open(pid_file, encoding="utf-8") as f:
            pid = int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    try:
        exe = os.readlink(f"/proc/{pid}/exe")
    except OSError:
        return None
    return pid if "nginx" in os.path.basename(exe.removesuffix(" (deleted)")) else None


def children(pid: int) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="utf-8", errors="replace") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == pid:
            out.append(int(entry))
    return out


def resident_bytes(pid: int) -> int | None:
    """What a core of this process would take on disk: resident plus swapped memory."""
    total = None
    for field in ("VmRSS", "VmSwap"):
        value = _status_field(pid, field)
        if value and value.endswith("kB"):
            total = (total or 0) + int(value.split()[0]) * 1024
    return total


def user_can_write(path: str, uid: int, gid: int) -> bool | None:
    """Can uid:gid (no supplementary groups) create files in directory ``path``?

    Asked the kernel in a child that switched to that user; None when we are
    not root and cannot switch.
    """
    return user_access(path, uid, gid, os.W_OK | os.X_OK)


def user_access(path: str, uid: int, gid: int, mode: int) -> bool | None:
    """os.access(path, mode) as uid:gid would get it (None when we cannot switch user),
    with the user's supplementary groups, as nginx's workers have them (initgroups)."""
    import pwd

    if os.geteuid() != 0:
        return None
    try:
        name: str | None = pwd.getpwuid(uid).pw_name
    except KeyError:
        name = None
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child only exits
        try:
            if name is not None:
                os.initgroups(name, gid)
            else:
                os.setgroups([])
            os.setgid(gid)
            os.setuid(uid)
            os._exit(0 if os.access(path, mode) else 1)
        except BaseException:  # noqa: BLE001 - a forked child must never return
            os._exit(2)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status) == 0


def existing_parent(path: str) -> str:
    path = os.path.abspath(path)
    while not os.path.exists(path):
        path = os.path.dirname(path)
    return path


def human(size: int | None) -> str:
    if size is None:
        return "unlimited"
    for unit, scale in (("G", 1 << 30), ("M", 1 << 20), ("K", 1 << 10)):
        if size >= scale:
            value = size / scale
            return f"{value:.0f}{unit}" if value == int(value) else f"{value:.1f}{unit}"
    return f"{size} bytes"


# ---------------------------------------------------------------- checks

def core_checks(s: CoreSetting) -> list[Check]:
    """Every OS-side check, in the order a person would fix them."""
    pattern = read_sysctl(CORE_PATTERN)
    return [check_core_pattern(pattern, s),
            check_core_uses_pid(pattern, read_sysctl(CORE_USES_PID)),
            check_suid_dumpable(read_sysctl(SUID_DUMPABLE)), check_limit_core_unit(),
            check_hard_limit(s), check_disk_space(pattern, s)]


def check_core_pattern(pattern: str | None, s: CoreSetting) -> Check:
    if pattern is None:
        return Check(CORE_PATTERN, "skip", "cannot read /proc/sys/kernel/core_pattern")
    if pattern.startswith("|"):
        helper = os.path.basename(pattern[1:].split()[0]) if pattern[1:].split() else "?"
        if "systemd-coredump" in helper:
            return Check(CORE_PATTERN, "ok",
                         f"cores are piped to systemd-coredump ({pattern!r}), not written to "
                         f"working_directory: they are stored in {SYSTEMD_COREDUMP_DIR} (see "
                         "coredumpctl list nginx; its own size limits are in "
                         "/etc/systemd/coredump.conf); crashkit collect reads them there")
        if "apport" in helper:
            return Check(CORE_PATTERN, "warn",
                         f"cores are piped to apport ({pattern!r}), not written to "
                         f"working_directory: apport keeps them inside crash reports in "
                         f"{APPORT_DIR} (crashkit collect reads those) and drops crashes it "
                         "is not configured for",
                         fix="systemctl disable --now apport && sysctl -w kernel.core_pattern=core")
        return Check(CORE_PATTERN, "warn",
                     f"cores are piped to {helper} ({pattern!r}) and never reach "
                     f"working_directory {s.core_dir}; crashkit collect can only find them "
                     "where that program stores them",
                     fix="sysctl -w kernel.core_pattern=core")
    name = pattern or "core"
    if os.path.isabs(name):
        target = os.path.dirname(name)
        can = user_can_write(existing_parent(target), s.uid, s.gid)
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


def check_limit_core_unit(unit: str = NGINX_UNIT) -> Check:
    name = f"systemd LimitCORE ({unit})"
    if not systemd_running():
        return Check(name, "skip", "systemd is not running here (no /run/systemd/system): "
                                   "no unit limits apply")
    value = systemd_limit_core(unit)
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


def check_hard_limit(s: CoreSetting) -> Check:
    name = "RLIMIT_CORE (hard, nginx master)"
    if s.master_pid is None:
        return Check(name, "skip", "nginx is not running (no live master in its pid file)")
    limits = core_limits(s.master_pid)
    if limits is None:
        return Check(name, "skip", f"cannot read /proc/{s.master_pid}/limits")
    soft, hard = limits
    if hard is None or hard >= s.core_limit:
        return Check(name, "ok", f"{human(hard)} (master PID {s.master_pid}; soft {human(soft)})")
    if os.path.exists(f"/proc/{s.master_pid}") and has_cap_sys_resource(s.master_pid):
        return Check(name, "ok",
                     f"{human(hard)} (master PID {s.master_pid}), below the core limit "
                     f"{human(s.core_limit)}, but the master has CAP_SYS_RESOURCE: "
                     "worker_rlimit_core raises both limits for the workers")
    return Check(name, "fail",
                 f"{human(hard)} (master PID {s.master_pid}) and the master cannot raise it: "
                 f"worker_rlimit_core {human(s.core_limit)} fails with EPERM",
                 fix="set LimitCORE=infinity for the service that starts nginx, then restart it",
                 remedy=Remedy("systemd", "LimitCORE", "infinity"))


def check_disk_space(pattern: str | None, s: CoreSetting) -> Check:
    name = "free disk space"
    if pattern is not None and pattern.startswith("|"):
        where = SYSTEMD_COREDUMP_DIR if "systemd-coredump" in pattern else APPORT_DIR
    elif pattern and os.path.isabs(pattern):
        where = os.path.dirname(pattern)
    else:
        where = s.core_dir
    probe = existing_parent(where)
    usage = shutil.disk_usage(probe)
    sizes = [resident_bytes(p) for p in children(s.master_pid)] if s.master_pid else []
    measured = max((x for x in sizes if x is not None), default=None)
    per_worker = min(measured, s.core_limit) if measured is not None else s.core_limit
    how = (f"the largest running worker holds {human(measured)}" if measured is not None
           else f"nginx is not running: each core counted at the limit, {human(s.core_limit)}")
    need = per_worker * s.workers
    detail = (f"{human(usage.free)} free on the filesystem of {where}; {s.workers} worker(s) "
              f"crashing together need about {human(need)} ({how})")
    if usage.free < need:
        return Check(name, "warn", detail,
                     fix=f"free space under {probe}, or choose --core-dir on a larger filesystem")
    return Check(name, "ok", detail)
