"""The kernel's log (/dev/kmsg, else ``dmesg``): what the OOM killer killed.

Reading it needs root when kernel.dmesg_restrict is 1 (Debian's default);
when neither way works the caller is told why, and goes on without it.
"""

from __future__ import annotations

import errno
import itertools
import os
import re
import time
from dataclasses import dataclass

from crashkit.errors import CommandError
from crashkit.host.run import run
from crashkit.model.host import OomEvent, OomKill

_KMSG = "/dev/kmsg"
_MAX_RECORDS = 200_000  # the ring buffer holds far fewer; a bound all the same

# "Out of memory: Killed process 1234 (nginx) total-vm:…" (also "Memory cgroup
# out of memory: …", and "Kill process … or sacrifice child" before 4.19), and
# since 5.0 "oom-kill:constraint=…,task=nginx,pid=1234,uid=33".
_KILLED = re.compile(r"[Kk]ill(?:ed)? process (\d+) \(([^)]*)\)")
_OOM_KILL = re.compile(r"oom-kill:.*?\btask=([^,]*),pid=(\d+)")


@dataclass(frozen=True)
class KernelLog:
    lines: tuple[str, ...]
    source: str  # "/dev/kmsg", "dmesg", or why it could not be read


def _read_kmsg(timed: bool = False) -> list[str] | None:
    try:
        fd = os.open(_KMSG, os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return None
    lines: list[str] = []
    try:
        while len(lines) < _MAX_RECORDS:
            try:
                record = os.read(fd, 8192)
            except BlockingIOError:
                break  # the end of the buffer
            except OSError as exc:
                if exc.errno == errno.EPIPE:  # overwritten while we read: go on
                    continue
                return lines or None
            if not record:
                break
            # "prio,seq,usec,flags;message\n" plus " KEY=value" continuation lines
            text = record.decode("utf-8", "replace")
            head, _, message = text.partition(";")
            message = message.split("\n", 1)[0]
            if timed:  # as dmesg prints it: "[seconds.micro] message"
                fields = head.split(",")
                usec = int(fields[2]) if len(fields) > 2 and fields[2].isdigit() else None
                if usec is not None:
                    message = f"[{usec // 1_000_000:5d}.{usec % 1_000_000:06d}] {message}"
            lines.append(message)
    finally:
        os.close(fd)
    return lines


def read_kernel_log(*, timed: bool = False) -> KernelLog:
    """The kernel's log; with ``timed``, each line starts with its
    ``[seconds since boot]`` as dmesg prints it (see :func:`oom_events`)."""
    lines = _read_kmsg(timed)
    if lines is not None:
        return KernelLog(tuple(lines), _KMSG)
    try:
        proc = run(["dmesg"])
    except CommandError as exc:
        return KernelLog((), f"unreadable ({_KMSG} and dmesg: {exc.message})")
    if proc.status != 0:
        reason = proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else \
            f"exit {proc.status}"
        return KernelLog((), f"unreadable ({_KMSG} not readable; dmesg: {reason})")
    return KernelLog(tuple(proc.stdout.splitlines()), "dmesg")


def oom_kills(lines: tuple[str, ...] | list[str]) -> list[OomKill]:
    """Processes the OOM killer killed, one entry per pid (the clearest line)."""
    found: dict[int, OomKill] = {}
    for line in lines:
        m = _KILLED.search(line)
        if m and ("out of memory" in line.lower() or "oom" in line.lower()):
            pid = int(m.group(1))
            found[pid] = OomKill(pid, m.group(2), line.strip())
            continue
        m = _OOM_KILL.search(line)
        if m:
            pid = int(m.group(2))
            found.setdefault(pid, OomKill(pid, m.group(1), line.strip()))
    return list(found.values())


def read_kernel_log_file(path: str) -> KernelLog:
    """A saved kernel log: ``dmesg`` or ``dmesg -T`` output, ``journalctl
    -k``, /var/log/kern.log (see crashkit.formats.kernel_log)."""
    from crashkit.errors import InputError

    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return KernelLog(tuple(line.rstrip("\n") for line in
                                   itertools.islice(f, _MAX_RECORDS * 4)), path)
    except OSError as exc:
        raise InputError(f"cannot read the kernel log: {exc.strerror}", path=path) from None


def boot_time() -> float:
    """When this machine booted, on the clock printk stamps follow."""
    return time.time() - time.clock_gettime(time.CLOCK_MONOTONIC)


def oom_events(log: KernelLog, *, boot: float | None = None,
               window: float = 60.0) -> list[OomEvent]:
    """The OOM killer's kills with their times: one event per pid and kill
    (the several lines of one kill, within ``window`` seconds, are one)."""
    from crashkit.formats.kernel_log import line_time

    year = time.localtime().tm_year
    events: list[OomEvent] = []
    for line in log.lines:
        when, message = line_time(line, boot=boot, year=year)
        kills = oom_kills([message])
        if not kills:
            continue
        (kill,) = kills
        same = next((i for i, e in enumerate(events) if e.pid == kill.pid and (
            e.time is None or when is None or abs(e.time - when) <= window)), None)
        event = OomEvent(kill.pid, kill.comm, when, message.strip(), line.strip())
        if same is None:
            events.append(event)
        elif "out of memory" in message.lower():  # the clearest line names it
            first = events[same]
            # (the last of a kill's lines, so the last the ring buffer loses)
            events[same] = OomEvent(kill.pid, kill.comm, first.time or when,
                                    message.strip(), line.strip())
    return events
