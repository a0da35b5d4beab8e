"""crossplane, made safe for configs crashkit did not write.

crossplane follows a config's ``include`` directives itself, with ``open()``:
an include naming a FIFO blocks it forever, one naming /dev/zero reads until
memory runs out, and a huge file is read whole. crashkit parses configs given
with --conf and the files they include, some in directories other users may
write. So crossplane's parser gets this module's ``open``
instead of the builtin (and crashkit.nginx.config's lexer reads through
:func:`open_regular`): the same behaviour on regular files,
and on anything else (or a file past MAX_CONFIG_BYTES) an OSError that
load_config turns into its one-line error naming the include. Installed once,
when crashkit.nginx.config is imported."""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator
from typing import IO, Any

import crossplane.parser as _parser
from crossplane.lexer import _balance_braces, _lex_file_object

MAX_CONFIG_BYTES = 64 << 20  # per file; nginx's own configs are kilobytes


def open_regular(path: str) -> int:
    """A read-only descriptor of a regular file of at most MAX_CONFIG_BYTES
    (symbolic links followed, as nginx follows them); OSError otherwise."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise OSError(errno.EINVAL, "not a regular file (a named pipe, a device or a socket)", path)
    if st.st_size > MAX_CONFIG_BYTES:
        os.close(fd)
        raise OSError(errno.EFBIG, f"larger than {MAX_CONFIG_BYTES >> 20} MiB", path)
    return fd


def _open(file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> IO[Any]:
    if not isinstance(file, str) or any(c in mode for c in "wax+"):
        return open(file, mode, *args, **kwargs)
    return open(open_regular(file), mode, *args, **kwargs)


def lex(filename: str) -> Iterator[tuple[str, int, bool]]:
    """crossplane.lexer.lex over a file opened by :func:`open_regular`."""
    with open(open_regular(filename), encoding="utf-8", errors="replace") as f:
        yield from _balance_braces(_lex_file_object(f), filename)


def install() -> None:
    """crossplane's parser opens explicit includes with ``open()`` (to check
    them): this one. Its lexer is crashkit.nginx.config's, which reads files
    through :func:`open_regular` and falls back to :func:`lex`."""
    _parser.open = _open
