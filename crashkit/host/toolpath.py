"""Where crashkit finds the programs it runs: a fixed system path, never the
caller's PATH or working directory.

crashkit runs as root on files made by crashing processes; a PATH with an
attacker's directory (or ``.``) first would make root run the attacker's
``gdb``, ``nginx`` or ``dpkg-query``. Only ``os`` is imported: gdb's start-up
path uses this too (see crashkit.gdb.spawn).

``CRASHKIT_TOOL_PATH`` replaces the system path (tests hide a tool with it),
and only directories that belong to root or to this user and that nobody
else may write are taken from it; the others are dropped.
"""

from __future__ import annotations

import os
import stat

SYSTEM_PATH = ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin")

_found: dict[str, str | None] = {}


def _trusted_dir(path: str) -> bool:
    try:
        st = os.stat(path)
    except OSError:
        return False
    return (os.path.isabs(path) and stat.S_ISDIR(st.st_mode)
            and st.st_uid in (0, os.geteuid()) and not st.st_mode & 0o022)


def search_path() -> tuple[str, ...]:
    given = os.environ.get("CRASHKIT_TOOL_PATH")
    if given is None:
        return SYSTEM_PATH
    return tuple(d for d in given.split(os.pathsep) if d and _trusted_dir(d))


def installed_with_crashkit(tool: str) -> str | None:
    """A program installed beside crashkit (by pip, into the scripts directory
    of crashkit's own Python environment: py-spy), when that directory is
    trusted like the system path; else the system path's."""
    import sysconfig

    scripts = sysconfig.get_path("scripts")
    candidate = os.path.join(scripts, tool)
    if _trusted_dir(scripts) and os.path.isfile(candidate) and os.access(candidate, os.X_OK):
        return candidate
    return find(tool)


def find(tool: str) -> str | None:
    """The absolute path of ``tool``: a path is the caller's explicit choice
    (``--gdb /opt/gdb/bin/gdb``); a bare name is looked up once in
    :func:`search_path`."""
    if "/" in tool:
        path = os.path.abspath(tool)
        return path if os.path.isfile(path) and os.access(path, os.X_OK) else None
    key = f"{os.environ.get('CRASHKIT_TOOL_PATH')}\0{tool}"
    if key not in _found:
        _found[key] = next((c for c in (os.path.join(d, tool) for d in search_path())
                            if os.path.isfile(c) and os.access(c, os.X_OK)), None)
    return _found[key]
