"""The grammar of an nginx error-log line, as pure functions: its levels, its
timestamp, the request context nginx appends, and the head of a pattern that
selects lines (crashkit.nginx.errorlog scans with it; crashkit.analysis.triage
builds its conditions on it)."""

from __future__ import annotations

import itertools
import re
from collections.abc import Mapping, Sequence
from datetime import datetime

LEVELS = ("debug", "info", "notice", "warn", "error", "crit", "alert", "emerg")
TIME_FORMAT = "%Y/%m/%d %H:%M:%S"  # nginx writes local time, no zone


# The same fields, reduced to what a summary groups by, as bytes (cheap, for
# counting many lines): client, "METHOD /path" (no query string), upstream peer
# ("http://10.0.0.1:80"; no scheme for stream {} proxying: "10.0.0.1:5432").
_CONTEXT_KEYS = re.compile(
    rb", client: ([^,]*)(?:, server: [^,]*)?"
    rb"(?:, request: \"(\S+ [^?\" ]*)[^\"]*\")?(?:, subrequest: \"[^\"]*\")?"
    rb"(?:, upstream: \"((?:[a-z0-9]+://)?(?:unix:[^:\"]*|[^/\"]*))[^\"]*\")?")


def context_keys(rest: bytes) -> tuple[bytes | None, bytes | None, bytes | None, int]:
    """(client, request without query, upstream peer, where the context starts)
    of a message's rest; Nones and len(rest) when there is no context."""
    m = _CONTEXT_KEYS.search(rest)
    if m is None:
        return None, None, None, len(rest)
    return m.group(1), m.group(2), m.group(3), m.start()


def parse_time(ts: bytes | str) -> datetime:
    """An nginx timestamp ("2026/11/24 04:23:39") as a naive local datetime."""
    return datetime.strptime(ts if isinstance(ts, str) else ts.decode("ascii"), TIME_FORMAT)


def head(levels: Sequence[str], flagged: Sequence[str] = (),
         sets: Mapping[str, Sequence[str]] | None = None) -> bytes:
    """The start of a :func:`select` pattern: ``[level] pid#tid: *conn ``.

    ``flagged`` levels are matched too, each with a named group ``lv_<level>``
    that conditionals later in the pattern can test (``(?(lv_emerg)…)``);
    ``sets`` {name: levels} likewise, one group ``lv_<name>`` for several
    levels (one group is cheaper than one per level).
    """
    sets = sets or {}
    for lv in (*levels, *flagged, *itertools.chain(*sets.values())):
        if lv not in LEVELS:
            raise ValueError(f"unknown nginx log level {lv!r}")
    alts = [lv.encode() for lv in levels]
    alts += [b"(?P<lv_%s>%s)" % (lv.encode(), lv.encode()) for lv in flagged]
    alts += [b"(?P<lv_%s>%s)" % (name.encode(), "|".join(lvs).encode())
             for name, lvs in sets.items()]
    # Possessive: a pattern's lookahead must not see the "*conn " by backtracking.
    return rb"\[(?:" + b"|".join(alts) + rb")\] \d+#\d+: (?:\*\d+ )?+"
