"""The store's policies, as pure functions over index rows: which stored
cores a flood or a retention limit lets go, and the signature of a crash
that only a log line tells of."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from crashkit.model.collect import LogCause
from crashkit.model.host import OomEvent
from crashkit.model.signals import signal_name
from crashkit.model.words import size


@dataclass(frozen=True)
class StoredCore:
    """What retention needs to know of one crash whose core is kept."""

    crash_id: int
    signature: str
    time: int  # crash time (collection time when unknown)
    size: int  # bytes on disk in the store
    reported_at: int | None = None  # the last `report` of its signature


@dataclass(frozen=True)
class Drop:
    crash_id: int
    signature: str
    why: str
    size: int


def log_signature(signo: int, program: str, cause: LogCause = "signal") -> tuple[str, str]:
    """(hash, text) for crashes known from a log line alone: nothing but the
    signal, the program and (for the OOM killer) the cause can be said, so
    all of them group together, OOM kills in a row of their own."""
    text = f"{signal_name(signo)} | program:{program}" + \
        (" | OOM killer" if cause == "oom-kill" else "") + " | no core"
    return hashlib.sha256(text.encode()).hexdigest()[:16], text


# An OOM kill and the exit nginx's master logs for it are seconds apart;
# the kernel's boot-relative stamps drift (suspend), so the window is wide,
# and the pid must match too.
LINK_WINDOW = 300


@dataclass(frozen=True)
class LogExit:
    """A worker's exit without a core, as nginx's master logged it."""

    pid: int
    signal: int
    time: int | None
    log: str
    line: str


@dataclass(frozen=True)
class Linked:
    """One crash without a core: an exit line, an OOM kill, or both."""

    pid: int
    signal: int
    time: int | None
    cause: LogCause
    program: str
    exit: LogExit | None
    kill: OomEvent | None


def link_log_crashes(exits: Sequence[LogExit], kills: Sequence[OomEvent], *,
                     programs: frozenset[str] = frozenset({"nginx"}),
                     kernel_read: bool = True, window: int = LINK_WINDOW) -> list[Linked]:
    """Crashes without a core from error-log exits and the kernel's OOM
    kills, linked by pid and time: an exit on SIGKILL whose pid the OOM
    killer killed within ``window`` seconds is that OOM kill (one crash);
    a SIGKILL without one is someone's kill (or, when the kernel log could
    not be read, of unknown cause: "signal"); an OOM kill of one of
    ``programs`` that no exit line tells of (its master was killed, or its
    error log is elsewhere) is counted on its own."""
    used: set[int] = set()
    out: list[Linked] = []
    for e in exits:
        match = None
        if e.signal == 9:
            for i, k in enumerate(kills):
                if i in used or k.pid != e.pid:
                    continue
                if e.time is None or k.time is None or abs(k.time - e.time) <= window:
                    match = i
                    break
        if match is not None:
            used.add(match)
            out.append(Linked(e.pid, e.signal, e.time, "oom-kill", "nginx", e, kills[match]))
        else:
            cause: LogCause = "sigkill" if e.signal == 9 and kernel_read else "signal"
            out.append(Linked(e.pid, e.signal, e.time, cause, "nginx", e, None))
    for i, k in enumerate(kills):
        if i not in used and k.comm in programs:
            when = int(k.time) if k.time is not None else None
            out.append(Linked(k.pid, 9, when, "oom-kill", k.comm, None, k))
    return out


def flood_drops(cores: Sequence[StoredCore], keep_first: int) -> list[Drop]:
    """In a flood of one signature keep its first ``keep_first`` cores and
    its latest one; the cores in between go (their crashes stay counted)."""
    by_sig: dict[str, list[StoredCore]] = {}
    for c in cores:
        by_sig.setdefault(c.signature, []).append(c)
    out: list[Drop] = []
    for sig, group in by_sig.items():
        if len(group) <= keep_first + 1:
            continue
        ordered = sorted(group, key=lambda c: (c.time, c.crash_id))
        for c in ordered[keep_first:-1]:
            out.append(Drop(c.crash_id, sig, f"flood: the first {keep_first} and the latest "
                            "core of this signature are kept", c.size))
    return out


def retention_drops(cores: Sequence[StoredCore], *, now: int, max_age: int | None = None,
                    max_size: int | None = None,
                    keep_per_signature: int | None = None) -> list[Drop]:
    """Cores to let go, oldest first, under three limits. Never the only
    kept core of a signature, and never one newer than the last report of
    its signature (evidence that the bug outlived its report)."""
    remaining: dict[str, int] = {}
    for c in cores:
        remaining[c.signature] = remaining.get(c.signature, 0) + 1
    ordered = sorted(cores, key=lambda c: (c.time, c.crash_id))
    dropped: set[int] = set()
    out: list[Drop] = []

    def protected(c: StoredCore) -> bool:
        if remaining[c.signature] <= 1:
            return True
        return c.reported_at is not None and c.time > c.reported_at

    def drop(c: StoredCore, why: str) -> None:
        dropped.add(c.crash_id)
        remaining[c.signature] -= 1
        out.append(Drop(c.crash_id, c.signature, why, c.size))

    if keep_per_signature is not None:
        per: dict[str, list[StoredCore]] = {}
        for c in ordered:
            per.setdefault(c.signature, []).append(c)
        for group in per.values():
            excess = len(group) - max(keep_per_signature, 1)
            for c in group:
                if excess <= 0:
                    break
                if not protected(c):
                    drop(c, f"more than {keep_per_signature} cores of this signature")
                    excess -= 1
    if max_age is not None:
        for c in ordered:
            if c.crash_id not in dropped and now - c.time > max_age and not protected(c):
                drop(c, f"older than {max_age} s")
    if max_size is not None:
        total = sum(c.size for c in ordered if c.crash_id not in dropped)
        for c in ordered:
            if total <= max_size:
                break
            if c.crash_id not in dropped and not protected(c):
                drop(c, f"the store is over {size(max_size)}")
                total -= c.size
    return out
