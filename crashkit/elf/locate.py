"""Where the file of each module a core maps is, by build-id first.

A core names its files by the paths they had on the crashed host, and holds
each one's GNU build-id (see crashkit.elf.buildid). On another machine the
path may hold nothing, or another build of the same library; the build-id
is what identifies the file. So, for each module, in this order:

1. ``--exe`` for the executable (the user's word);
2. a file whose build-id is the crashed one, in the ``.build-id/xx/rest``
   layout (gdb's and elfutils'; debuginfod caches and Fedora's debug
   directories keep the binary there) under each --debug-dir, the sysroot's
   /usr/lib/debug and the system's;
3. the path, under the sysroot when one is given, when its build-id is the
   crashed one (or either build-id is unknown);
   then, with --debuginfod, the file of that build-id from the servers of
   DEBUGINFOD_URLS;
4. a separate debug file of that build-id (``.build-id/xx/rest.debug``):
   symbols and line tables without the code (when the path holds another
   build, that file is still the one read for code and unwinding, and the
   debug file for names);
5. the path even though it is another build (the caller warns: names from
   it are not trusted);
6. nothing: the file is missing here.

The same answer goes to gdb (through its private sysroot), so gdb and
crashkit read the same files.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from crashkit.elf.buildid import file_build_id
from crashkit.elf.symbols import DEFAULT_DEBUG_DIRS, host_path
from crashkit.model.analyze import FoundBy


@dataclass(frozen=True)
class Located:
    path: str | None  # the file to read, None when none was found
    found_by: FoundBy
    file_build_id: str | None = None  # read from that file
    status: Literal["ok", "missing", "unreadable", "not-elf"] = "ok"
    other_build: bool = False  # the path holds another build than the crashed one


def _build_id(path: str) -> tuple[str, str | None]:
    """(status, build-id) of a file on disk."""
    try:
        r = file_build_id(path)
    except FileNotFoundError:
        return "missing", None
    except OSError as exc:
        import errno

        return ("missing" if exc.errno == errno.ENOTDIR else "unreadable"), None
    if r.status != "ok":
        return r.status, None
    return "ok", r.build_id


def search_dirs(debug_dirs: Sequence[str], sysroot: str | None) -> tuple[str, ...]:
    """Where files are looked up by build-id, in order."""
    dirs = list(debug_dirs)
    if sysroot:
        dirs += [host_path(d, sysroot) for d in DEFAULT_DEBUG_DIRS]
    dirs += DEFAULT_DEBUG_DIRS
    return tuple(dict.fromkeys(dirs))


def by_build_id(build_id: str | None, dirs: Sequence[str], suffix: str = "") -> str | None:
    """DIR/.build-id/xx/rest(suffix) whose build-id is ``build_id``."""
    if not build_id or len(build_id) < 4:
        return None
    for d in dirs:
        candidate = os.path.join(d, ".build-id", build_id[:2], build_id[2:] + suffix)
        status, found = _build_id(candidate)
        if status == "ok" and found == build_id:
            return candidate
    return None


def locate(core_path: str, build_id: str | None, *, sysroot: str | None,
           dirs: Sequence[str], exe_option: str | None = None,
           fetch: Callable[[str], str | None] | None = None) -> Located:
    """The file for one module (see the module's docstring for the order)."""
    if exe_option is not None:
        status, found = _build_id(exe_option)
        return Located(exe_option, "exe-option", found, status,  # type: ignore[arg-type]
                       other_build=bool(build_id and found and found != build_id))
    binary = by_build_id(build_id, dirs)
    if binary is not None:
        return Located(binary, "build-id", build_id)
    path = host_path(core_path, sysroot) if core_path.startswith("/") else core_path
    how: FoundBy = "sysroot" if sysroot else "path"
    status, found = _build_id(path)
    if status == "ok" and (not build_id or not found or found == build_id):
        return Located(path, how, found)
    if fetch is not None and build_id:
        fetched = fetch(build_id)
        if fetched is not None and _build_id(fetched) == ("ok", build_id):
            return Located(fetched, "debuginfod", build_id)
    debug = by_build_id(build_id, dirs, ".debug")
    if debug is not None and status == "ok":
        # Another build at the path, the crashed build's symbols in a debug
        # file: names come from the debug file (the symbolizer finds it by
        # build-id), while the file at the path stays the one read for its
        # code and unwind tables (a debug file has neither).
        return Located(path, "debug-file", found, other_build=True)
    if debug is not None:
        return Located(debug, "debug-file", build_id)
    if status == "ok":
        return Located(path, how, found, other_build=True)
    return Located(None, "missing", None, status)  # type: ignore[arg-type]
