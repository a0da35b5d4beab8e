"""The time of a kernel log line, as a pure function, in the shapes the
kernel's log reaches a person in:

- ``dmesg`` and /dev/kmsg (crashkit.host.kernlog writes kmsg records the
  way dmesg prints them): ``[ 1234.567890] message``, seconds since boot;
- ``dmesg -T``: ``[Fri Dec  4 01:00:00 2026] message``, local time;
- the journal (``journalctl -k``; ``-o short-iso``) and syslog files
  (/var/log/kern.log; rsyslog's RFC 3339 stamps, Debian's default since 12,
  or the classic ``Dec  4 01:00:00``): ``STAMP HOST kernel: message``,
  where the message may still carry the ``[seconds]`` since boot.

Boot-relative seconds become wall time only with the boot time the caller
knows (crashkit.host.kernlog: now minus CLOCK_MONOTONIC, the clock printk
stamps follow; like ``dmesg -T``, off by the time spent suspended).
"""

from __future__ import annotations

import contextlib
import re
from datetime import datetime

_UPTIME = re.compile(r"\[\s*(\d+)\.(\d+)\]\s?")
_CTIME = re.compile(r"\[([A-Z][a-z]{2} [A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d \d{4})\]\s?")
_ISO = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:?\d\d)?)"
                  r" \S+ kernel: ")
_SYSLOG = re.compile(r"([A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d) \S+ kernel: ")


def line_time(line: str, *, boot: float | None, year: int) -> tuple[float | None, str]:
    """(wall time of ``line`` in seconds since the epoch, or None when it
    has none that can be placed; the message without its stamps). ``boot``:
    the wall time the machine booted (for seconds since boot); ``year``:
    the year of a classic syslog stamp, which has none."""
    when: float | None = None
    rest = line
    m = _ISO.match(rest)
    if m:
        stamp = m.group(1).replace("Z", "+00:00")
        if re.search(r"[+-]\d{4}$", stamp):  # journalctl's +0000
            stamp = f"{stamp[:-2]}:{stamp[-2:]}"
        try:
            when = datetime.fromisoformat(stamp).timestamp()
        except ValueError:
            when = None
        rest = rest[m.end():]
    else:
        m = _SYSLOG.match(rest)
        if m:
            try:
                when = datetime.strptime(f"{year} {m.group(1)}", "%Y %b %d %H:%M:%S").timestamp()
            except ValueError:
                when = None
            rest = rest[m.end():]
    m = _CTIME.match(rest)
    if m:
        with contextlib.suppress(ValueError):
            when = datetime.strptime(m.group(1), "%a %b %d %H:%M:%S %Y").timestamp()
        return when, rest[m.end():]
    m = _UPTIME.match(rest)
    if m:
        if when is None and boot is not None:
            when = boot + int(m.group(1)) + float(f"0.{m.group(2)}")
        rest = rest[m.end():]
    return when, rest
