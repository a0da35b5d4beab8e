"""``crashkit setup --system``: apply the OS-side remedies the checks asked for.

Kernel settings go into one sysctl drop-in (read at boot by systemd-sysctl or
procps) and are also written to /proc/sys now; systemd's LimitCORE for
nginx.service goes into a unit drop-in followed by ``systemctl daemon-reload``
(it takes effect when nginx next starts). ``root`` other than "/" writes the
drop-ins under that directory (an image, a chroot) and leaves the running
system alone; ``sysctl_root`` names where the live values go (/proc/sys, or a
private tree in tests), None for nowhere.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass

from crashkit.errors import CommandError, CrashkitError
from crashkit.host.proc import SYSCTL_ROOT, read_sysctl, sysctl_path, systemd_running
from crashkit.host.run import run
from crashkit.model.readiness import NGINX_UNIT, SYSCTL_DROPIN, Remedy

__all__ = ["SYSCTL_DROPIN", "SYSTEMD_DROPIN", "SystemChange", "apply_remedies", "plan_files"]
SYSTEMD_DROPIN = f"etc/systemd/system/{NGINX_UNIT}.d/crashkit-core.conf"


@dataclass(frozen=True)
class SystemChange:
    kind: str  # "sysctl" or "systemd"
    path: str  # the drop-in file
    content: str
    live: str | None  # what was done to the running system, None when nothing
    # The kernel settings written now: (key, value before, value written), for undo.
    sysctls: tuple[tuple[str, str | None, str], ...] = ()
    previous: str | None = None  # the drop-in's content before, None when it was new


def plan_files(remedies: Iterable[Remedy], root: str = "/") -> list[tuple[str, str, str]]:
    """(kind, drop-in path, content) for the given remedies."""
    sysctls: dict[str, str] = {}
    limits: dict[str, str] = {}
    for r in remedies:
        (sysctls if r.kind == "sysctl" else limits)[r.key] = r.value
    out = []
    if sysctls:
        body = "".join(f"{k} = {v}\n" for k, v in sorted(sysctls.items()))
        out.append(("sysctl", os.path.join(root, SYSCTL_DROPIN),
                    "# Written by crashkit setup --system: usable nginx worker cores.\n" + body))
    if limits:
        body = "".join(f"{k}={v}\n" for k, v in sorted(limits.items()))
        out.append(("systemd", os.path.join(root, SYSTEMD_DROPIN),
                    "# Written by crashkit setup --system: let nginx dump whole cores.\n"
                    "[Service]\n" + body))
    return out


def write_file(path: str, content: str) -> None:
    """Replace ``path`` atomically with ``content`` (0644, fsynced; parents 0755)."""
    os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
    tmp = path + ".crashkit-tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(content)
        f.flush()
        os.fsync(f.fileno())
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def set_sysctl(key: str, value: str,
               root: str = SYSCTL_ROOT) -> tuple[str | None, str | None]:
    """Write a kernel setting now; returns (value before, value now)."""
    old = read_sysctl(key, root)
    path = sysctl_path(key, root)
    try:
        with open(path, "w", encoding="utf-8") as f:
            f.write(value + "\n")
    except OSError as exc:
        raise CrashkitError(f"{path}: cannot set {key}: {exc.strerror}") from exc
    return old, read_sysctl(key, root)


def apply_remedies(remedies: Iterable[Remedy], root: str = "/",
                   sysctl_root: str | None = None) -> list[SystemChange]:
    """Write the drop-ins, and the kernel settings now: under ``sysctl_root``
    when given, else in the kernel's /proc/sys on the live system ("/"), else
    (an image) not now. On the live system systemd reloads its units."""
    remedies = list(remedies)
    live_system = os.path.realpath(root) == "/"
    if sysctl_root is None and live_system:
        sysctl_root = SYSCTL_ROOT
    out = []
    for kind, path, content in plan_files(remedies, root):
        try:
            with open(path, encoding="utf-8", errors="surrogateescape") as f:
                previous: str | None = f.read()
        except FileNotFoundError:
            previous = None
        write_file(path, content)
        live = None
        done: list[tuple[str, str | None, str]] = []
        if sysctl_root is not None and kind == "sysctl":
            words = []
            for r in remedies:
                if r.kind == "sysctl":
                    old, new = set_sysctl(r.key, r.value, sysctl_root)
                    done.append((r.key, old, r.value))
                    words.append(f"{r.key}: {old} -> {new}")
            live = "; ".join(words)
        elif live_system and kind == "systemd" and systemd_running():
            daemon_reload()
            live = (f"systemctl daemon-reload; LimitCORE applies when nginx next starts "
                    f"(systemctl restart {NGINX_UNIT})")
        out.append(SystemChange(kind, path, content, live, tuple(done), previous))
    return out


def daemon_reload() -> None:
    """``systemctl daemon-reload``: systemd reads the unit drop-ins again."""
    try:
        run(["systemctl", "daemon-reload"], timeout=120, check=True)
    except CommandError as exc:
        raise CrashkitError(f"systemctl daemon-reload failed: "
                            f"{exc.output.strip() or exc.message}") from None
