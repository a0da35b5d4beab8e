"""The directory the workers dump into: owned by the worker user, mode 0700.

0700 and the worker user as owner: the kernel writes a worker's core with
the worker's own uid (nginx makes workers dumpable after setuid), so the
worker must be able to create files there; nobody else may list or read
them, because a core holds TLS keys, cookies and request bodies. root (and
crashkit collect, which runs as root) reads them anyway. Group access (0730)
would only widen who can see that a core exists.
"""

from __future__ import annotations

import contextlib
import grp
import os
import pwd
import stat
from dataclasses import dataclass

from crashkit.errors import InputError
from crashkit.host.proc import existing_parent, user_access, user_can_write
from crashkit.model.nginx import WorkerUser

MODE = 0o700


@dataclass(frozen=True)
class Worker:
    user: str
    group: str
    uid: int
    gid: int


@dataclass(frozen=True)
class CoreDir:
    path: str
    exists: bool
    owner: str | None  # "user:group" now, None when missing
    mode: str | None  # "0700"
    actions: tuple[str, ...]  # what --apply does (did) to it
    worker_can_write: bool | None  # now; None: missing, or not known (we are not root)
    worker_can_reach: bool | None  # can the worker pass through the directories above it?


def resolve_worker(w: WorkerUser) -> Worker:
    where = f" (user directive at {w.directive.where})" if w.directive else " (nginx's default)"
    try:
        uid = pwd.getpwnam(w.user).pw_uid
    except KeyError:
        raise InputError(f"the nginx worker user {w.user!r}{where} does not exist") from None
    try:
        gid = grp.getgrnam(w.group).gr_gid
    except KeyError:
        raise InputError(f"the nginx worker group {w.group!r}{where} does not exist") from None
    return Worker(w.user, w.group, uid, gid)


_SCRATCH = ("/tmp/", "/var/tmp/", "/dev/shm/")


def fit_as_is(path: str, worker: Worker) -> bool:
    """Does an existing working_directory already serve as a core directory?

    Absolute, not in a scratch area (cleaned, or private to a systemd unit),
    nothing for "other" users, and writable by the worker user. Such a
    directory is kept and never chowned or chmodded: it may serve other uses.
    """
    try:
        st = os.stat(path)
    except OSError:
        return False
    return (os.path.isabs(path) and stat.S_ISDIR(st.st_mode) and not st.st_mode & 0o007
            and not (path.rstrip("/") + "/").startswith(_SCRATCH)
            and user_can_write(path, worker.uid, worker.gid) is True)


def inspect(path: str, worker: Worker, manage: bool = True) -> CoreDir:
    """The directory's state now and what --apply must do to it.

    ``manage`` False (a kept working_directory): report it, change nothing.
    A directory that must change hands may only hold cores: pointing
    --core-dir at a busy directory (/, /var/www) must not chown it.
    """
    if not os.path.isabs(path):
        raise InputError("the core directory must be an absolute path", path=path)
    # Missing directories above it are created by root, mode 0755.
    reach = user_access(existing_parent(os.path.dirname(path)), worker.uid, worker.gid,
                        os.X_OK)
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return CoreDir(path, False, None, None,
                       (f"create {path} owned by {worker.user}:{worker.group}, mode 0700",),
                       None, reach)
    if not stat.S_ISDIR(st.st_mode):
        kind = "a symlink" if stat.S_ISLNK(st.st_mode) else "not a directory"
        raise InputError(f"the core directory exists but is {kind}", path=path)
    actions: list[str] = []
    if not manage:
        return CoreDir(path, True, f"{_name(st.st_uid, pwd)}:{_name(st.st_gid, grp)}",
                       f"{stat.S_IMODE(st.st_mode):04o}", (),
                       user_can_write(path, worker.uid, worker.gid), reach)
    if (st.st_uid, st.st_gid) != (worker.uid, worker.gid):
        actions.append(f"chown {worker.user}:{worker.group} {path}")
    if stat.S_IMODE(st.st_mode) != MODE:
        actions.append(f"chmod 0700 {path} (now {stat.S_IMODE(st.st_mode):04o})")
    if actions:
        others = [n for n in os.listdir(path) if not n.startswith("core")]
        if others:
            raise InputError(f"the core directory holds other files ({others[0]!r}, ...); "
                             "crashkit only takes over an empty directory or one of cores: "
                             "choose a dedicated --core-dir", path=path)
    return CoreDir(path, True, f"{_name(st.st_uid, pwd)}:{_name(st.st_gid, grp)}",
                   f"{stat.S_IMODE(st.st_mode):04o}", tuple(actions),
                   user_can_write(path, worker.uid, worker.gid), reach)


def _name(ident: int, db: object) -> str:
    try:
        if db is pwd:
            return pwd.getpwuid(ident).pw_name
        return grp.getgrgid(ident).gr_name
    except KeyError:
        return str(ident)


def take_over(path: str, worker: Worker) -> None:
    """Give the directory to the worker user, mode 0700, through a descriptor
    of the directory itself, never a path followed again: a worker-writable
    parent could swap it for a symlink after the checks, and root would then
    chown the link's target."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except OSError as exc:
        raise InputError(f"the core directory changed while setting it up "
                         f"({exc.strerror})", path=path) from None
    try:
        os.fchown(fd, worker.uid, worker.gid)
        os.fchmod(fd, MODE)
    finally:
        os.close(fd)


def prepare(path: str, worker: Worker, manage: bool = True) -> CoreDir:
    """Create or fix the directory, then prove the worker user can write there."""
    if not manage:
        return inspect(path, worker, manage=False)
    inspect(path, worker)  # the same refusals as the plan, on the state now
    if not os.path.isdir(path):
        parent = os.path.dirname(path)
        os.makedirs(parent, mode=0o755, exist_ok=True)
        with contextlib.suppress(FileExistsError):
            os.mkdir(path, MODE)
    take_over(path, worker)
    state = inspect(path, worker)
    if state.worker_can_write is False:
        raise InputError(f"{worker.user} cannot write here even as its owner: a parent "
                         "directory is not searchable by that user; nginx workers would fail "
                         "to start (chdir)", path=path)
    return state
