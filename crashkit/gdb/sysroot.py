"""A private sysroot of verified files: the only files gdb may open for a core.

gdb opens every file a core's NT_FILE note and link map name (through
``set sysroot``). Those names come from the crashed, possibly hostile
process: a FIFO there would stall gdb's open until its deadline, a device
would be read forever. So gdb is pointed at a directory of crashkit's own
that holds a symbolic link for each name, made only after the file it leads
to was opened here with O_NONBLOCK and found to be a regular file. A name
gdb finds no link for is a file it does not read (gdb does not fall back to
the raw path when a sysroot is set).

The link map names libraries by other aliases than NT_FILE does (the
soname link ``libcrypt.so.1`` for ``libcrypt.so.1.1.0``, ``/lib`` for
``/usr/lib`` on a merged-/usr system, ``/lib64`` for the loader), so the
symbolic links in a verified file's directory that lead to it are added
under their names too.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from crashkit.elf.files import open_regular

_LOADER_DIRS = ("/lib64", "/usr/lib64", "/lib32", "/usr/lib32")


def _host(path: str, sysroot: str | None) -> str:
    return os.path.join(sysroot, path.lstrip("/")) if sysroot else path


def _verified(path: str) -> str | None:
    """The resolved path of ``path`` when it is a regular file (opened
    without blocking), else None."""
    try:
        fd = open_regular(path)
    except (OSError, ValueError):  # ValueError: a NUL byte in the name
        return None
    os.close(fd)
    return os.path.realpath(path)


class PrivateSysroot:
    """Links under ``root`` (an empty directory of crashkit's own)."""

    def __init__(self, root: str, sysroot: str | None = None,
                 resolved: dict[str, str] | None = None) -> None:
        self.root = root
        self.sysroot = sysroot
        self.resolved = resolved or {}  # core path -> the file found for it
        self._links: dict[str, list[tuple[str, str]]] = {}  # host dir -> its symlinks
        self.placed: set[str] = set()

    def path(self, crash_path: str) -> str:
        return os.path.join(self.root, crash_path.lstrip("/"))

    def _place(self, crash_path: str, real: str) -> None:
        norm = os.path.normpath("/" + crash_path.lstrip("/"))
        if norm in self.placed or "\0" in norm:
            return
        link = self.path(norm)
        try:
            os.makedirs(os.path.dirname(link), 0o700, exist_ok=True)
            os.symlink(real, link)
        except (OSError, ValueError):
            return  # a name that collides with a directory (or is absurd): not offered
        self.placed.add(norm)

    def _symlinks(self, host_dir: str) -> list[tuple[str, str]]:
        """(name, path) of a directory's symlinks, read once per directory;
        resolved only for the names that could be an alias (see add)."""
        known = self._links.get(host_dir)
        if known is None:
            known = []
            try:
                with os.scandir(host_dir) as it:
                    for entry in it:
                        if entry.is_symlink() and len(known) < 10_000:
                            known.append((entry.name, entry.path))
            except OSError:
                pass
            self._links[host_dir] = known
        return known

    def _alias_dirs(self, crash_dir: str, name: str) -> list[str]:
        dirs = [crash_dir]
        if crash_dir.startswith("/usr/"):
            dirs.append(crash_dir[4:])
        elif crash_dir.startswith("/"):
            dirs.append("/usr" + crash_dir)
        if name.startswith("ld-"):
            dirs += _LOADER_DIRS
        return dirs

    def add(self, crash_path: str) -> str | None:
        """Offer gdb the file the core names ``crash_path`` (and its aliases);
        its path in the private sysroot, or None when it is not a regular file."""
        if not crash_path.startswith("/"):
            return None
        found = self.resolved.get(crash_path)
        real = _verified(found or _host(crash_path, self.sysroot))
        if real is None:
            return None
        self._place(crash_path, real)
        crash_dir, name = os.path.split(crash_path)
        if found is not None and found != _host(crash_path, self.sysroot):
            # Found elsewhere (by build-id): offer it under the names the
            # link map may use for that directory too.
            for d in self._alias_dirs(crash_dir, name):
                self._place(os.path.join(d, name), real)
            return self.path(crash_path)
        # An alias gdb may ask for is a soname link (libfoo.so.1 -> libfoo.so.1.2.3):
        # same stem as the file. Resolving every link of /usr/lib costs ~0.1 s.
        stems = tuple({n.split(".so")[0] for n in (name, os.path.basename(real)) if n})
        for d in self._alias_dirs(crash_dir, name):
            for alias, path in self._symlinks(_host(d, self.sysroot)):
                if alias.startswith(stems) and os.path.realpath(path) == real:
                    self._place(os.path.join(d, alias), real)
        return self.path(crash_path)

    def add_all(self, crash_paths: Iterable[str]) -> None:
        for p in dict.fromkeys(crash_paths):
            self.add(p)

    def dirs(self) -> list[str]:
        """The private directories that hold links (for solib-search-path)."""
        return sorted({os.path.dirname(self.path(p)) for p in self.placed})
