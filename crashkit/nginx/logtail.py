"""The end of an nginx error log: the crashed worker's last lines, and the lines
around its exit for a bug report."""

from __future__ import annotations

import re

from crashkit.errors import InputError

LOG_TAIL = 8 * 1024 * 1024  # how much of the end of an error log is read
LOG_LINES = 5
_NGINX_LINE = re.compile(rb"^\d{4}/\d\d/\d\d \d\d:\d\d:\d\d \[\w+\] (\d+)#\d+: ")


def _tail_lines(path: str, option: str = "--error-log") -> list[bytes]:
    """The lines of the last LOG_TAIL bytes of a log."""
    from crashkit.elf.files import regular_file

    try:
        with regular_file(path) as (read, size):
            start = max(0, size - LOG_TAIL)
            data = read(start, size - start)
    except FileNotFoundError:
        raise InputError(f"{option}: no such file", path=path) from None
    except OSError as exc:
        raise InputError(f"{option}: cannot read it ({exc.strerror or exc})",
                         path=path) from None
    lines = data.split(b"\n")
    return lines[1:] if start else lines  # the first one is cut


def _exit_line(lines: list[bytes], pid: int) -> int | None:
    """Index of the master's "worker process PID exited on signal" line."""
    exited = re.compile(rb"worker process %d exited on signal" % pid)
    return next((i for i in range(len(lines) - 1, -1, -1) if exited.search(lines[i])), None)


def _decode(line: bytes) -> str:
    return line.decode("utf-8", "replace").rstrip("\r")[:4000]


def last_log_lines(path: str, pid: int, limit: int = LOG_LINES) -> tuple[str, ...]:
    """The crashed process's last lines in nginx's error log, up to and
    including the master's "worker process PID exited on signal" line.

    A worker's own messages carry its pid ("2026/11/24 04:21:15 [alert]
    PID#TID: ..."); what it wrote to stderr (glibc's assertion message, a
    module's fprintf) has no prefix, since nginx points stderr at the log."""
    lines = _tail_lines(path)
    own = b"%d" % pid
    end = _exit_line(lines, pid)
    picked: list[bytes] = []
    seen_own = False
    for line in reversed(lines[:end if end is not None else len(lines)]):
        if len(picked) == limit:
            break
        m = _NGINX_LINE.match(line)
        if m is not None:
            if m.group(1) == own:
                picked.append(line)
                seen_own = True
        elif line.strip() and end is not None and not seen_own:
            # stderr output has no prefix: it is the worker's only between
            # its last own line and the master's line about its exit.
            picked.append(line)
    if not seen_own and end is None:
        return ()  # the pid is not in this log
    out = [*reversed(picked)] + ([lines[end]] if end is not None else [])
    return tuple(_decode(line)[:1000] for line in out)


def log_excerpt(path: str, pid: int, before: int = 40, after: int = 5,
                around: float | None = None) -> tuple[tuple[str, ...], str | None]:
    """Lines around the crash, and how they were found.

    Up to ``before`` lines before the master's "exited on signal" line for
    pid and ``after`` after it ("exit line"). Without that line but with
    ``around`` (the crash time, seconds since the epoch: the core's mtime),
    the lines logged from two minutes before it to half a minute after
    ("time"). Otherwise nothing (None)."""
    lines = _tail_lines(path)
    while lines and not lines[-1].strip():
        lines.pop()
    end = _exit_line(lines, pid)
    if end is not None:
        return tuple(_decode(x) for x in lines[max(0, end - before):end + 1 + after]), \
            "exit line"
    if around is None:
        return (), None
    import time

    # nginx writes local time without a zone, as "YYYY/MM/DD HH:MM:SS".
    low = time.strftime("%Y/%m/%d %H:%M:%S", time.localtime(around - 120)).encode()
    high = time.strftime("%Y/%m/%d %H:%M:%S", time.localtime(around + 30)).encode()
    picked = [x for x in lines if _NGINX_LINE.match(x) and low <= x[:19] <= high]
    return tuple(_decode(x) for x in picked[-(before + after):]), "time" if picked else None
