"""The kernel's log (/dev/kmsg, else ``dmesg``): what the OOM killer killed.

Reading it needs root when kernel.dmesg_restrict is 1 (Debian's default);
when neither way works the caller is told why, and goes on without it.
"""

from __future__ import annotations

import errno
import os
import re
from dataclasses import dataclass

from crashkit.errors import CommandError
from crashkit.host.run import run
from crashkit.model.host import OomKill

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


def _read_kmsg() -> list[str] | None:
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
            lines.append(text.split(";", 1)[-1].split("\n", 1)[0])
    finally:
        os.close(fd)
    return lines


def read_kernel_log() -> KernelLog:
    lines = _read_kmsg()
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
