"""``crashkit list``: one row per signature in the store."""

from __future__ import annotations

import os
import sqlite3
import time
from dataclasses import dataclass

from crashkit.errors import InputError
from crashkit.model.collect import Group, ListResult
from crashkit.store import index as ix


@dataclass(frozen=True)
class Options:
    store: str
    since: int | None = None  # epoch seconds
    bucket: ix.Bucket = "hour"
    buckets: int = 24
    limit: int | None = None


def open_index(store: str, *, writable: bool = False) -> tuple[sqlite3.Connection, str]:
    """The store's index; ``writable`` (export's marks of what was sent)
    migrates it to the current version."""
    path = os.path.join(store, ix.INDEX_NAME)
    if not os.path.isfile(path):
        hint = "crashkit collect" + ("" if store == "/var/lib/crashkit" else f" --store {store}")
        raise InputError(f"no crash index here (nothing collected yet?): run `{hint}`",
                         path=store)
    return ix.connect(path, writable=writable), path


def group(g: ix.GroupRow) -> Group:
    return Group(signature=g.signature, signature_text=g.signature_text, count=g.count,
                 stored=g.stored, counted=g.counted, no_core=g.no_core,
                 first_time=g.first_time, last_time=g.last_time, exe=g.exe,
                 exe_version=g.exe_version, summary=g.summary, blamed_module=g.blamed_module,
                 blamed_function=g.blamed_function, worst_confidence=g.worst_confidence,
                 histogram=g.histogram)


def run(opts: Options) -> ListResult:
    conn, path = open_index(opts.store)
    try:
        now = int(time.time())
        listing = ix.list_groups(conn, path, bucket=opts.bucket, buckets=opts.buckets,
                                 now=now, limit=opts.limit, since=opts.since)
    finally:
        conn.close()
    return ListResult(opts.store, tuple(group(g) for g in listing.groups), listing.total,
                      listing.bucket, listing.histogram_start, now, opts.since)
