"""The one reader of /proc and /proc/sys: processes, their limits, credentials
and children, and the kernel's settings. Every function answers None (or an
empty value) for a process that is gone or a file that cannot be read."""

from __future__ import annotations

import os
import re

_CAP_SYS_RESOURCE = 24

SYSCTL_ROOT = "/proc/sys"


def sysctl_path(name: str, root: str = SYSCTL_ROOT) -> str:
    """The file of kernel setting ``name`` ("kernel.core_uses_pid") under ``root``
    (the kernel's /proc/sys; a private tree in tests)."""
    return os.path.join(root, *name.replace("/", ".").split("."))


def read_sysctl(name: str, root: str = SYSCTL_ROOT) -> str | None:
    try:
        with open(sysctl_path(name, root), encoding="utf-8",
                  errors="replace") as f:
            return f.read().rstrip("\n")
    except OSError:
        return None


def systemd_running() -> bool:
    """systemd is PID 1 (sd_booted(3): /run/systemd/system exists)."""
    return os.path.isdir("/run/systemd/system")


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

def process_name(pid: int, proc: str = "/proc") -> tuple[str, str]:
    """(comm, command line) of a process; empty strings when it is gone."""
    try:
        with open(f"{proc}/{pid}/comm", encoding="utf-8", errors="replace") as f:
            comm = f.read().strip()
        with open(f"{proc}/{pid}/cmdline", "rb") as fb:
            cmdline = fb.read().rstrip(b"\0").replace(b"\0", b" ").decode("utf-8", "replace")
    except OSError:
        return "", ""
    return comm, cmdline

def process_command(pid: int) -> str | None:
    """What pid runs now (its command line), or None when it has exited."""
    comm, cmdline = process_name(pid)
    text = cmdline or (f"[{comm}]" if comm else "")  # a kernel thread has no command line
    return "".join(c if c.isprintable() else "?" for c in text) or None

def user_name(uid: int) -> str | None:
    import pwd

    try:
        return pwd.getpwuid(uid).pw_name
    except (KeyError, OverflowError):
        return None



def existing_parent(path: str) -> str:
    path = os.path.abspath(path)
    while not os.path.exists(path):
        path = os.path.dirname(path)
    return path

def user_can_write(path: str, uid: int, gid: int) -> bool | None:
    """Can uid:gid (no supplementary groups) create files in directory ``path``?

    Asked the kernel in a child that switched to that user; None when we are
    not root and cannot switch.
    """
    return user_access(path, uid, gid, os.W_OK | os.X_OK)


def user_access(path: str, uid: int, gid: int, mode: int) -> bool | None:
    """os.access(path, mode) as uid:gid would get it (None when we cannot switch user),
    with the user's supplementary groups, as nginx's workers have them (initgroups)."""
    from crashkit.host.privs import as_user

    code = as_user(uid, gid, user_name(uid), lambda: 0 if os.access(path, mode) else 1)
    return None if code is None else code == 0


def pids() -> list[int]:
    """Every process's pid now (a pid may be gone by the time it is read)."""
    try:
        return [int(d) for d in os.listdir("/proc") if d.isdigit()]
    except OSError:
        return []


def title(pid: int, limit: int = 8192) -> str | None:
    """argv[0] as the process shows it (nginx's "nginx: master process …")."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read(limit).split(b"\0")[0].decode("utf-8", "surrogateescape")
    except OSError:
        return None


def started_at(pid: int) -> float | None:
    """When the process started, in seconds since the epoch (boot time plus
    field 22 of /proc/PID/stat, in clock ticks)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        with open("/proc/stat", "rb") as f:
            btime = next(int(line.split()[1]) for line in f if line.startswith(b"btime "))
        return btime + int(fields[19]) / os.sysconf("SC_CLK_TCK")
    except (OSError, StopIteration, ValueError, IndexError):
        return None


def uids(pid: int) -> tuple[int, int] | None:
    """(real, effective) uid."""
    value = _status_field(pid, "Uid")
    try:
        real, effective = value.split()[:2] if value else ("", "")
        return int(real), int(effective)
    except ValueError:
        return None


def exe(pid: int) -> str | None:
    """The real path of the process's executable."""
    try:
        return os.path.realpath(os.readlink(f"/proc/{pid}/exe"))
    except OSError:
        return None
