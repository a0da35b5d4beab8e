"""A gdb process in MI mode, safe to point at untrusted cores and binaries.

pygdbmi's parser turns each MI line into a dict; the I/O is ours: a command
is written with a numeric token and we read until the result record carrying
that token arrives, so no command waits for "more output" after its answer
(pygdbmi's GdbController sleeps ~0.2 s per write for that). Every command has a
deadline; past it gdb is killed and a GdbError says which command hung.

The process itself is started by :mod:`crashkit.gdb.spawn`.
"""

from __future__ import annotations

import os
import re
import select
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from crashkit.errors import GdbError
from crashkit.gdb.spawn import (
    GDB_MEMORY_ENV,
    SafetyFlags,
    Spawned,
    describe_limit,
    spawn,
    take_early,
)

DEFAULT_TIMEOUT = 60.0
MAX_LINE = 256 << 20  # a single MI line longer than this is not gdb talking
# What gdb (and BFD inside it) says when an allocation fails: under its
# address-space limit, that is the limit speaking.
_OUT_OF_MEMORY = re.compile(rb"memory exhausted|Cannot allocate memory|std::bad_alloc|"
                            rb"out of memory|MemoryError", re.IGNORECASE)


def has_control(text: str) -> bool:
    """Whether ``text`` holds a character that could end or bend an MI line."""
    return any(ord(c) < 0x20 or ord(c) == 0x7F for c in text)


@dataclass(frozen=True)
class GdbOptions:
    gdb: str = "gdb"
    timeout: float = DEFAULT_TIMEOUT
    safety: SafetyFlags = field(default_factory=SafetyFlags)


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

    def __init__(self, options: GdbOptions, spawned: Spawned | None = None) -> None:
        """Start gdb, or adopt one started by :func:`crashkit.gdb.spawn.prestart`."""
        self.options = options
        started = spawned or take_early(options.gdb, options.safety) or spawn(
            options.gdb, options.safety)
        self._proc, self.home = started.process, started.home
        self._partial = bytearray()
        self._lines: deque[bytes] = deque()
        self._outbox = bytearray()  # commands gdb has not read yet
        self._token = 0
        self._pending: dict[int, str] = {}
        self._results: dict[int, MiResult] = {}
        self._console: list[str] = []
        self._closed = False
        self._out_of_memory = False  # gdb said an allocation failed
        self.timeout = options.timeout

    @property
    def memory_limit(self) -> int | None:
        """gdb's address-space limit in bytes (None: none)."""
        return self._proc.memory

    def memory_hint(self) -> str:
        """What limits gdb's memory, and how to raise it."""
        return (f"crashkit limits gdb to {describe_limit(self.memory_limit)} of address space; "
                f"{GDB_MEMORY_ENV}=SIZE raises it")

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
        """Kill gdb: it only ever read here, so nothing is lost by skipping its
        slow teardown."""
        if self._closed:
            return
        self._closed = True
        if self._proc.poll() is None:
            self._proc.kill()
        self._proc.close()
        self._cleanup_home()

    def _cleanup_home(self) -> None:
        if self.home:
            import shutil

            shutil.rmtree(self.home, ignore_errors=True)
            self.home = None

    # -- commands ---------------------------------------------------------------
    def send(self, cmd: str) -> int:
        """Queue one MI command without waiting; returns its token for :meth:`wait`.

        Arguments often come from the core (paths of mapped files): a newline
        in one would end this command and start another of the core's
        choosing (``shell …``), so any control character is refused here."""
        if has_control(cmd):
            raise GdbError("refusing to send gdb a command with a control character in it "
                           "(from a path in the core?)", command=repr(cmd))
        self._token += 1
        token = self._token
        self._pending[token] = cmd
        # A path that was not UTF-8 (a byte Python holds as a surrogate) goes
        # to gdb as its own bytes: gdb opens files by bytes.
        self._outbox += f"{token}{cmd}\n".encode("utf-8", "surrogateescape")
        self._pump(time.monotonic() + self.timeout, self.timeout, cmd, want_line=False)
        return token

    def wait(self, token: int, timeout: float | None = None, *, check: bool = True) -> MiResult:
        """The result record of an earlier :meth:`send` (gdb answers in order)."""
        cmd = self._pending.get(token, "?")
        limit = timeout if timeout is not None else self.timeout
        deadline = time.monotonic() + limit
        while token not in self._results:
            if not self._lines:
                self._pump(deadline, limit, cmd, want_line=True)
            while self._lines and token not in self._results:
                self._take(self._lines.popleft())
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

    def _pump(self, deadline: float, limit: float, cmd: str, *, want_line: bool) -> None:
        """Write queued commands and read output, until the outbox is empty
        (``want_line`` False) or a whole line has arrived. Reading while
        writing keeps gdb from blocking on a full stdout pipe while we block
        on its full stdin."""
        if self._closed:
            raise GdbError("gdb session is closed", command=cmd)
        while (self._outbox if not want_line else not self._lines):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self._proc.kill()
                raise GdbError(f"gdb did not answer {cmd.split()[0]} within {limit:g} s; "
                               "it was stopped", command=cmd)
            poller = select.poll()  # poll, not select: descriptors may be above 1023
            poller.register(self._proc.stdout, select.POLLIN)
            if self._outbox:
                poller.register(self._proc.stdin, select.POLLOUT)
            events = dict(poller.poll(remaining * 1000))
            writable = events.get(self._proc.stdin, 0) & (select.POLLOUT | select.POLLERR)
            readable = events.get(self._proc.stdout, 0) & (select.POLLIN | select.POLLHUP |
                                                            select.POLLERR)
            if writable:
                try:
                    n = os.write(self._proc.stdin, self._outbox)
                    del self._outbox[:n]
                except BlockingIOError:
                    pass
                except OSError:
                    raise self._died(cmd) from None
            if readable:
                self._read(cmd)

    def _read(self, cmd: str) -> None:
        try:
            chunk = os.read(self._proc.stdout, 1 << 16)
        except BlockingIOError:
            return
        if not chunk:
            raise self._died(cmd)
        self._partial += chunk
        if b"\n" in chunk:
            *complete, rest = self._partial.split(b"\n")
            self._lines.extend(bytes(line).rstrip(b"\r") for line in complete)
            self._partial = bytearray(rest)
        if len(self._partial) > MAX_LINE:
            self._proc.kill()
            raise GdbError("gdb printed a line of over 256 MiB; it was stopped", command=cmd)

    def _take(self, line: bytes) -> None:
        # pygdbmi's pure parser; imported here so that gdb is already
        # starting while Python loads it.
        from pygdbmi.gdbmiparser import parse_response

        _quiet_parser()

        kind = line[:1]
        # Not a result or async record (those carry the core's data): gdb's
        # own words, on its streams or raw on stderr (its embedded Python's).
        if not kind.isdigit() and kind not in (b"*", b"=", b"^") and \
                _OUT_OF_MEMORY.search(line):
            self._out_of_memory = True
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

    def _died(self, cmd: str) -> GdbError:
        code = self._proc.poll()
        if code is None:
            self._proc.kill()
            code = self._proc.returncode
        how = f"killed by signal {-code}" if code is not None and code < 0 else f"exit {code}"
        said = b"\n".join([*self._lines, bytes(self._partial)])
        if self.memory_limit is not None and (self._out_of_memory or _OUT_OF_MEMORY.search(said)):
            return GdbError(f"gdb ran out of memory and ended ({how}) before answering "
                            f"{cmd.split()[0]} ({self.memory_hint()})", command=cmd)
        if self.memory_limit is not None:
            return GdbError(f"gdb ended ({how}) before answering {cmd.split()[0]} (if it ran "
                            f"out of memory: {self.memory_hint()})", command=cmd)
        return GdbError(f"gdb ended ({how}) before answering {cmd.split()[0]}", command=cmd)
