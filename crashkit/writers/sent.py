"""What ``crashkit export`` remembers of each send, in the store's index
(table ``sent``, schema version 4 of crashkit.store.index).

export does not take the store's collect lock (a long export must not stop
``collect --watch``): each mark is one short SQLite transaction, and SQLite's
WAL journal lets a collect write meanwhile."""

from __future__ import annotations

import sqlite3
import time

from crashkit.store import index as ix


def mark_pending(conn: sqlite3.Connection, path: str, crash_id: int, target: str,
                 event_id: str, attempts: int) -> None:
    """Before the send: the event id a resend must reuse."""
    with ix.guarded(path):
        conn.execute("INSERT INTO sent (crash_id, target, event_id, status, attempts) "
                     "VALUES (?, ?, ?, 'pending', ?) ON CONFLICT (crash_id, target) DO UPDATE "
                     "SET event_id = excluded.event_id, status = 'pending', "
                     "attempts = excluded.attempts", (crash_id, target, event_id, attempts))


def mark_sent(conn: sqlite3.Connection, path: str, crash_id: int, target: str,
              when: int | None = None) -> None:
    with ix.guarded(path):
        conn.execute("UPDATE sent SET status = 'sent', last_error = NULL, sent_at = ? "
                     "WHERE crash_id = ? AND target = ?",
                     (int(time.time()) if when is None else when, crash_id, target))


def mark_failed(conn: sqlite3.Connection, path: str, crash_id: int, target: str,
                error: str) -> None:
    with ix.guarded(path):
        conn.execute("UPDATE sent SET status = 'failed', last_error = ? "
                     "WHERE crash_id = ? AND target = ?", (error[:500], crash_id, target))
