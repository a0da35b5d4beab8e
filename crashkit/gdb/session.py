"""A gdb process in MI mode, safe to point at untrusted cores and binaries.

pygdbmi's parser turns each MI line into a dict; the I/O is ours: a command
is written with a numeric token and we read until the result record carrying
that token arrives, so no command waits for "more output" after its answer
(pygdbmi's GdbController sleeps ~0.2 s per write for that). Every command has a
deadline; past it gdb is killed and a GdbError says which command hung.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import shutil
import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from crashkit.errors import GdbError

INSTALL_HINT = "install it with: apt-get install gdb"
DEFAULT_TIMEOUT = 60.0

# Environment variables that would make gdb fetch from the network or read
# files the user did not ask for.
_DEBUGINFOD_ENV = ("DEBUGINFOD_URLS", "DEBUGINFOD_CACHE_PATH")
_SCRUBBED_ENV = ("GDBHISTFILE", "GDBHISTSIZE",
                 "PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "XDG_CONFIG_HOME",
                 "XDG_CACHE_HOME", "INSIDE_EMACS")


@dataclass(frozen=True)
class SafetyFlags:
    """The protections every session uses. Tests turn them off one at a time
    to prove each one matters on its own; nothing else may."""

    nx: bool = True  # -nx: read no gdbinit file
    auto_load_off: bool = True  # no .debug_gdb_scripts, no -gdb.py files, no local gdbinit
    debuginfod: bool = False  # network fetches of debug info, only if the user opts in
    private_home: bool = True  # a HOME with no gdbinit in it


@dataclass(frozen=True)
class GdbOptions:
    gdb: str = "gdb"
    timeout: float = DEFAULT_TIMEOUT
    safety: SafetyFlags = field(default_factory=SafetyFlags)


def _private_dir() -> str:
    """An empty 0700 directory for gdb's HOME and cwd (tempfile.mkdtemp's
    contract, without importing tempfile on the path that starts gdb)."""
    base = os.environ.get("TMPDIR") or "/tmp"
    for _ in range(100):
        path = os.path.join(base, f"crashkit-gdb-home-{os.getpid()}-{os.urandom(4).hex()}")
        try:
            os.mkdir(path, 0o700)
            return path
        except FileExistsError:
            continue
    raise GdbError(f"cannot make a private directory for gdb under {base}")


def resolve_gdb(path: str) -> str:
    found = shutil.which(path)
    if found is None:
        raise GdbError(f"gdb not found ({path!r}); {INSTALL_HINT}")
    return found


def gdb_argv(gdb: str, options: GdbOptions) -> list[str]:
    s = options.safety
    argv = [gdb, "--interpreter=mi3", "-q"]
    if s.nx:
        argv.append("-nx")
    early = ["set pagination off", "set confirm off", "set width 0", "set height 0",
             "set print pretty off", "set print elements 200", "set print repeats 10",
             "set max-value-size 65536", "set verbose off"]
    if s.auto_load_off:
        early.insert(0, "set auto-load off")
    early.append(f"set debuginfod enabled {'on' if s.debuginfod else 'off'}")
    for cmd in early:
        argv += ["-iex", cmd]
    return argv


def gdb_env(options: GdbOptions, home: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _SCRUBBED_ENV}
    env["LC_ALL"] = "C.UTF-8"
    if home is not None:
        env["HOME"] = home
    if not options.safety.debuginfod:
        for key in _DEBUGINFOD_ENV:
            env.pop(key, None)
    return env


def _quiet_parser() -> None:
    """pygdbmi's parser calls logger.debug() for every token it reads; with
    its logger above DEBUG each call returns at once (a third of the parse
    time of a backtrace)."""
    import logging

    logging.getLogger("pygdbmi.gdbmiparser").setLevel(logging.WARNING)


@dataclass
class MiResult:
    message: str  # "done", "error", "running", "connected", "exit"
    payload: dict[str, Any]
    console: list[str]  # console and log stream text printed before the result


class GdbSession:
    """One gdb process. Start it early: gdb's own start-up then overlaps ours."""

    def __init__(self, options: GdbOptions) -> None:
        self.options = options
        gdb = resolve_gdb(options.gdb)
        self._home = _private_dir() if options.safety.private_home else None
        try:
            self._proc = subprocess.Popen(
                gdb_argv(gdb, options), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT, env=gdb_env(options, self._home),
                cwd=self._home or None, start_new_session=True)
        except OSError as exc:
            self._cleanup_home()
            raise GdbError(f"cannot start gdb ({gdb}): {exc.strerror}; {INSTALL_HINT}") from None
        assert self._proc.stdout is not None and self._proc.stdin is not None
        self._out = self._proc.stdout.fileno()
        os.set_blocking(self._out, False)
        self._sel = selectors.DefaultSelector()
        self._sel.register(self._out, selectors.EVENT_READ)
        self._buf = b""
        self._token = 0
        self._pending: dict[int, str] = {}
        self._results: dict[int, MiResult] = {}
        self._console: list[str] = []
        self.timeout = options.timeout

    def configure(self, sysroot: str | None, debug_dirs: Sequence[str]) -> list[int]:
        """Queue the settings that depend on the analysis, not on gdb's start-up
        (so gdb can be started before they are known)."""
        tokens = []
        # gdb runs in an empty directory of its own, so paths must be absolute.
        if sysroot:
            tokens.append(self.send(f"-gdb-set sysroot {os.path.abspath(sysroot)}"))
        dirs = [*(os.path.abspath(d) for d in debug_dirs), "/usr/lib/debug"]
        tokens.append(self.send(f"-gdb-set debug-file-directory {':'.join(dirs)}"))
        return tokens

    # -- lifecycle -------------------------------------------------------------
    def __enter__(self) -> GdbSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        # gdb only ever reads here, so nothing is lost by not letting it tidy
        # up: killing it saves its slow teardown.
        if self._proc.poll() is None:
            self._kill()
        self._sel.close()
        for stream in (self._proc.stdin, self._proc.stdout):
            try:
                if stream:
                    stream.close()
            except OSError:
                pass
        self._cleanup_home()

    def _kill(self) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self._proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._proc.wait(timeout=5)

    def _cleanup_home(self) -> None:
        if self._home:
            shutil.rmtree(self._home, ignore_errors=True)
            self._home = None

    # -- commands ---------------------------------------------------------------
    def send(self, cmd: str) -> int:
        """Queue one MI command without waiting; returns its token for :meth:`wait`."""
        self._token += 1
        token = self._token
        try:
            assert self._proc.stdin is not None
            self._proc.stdin.write(f"{token}{cmd}\n".encode())
            self._proc.stdin.flush()
        except (BrokenPipeError, OSError, ValueError):
            raise self._died(cmd) from None
        self._pending[token] = cmd
        return token

    def wait(self, token: int, timeout: float | None = None, *, check: bool = True) -> MiResult:
        """The result record of an earlier :meth:`send` (gdb answers in order)."""
        cmd = self._pending.get(token, "?")
        limit = timeout if timeout is not None else self.timeout
        deadline = time.monotonic() + limit
        while token not in self._results:
            line = self._readline(deadline, limit, cmd)
            self._take(line)
        result = self._results.pop(token)
        self._pending.pop(token, None)
        if check and result.message == "error":
            msg = result.payload.get("msg", "unknown error")
            raise GdbError(f"gdb: {msg}", command=cmd)
        return result

    def command(self, cmd: str, timeout: float | None = None, *,
                check: bool = True) -> MiResult:
        """Send one MI command and wait for its own result record."""
        return self.wait(self.send(cmd), timeout, check=check)

    def _take(self, line: bytes) -> None:
        # pygdbmi's pure parser; imported here so that gdb is already
        # starting while Python loads it.
        from pygdbmi.gdbmiparser import parse_response

        _quiet_parser()

        kind = line[:1]
        if kind in (b"~", b"&"):
            rec = parse_response(line.decode("utf-8", "replace"))
            if isinstance(rec.get("payload"), str):
                self._console.append(rec["payload"])
            return
        head = line.split(b"^", 1)
        if len(head) == 2 and head[0].isdigit():
            rec = parse_response(line.decode("utf-8", "replace"))
            token = int(head[0])
            self._results[token] = MiResult(rec.get("message") or "", rec.get("payload") or {},
                                            self._console)
            self._console = []

    def _readline(self, deadline: float, limit: float, cmd: str) -> bytes:
        while True:
            nl = self._buf.find(b"\n")
            if nl >= 0:
                line, self._buf = self._buf[:nl].rstrip(b"\r"), self._buf[nl + 1:]
                return line
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self._kill()
                raise GdbError(f"gdb did not answer {cmd.split()[0]} within {limit:g} s; "
                               "it was stopped", command=cmd)
            if not self._sel.select(remaining):
                continue
            try:
                chunk = os.read(self._out, 1 << 16)
            except BlockingIOError:
                continue
            if not chunk:
                raise self._died(cmd)
            self._buf += chunk
            if len(self._buf) > 256 << 20:
                self._kill()
                raise GdbError("gdb printed over 256 MiB without an answer; it was stopped",
                               command=cmd)

    def _died(self, cmd: str) -> GdbError:
        code = self._proc.poll()
        if code is None:
            self._kill()
            code = self._proc.returncode
        how = f"killed by signal {-code}" if code is not None and code < 0 else f"exit {code}"
        return GdbError(f"gdb ended ({how}) before answering {cmd.split()[0]}", command=cmd)
