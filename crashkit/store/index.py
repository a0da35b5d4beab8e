"""The store's SQLite index: its schema, its migrations, and the queries that
read it (``crashkit list`` and ``show``). Rows are written by
:mod:`crashkit.writers.store` alone.

The schema's version is ``PRAGMA user_version`` (SQLite keeps it in the
database header, sqlite.org/pragma.html#pragma_user_version); MIGRATIONS[i]
takes a database from version i to i + 1, each in one transaction, so an
index made by any older crashkit opens in a newer one. The journal is WAL
(sqlite.org/wal.html): ``list`` reads while a ``collect`` writes.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

from crashkit.errors import CrashkitError

INDEX_NAME = "index.sqlite"
REINDEX_HINT = "rebuild it with `crashkit collect --reindex`"


class StoreIndexError(CrashkitError):
    """The store's index cannot be used; the message says how to rebuild it."""


class IndexDamagedError(StoreIndexError):
    """The index file is not a usable SQLite database (damaged, truncated,
    overwritten)."""

    def __init__(self, path: str, why: str) -> None:
        super().__init__(f"the crash index is damaged ({why}); {REINDEX_HINT}", path=path)
        self.why = why


class IndexVersionError(StoreIndexError):
    """The index was made by a newer crashkit than this one."""

    def __init__(self, path: str, found: int) -> None:
        super().__init__(f"the crash index has schema version {found}, newer than this "
                         f"crashkit knows ({SCHEMA_VERSION}); upgrade crashkit", path=path)
        self.found = found


class IndexOutdatedError(StoreIndexError):
    """The index has an older schema; a collect (which may write) migrates it."""

    def __init__(self, path: str, found: int) -> None:
        super().__init__(f"the crash index has schema version {found}, older than this "
                         f"crashkit reads ({SCHEMA_VERSION}); run `crashkit collect` to "
                         "migrate it", path=path)
        self.found = found


class IndexBusyError(StoreIndexError):
    """Another process holds the index locked for longer than we wait."""


# -- schema ----------------------------------------------------------------

_V1 = """
CREATE TABLE crashes (
    id            INTEGER PRIMARY KEY,
    stored_name   TEXT,              -- file name in the store, NULL when only counted
    source_kind   TEXT NOT NULL,
    source_path   TEXT NOT NULL,
    pid           INTEGER,
    exe           TEXT,
    signal        INTEGER,
    time          INTEGER,           -- seconds since the epoch, UTC
    signature     TEXT,
    summary       TEXT,
    sha256        TEXT NOT NULL,
    size          INTEGER NOT NULL,
    UNIQUE (sha256, size)
);
"""

# Version 2: the facts analyze needs without the core, groups by signature,
# and the indexes that keep `list` fast.
_V2 = """
ALTER TABLE crashes ADD COLUMN si_code INTEGER;
ALTER TABLE crashes ADD COLUMN exe_build_id TEXT;
ALTER TABLE crashes ADD COLUMN modules TEXT NOT NULL DEFAULT '[]';
ALTER TABLE crashes ADD COLUMN truncated INTEGER NOT NULL DEFAULT 0;
ALTER TABLE crashes ADD COLUMN blamed_module TEXT;
ALTER TABLE crashes ADD COLUMN blamed_function TEXT;
ALTER TABLE crashes ADD COLUMN confidence TEXT;
ALTER TABLE crashes ADD COLUMN host TEXT;
ALTER TABLE crashes ADD COLUMN compression TEXT;
ALTER TABLE crashes ADD COLUMN collected_at INTEGER;
CREATE TABLE groups (
    signature       TEXT PRIMARY KEY,
    count           INTEGER NOT NULL,
    stored          INTEGER NOT NULL,
    first_time      INTEGER,
    last_time       INTEGER,
    summary         TEXT,
    blamed_module   TEXT,
    blamed_function TEXT
);
INSERT INTO groups (signature, count, stored, first_time, last_time, summary)
    SELECT COALESCE(signature, ''), COUNT(*), COUNT(stored_name), MIN(time), MAX(time),
           MAX(summary)
    FROM crashes GROUP BY COALESCE(signature, '');
UPDATE crashes SET signature = '' WHERE signature IS NULL;
CREATE INDEX crashes_signature_time ON crashes (signature, time);
CREATE INDEX crashes_time ON crashes (time);
CREATE INDEX groups_last ON groups (last_time);
"""

# Version 3: crashes known from a log line only (no core), what analysed each
# core (gdb or the notes alone), the signature's text, the program's
# version, when a group was last reported, and the worst confidence of a
# group (0 none, 1 low, 2 medium, 3 high; NULL when nothing was judged).
_V3 = """
ALTER TABLE crashes ADD COLUMN evidence TEXT NOT NULL DEFAULT 'core';
ALTER TABLE crashes ADD COLUMN analysis TEXT;
ALTER TABLE crashes ADD COLUMN signature_text TEXT;
ALTER TABLE crashes ADD COLUMN exe_version TEXT;
ALTER TABLE groups ADD COLUMN signature_text TEXT;
ALTER TABLE groups ADD COLUMN exe TEXT;
ALTER TABLE groups ADD COLUMN exe_version TEXT;
ALTER TABLE groups ADD COLUMN worst_confidence INTEGER;
ALTER TABLE groups ADD COLUMN no_core INTEGER NOT NULL DEFAULT 0;
ALTER TABLE groups ADD COLUMN reported_at INTEGER;
UPDATE groups SET exe = (SELECT MAX(exe) FROM crashes WHERE crashes.signature = groups.signature);
"""

# Version 4: what was sent to a fleet server (crashkit export). One row per
# crash and target (a DSN without its key: scheme, host, path, project);
# "pending" is written before the send and "sent" after the server accepted,
# so a sender killed in between sends again with the same event id, which the
# server takes as the same event.
_V4 = """
CREATE TABLE sent (
    crash_id   INTEGER NOT NULL REFERENCES crashes (id) ON DELETE CASCADE,
    target     TEXT NOT NULL,
    event_id   TEXT NOT NULL,
    status     TEXT NOT NULL,    -- pending, sent, failed
    attempts   INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    sent_at    INTEGER,
    PRIMARY KEY (crash_id, target)
);
CREATE INDEX sent_target_status ON sent (target, status);
"""

MIGRATIONS: tuple[str, ...] = (_V1, _V2, _V3, _V4)
SCHEMA_VERSION = len(MIGRATIONS)


def _damaged(path: str, exc: sqlite3.DatabaseError) -> StoreIndexError:
    text = str(exc)
    if isinstance(exc, sqlite3.IntegrityError):
        # A constraint (one row per core content): a caller's mistake, not damage.
        return StoreIndexError(f"the crash index refused a row: {text}", path=path)
    if "locked" in text or "busy" in text:
        return IndexBusyError(f"the crash index is locked by another process ({text})",
                              path=path)
    return IndexDamagedError(path, text)


@contextmanager
def guarded(path: str) -> Iterator[None]:
    """Turn SQLite's errors into crashkit's, naming the index file."""
    try:
        yield
    except sqlite3.DatabaseError as exc:
        raise _damaged(path, exc) from exc


def migrate(conn: sqlite3.Connection, path: str, target: int = SCHEMA_VERSION) -> int:
    """Bring the database to ``target``, one migration per transaction;
    the version it had before."""
    with guarded(path):
        found = int(conn.execute("PRAGMA user_version").fetchone()[0])
        if found > SCHEMA_VERSION:
            raise IndexVersionError(path, found)
        for version in range(found, target):
            # executescript() commits first; BEGIN IMMEDIATE then makes the
            # schema change and the version bump one transaction (SQLite's
            # DDL is transactional), undone whole if any statement fails.
            try:
                conn.executescript(f"BEGIN IMMEDIATE;\n{MIGRATIONS[version]}\n"
                                   f"PRAGMA user_version = {version + 1};\nCOMMIT;")
            except sqlite3.Error:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        return found


def connect(path: str, *, writable: bool = False, timeout: float = 30.0) -> sqlite3.Connection:
    """Open the index. Readers get a read-only connection and an index at
    the current version (an older one is refused with the rebuild hint until
    a collect migrates it); ``writable`` creates and migrates."""
    uri = f"file:{path}?mode={'rwc' if writable else 'ro'}"
    with guarded(path):
        try:
            conn = sqlite3.connect(uri, uri=True, timeout=timeout, isolation_level=None)
        except sqlite3.OperationalError as exc:
            raise IndexDamagedError(path, f"cannot open: {exc}") from exc
        try:
            # A file that is not SQLite fails here ("file is not a database").
            conn.execute("PRAGMA schema_version").fetchone()
            if writable:
                conn.execute("PRAGMA journal_mode = WAL")
                # NORMAL in WAL mode: a commit survives any kill of the
                # process; only a power loss may take the last commits back
                # (sqlite.org/pragma.html#pragma_synchronous), and the cores
                # themselves are fsynced before any source is removed, so
                # `collect --reindex` rebuilds what such a loss took. FULL
                # would cost an fsync per crash (about 15 ms each here).
                conn.execute("PRAGMA synchronous = NORMAL")
                migrate(conn, path)
            else:
                found = int(conn.execute("PRAGMA user_version").fetchone()[0])
                if found > SCHEMA_VERSION:
                    raise IndexVersionError(path, found)
                if found < SCHEMA_VERSION:
                    raise IndexOutdatedError(path, found)
            conn.execute("PRAGMA foreign_keys = ON")
        except BaseException:
            conn.close()
            raise
    return conn


def check(conn: sqlite3.Connection, path: str) -> None:
    """PRAGMA quick_check: damage inside pages a query has not touched yet."""
    with guarded(path):
        rows = [r[0] for r in conn.execute("PRAGMA quick_check").fetchall()]
    if rows != ["ok"]:
        raise IndexDamagedError(path, "; ".join(str(r) for r in rows[:3]))


# -- rows ------------------------------------------------------------------

# "store": found in the store's own files by a reindex (the source is gone).
SourceKind = Literal["core_pattern", "working_directory", "systemd", "apport-core",
                     "apport-crash", "from", "store", "error_log", "kernel_log"]
# "core": the crash's core was seen (stored, or counted in a flood);
# "log": only a log line says the process died (no core was dumped).
Evidence = Literal["core", "log"]
CONFIDENCE_RANK = {"none": 0, "low": 1, "medium": 2, "high": 3}
RANK_CONFIDENCE = {v: k for k, v in CONFIDENCE_RANK.items()}


@dataclass(frozen=True)
class ModuleRef:
    path: str
    build_id: str | None


@dataclass(frozen=True)
class CrashRow:
    """One indexed crash: the facts kept without the core."""

    id: int
    stored_name: str | None
    source_kind: str
    source_path: str
    pid: int | None
    exe: str | None
    signal: int | None
    si_code: int | None
    time: int | None
    exe_build_id: str | None
    modules: tuple[ModuleRef, ...]
    truncated: bool
    signature: str
    summary: str | None
    blamed_module: str | None
    blamed_function: str | None
    confidence: str | None
    host: str | None
    sha256: str
    size: int
    compression: str | None
    collected_at: int | None
    evidence: str = "core"
    analysis: str | None = None
    signature_text: str | None = None
    exe_version: str | None = None


_CRASH_COLUMNS = ("id, stored_name, source_kind, source_path, pid, exe, signal, si_code, time, "
                  "exe_build_id, modules, truncated, signature, summary, blamed_module, "
                  "blamed_function, confidence, host, sha256, size, compression, collected_at, "
                  "evidence, analysis, signature_text, exe_version")


def modules_from_json(text: str) -> tuple[ModuleRef, ...]:
    data = json.loads(text or "[]")
    return tuple(ModuleRef(str(m["path"]), m.get("build_id")) for m in data)


def _crash(r: Any) -> CrashRow:
    return CrashRow(
        id=r[0], stored_name=r[1], source_kind=r[2], source_path=r[3], pid=r[4], exe=r[5],
        signal=r[6], si_code=r[7], time=r[8], exe_build_id=r[9],
        modules=modules_from_json(r[10]), truncated=bool(r[11]), signature=r[12] or "",
        summary=r[13], blamed_module=r[14], blamed_function=r[15], confidence=r[16],
        host=r[17], sha256=r[18], size=r[19], compression=r[20], collected_at=r[21],
        evidence=r[22], analysis=r[23], signature_text=r[24], exe_version=r[25])


def get_crash(conn: sqlite3.Connection, path: str, crash_id: int) -> CrashRow | None:
    with guarded(path):
        row = conn.execute(f"SELECT {_CRASH_COLUMNS} FROM crashes WHERE id = ?",
                           (crash_id,)).fetchone()
    return None if row is None else _crash(row)


def find_by_content(conn: sqlite3.Connection, path: str, sha256: str,
                    size: int) -> CrashRow | None:
    """The crash whose core has this content (the store's identity for a core)."""
    with guarded(path):
        row = conn.execute(f"SELECT {_CRASH_COLUMNS} FROM crashes WHERE sha256 = ? AND size = ?",
                           (sha256, size)).fetchone()
    return None if row is None else _crash(row)


def crashes_of(conn: sqlite3.Connection, path: str, signature: str,
               limit: int = 100) -> list[CrashRow]:
    with guarded(path):
        rows = conn.execute(f"SELECT {_CRASH_COLUMNS} FROM crashes WHERE signature = ? "
                            "ORDER BY time DESC LIMIT ?", (signature, limit)).fetchall()
    return [_crash(r) for r in rows]


def crash_ids(conn: sqlite3.Connection, path: str, *, since: int | None = None) -> list[int]:
    with guarded(path):
        rows = conn.execute("SELECT id FROM crashes WHERE time >= ? ORDER BY id",
                            (since if since is not None else -(1 << 62),)).fetchall()
    return [int(r[0]) for r in rows]


def group_of(conn: sqlite3.Connection, path: str, signature: str) -> GroupRow | None:
    """One signature's group, without its histogram."""
    with guarded(path):
        row = conn.execute(f"SELECT {_GROUP_COLUMNS} FROM groups WHERE signature = ?",
                           (signature,)).fetchone()
    return None if row is None else _group(row, ())


def stored_names(conn: sqlite3.Connection, path: str) -> set[str]:
    with guarded(path):
        rows = conn.execute("SELECT stored_name FROM crashes "
                            "WHERE stored_name IS NOT NULL").fetchall()
    return {str(r[0]) for r in rows}


# -- sent (crashkit export) --------------------------------------------------

SentStatus = Literal["pending", "sent", "failed"]


@dataclass(frozen=True)
class SentRow:
    crash_id: int
    target: str
    event_id: str
    status: str
    attempts: int
    last_error: str | None
    sent_at: int | None


def sent_to(conn: sqlite3.Connection, path: str, target: str) -> dict[int, SentRow]:
    """Every crash id that has a row for ``target``, with its row."""
    with guarded(path):
        rows = conn.execute("SELECT crash_id, target, event_id, status, attempts, last_error, "
                            "sent_at FROM sent WHERE target = ?", (target,)).fetchall()
    return {int(r[0]): SentRow(int(r[0]), str(r[1]), str(r[2]), str(r[3]), int(r[4]), r[5],
                               r[6]) for r in rows}


def exportable(conn: sqlite3.Connection, path: str, *, ids: tuple[int, ...] = (),
               since: int | None = None) -> list[CrashRow]:
    """The crashes an export considers, oldest first: the given ids, or every
    crash (since a time) that has a stored core."""
    with guarded(path):
        if ids:
            marks = ",".join("?" * len(ids))
            rows = conn.execute(f"SELECT {_CRASH_COLUMNS} FROM crashes WHERE id IN ({marks}) "
                                "ORDER BY id", ids).fetchall()
        else:
            rows = conn.execute(f"SELECT {_CRASH_COLUMNS} FROM crashes WHERE stored_name IS "
                                "NOT NULL AND COALESCE(time, 0) >= ? ORDER BY id",
                                (since if since is not None else -(1 << 62),)).fetchall()
    return [_crash(r) for r in rows]


# -- list ------------------------------------------------------------------

Bucket = Literal["hour", "day"]
_BUCKET_SECONDS: dict[Bucket, int] = {"hour": 3600, "day": 86400}


@dataclass(frozen=True)
class GroupRow:
    """One signature in ``crashkit list``: how many crashes, how many of
    their cores are kept, when, and a histogram of the last buckets (oldest
    first, the last one holding ``now``)."""

    signature: str
    count: int
    stored: int
    counted: int
    first_time: int | None
    last_time: int | None
    summary: str | None
    blamed_module: str | None
    blamed_function: str | None
    histogram: tuple[int, ...]
    signature_text: str | None = None
    exe: str | None = None
    exe_version: str | None = None
    worst_confidence: str | None = None
    no_core: int = 0  # crashes known from a log line only (no core was dumped)
    reported_at: int | None = None


_GROUP_COLUMNS = ("signature, count, stored, first_time, last_time, summary, blamed_module, "
                  "blamed_function, signature_text, exe, exe_version, worst_confidence, no_core, "
                  "reported_at")


def _group(r: Any, histogram: tuple[int, ...]) -> GroupRow:
    count, stored, no_core = int(r[1]), int(r[2]), int(r[12] or 0)
    return GroupRow(signature=str(r[0]), count=count, stored=stored,
                    counted=count - stored - no_core, first_time=r[3], last_time=r[4],
                    summary=r[5], blamed_module=r[6], blamed_function=r[7], histogram=histogram,
                    signature_text=r[8], exe=r[9], exe_version=r[10],
                    worst_confidence=None if r[11] is None else RANK_CONFIDENCE.get(int(r[11])),
                    no_core=no_core, reported_at=r[13])


@dataclass(frozen=True)
class Listing:
    groups: tuple[GroupRow, ...]
    total: int
    bucket: Bucket
    buckets: int
    histogram_start: int  # epoch seconds of the first bucket's start


def list_groups(conn: sqlite3.Connection, path: str, *, bucket: Bucket = "hour",
                buckets: int = 24, now: float | None = None,
                limit: int | None = None, since: int | None = None) -> Listing:
    """One row per signature, most recent first, with a per-hour or per-day
    histogram. Two queries: the groups table (one row per signature) and
    one pass over the (signature, time) index for the histogram window."""
    width = _BUCKET_SECONDS[bucket]
    end = int(time.time() if now is None else now) // width * width + width
    start = end - buckets * width
    with guarded(path):
        args: list[object] = []
        where = ""
        if since is not None:
            where = " WHERE last_time >= ?"
            args.append(since)
        if limit is not None:
            args.append(limit)
        groups = conn.execute(
            f"SELECT {_GROUP_COLUMNS} FROM groups{where} ORDER BY last_time DESC, signature"
            + (" LIMIT ?" if limit is not None else ""), args).fetchall()
        hist_rows = conn.execute(
            "SELECT signature, (time - ?) / ?, COUNT(*) FROM crashes"
            " WHERE time >= ? AND time < ? GROUP BY signature, (time - ?) / ?",
            (start, width, start, end, start, width)).fetchall()
        total = int(conn.execute("SELECT COALESCE(SUM(count), 0) FROM groups").fetchone()[0])
    hist: dict[str, list[int]] = {}
    for sig, slot, n in hist_rows:
        hist.setdefault(str(sig), [0] * buckets)[int(slot)] = int(n)
    out = tuple(_group(r, tuple(hist.get(str(r[0]), [0] * buckets))) for r in groups)
    return Listing(out, total, bucket, buckets, start)


def bench_list(path: str, *, repeat: int = 5) -> float:
    """Best wall time in seconds of :func:`list_groups` over the index at
    ``path`` (scripts/bench fills one with writers.store.fill_synthetic)."""
    conn = connect(path)
    try:
        best = float("inf")
        for _ in range(repeat):
            t0 = time.perf_counter()
            list_groups(conn, path)
            best = min(best, time.perf_counter() - t0)
        return best
    finally:
        conn.close()
