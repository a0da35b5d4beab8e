"""The systemd service that keeps ``crashkit collect --watch`` running
(installed by ``crashkit setup --collect``, removed by ``--undo``).

A service rather than a ``.path`` unit: a .path unit fires on a directory
change but cannot say which of several directories, and it misses cores
written while its service runs; ``--watch`` collects on every inotify event
and at least once a minute. ``root`` other than "/" writes the unit under
that directory (an image, a chroot, a test) and leaves systemd alone.
"""

from __future__ import annotations

import os
import shlex
import sys

from crashkit.errors import CommandError, CrashkitError
from crashkit.host.proc import systemd_running
from crashkit.host.run import run
from crashkit.model.collect import CollectUnit as UnitChange
from crashkit.writers.dropins import write_file

UNIT_NAME = "crashkit-collect.service"
UNIT_PATH = f"etc/systemd/system/{UNIT_NAME}"
MARK = "# Written by crashkit setup --collect"


def crashkit_command() -> list[str]:
    """How systemd should start this very crashkit: its console script
    next to the interpreter running us (a virtualenv's bin/), else
    ``python -m crashkit`` with that interpreter."""
    script = os.path.join(os.path.dirname(sys.executable), "crashkit")
    if os.access(script, os.X_OK):
        return [script]
    return [sys.executable, "-m", "crashkit"]


def unit_text(store: str, extra: tuple[str, ...] = ()) -> str:
    argv = [*crashkit_command(), "collect", "--watch", "--store", store, *extra]
    return (f"{MARK}: store new cores within seconds.\n"
            "[Unit]\n"
            "Description=crashkit: gather crash cores into the crash store\n"
            "After=local-fs.target\n\n"
            "[Service]\n"
            "Type=simple\n"
            f"ExecStart={shlex.join(argv)}\n"
            "Restart=on-failure\n"
            "RestartSec=10\n"
            "Nice=10\n"
            "IOSchedulingClass=idle\n\n"
            "[Install]\n"
            "WantedBy=multi-user.target\n")


def _systemctl(*args: str) -> str:
    try:
        done = run(["systemctl", *args])
    except CommandError as exc:
        return f"systemctl {' '.join(args)}: {exc}"
    if done.status != 0:
        return f"systemctl {' '.join(args)} failed: {done.stderr.strip()[:200]}"
    return f"systemctl {' '.join(args)}"


def install(store: str, root: str = "/", extra: tuple[str, ...] = ()) -> UnitChange:
    path = os.path.join(root, UNIT_PATH)
    text = unit_text(store, extra)
    try:
        with open(path, encoding="utf-8") as f:
            if f.read() == text:
                return UnitChange(path, "unchanged", None)
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise CrashkitError(f"cannot read the unit: {exc.strerror}", path=path) from exc
    try:
        write_file(path, text)
    except OSError as exc:
        raise CrashkitError(f"cannot write the unit: {exc.strerror}", path=path) from exc
    live = None
    if root in ("", "/") and systemd_running():
        live = "; ".join((_systemctl("daemon-reload"),
                          _systemctl("enable", "--now", UNIT_NAME)))
    return UnitChange(path, "installed", live)


def remove(root: str = "/") -> UnitChange:
    """Stop, disable and delete the unit, if it is crashkit's."""
    path = os.path.join(root, UNIT_PATH)
    try:
        with open(path, encoding="utf-8") as f:
            ours = f.read().startswith(MARK)
    except FileNotFoundError:
        return UnitChange(path, "absent", None)
    if not ours:
        raise CrashkitError("not written by crashkit setup --collect: left as it is",
                            path=path)
    live = None
    if root in ("", "/") and systemd_running():
        live = _systemctl("disable", "--now", UNIT_NAME)
    os.unlink(path)
    if live is not None:
        live += "; " + _systemctl("daemon-reload")
    return UnitChange(path, "removed", live)
