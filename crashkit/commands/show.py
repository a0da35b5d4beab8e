"""``crashkit show ID``: one stored crash, where it came from, and its group."""

from __future__ import annotations

import os
from dataclasses import dataclass

from crashkit.commands.list import group, open_index
from crashkit.errors import InputError
from crashkit.model.collect import ShowResult
from crashkit.model.signals import signal_name
from crashkit.store import index as ix
from crashkit.writers.store import CRASHES_DIR


@dataclass(frozen=True)
class Options:
    store: str
    crash_id: int


def crash(store: str, crash_id: int) -> ix.CrashRow:
    conn, path = open_index(store)
    try:
        row = ix.get_crash(conn, path, crash_id)
    finally:
        conn.close()
    if row is None:
        raise InputError(f"no crash {crash_id} in the store (`crashkit list` shows them)",
                         path=store)
    return row


def stored_core(store: str, crash_id: int) -> tuple[str, ix.CrashRow]:
    """The stored core file of a crash id (for ``analyze ID``, ``report ID``)."""
    row = crash(store, crash_id)
    if row.stored_name is None:
        why = "only a log line tells of it" if row.evidence == "log" else \
            "its core was not kept (a flood or a retention limit let it go)"
        raise InputError(f"crash {crash_id} has no stored core: {why}", path=store)
    return os.path.join(store, CRASHES_DIR, row.stored_name), row


def run(opts: Options) -> ShowResult:
    row = crash(opts.store, opts.crash_id)
    conn, path = open_index(opts.store)
    try:
        g = ix.group_of(conn, path, row.signature)
        siblings = [c.id for c in ix.crashes_of(conn, path, row.signature, limit=20)
                    if c.id != row.id]
    finally:
        conn.close()
    return ShowResult(
        store=opts.store, crash_id=row.id, stored_name=row.stored_name,
        core_path=os.path.join(opts.store, CRASHES_DIR, row.stored_name)
        if row.stored_name else None,
        source_kind=row.source_kind, source_path=row.source_path, evidence=row.evidence,
        pid=row.pid, exe=row.exe, exe_version=row.exe_version, exe_build_id=row.exe_build_id,
        signal=row.signal, signal_name=signal_name(row.signal) if row.signal else None,
        si_code=row.si_code, time=row.time, collected_at=row.collected_at,
        truncated=row.truncated, signature=row.signature, signature_text=row.signature_text,
        summary=row.summary, blamed_module=row.blamed_module,
        blamed_function=row.blamed_function, confidence=row.confidence, analysis=row.analysis,
        host=row.host, size=row.size, sha256=row.sha256, compression=row.compression,
        modules=tuple((m.path, m.build_id) for m in row.modules),
        group=group(g) if g else None, siblings=tuple(siblings))
