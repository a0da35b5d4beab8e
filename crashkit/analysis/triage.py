"""What an nginx error log says is wrong: findings with counts, times and fixes.

:data:`PATTERN` is what triage asks the error-log reader to select: one
regex, one alternative per condition of the registry
(:mod:`crashkit.analysis.conditions`, where each condition's kinds, fixes,
details and host facts are too), matched inside the regex engine so that
ordinary lines cost next to nothing. :func:`tally` counts the
selected lines by (kind, detail, rest of line) — distinct lines are far
fewer than lines — and :func:`findings` turns the tally into
:class:`~crashkit.model.triage.Finding` records. Host facts (OOM kills from the
kernel log, who holds a port, a socket's owner) are given to
:func:`add_host_facts` by the caller; nothing here reads the host.

Errors are recognised by errno number, as nginx prints it ("(111: "), not by
the English text that follows.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from crashkit.analysis import conditions
from crashkit.formats.nginx_log import context_keys, parse_time
from crashkit.model.host import OomKill, PortHolder
from crashkit.model.triage import SEVERITY_ORDER, Count, Finding

# The conditions triage knows (pattern alternatives, kinds, detail
# extractors, host facts) are the registry in crashkit.analysis.conditions;
# everything here is derived from it.
PATTERN = conditions.PATTERN
KINDS = conditions.KINDS
normalize = conditions.normalize
# group k_<name> -> the named groups that are its detail
_INNER: dict[str, tuple[str, ...]] = {c.group: c.groups for c in conditions.CONDITIONS}
CLIP = 200  # characters of a value (a request, a message) shown; longer ones end in "…"
_CLIP_BYTES = conditions.CLIP_BYTES  # bytes of a value kept for counting

_FOLD_AT = 200_000  # distinct lines kept before they are folded into the counters
_TOP_KEEP = 20_000  # entries a top-N counter keeps when it is pruned
TOP = 5

Key = tuple[str, object, bytes]


@dataclass
class _Acc:
    """One finding kind being accumulated (values as bytes until the end)."""

    count: int = 0
    first: bytes | None = None
    last: bytes | None = None
    upstreams: Counter[bytes] = field(default_factory=Counter)
    clients: Counter[bytes] = field(default_factory=Counter)
    requests: Counter[bytes] = field(default_factory=Counter)
    details: dict[str, Counter[bytes]] = field(default_factory=dict)

    def detail(self, name: str, value: bytes, n: int) -> None:
        self.details.setdefault(name, Counter())[value] += n


@dataclass
class Tally:
    accs: dict[str, _Acc] = field(default_factory=dict)
    approximate: bool = False


def _kind_of(c: conditions.Condition) -> Callable[[object], str]:
    """The finding kind (or tally name) of a selected line from its detail."""
    if c.kind_of is not None:
        return c.kind_of
    name = c.tally_as or c.kinds[0].name
    return lambda _det: name


_NOTHING: conditions.Extract = lambda _add, _det, _msg, _peer, _n: None  # noqa: E731
# group k_<name> -> (its kind from the detail, what it adds to the details)
_FOLDS: dict[str, tuple[Callable[[object], str], conditions.Extract]] = {
    c.group: (_kind_of(c), c.extract or _NOTHING) for c in conditions.CONDITIONS}


def _clip(value: bytes) -> bytes:
    return value[:_CLIP_BYTES]


def _prune(c: Counter[bytes]) -> bool:
    if len(c) <= 2 * _TOP_KEEP:
        return False
    keep = c.most_common(_TOP_KEEP)
    c.clear()
    c.update(dict(keep))
    return True


def _fold(lines: dict[Key, list[Any]], t: Tally) -> None:
    accs = t.accs
    folds = _FOLDS
    for (group, det, rest), (n, first, last) in lines.items():
        kind_of, extract = folds[group]
        kind = kind_of(det)
        acc = accs.get(kind)
        if acc is None:
            acc = accs[kind] = _Acc()
        acc.count += n
        acc.first = first if acc.first is None or first < acc.first else acc.first
        acc.last = last if acc.last is None or last > acc.last else acc.last
        client, request, peer, ctx_start = context_keys(rest)
        if peer is not None:
            acc.upstreams[_clip(peer)] += n
        if client is not None:
            acc.clients[_clip(client)] += n
        if request is not None:
            acc.requests[_clip(request)] += n
        extract(acc.detail, det, rest[:ctx_start], peer, n)
    lines.clear()
    for acc in accs.values():
        for c in (acc.upstreams, acc.clients, acc.requests, *acc.details.values()):
            t.approximate |= _prune(c)


def tally(hits: Iterable[tuple[bytes, re.Match[bytes], bytes]]) -> Tally:
    """Count the lines :data:`PATTERN` selected (from errorlog.select)."""
    t = Tally()
    # (group, detail, rest of line) -> [count, first time, last time]
    lines: dict[Key, list[Any]] = {}
    inner = _INNER
    for ts, m, rest in hits:
        group = m.lastgroup
        assert group is not None
        names = inner[group]
        key = (group, m.group(*names) if names else None, rest)
        seen = lines.get(key)
        if seen is None:
            lines[key] = [1, ts, ts]
            if len(lines) > _FOLD_AT:
                _fold(lines, t)
        else:
            seen[0] += 1
            if ts > seen[2]:
                seen[2] = ts
            elif ts < seen[1]:
                seen[1] = ts
    _fold(lines, t)
    return t


def merge(tallies: Iterable[Tally]) -> Tally:
    """One tally from the tallies of several parts of the logs."""
    out = Tally()
    for t in tallies:
        out.approximate |= t.approximate
        for kind, acc in t.accs.items():
            into = out.accs.get(kind)
            if into is None:
                out.accs[kind] = acc
                continue
            into.count += acc.count
            if acc.first is not None:
                into.first = acc.first if into.first is None else min(into.first, acc.first)
            if acc.last is not None:
                into.last = acc.last if into.last is None else max(into.last, acc.last)
            into.upstreams.update(acc.upstreams)
            into.clients.update(acc.clients)
            into.requests.update(acc.requests)
            for name, c in acc.details.items():
                into.details.setdefault(name, Counter()).update(c)
    return out


# ---------------------------------------------------------------- findings

def _text(b: bytes) -> str:
    text = b.decode("utf-8", "backslashreplace")
    return text if len(text) <= CLIP else text[:CLIP] + "…"


def _tops(c: Counter[bytes], n: int = TOP) -> tuple[Count, ...]:
    return tuple(Count(_text(v), k) for v, k in c.most_common(n))


def local_iso(when: datetime) -> str:
    """A naive local time (nginx writes its error log in the host's local time,
    with no zone) as ISO 8601 with the host's offset at that time, DST
    included. A time the C library cannot place (the year 1 or 9999 of a
    forged line) gets today's offset rather than an error."""
    try:
        return when.astimezone().isoformat()
    except (ValueError, OverflowError, OSError):
        return when.replace(tzinfo=datetime.now().astimezone().tzinfo).isoformat()


def _iso(ts: bytes | None) -> str | None:
    return None if ts is None else local_iso(parse_time(ts))


# Details whose values are numbers in the log (pids, signal numbers): integers
# in the JSON, as every other verb gives them.
_INT_DETAILS = frozenset({"pids", "signals"})


def _detail_value(name: str, value: str) -> object:
    return int(value) if name in _INT_DETAILS and value.isdigit() else value


# A condition counted apart (tally_as) counts the starts of its kind: "still
# could not bind()" after nginx's five bind() attempts is one failed start.
# tally name -> the kind it is reported as, and back
_STARTS = {c.tally_as: c.kinds[0].name for c in conditions.CONDITIONS if c.tally_as}
_STARTS_OF = {kind: name for name, kind in _STARTS.items()}
# kinds -> the host facts they get (add_host_facts)
_OOM_KINDS = conditions.kinds_needing("kernel-log")
_HOLDER_KINDS = conditions.kinds_needing("port-holders")
_SOCKET_KINDS = conditions.kinds_needing("socket-state")
_SELINUX_KINDS = conditions.kinds_needing("selinux")


def findings(t: Tally) -> tuple[Finding, ...]:
    """Most severe first, then the most frequent."""
    out = []
    for counted_as, acc in t.accs.items():
        kind = _STARTS.get(counted_as, counted_as)
        if kind != counted_as and kind in t.accs:
            continue  # counted as the starts of its kind
        k = KINDS[kind]
        details: dict[str, object] = {
            name: [{"value": _detail_value(name, c.value), "count": c.count}
                   for c in _tops(counter, 50 if name == "pids" else 10)]
            for name, counter in sorted(acc.details.items())}
        count = acc.count
        starts_name = _STARTS_OF.get(kind)
        if starts_name is not None:
            # The failed starts (and reloads) are the count, the attempts
            # (bind() five times before nginx gives up) are apart.
            details["attempts"] = acc.count if kind == counted_as else 0
            starts = t.accs.get(starts_name)
            count = starts.count if starts is not None else acc.count
        out.append(Finding(kind, k.severity, k.title, count, _iso(acc.first),
                           _iso(acc.last), k.fix, _tops(acc.upstreams), _tops(acc.clients),
                           _tops(acc.requests), details))
    out.sort(key=lambda f: (SEVERITY_ORDER[f.severity], -f.count, f.kind))
    return tuple(out)


def needs(fs: Iterable[Finding], fact: conditions.HostFact) -> list[Finding]:
    """The findings whose kind needs this host fact (the registry says which)."""
    kinds = conditions.kinds_needing(fact)
    return [f for f in fs if f.kind in kinds]


def killed_pids(fs: Iterable[Finding]) -> set[int]:
    """Pids of the findings that need the kernel log: workers that died of
    SIGKILL without a core (OOM killer suspected)."""
    pids: set[int] = set()
    for f in fs:
        if f.kind in _OOM_KINDS:
            for entry in f.details.get("pids", ()):  # type: ignore[attr-defined]
                pids.add(int(entry["value"]))
    return pids


def bind_addresses(fs: Iterable[Finding]) -> list[str]:
    """The addresses whose holders the first finding needing them asks for."""
    for f in fs:
        if f.kind in _HOLDER_KINDS:
            return [e["value"] for e in f.details.get("addresses", ())]  # type: ignore[attr-defined]
    return []


def add_host_facts(fs: tuple[Finding, ...], *, oom: Iterable[OomKill] = (),
                   kernel_log: str | None = None, holders: Iterable[PortHolder] = (),
                   sockets: dict[str, dict[str, object]] | None = None,
                   selinux: str | None = None) -> tuple[Finding, ...]:
    """Attach what the host says to the kinds whose registry entry needs it:
    OOM-killer lines for killed workers, the processes holding addresses
    nginx could not bind, the owner and mode of sockets nginx could not
    open, and the SELinux mode where it may refuse."""
    oom = list(oom)
    holders = list(holders)
    out = []
    for f in fs:
        details = dict(f.details)
        if f.kind in _OOM_KINDS:
            pids = killed_pids([f])
            matched = [k for k in oom if k.pid in pids]
            details["oom_kills"] = [{"pid": k.pid, "comm": k.comm, "line": k.line}
                                    for k in matched]
            details["oom_confirmed"] = bool(matched)
            details["kernel_log"] = kernel_log
            if matched:
                title, fix = conditions.KILLED_BY_OOM
                f = replace(f, title=title, fix=fix)
            elif kernel_log is not None and not kernel_log.startswith("unreadable"):
                title, fix = conditions.KILLED_FROM_OUTSIDE
                f = replace(f, title=title, fix=fix)
        if f.kind in _HOLDER_KINDS:
            details["holders"] = [{"address": h.address, "pid": h.pid, "comm": h.comm,
                                   "cmdline": h.cmdline} for h in holders]
        if f.kind in _SOCKET_KINDS and sockets:
            details["socket_state"] = [
                dict(sockets[e["value"]], path=e["value"])
                for e in details.get("sockets", ())  # type: ignore[attr-defined]
                if e["value"] in sockets]
        if f.kind in _SELINUX_KINDS and selinux is not None:
            details["selinux"] = selinux
        out.append(replace(f, details=details))
    return tuple(out)
