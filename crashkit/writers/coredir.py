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
import ctypes
import errno
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


def unsafe_parent(path: str) -> str | None:
    """Why the directories above ``path`` let another user redirect root's
    changes there, or None when they do not.

    Each existing directory from / down to the core directory's parent must be
    owned by root (or by us) and not writable by group or others, unless it
    has the sticky bit (/tmp): there others cannot rename or remove what they
    do not own. Otherwise its owner, or anyone who can write there, could swap
    the next component for a symlink while setup runs.
    """
    me = os.geteuid()
    parts = [p for p in os.path.dirname(os.path.normpath(path)).split("/") if p]
    current = "/"
    for part in ["", *parts]:
        current = os.path.join(current, part) if part else "/"
        try:
            st = os.lstat(current)
        except FileNotFoundError:
            return None  # setup creates the rest itself, as root, mode 0755
        if stat.S_ISLNK(st.st_mode):
            return f"{current} is a symlink"
        if st.st_uid not in (0, me):
            return (f"{current} is owned by {_name(st.st_uid, pwd)}, who could replace "
                    "what is below it")
        if st.st_mode & 0o022 and not st.st_mode & stat.S_ISVTX:
            who = "every user" if st.st_mode & 0o002 else f"group {_name(st.st_gid, grp)}"
            return (f"{current} is writable by {who} without the sticky bit "
                    f"(mode {stat.S_IMODE(st.st_mode):04o})")
    return None


def refuse_unsafe_parent(path: str) -> None:
    reason = unsafe_parent(path)
    if reason is not None:
        raise InputError(f"unsafe place for a core directory: {reason}; choose a --core-dir "
                         "whose parents only root can change", path=path)


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64),
                ("resolve", ctypes.c_uint64)]


_SYS_OPENAT2 = {"x86_64": 437, "aarch64": 437}.get(os.uname().machine)
_RESOLVE_NO_SYMLINKS = 0x04
_AT_FDCWD = -100


def _openat2_dir(path: str) -> int | None:
    """openat2(2) with RESOLVE_NO_SYMLINKS: the directory ``path`` with no
    symlink anywhere on the way, in one call; None where the kernel (or the
    seccomp filter of a container) does not offer openat2."""
    if _SYS_OPENAT2 is None:
        return None
    libc = ctypes.CDLL(None, use_errno=True)
    how = _OpenHow(os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, 0, _RESOLVE_NO_SYMLINKS)
    fd = libc.syscall(_SYS_OPENAT2, _AT_FDCWD, os.fsencode(path), ctypes.byref(how),
                      ctypes.sizeof(how))
    if fd >= 0:
        return int(fd)
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EPERM):
        return None
    raise OSError(err, os.strerror(err), path)


def open_dir(path: str, create_mode: int | None = None) -> int:
    """A descriptor of directory ``path``, reached from / one component at a
    time (O_NOFOLLOW|O_DIRECTORY through each parent's descriptor), never
    through a symlink. With ``create_mode``, missing components are made with
    mkdirat as root, 0755, the last one with ``create_mode``."""
    parts = [p for p in os.path.normpath(path).split("/") if p]
    if create_mode is None:
        fd2 = _openat2_dir(path)
        if fd2 is not None:
            return fd2
    fd = os.open("/", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for i, part in enumerate(parts):
            flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
            try:
                nxt = os.open(part, flags, dir_fd=fd)
            except FileNotFoundError:
                if create_mode is None:
                    raise
                with contextlib.suppress(FileExistsError):
                    os.mkdir(part, create_mode if i == len(parts) - 1 else 0o755, dir_fd=fd)
                nxt = os.open(part, flags, dir_fd=fd)
            os.close(fd)
            fd = nxt
        return fd
    except BaseException:
        os.close(fd)
        raise


def take_over(path: str, worker: Worker, create: bool = False) -> None:
    """Give the directory to the worker user, mode 0700, through a descriptor
    of the directory itself, reached with no symlink followed anywhere on its
    path: a writable parent could otherwise swap a component for a symlink
    after the checks, and root would chown the link's target. ``create``
    makes the missing directories on the way, through the same descriptors."""
    try:
        fd = open_dir(path, MODE if create else None)
    except OSError as exc:
        raise InputError(f"the core directory changed while setting it up "
                         f"({exc.strerror}: a symlink or a non-directory on its path); "
                         "nothing changed hands", path=path) from None
    try:
        st = os.fstat(fd)
        if (st.st_uid, st.st_gid) != (worker.uid, worker.gid) or \
                stat.S_IMODE(st.st_mode) != MODE:
            others = [n for n in os.listdir(fd) if not n.startswith("core")]
            if others:  # the checks saw another directory: refuse on the one we hold
                raise InputError(f"the core directory holds other files ({others[0]!r}, "
                                 "...); nothing changed hands", path=path)
        os.fchown(fd, worker.uid, worker.gid)
        os.fchmod(fd, MODE)
    finally:
        os.close(fd)


def prepare(path: str, worker: Worker, manage: bool = True) -> CoreDir:
    """Create or fix the directory, then prove the worker user can write there."""
    if not manage:
        return inspect(path, worker, manage=False)
    refuse_unsafe_parent(path)
    inspect(path, worker)  # the same refusals as the plan, on the state now
    take_over(path, worker, create=True)
    state = inspect(path, worker)
    if state.worker_can_write is False:
        raise InputError(f"{worker.user} cannot write here even as its owner: a parent "
                         "directory is not searchable by that user; nginx workers would fail "
                         "to start (chdir)", path=path)
    return state
