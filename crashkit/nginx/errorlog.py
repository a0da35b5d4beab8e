"""Read nginx error logs: one line at a time, or fast over gigabytes.

The line format (ngx_log_error_core):

    2026/11/24 04:23:39 [error] 2038#2038: *1 connect() failed (111: Connection
    refused) while connecting to upstream, client: 127.0.0.1, server: x, request:
    "GET / HTTP/1.1", upstream: "http://127.0.0.1:8081/", host: "x"

(one line in the file): local time, level, pid#tid, ``*connection`` when the
message is about a connection, the message, then the context nginx adds for
requests (client, server, request, subrequest, upstream, host, referrer).

Two ways in:

- :func:`parse_line` turns one line into a :class:`LogLine` (for a person's
  tools and tests; it allocates, so it is not what a big log goes through);
- :func:`select` streams files (plain or gzip, any name) in large blocks and
  runs ONE compiled pattern, which starts at the level and which the caller
  builds from :func:`head`, over each block. Only the lines it matches ever
  become Python objects; everything else stays inside the regex engine.
  That keeps the cost close to grep's (see scripts/bench).

Unreadable files, directories, and ``.gz`` files that are not gzip raise
:class:`~crashkit.errors.InputError` naming the file. Lines that are not
error-log lines (a stack trace a module logged over several lines, a
truncated write, a line with an impossible date: any line that does not begin
with a valid date) are counted in :class:`ScanStats`, never fatal; a file
none of whose lines begins with a date is not an error log, and
:func:`reduce_tasks` says so with an InputError.
"""

from __future__ import annotations

import errno
import gzip
import itertools
import os
import re
import stat
import time
import zlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import BinaryIO, TypeVar

from crashkit.errors import InputError
from crashkit.formats.nginx_log import TIME_FORMAT, parse_time

DEFAULT_ERROR_LOG = "/var/log/nginx/error.log"
BLOCK_SIZE = 4 << 20  # bytes read at a time
PARALLEL_MIN_BYTES = 64 << 20  # below this, one process reads everything
_MAX_LINE = 1 << 20  # a "line" longer than this is cut off and counted as garbage


# ---------------------------------------------------------------- one line

@dataclass(frozen=True)
class LogLine:
    time: datetime  # local time, as nginx wrote it (no zone in the log)
    level: str
    pid: int
    tid: int
    connection: int | None  # the "*N" connection number
    message: str  # without the context fields below
    client: str | None = None
    server: str | None = None
    request: str | None = None
    upstream: str | None = None
    host: str | None = None


_LINE = re.compile(rb"(\d{4}/\d\d/\d\d \d\d:\d\d:\d\d) \[([a-z]+)\] (\d+)#(\d+): "
                   rb"(?:\*(\d+) )?([^\n]*)")
_CONTEXT = re.compile(
    rb", client: (?P<client>[^,]*)(?:, server: (?P<server>[^,]*))?"
    rb"(?:, request: \"(?P<request>[^\"]*)\")?(?:, subrequest: \"[^\"]*\")?"
    rb"(?:, upstream: \"(?P<upstream>[^\"]*)\")?(?:, host: \"(?P<host>[^\"]*)\")?")


@dataclass(frozen=True)
class Context:
    """The fields nginx appends to a message about a request."""

    client: str | None = None
    server: str | None = None
    request: str | None = None
    upstream: str | None = None
    host: str | None = None


def _text(b: bytes | None) -> str | None:
    return None if b is None else b.decode("utf-8", "backslashreplace")


def split_context(rest: bytes) -> tuple[bytes, Context]:
    """Split a message from nginx's ", client: …" context (the first one)."""
    m = _CONTEXT.search(rest)
    if m is None:
        return rest, Context()
    g = m.groupdict()
    return rest[:m.start()], Context(_text(g["client"]), _text(g["server"]),
                                      _text(g["request"]), _text(g["upstream"]),
                                      _text(g["host"]))


def parse_line(line: bytes) -> LogLine | None:
    """One error-log line; None when it is not one (garbage, a continuation line)."""
    m = _LINE.fullmatch(line.rstrip(b"\r\n"))
    if m is None:
        return None
    try:
        when = parse_time(m.group(1))
    except ValueError:  # 2026/13/45 and the like
        return None
    message, ctx = split_context(m.group(6))
    return LogLine(when, m.group(2).decode(), int(m.group(3)), int(m.group(4)),
                   int(m.group(5)) if m.group(5) else None,
                   message.decode("utf-8", "backslashreplace"),
                   ctx.client, ctx.server, ctx.request, ctx.upstream, ctx.host)


# ---------------------------------------------------------------- --since

_RELATIVE = re.compile(r"(\d+(?:\.\d+)?)\s*(s|sec|m|min|h|hr|d|day|w|week)s?", re.I)
_UNIT = {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "hr": 3600, "d": 86400,
         "day": 86400, "w": 604800, "week": 604800}


def parse_since(text: str, now: datetime | None = None) -> datetime:
    """``--since``: "2h", "30m", "1d", "45s", "1w" ago, or an ISO date/time
    ("2026-11-24", "2026-11-24T04:00", "2026-11-24 04:00:00+01:00").

    Returns naive LOCAL time, the clock nginx writes its log in. Raises
    ValueError with a reason, InputError for an age before the year 1.
    """
    now = now or datetime.now()
    m = _RELATIVE.fullmatch(text.strip())
    if m:
        try:
            return now - timedelta(seconds=float(m.group(1)) * _UNIT[m.group(2).lower()])
        except OverflowError:  # not a usage slip but an impossible time: one line, exit 2
            raise InputError(f"--since {text}: too far back (before the year 1)") from None
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"not a time: {text!r} (use an ISO time like 2026-11-24T04:00 "
                         "or an age like 30m, 2h, 1d)") from None
    if when.tzinfo is not None:
        when = when.astimezone().replace(tzinfo=None)
    return when


def since_key(when: datetime) -> bytes:
    """A --since time in the log's own format: nginx timestamps sort as bytes."""
    return when.strftime(TIME_FORMAT).encode()


# ---------------------------------------------------------------- streaming

@dataclass
class FileStats:
    path: str
    compressed: bool
    bytes_read: int = 0  # uncompressed
    truncated: bool = False  # a .gz that ends early (being written, or cut)
    # Lines looked at until one began with a date (all of them when none did):
    # enough to tell a file that is no error log at all.
    lines: int = 0
    dated_lines: bool = False


@dataclass
class ScanStats:
    files: list[FileStats] = field(default_factory=list)
    garbage_lines: int = 0  # lines that do not begin with a date: not error-log lines
    skipped_bytes: int = 0  # whole blocks older than --since, not looked at
    seconds: float = 0.0

    @property
    def bytes_read(self) -> int:
        return sum(f.bytes_read for f in self.files)


def check_is_error_log(stats: ScanStats) -> None:
    """Raise InputError for a file that has lines but not one that begins with
    a date: an access log, a binary, the wrong file."""
    for st in stats.files:
        if st.lines and not st.dated_lines:
            raise InputError(f"does not look like an nginx error log: none of its {st.lines} "
                             "lines starts with a date", path=st.path)


# A line that does not begin with a date ("2026/"), found after a newline.
# Checking the whole head here would cost a third more time over a big log;
# a selected line's head is checked where it is selected.
_GARBAGE = re.compile(rb"\n(?![0-9]{4}/)")
_GZIP_MAGIC = b"\x1f\x8b"
# What a selected line's first 19 bytes must be (2026/11/24 04:23:39); days
# that do not exist (02/30) are caught by _valid_day.
_TIMESTAMP = re.compile(rb"[0-9]{4}/(?:0[1-9]|1[0-2])/(?:0[1-9]|[12][0-9]|3[01]) "
                        rb"(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]")
_DAYS: dict[bytes, bool] = {}


def _valid_day(day: bytes) -> bool:
    ok = _DAYS.get(day)
    if ok is None:
        try:
            datetime.strptime(day.decode("ascii"), "%Y/%m/%d")
            ok = True
        except ValueError:
            ok = False
        if len(_DAYS) < 10_000:
            _DAYS[day] = ok
    return ok


def _open_regular(path: str) -> BinaryIO:
    """``path`` opened for reading only if it is a regular file, checked on the
    open descriptor: a FIFO without a writer, /dev/zero or /dev/urandom would
    otherwise block or never end. O_NONBLOCK keeps the open itself from
    waiting for a FIFO's writer."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise IsADirectoryError(errno.EISDIR, "is a directory", path)
        if not stat.S_ISREG(mode):
            raise InputError("not a regular file (a FIFO, socket or device); to read a "
                             "stream, pipe it in and pass --error-log -", path=path)
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


@contextmanager
def stdin_spooled(paths: Sequence[str]) -> Iterator[list[str]]:
    """``paths`` with ``-`` replaced by a private copy of standard input (the
    scan reads every file by name and offset, possibly in several processes)."""
    if "-" not in paths:
        yield list(paths)
        return
    import shutil
    import sys
    import tempfile

    with tempfile.TemporaryDirectory(prefix="crashkit-stdin-") as tmp:
        copy = os.path.join(tmp, "stdin")
        with open(copy, "wb") as out:
            shutil.copyfileobj(sys.stdin.buffer, out, 1 << 20)
        yield [copy if p == "-" else p for p in paths]


def _open(path: str) -> tuple[BinaryIO, bool]:
    try:
        raw = _open_regular(path)
    except FileNotFoundError:
        raise InputError("no such file", path=path) from None
    except IsADirectoryError:
        raise InputError("is a directory, not an error log", path=path) from None
    except PermissionError:
        raise InputError("permission denied (run as root?)", path=path) from None
    except OSError as exc:
        raise InputError(f"cannot open: {exc.strerror}", path=path) from None
    try:
        magic = raw.read(2)
        raw.seek(0)
    except OSError as exc:
        raw.close()
        raise InputError(f"cannot read: {exc.strerror}", path=path) from None
    if magic == _GZIP_MAGIC:
        return gzip.GzipFile(fileobj=raw, mode="rb"), True  # type: ignore[return-value]
    if path.endswith(".gz"):
        raw.close()
        raise InputError("named .gz but not gzip-compressed", path=path)
    return raw, False


@dataclass(frozen=True)
class Task:
    """The lines of ``path`` that begin at a byte offset in [start, end)
    (end None: to the end). Compressed files are one task."""

    path: str
    start: int = 0
    end: int | None = None


def plan(paths: Sequence[str], jobs: int, min_split: int = PARALLEL_MIN_BYTES) -> list[Task]:
    """Cut the work into tasks for ``jobs`` processes: every file is opened
    and checked here, so bad input fails before any work starts; plain files
    of at least ``min_split`` bytes are cut into byte ranges."""
    tasks = []
    for path in paths:
        f, compressed = _open(path)
        f.close()
        size = os.path.getsize(path)
        parts = 1 if compressed or jobs <= 1 or size < min_split else jobs
        bounds = [size * i // parts for i in range(parts)] + [size]
        if parts == 1:
            tasks.append(Task(path))
        else:
            tasks += [Task(path, a, b) for a, b in itertools.pairwise(bounds)]
    return tasks


class _GzipReads:
    """``read(size)`` on a gzip stream that keeps what it decompressed before
    the stream ended early (GzipFile.read would drop it with its EOFError);
    the EOFError comes with the next read."""

    def __init__(self, f: gzip.GzipFile) -> None:
        self.f = f
        self.ended_early = False

    def read(self, size: int) -> bytes:
        if self.ended_early:
            raise EOFError("compressed file ended before the end-of-stream marker")
        parts = []
        n = 0
        try:
            while n < size:
                part = self.f.read1(size - n)
                if not part:
                    break
                parts.append(part)
                n += len(part)
        except EOFError:
            if not parts:
                raise
            self.ended_early = True
        return b"".join(parts)


def _chunks(f: BinaryIO, task: Task, size: int) -> Iterator[bytes]:
    """The raw bytes of a task's lines, in reads of about ``size``."""
    read = _GzipReads(f).read if isinstance(f, gzip.GzipFile) else f.read
    pos = 0
    if task.start:
        # The line running across ``start`` belongs to the task before.
        f.seek(task.start - 1)
        pos = task.start - 1
        while True:
            data = read(size)
            if not data:
                return
            nl = data.find(b"\n")
            if nl >= 0:
                pos += nl + 1
                data = data[nl + 1:]
                break
            pos += len(data)
    else:
        data = read(size)
    end = task.end
    while True:
        if not data:
            data = read(size)
            if not data:
                return
        if end is not None and pos + len(data) >= end:
            nl = data.find(b"\n", max(end - 1 - pos, 0))
            if nl >= 0:
                yield data[:nl + 1]
                return
        yield data
        pos += len(data)
        data = b""


def _blocks(chunks: Iterator[bytes], st: FileStats,
            stats: ScanStats) -> Iterator[tuple[bytes, int, int]]:
    """(data, start, end): data[start] is a newline (or a sentinel one) and
    data[start+1:end] whole lines, each ending with a newline."""
    rest = b""
    dropping = False  # inside an over-long line, discarding up to its newline
    first = True
    while True:
        try:
            data = next(chunks, b"")
        except EOFError:  # gzip: "Compressed file ended before the end-of-stream marker"
            st.truncated = True
            data = b""
        except (gzip.BadGzipFile, zlib.error) as exc:
            raise InputError(f"corrupt gzip data after {st.bytes_read} bytes: {exc}",
                             path=st.path) from None
        except OSError as exc:
            raise InputError(f"read error: {exc.strerror or exc}", path=st.path) from None
        if not data:
            if dropping:
                stats.garbage_lines += 1
                st.lines += 1
            elif rest:
                yield b"\n" + rest + b"\n", 0, len(rest) + 2
            return
        st.bytes_read += len(data)
        if first:
            data = b"\n" + data  # the sentinel newline before the first line
            first = False
            start = 0
        else:
            # The line cut by the previous block's end, completed, on its own.
            nl = data.find(b"\n")
            if nl < 0:
                if not dropping:
                    rest += data
                    if len(rest) > _MAX_LINE:
                        rest, dropping = b"", True
                continue
            if dropping:
                stats.garbage_lines += 1
                st.lines += 1
                dropping = False
            elif rest or nl:
                yield b"\n" + rest + data[:nl + 1], 0, len(rest) + nl + 2
            rest = b""
            start = nl
        cut = data.rfind(b"\n") + 1
        if cut > start + 1:
            yield data, start, cut
        rest = data[cut:]
        if len(rest) > _MAX_LINE:
            rest, dropping = b"", True


Hit = tuple[bytes, "re.Match[bytes]", bytes]


def select_task(task: Task, pattern: re.Pattern[bytes], *, since: bytes | None = None,
                stats: ScanStats | None = None,
                block_size: int = BLOCK_SIZE) -> Iterator[Hit]:
    """Every line of the task that ``pattern`` matches, as (timestamp, match,
    rest of the line after the match). ``pattern`` must start with :func:`head`.

    ``since`` (from :func:`since_key`) drops older lines; a block whose last
    line is older is skipped without a look.
    """
    stats = stats if stats is not None else ScanStats()
    started = time.perf_counter()
    f, compressed = _open(task.path)
    st = FileStats(task.path, compressed)
    stats.files.append(st)
    good = b""  # the last timestamp found valid: log lines come in time order
    timestamp = _TIMESTAMP.fullmatch
    try:
        for data, start, end in _blocks(_chunks(f, task, block_size), st, stats):
            if since is not None:
                last = data.rfind(b"\n", start, end - 1) + 1
                if data[last + 19:last + 21] == b" [" and data[last:last + 19] < since:
                    stats.skipped_bytes += end - start
                    st.dated_lines = True
                    continue
            garbage = 0
            for _ in _GARBAGE.finditer(data, start, end - 1):
                garbage += 1
            stats.garbage_lines += garbage
            if not st.dated_lines:
                n = data.count(b"\n", start, end - 1)
                st.lines += n
                st.dated_lines = n > garbage
            find = data.find
            for m in pattern.finditer(data, start, end):
                p, e = m.span()
                # The level sits 20 bytes into a line: anything else is a
                # match inside some other text, not a log line's head.
                if p - 21 < start or data[p - 21] != 10:
                    continue
                ts = data[p - 20:p - 1]
                if ts != good:
                    if timestamp(ts) is None or not _valid_day(ts[:10]):
                        # "2026/13/45 …" was not counted by _GARBAGE; "xxxx…" was.
                        if ts[4:5] == b"/" and ts[:4].isdigit():
                            stats.garbage_lines += 1
                        continue
                    good = ts
                if since is not None and ts < since:
                    continue
                yield ts, m, data[e:find(b"\n", e)]
    finally:
        f.close()
        stats.seconds += time.perf_counter() - started


def select(paths: Sequence[str], pattern: re.Pattern[bytes], *, since: bytes | None = None,
           stats: ScanStats | None = None) -> Iterator[Hit]:
    """:func:`select_task` over whole files, one after the other, in this process."""
    for task in plan(paths, 1):
        yield from select_task(task, pattern, since=since, stats=stats)


R = TypeVar("R")


def _run(task: Task, pattern: re.Pattern[bytes], since: bytes | None,
         reduce: Callable[[Iterator[Hit]], R]
         ) -> tuple[R | None, ScanStats, str | None, str | None]:
    stats = ScanStats()
    try:
        return reduce(select_task(task, pattern, since=since, stats=stats)), stats, None, None
    except InputError as exc:  # crosses the process boundary as plain values
        return None, stats, exc.message, exc.path


def _worker_signals() -> None:
    """A worker dies of SIGTERM as the pool expects (the command's own handler
    raises SystemExit, which inside the pool's queue code can leave a lock held
    and the pool's join() waiting for ever); ^C is the parent's to handle."""
    import signal

    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGHUP, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def reduce_tasks(tasks: Sequence[Task], pattern: re.Pattern[bytes], since: bytes | None,
                 reduce: Callable[[Iterator[Hit]], R], jobs: int) -> tuple[list[R], ScanStats]:
    """``reduce(select_task(task))`` for every task, in up to ``jobs`` worker
    processes (forked: the pattern and the reducer are not re-imported), and
    the scan statistics of them all. The file order of the stats is kept."""
    outs = None
    total_bytes = sum((t.end if t.end is not None else os.path.getsize(t.path)) - t.start
                      for t in tasks)
    # Worker processes pay for themselves on big inputs only.
    if jobs > 1 and len(tasks) > 1 and total_bytes >= PARALLEL_MIN_BYTES:
        import multiprocessing

        try:
            pool = multiprocessing.get_context("fork").Pool(min(jobs, len(tasks)),
                                                            initializer=_worker_signals)
        except (OSError, ImportError):  # no /dev/shm, no semaphores: one process then
            pool = None
        if pool is not None:
            try:
                outs = pool.starmap(_run, [(t, pattern, since, reduce) for t in tasks])
            except BaseException:
                pool.terminate()
                pool.join()
                raise
            pool.close()  # the workers exit by themselves
            pool.join()
    if outs is None:
        outs = [_run(t, pattern, since, reduce) for t in tasks]
    total = ScanStats()
    results = []
    for result, stats, error, path in outs:
        if error is not None:
            raise InputError(error, path=path)
        assert result is not None
        results.append(result)
        for st in stats.files:  # the ranges of one file become one entry again
            if total.files and total.files[-1].path == st.path and not st.compressed:
                into = total.files[-1]
                into.bytes_read += st.bytes_read
                into.lines += st.lines
                into.dated_lines |= st.dated_lines
            else:
                total.files.append(st)
        total.garbage_lines += stats.garbage_lines
        total.skipped_bytes += stats.skipped_bytes
        total.seconds = max(total.seconds, stats.seconds)
    check_is_error_log(total)
    return results, total
