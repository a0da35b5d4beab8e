"""What one ``crashkit setup --apply`` did beyond nginx's files, so ``--undo``
can take it back: the files it created or replaced outside the config (the
--system drop-ins), the kernel settings it changed (value before and after),
and the directories it created for the cores.

The record is ``.NAME.crashkit-setup-STAMP`` beside the main config file,
with the stamp of the apply's backups (nginx's ``include`` globs never match
a leading dot, as for the backups). Undo takes back only what is still as
crashkit left it; anything changed since is left, and undo says why.
"""

from __future__ import annotations

import errno
import json
import os
import re
from dataclasses import dataclass, field
from typing import Any, Literal

from crashkit.errors import InputError
from crashkit.host.proc import read_sysctl
from crashkit.model.nginx import NginxConfig

RECORD_TAG = ".crashkit-setup-"
_STAMP_RE = re.compile(r"^\d{8}T\d{6}\.\d{6}Z$")


@dataclass(frozen=True)
class FileWrite:
    path: str
    before: str | None  # None: crashkit created the file
    after: str


@dataclass(frozen=True)
class SysctlWrite:
    key: str
    before: str | None
    after: str


@dataclass(frozen=True)
class Record:
    files: tuple[FileWrite, ...] = ()
    sysctls: tuple[SysctlWrite, ...] = ()
    dirs: tuple[str, ...] = ()  # created for the cores, outermost first
    daemon_reload: bool = False  # systemd was told about a unit drop-in

    def __bool__(self) -> bool:
        return bool(self.files or self.sysctls or self.dirs)


@dataclass(frozen=True)
class UndoStep:
    kind: Literal["file", "sysctl", "directory"]
    what: str  # the path, or the kernel setting's name
    action: Literal["removed", "restored", "left"]
    detail: str = field(default="")


def record_path(root: str, stamp: str) -> str:
    d, name = os.path.split(os.path.realpath(root))
    return os.path.join(d, f".{name}{RECORD_TAG}{stamp}")


def write(root: str, stamp: str, rec: Record) -> str:
    """Write the record (atomic, 0600: it is root's note, not the config's)."""
    path = record_path(root, stamp)
    data = {"files": [vars(f) for f in rec.files], "sysctls": [vars(s) for s in rec.sysctls],
            "dirs": list(rec.dirs), "daemon_reload": rec.daemon_reload}
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=1)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return path


def latest(cfg: NginxConfig) -> tuple[str, str] | None:
    """(stamp, path) of the newest record beside the main config file."""
    d, name = os.path.split(record_path(cfg.root, "x"))
    prefix = name[:-1]
    try:
        entries = os.listdir(d)
    except OSError:
        return None
    stamps = [e[len(prefix):] for e in entries
              if e.startswith(prefix) and _STAMP_RE.match(e[len(prefix):])]
    if not stamps:
        return None
    stamp = max(stamps)
    return stamp, os.path.join(d, prefix + stamp)


def read(path: str) -> Record:
    try:
        with open(path, encoding="utf-8") as f:
            data: dict[str, Any] = json.load(f)
        return Record(tuple(FileWrite(x["path"], x["before"], x["after"]) for x in data["files"]),
                      tuple(SysctlWrite(x["key"], x["before"], x["after"])
                            for x in data["sysctls"]),
                      tuple(data["dirs"]), bool(data.get("daemon_reload")))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InputError(f"not a crashkit setup record ({exc}); nothing undone",
                         path=path) from None


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as f:
            return f.read()
    except FileNotFoundError:
        return None


def undo_file(f: FileWrite) -> UndoStep:
    from crashkit.writers.dropins import write_file

    now = _read(f.path)
    if now is None:
        return UndoStep("file", f.path, "left", "already gone")
    if now != f.after:
        return UndoStep("file", f.path, "left",
                        "changed since crashkit wrote it: yours now, remove it yourself")
    if f.before is None:
        os.unlink(f.path)
        return UndoStep("file", f.path, "removed", "crashkit had created it")
    write_file(f.path, f.before)
    return UndoStep("file", f.path, "restored", "to its content before crashkit setup")


def undo_sysctl(s: SysctlWrite, sysctl_root: str) -> UndoStep:
    from crashkit.writers.dropins import set_sysctl

    now = read_sysctl(s.key, sysctl_root)
    if s.before is None:
        return UndoStep("sysctl", s.key, "left", f"{now}: its value before was not known")
    if now != s.after:
        return UndoStep("sysctl", s.key, "left",
                        f"{now}: changed since crashkit set it to {s.after}; left as it is")
    _old, new = set_sysctl(s.key, s.before, sysctl_root)
    return UndoStep("sysctl", s.key, "restored", f"{s.after} -> {new}, its value before")


def _entries(parent_fd: int, name: str) -> str:
    try:
        fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=parent_fd)
    except OSError:
        return "entries"
    try:
        n = len(os.listdir(fd))
    finally:
        os.close(fd)
    return f"{n} entr{'y' if n == 1 else 'ies'}"


def undo_dirs(dirs: tuple[str, ...]) -> list[UndoStep]:
    """Remove the directories crashkit created, innermost first, while empty;
    each through its parent's descriptor (no symlink followed on the way)."""
    from crashkit.writers.coredir import open_dir

    out = []
    for d in reversed(dirs):
        parent, name = os.path.split(os.path.normpath(d))
        try:
            fd = open_dir(parent)
        except OSError:
            out.append(UndoStep("directory", d, "left", "already gone"))
            continue
        try:
            os.rmdir(name, dir_fd=fd)
            out.append(UndoStep("directory", d, "removed", "crashkit had created it, empty"))
        except FileNotFoundError:
            out.append(UndoStep("directory", d, "left", "already gone"))
        except OSError as exc:
            if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                raise
            out.append(UndoStep("directory", d, "left",
                                f"not empty ({_entries(fd, name)}: cores are kept; remove it "
                                "yourself once they are not needed)"))
            break  # its parents are not empty either
        finally:
            os.close(fd)
    return out
