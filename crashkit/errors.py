"""One error hierarchy for crashkit.

Readers raise these with the facts a caller needs (the path, the offset, the
command); only :mod:`crashkit.cli` turns them into a one-line message and an
exit code.
"""

from __future__ import annotations


class CrashkitError(Exception):
    """Base class. ``exit_code`` is what the CLI exits with."""

    exit_code = 2

    def __init__(self, message: str, *, path: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.path = path

    def __str__(self) -> str:
        if self.path:
            return f"{self.path}: {self.message}"
        return self.message

    def __reduce__(self) -> tuple[object, ...]:
        # Pickled whole (keyword-only fields included), so that an error met in
        # a child (host/child) is raised in the parent as itself.
        return (_rebuild, (type(self), self.message), self.__dict__)


def _rebuild(cls: type[CrashkitError], message: str) -> CrashkitError:
    exc = cls.__new__(cls)
    Exception.__init__(exc, message)
    return exc


class InputError(CrashkitError):
    """The user gave us something we cannot use (missing file, directory, …)."""


class CoreFormatError(CrashkitError):
    """The file is not a usable ELF core; ``offset`` says where it went wrong."""

    def __init__(self, message: str, *, path: str | None = None, offset: int | None = None) -> None:
        super().__init__(message, path=path)
        self.offset = offset

    def __str__(self) -> str:
        text = super().__str__()
        if self.offset is not None:
            text += f" (at file offset {self.offset:#x})"
        return text


class UnsupportedCoreError(CoreFormatError):
    """A well-formed core that crashkit cannot read (other architecture, 32-bit)."""


class MemoryReadError(CrashkitError):
    """An address that the core does not hold (not dumped, or cut off by truncation)."""

    def __init__(self, message: str, *, address: int, path: str | None = None) -> None:
        super().__init__(message, path=path)
        self.address = address


class GdbError(CrashkitError):
    """gdb is missing, failed, timed out, or answered with an error record."""

    def __init__(self, message: str, *, command: str | None = None) -> None:
        super().__init__(message)
        self.command = command


class LimitError(CrashkitError):
    """Work on untrusted input that crashkit ran in a child (host/child) was
    stopped: by its CPU-time or address-space limit, a signal, or its deadline.
    ``reason`` is which: "cpu", "memory", "deadline", "signal" or "exit"."""

    def __init__(self, message: str, *, path: str | None = None, reason: str = "signal") -> None:
        super().__init__(message, path=path)
        self.reason = reason


class CommandError(CrashkitError):
    """A host command that is missing, could not start, timed out, or (when the
    caller asked for success) exited non-zero."""

    def __init__(self, message: str, *, command: str, status: int | None = None,
                 output: str = "") -> None:
        super().__init__(message)
        self.command = command
        self.status = status
        self.output = output
