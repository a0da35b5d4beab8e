"""Untrusted input parsed in a forked child, under limits.

:class:`Child` forks. The child lowers its own limits (``memory`` bytes of
address space beyond what it already maps, ``cpu`` seconds of CPU time, no
core file of its own, an alarm at the deadline), runs ``work`` (a generator)
and sends each value it yields to the parent as a pickle on a pipe; an
exception it raises goes the same way (a :class:`CrashkitError` as itself, a
``MemoryError`` as the address-space limit it is). The parent reads the
values one by one with :meth:`Child.receive` under a wall-clock deadline; a
child that dies (by its limits, a signal, or any exit) or overruns the
deadline before its next value is a :class:`~crashkit.errors.LimitError`,
and the values it sent before stay the parent's. On every path (the end of
the ``with`` block, an exception in the parent, a signal turned into
SystemExit) the child is killed and reaped.

The parent unpickles only the classes ``allowed`` accepts (crashkit's model
types): what comes back from a child that read a hostile file is data, never
code to run. A fork costs about 1.5 ms here, which is why a fork and not a
fresh interpreter (30 ms and more) is used.
"""

from __future__ import annotations

import builtins
import contextlib
import io
import os
import pickle
import signal
import struct
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

from crashkit.errors import CrashkitError, LimitError

_HEADER = struct.Struct("<Q")
MESSAGE_LIMIT = 128 << 20  # one value from the child: far more than any core's facts
_PAGE = os.sysconf("SC_PAGE_SIZE")
# Builtins a pickle of frozen dataclasses and exceptions may name.
_BUILTINS = frozenset({"frozenset", "set", "tuple", "list", "dict", "bytes", "bytearray",
                       "int", "str", "complex"})


class Child:
    """``work()`` run in a child; use as a context manager, read its values
    with :meth:`receive`."""

    def __init__(self, work: Callable[[], Iterator[Any]], *, cpu: float, memory: int,
                 deadline: float, allowed: Callable[[str, str], bool],
                 what: str = "the child") -> None:
        self.cpu, self.memory = _test_limits(cpu, memory)
        self.what = what
        self._allowed = allowed
        self._ends = time.monotonic() + deadline
        self._deadline = deadline
        self._buf = bytearray()
        self._eof = False
        self.status: int | None = None  # the child's wait status, once reaped
        read, write = os.pipe()
        try:
            pid = os.fork()
        except BaseException:  # EAGAIN (a process limit), ENOMEM: the caller decides
            os.close(read)
            os.close(write)
            raise
        if pid == 0:  # pragma: no cover - the child only exits
            os.close(read)
            _child(write, work, self.cpu, self.memory, deadline)
        os.close(write)
        self.pid: int | None = pid
        self._read = read

    def __enter__(self) -> Child:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Kill the child if it still runs, reap it, close the pipe."""
        if self.pid is not None:
            with contextlib.suppress(ProcessLookupError):  # a zombie still has its pid
                os.kill(self.pid, signal.SIGKILL)
            self._reap(block=True)
        if self._read >= 0:
            os.close(self._read)
            self._read = -1

    def _reap(self, *, block: bool) -> None:
        if self.pid is None:
            return
        while True:
            try:
                pid, status = os.waitpid(self.pid, 0 if block else os.WNOHANG)
            except InterruptedError:  # pragma: no cover - PEP 475 retries
                continue
            except ChildProcessError:  # pragma: no cover - reaped elsewhere
                pid, status = self.pid, 0
            break
        if pid:
            self.status, self.pid = status, None

    def receive(self) -> Any:
        """The child's next value; its exception raised here; a LimitError
        when it stopped (or overran the deadline) before sending one."""
        while len(self._buf) < _HEADER.size or \
                len(self._buf) < _HEADER.size + _HEADER.unpack_from(self._buf)[0]:
            if len(self._buf) >= _HEADER.size and \
                    _HEADER.unpack_from(self._buf)[0] > MESSAGE_LIMIT:
                self.close()
                raise LimitError(f"{self.what} answered with more than "
                                 f"{MESSAGE_LIMIT >> 20} MiB; it was stopped", reason="memory")
            if self._eof or not self._fill():
                raise self._stopped()
        size = _HEADER.unpack_from(self._buf)[0]
        data = bytes(self._buf[_HEADER.size:_HEADER.size + size])
        del self._buf[:_HEADER.size + size]
        kind, value = _Unpickler(io.BytesIO(data), self._allowed).load()
        if kind == "value":
            return value
        self.close()
        if kind == "memory":
            raise LimitError(f"{self.what} was stopped by its memory limit "
                             f"({_size(self.memory)} of address space)", reason="memory")
        if kind == "error":
            raise value
        raise _rebuilt(*value)

    def _fill(self) -> bool:
        """Read what the pipe holds; False at the end of the stream."""
        import select

        left = self._ends - time.monotonic()
        poll = select.poll()  # not select(): a descriptor may be above FD_SETSIZE
        poll.register(self._read, select.POLLIN)
        if left <= 0 or not poll.poll(left * 1000):
            self.close()
            raise LimitError(f"{self.what} did not finish within {self._deadline:g} s; "
                             "it was stopped", reason="deadline")
        chunk = os.read(self._read, 1 << 20)
        if not chunk:
            self._eof = True
            return False
        self._buf += chunk
        return True

    def _stopped(self) -> LimitError:
        self._reap(block=True)
        self.close()
        status = self.status or 0
        if os.WIFSIGNALED(status):
            signo = os.WTERMSIG(status)
            if signo == signal.SIGXCPU:
                return LimitError(f"{self.what} was stopped by its CPU-time limit "
                                  f"({self.cpu:g} s)", reason="cpu")
            if signo == signal.SIGKILL:  # the hard CPU limit, or the OOM killer
                return LimitError(f"{self.what} was killed (signal {signo}: its CPU-time "
                                  f"limit of {self.cpu:g} s, or the kernel's OOM killer)")
            if signo == signal.SIGALRM:
                return LimitError(f"{self.what} did not finish within {self._deadline:g} s; "
                                  "it was stopped", reason="deadline")
            return LimitError(f"{self.what} died of signal {signo}")
        return LimitError(f"{self.what} stopped before it answered (exit status "
                          f"{os.WEXITSTATUS(status)})", reason="exit")


def _size(n: int) -> str:
    return f"{n / (1 << 30):g} GiB" if n >= 1 << 30 else f"{n >> 20} MiB"


class _Unpickler(pickle.Unpickler):
    def __init__(self, file: io.BytesIO, allowed: Callable[[str, str], bool]) -> None:
        super().__init__(file)
        self._ok = allowed

    def find_class(self, module: str, name: str) -> Any:
        # Classes only (a dataclass or an exception is built, nothing runs),
        # and errors.py's one rebuilding function.
        if self._ok(module, name) or (module, name) == ("crashkit.errors", "_rebuild") or (
                module == "crashkit.errors" and not name.startswith("_")) or (
                module == "builtins" and (name in _BUILTINS or _builtin_exception(name))):
            found = super().find_class(module, name)
            if isinstance(found, type) or name == "_rebuild":
                return found
        raise pickle.UnpicklingError(f"the child sent a {module}.{name}, which is not "
                                     "crashkit's data")


def _builtin_exception(name: str) -> bool:
    found = getattr(builtins, name, None)
    return isinstance(found, type) and issubclass(found, Exception)


def _rebuilt(module: str, name: str, message: str, trace: str) -> Exception:
    """The child's unexpected exception: the same builtin type when it is one
    (the CLI names it as an internal error), with the child's traceback as a note."""
    found = getattr(builtins, name, None) if module == "builtins" else None
    exc: Exception
    try:
        exc = found(message) if isinstance(found, type) and issubclass(found, Exception) \
            else RuntimeError(f"{name}: {message}")
    except Exception:  # noqa: BLE001 - a type whose constructor wants more
        exc = RuntimeError(f"{name}: {message}")
    exc.add_note(f"in the child:\n{trace}")
    return exc


def _current_address_space() -> int:
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[0]) * _PAGE
    except (OSError, ValueError, IndexError):  # pragma: no cover - no /proc
        return 0


def _lower(which: int, want: int) -> None:
    import resource

    soft, hard = resource.getrlimit(which)
    if hard != resource.RLIM_INFINITY:
        want = min(want, hard)
    if soft != resource.RLIM_INFINITY:
        want = min(want, soft)
    resource.setrlimit(which, (want, hard))


def _test_limits(cpu: float, memory: int) -> tuple[float, int]:
    """The limits, lowered (never raised) by CRASHKIT_TEST_PARSE_LIMIT_MB and
    CRASHKIT_TEST_PARSE_CPU_S: the tests' way to reach them quickly."""
    test_mb = os.environ.get("CRASHKIT_TEST_PARSE_LIMIT_MB", "")
    if test_mb.isdigit():
        memory = min(memory, int(test_mb) << 20)
    test_cpu = os.environ.get("CRASHKIT_TEST_PARSE_CPU_S", "")
    if test_cpu.isdigit() and int(test_cpu) > 0:
        cpu = min(cpu, int(test_cpu))
    return cpu, memory


def _limits(cpu: float, memory: int, deadline: float) -> None:
    import resource

    _lower(resource.RLIMIT_CORE, 0)  # SIGXCPU's default action dumps core: not here
    _lower(resource.RLIMIT_AS, _current_address_space() + memory)
    # The soft limit sends SIGXCPU; the kernel's SIGKILL follows a second later.
    seconds = max(1, int(cpu))
    _soft, hard = resource.getrlimit(resource.RLIMIT_CPU)
    if hard == resource.RLIM_INFINITY or hard > seconds + 1:
        resource.setrlimit(resource.RLIMIT_CPU, (seconds, seconds + 1))
    else:  # pragma: no cover - a hard limit lower than ours
        resource.setrlimit(resource.RLIMIT_CPU, (min(seconds, hard), hard))
    signal.alarm(max(1, int(deadline) + 1))  # the child's own deadline, if the parent is gone


def _child(write: int, work: Callable[[], Iterator[Any]], cpu: float, memory: int,
           deadline: float) -> None:  # pragma: no cover - runs in the child
    code = 0
    try:
        for signo in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
            signal.signal(signo, signal.SIG_DFL)  # the parent reports; the child just ends
        signal.signal(signal.SIGALRM, signal.SIG_DFL)
        if "faulthandler" in sys.modules:  # PYTHONFAULTHANDLER: no traceback on a limit
            sys.modules["faulthandler"].disable()
        _limits(cpu, memory, deadline)
        try:
            for value in work():
                _send(write, ("value", value))
        except MemoryError:
            _send(write, ("memory", None))
        except CrashkitError as exc:
            _send(write, ("error", exc))
        except Exception as exc:  # noqa: BLE001 - every outcome goes to the parent
            import traceback

            _send(write, ("crash", (type(exc).__module__, type(exc).__qualname__, str(exc),
                                    traceback.format_exc())))
    except BaseException:  # noqa: BLE001 - a forked child must never return
        code = 1
    finally:
        os._exit(code)


def _send(fd: int, message: tuple[str, Any]) -> None:  # pragma: no cover - in the child
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    view = memoryview(_HEADER.pack(len(data)) + data)
    while view:
        view = view[os.write(fd, view):]
