"""Starting gdb, with nothing imported that gdb's start-up does not need.

This module is imported before the rest of crashkit (see crashkit.launch):
it uses os.posix_spawn rather than subprocess, plain classes rather than
dataclasses or NamedTuples, and no signal module, because subprocess,
dataclasses, typing and enum together cost ~25 ms to import, and every
millisecond here is one gdb does not get to start earlier.
"""

from __future__ import annotations

import os
import time

from crashkit.errors import CrashkitError, GdbError

INSTALL_HINT = "install it with: apt-get install gdb"

# gdb's environment is built from these alone: PYTHON* would make its
# embedded Python run the caller's code as root (usercustomize.py, .pth files),
# LD_* the caller's libraries, GDB* and XDG_* the caller's settings.
_ENV_ALLOW = ("TMPDIR", "TZ", "TERM", "USER", "LOGNAME")
# Given to gdb only when debuginfod was asked for.
_DEBUGINFOD_ENV = ("DEBUGINFOD_URLS", "DEBUGINFOD_CACHE_PATH", "DEBUGINFOD_TIMEOUT")
SAFE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# gdb's address space and CPU time. Reading the debug info of nginx and every
# library takes a few hundred MiB; a binary claiming a 10 GiB .symtab made gdb
# grow past 20 GB without a limit (with it: gdb says "memory exhausted" and
# goes on without that file's symbols). CRASHKIT_GDB_MEMORY sets another
# address space (a size, 8G; or "unlimited"), for huge debug info.
GDB_MEMORY_LIMIT = 4 << 30
GDB_MEMORY_ENV = "CRASHKIT_GDB_MEMORY"
GDB_CPU_LIMIT = 600
_SCALE = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def gdb_memory_limit() -> int | None:
    """gdb's address-space limit in bytes (None: unlimited): CRASHKIT_GDB_MEMORY,
    else GDB_MEMORY_LIMIT. A value that is not a size is bad input."""
    text = os.environ.get(GDB_MEMORY_ENV, "").strip().lower()
    if not text:
        return GDB_MEMORY_LIMIT
    if text in ("unlimited", "infinity"):
        return None
    num, unit = text.rstrip("bi"), ""  # 8G, 8GiB, 8gb
    if num and num[-1] in _SCALE:
        num, unit = num[:-1], num[-1]
    if not num.isdigit() or int(num) == 0:
        from crashkit.errors import InputError

        raise InputError(f"{GDB_MEMORY_ENV}={os.environ[GDB_MEMORY_ENV]!r} is not a size "
                         "(bytes, or a number with K, M, G or T; or unlimited)")
    return int(num) * _SCALE[unit]


def describe_limit(limit: int | None) -> str:
    """A limit as people write it: 4 GiB, 512 MiB, unlimited."""
    if limit is None:
        return "unlimited"
    for unit, name in (("t", "TiB"), ("g", "GiB"), ("m", "MiB"), ("k", "KiB")):
        if limit >= _SCALE[unit] and limit % _SCALE[unit] == 0:
            return f"{limit // _SCALE[unit]} {name}"
    return f"{limit} bytes"


SIGKILL = 9  # the signal module would import enum


class SafetyFlags:
    """The protections every session uses. Tests turn them off one at a time
    to prove each one matters on its own; nothing else may."""

    __slots__ = ("auto_load_off", "debuginfod", "nx", "private_home")

    def __init__(self, nx: bool = True, auto_load_off: bool = True, debuginfod: bool = False,
                 private_home: bool = True) -> None:
        self.nx = nx  # -nx: read no gdbinit file
        self.auto_load_off = auto_load_off  # no .debug_gdb_scripts, -gdb.py, local gdbinit
        self.debuginfod = debuginfod  # network fetches of debug info, only on request
        self.private_home = private_home  # HOME and cwd: an empty directory of our own

    def _key(self) -> tuple[bool, bool, bool, bool]:
        return (self.nx, self.auto_load_off, self.debuginfod, self.private_home)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SafetyFlags) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        return ("SafetyFlags(nx={}, auto_load_off={}, debuginfod={}, private_home={})"
                .format(*self._key()))


def _private_dir() -> str:
    """An empty 0700 directory for gdb's HOME and cwd (tempfile.mkdtemp's
    contract, without importing tempfile on the path that starts gdb)."""
    base = os.path.abspath(os.environ.get("TMPDIR") or "/tmp")
    _remove_stale(base)
    for _ in range(100):
        path = os.path.join(base, f"crashkit-gdb-home-{os.getpid()}-{os.urandom(4).hex()}")
        try:
            os.mkdir(path, 0o700)
            return path
        except FileExistsError:
            continue
    raise GdbError(f"cannot make a private directory for gdb under {base}")


def _remove_stale(base: str) -> None:
    """Directories left by a crashkit that was SIGKILLed (the OOM killer):
    ours (same uid), and their process is gone."""
    prefix = "crashkit-gdb-home-"
    try:
        names = [n for n in os.listdir(base) if n.startswith(prefix)]
    except OSError:
        return
    for name in names:
        pid = name[len(prefix):].split("-", 1)[0]
        path = os.path.join(base, name)
        try:
            if not pid.isdigit() or os.lstat(path).st_uid != os.getuid() or \
                    os.path.exists(f"/proc/{pid}"):
                continue
        except OSError:
            continue
        import shutil  # only now: this module keeps its imports few

        shutil.rmtree(path, ignore_errors=True)


def resolve_gdb(path: str) -> str:
    """gdb's absolute path, from the fixed system path (crashkit.host.toolpath)."""
    from crashkit.host.toolpath import find

    found = find(path)
    if found is None:
        raise GdbError(f"gdb not found ({path!r}); {INSTALL_HINT}")
    return found


def gdb_argv(gdb: str, s: SafetyFlags, cwd: str | None = None) -> list[str]:
    argv = [gdb, "--interpreter=mi3", "-q"]
    if s.nx:
        argv.append("-nx")
    if cwd is not None:
        argv.append(f"--cd={cwd}")
    early = ["set pagination off", "set confirm off", "set width 0", "set height 0",
             "set print pretty off", "set print elements 200", "set print repeats 10",
             "set max-value-size 65536", "set verbose off"]
    if s.auto_load_off:
        early.insert(0, "set auto-load off")
    early.append(f"set debuginfod enabled {'on' if s.debuginfod else 'off'}")
    for cmd in early:
        argv += ["-iex", cmd]
    return argv


ROOT_DEBUGINFOD_CACHE = "/var/cache/crashkit/debuginfod"


def debuginfod_cache_path(euid: int, env: dict[str, str] | os._Environ[str]) -> str:
    """Where crashkit keeps what debuginfod fetched, across runs (gdb's own
    HOME is a private directory thrown away after each run, and with it
    libdebuginfod's default cache): root's in /var/cache (FHS), a user's
    under $XDG_CACHE_HOME (when absolute, as the XDG spec says), else ~/.cache."""
    if euid == 0:
        return ROOT_DEBUGINFOD_CACHE
    base = env.get("XDG_CACHE_HOME") or ""
    if not os.path.isabs(base):
        home = env.get("HOME") or ""
        if not os.path.isabs(home):
            import pwd

            home = pwd.getpwuid(euid).pw_dir
        base = os.path.join(home, ".cache")
    return os.path.join(base, "crashkit", "debuginfod")


def debuginfod_cache(euid: int | None = None,
                     env: dict[str, str] | None = None) -> tuple[str | None, str | None]:
    """crashkit's debuginfod cache, made if missing (0700): (path, None), or
    (None, why it cannot be used). gdb reads what is in it as debug info, so
    it must be a real directory of this user's that nobody else can write."""
    path = debuginfod_cache_path(os.geteuid() if euid is None else euid,
                                 os.environ if env is None else env)
    try:
        os.makedirs(path, 0o700, exist_ok=True)
        st = os.lstat(path)
    except OSError as exc:
        return None, f"{path}: {(exc.strerror or str(exc)).lower()}"
    if (st.st_mode & 0o170000) != 0o040000:  # stat.S_ISDIR, without importing stat
        return None, f"{path}: not a directory"
    if st.st_uid != os.geteuid():
        return None, f"{path}: owned by uid {st.st_uid}, not this user"
    if st.st_mode & 0o022:
        return None, f"{path}: writable by others (mode {st.st_mode & 0o7777:04o})"
    return path, None


def gdb_env(s: SafetyFlags, home: str | None, cache: str | None = None) -> dict[str, str]:
    """gdb's whole environment. With debuginfod: the caller's DEBUGINFOD_*
    settings, and ``cache`` (:func:`debuginfod_cache`) as DEBUGINFOD_CACHE_PATH
    unless the caller set one."""
    env = {k: v for k, v in os.environ.items() if k in _ENV_ALLOW}
    if s.debuginfod:
        env.update((k, v) for k, v in os.environ.items() if k in _DEBUGINFOD_ENV and v)
        if cache is not None:
            env.setdefault("DEBUGINFOD_CACHE_PATH", cache)
    env["PATH"] = SAFE_PATH
    env["LC_ALL"] = "C.UTF-8"
    env["HOME"] = home if home is not None else os.environ.get("HOME", "/")
    return env


def _limit(pid: int, memory: int | None) -> None:
    """gdb's resource limits, set right after it starts (posix_spawn has no
    hook before exec; gdb has not read a core by then)."""
    import resource

    for which, want in ((resource.RLIMIT_AS, memory),
                        (resource.RLIMIT_CPU, GDB_CPU_LIMIT)):
        if want is None:
            continue
        try:
            hard = resource.prlimit(pid, which)[1]
            if hard != resource.RLIM_INFINITY:
                want = min(want, hard)
            resource.prlimit(pid, which, (want, hard))
        except (OSError, ValueError):
            pass  # gone already, or not ours to limit: its deadline still holds


def _open_fds() -> list[int]:
    try:
        return [int(n) for n in os.listdir("/proc/self/fd")]
    except OSError:
        return []


class GdbProcess:
    """gdb's pid and pipes; its own session (so a kill takes its children too)."""

    def __init__(self, argv: list[str], env: dict[str, str],
                 memory: int | None = GDB_MEMORY_LIMIT) -> None:
        self.memory = memory  # its address-space limit (None: none)
        in_r, self.stdin = os.pipe()  # both ends close-on-exec; dup2 clears it on 0/1/2
        self.stdout, out_w = os.pipe()
        # Descriptors our own parent left open without close-on-exec are not
        # gdb's business; SIGPIPE and SIGXFSZ may be ignored by that parent.
        ours = {in_r, out_w, self.stdin, self.stdout}
        strays = [(os.POSIX_SPAWN_CLOSE, fd) for fd in _open_fds() if fd > 2 and fd not in ours]
        try:
            self.pid = os.posix_spawn(argv[0], argv, env, setsid=True, setsigdef=(13, 25),
                                      file_actions=[
                (os.POSIX_SPAWN_DUP2, in_r, 0), (os.POSIX_SPAWN_DUP2, out_w, 1),
                (os.POSIX_SPAWN_DUP2, out_w, 2), *strays])
        except OSError:
            for fd in (in_r, out_w, self.stdin, self.stdout):
                os.close(fd)
            raise
        finally:
            if hasattr(self, "pid"):
                os.close(in_r)
                os.close(out_w)
        _limit(self.pid, memory)
        os.set_blocking(self.stdin, False)
        os.set_blocking(self.stdout, False)
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            try:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:
                # Not ours to reap (SIGCHLD ignored by our parent): ask the kernel.
                try:
                    os.kill(self.pid, 0)
                except ProcessLookupError:
                    self.returncode = -SIGKILL
                return self.returncode
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def kill(self) -> None:
        if self.returncode is not None:
            return  # reaped: its pid may belong to another process by now
        try:  # noqa: SIM105 - contextlib is an import this module avoids
            os.killpg(self.pid, SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        deadline = time.monotonic() + 5
        while self.poll() is None and time.monotonic() < deadline:
            time.sleep(0.002)

    def close(self) -> None:
        for fd in (self.stdin, self.stdout):
            try:  # noqa: SIM105
                os.close(fd)
            except OSError:
                pass


class Spawned:
    """A started gdb: its process, private HOME, and how it was started."""

    __slots__ = ("gdb", "home", "process", "safety")

    def __init__(self, process: GdbProcess, home: str | None, gdb: str,
                 safety: SafetyFlags) -> None:
        self.process, self.home, self.gdb, self.safety = process, home, gdb, safety


def spawn(gdb: str, safety: SafetyFlags) -> Spawned:
    """Start gdb in MI mode with ``safety``; GdbError if it cannot start."""
    path = resolve_gdb(gdb)
    memory = gdb_memory_limit()
    home = _private_dir() if safety.private_home else None
    cache = debuginfod_cache()[0] if safety.debuginfod and \
        not os.environ.get("DEBUGINFOD_CACHE_PATH") else None
    try:
        return Spawned(GdbProcess(gdb_argv(path, safety, home), gdb_env(safety, home, cache),
                                  memory), home, gdb, safety)
    except OSError as exc:
        if home:
            os.rmdir(home)
        raise GdbError(f"cannot start gdb ({path}): {exc.strerror}; {INSTALL_HINT}") from None


_early: Spawned | None = None


def prestart(argv: list[str]) -> None:
    """Start gdb for ``crashkit analyze`` before the rest of crashkit (click,
    pyelftools) is imported, so gdb's own start-up overlaps Python's. Only the
    plain case is started early; an option that changes how gdb starts, or
    anything that is not an analysis, leaves it to the normal path."""
    global _early
    if not argv or argv[0] != "analyze":
        return
    for a in argv[1:]:
        if a in ("-h", "--help", "--no-gdb", "--debuginfod") or (
                a.startswith("--gdb") and not a.startswith("--gdb-timeout")):
            return
    try:
        _early = spawn("gdb", SafetyFlags())
    except CrashkitError:  # GdbError, or a bad CRASHKIT_GDB_MEMORY
        return  # the normal path will say so
    import atexit

    atexit.register(drop_early)


def take_early(gdb: str, safety: SafetyFlags) -> Spawned | None:
    """The pre-started gdb if it was started the way the caller wants."""
    global _early
    early, _early = _early, None
    if early is not None and (early.gdb, early.safety) != (gdb, safety):
        _discard(early)
        return None
    return early


def drop_early() -> None:
    global _early
    if _early is not None:
        _discard(_early)
        _early = None


def _discard(s: Spawned) -> None:
    s.process.kill()
    s.process.close()
    if s.home:
        import shutil

        shutil.rmtree(s.home, ignore_errors=True)
