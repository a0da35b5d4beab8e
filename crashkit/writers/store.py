"""Putting one core into the store, never losing it.

The store (default /var/lib/crashkit):

    STORE/            created 0700; an existing one is kept as it is if only
                      its owner may write it (setup's core directory may live
                      inside and its workers must pass through)
    STORE/lock        flock()ed by a collect for its whole run
    STORE/index.sqlite  the index (crashkit.store.index), 0600
    STORE/crashes/    0700: the cores, named by content (SHA-256)

One ingest, in this order, so that a collect killed at any instant and run
again ends with the core stored exactly once:

1. hash the source (through its descriptor, opened O_NOFOLLOW);
2. same filesystem and a source only root could have changed: hard-link the
   opened inode into crashes/ under its final name (linkat through
   /proc/self/fd, so the inode we hashed is the one linked, whatever the
   name points to meanwhile); otherwise compress it with zstd into a
   temporary file made with O_EXCL, fsync it, and verify it (decompress it
   again: size and SHA-256 must equal the source's);
3. record the crash in the index, in one transaction;
4. rename the temporary file to its final name, fsync the directory;
5. only then unlink the source (if its name still holds the same inode).

A rerun finds the source again, its content already in the index: the
stored file is redone if missing (killed between 3 and 4), the source is
removed (killed between 4 and 5). Temporary files left by a killed run are
removed when the store is opened, under the lock.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import secrets
import sqlite3
import stat
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Literal

import zstandard

from crashkit.elf import compressed
from crashkit.errors import CrashkitError, InputError
from crashkit.host import coresources
from crashkit.store import index as ix

DEFAULT_STORE = "/var/lib/crashkit"
CRASHES_DIR = "crashes"
LOCK_NAME = "lock"
TMP_PREFIX = ".tmp-"
_CHUNK = 1 << 20


class StoreError(CrashkitError):
    """The store cannot be used (unsafe directory, another collect holds it)."""


class StoreFullError(StoreError):
    """The store's filesystem is full: nothing was stored, the source and
    the index are as they were."""


class StoreLockedError(StoreError):
    """Another crashkit collect is running on this store."""


class VerifyError(StoreError):
    """The stored copy does not read back as the source: not kept, source kept."""


Step = Literal["hashed", "linked", "written", "synced", "verified", "recorded", "renamed",
               "source_removed"]
Method = Literal["link", "copy"]
Status = Literal["stored", "already", "restored", "counted"]
SourceFormat = Literal["elf", "zstd", "xz", "lz4", "gzip", "apport-crash"]


@dataclass(frozen=True)
class Facts:
    """What the analysis of a core says, kept in the index so that later
    commands need not read the core again. All optional but the source."""

    pid: int | None = None
    exe: str | None = None
    signal: int | None = None
    si_code: int | None = None
    time: int | None = None
    exe_build_id: str | None = None
    modules: tuple[ix.ModuleRef, ...] = ()
    truncated: bool = False
    signature: str = ""
    summary: str | None = None
    blamed_module: str | None = None
    blamed_function: str | None = None
    confidence: str | None = None
    host: str | None = None
    analysis: str | None = None  # "gdb" or "notes": what read the core
    signature_text: str | None = None
    exe_version: str | None = None
    evidence: ix.Evidence = "core"


# Called, before the crash is recorded, with a path that reads as the core
# (possibly compressed): the store's own linked or verified copy, or, for a
# plain core copied from another filesystem, the source's descriptor that
# was hashed into that copy (/proc/self/fd/N: the same inode, checked
# unchanged, and no second decompression of the copy). The facts to record.
FactsOf = Callable[[str], Facts]


@dataclass(frozen=True)
class Source:
    """One file to take: ``name`` in the directory open on ``dir_fd``;
    ``path`` is what to call it in messages and in the index."""

    dir_fd: int
    name: str
    path: str
    kind: ix.SourceKind
    format: SourceFormat


@dataclass(frozen=True)
class Ingested:
    status: Status
    crash_id: int
    stored_name: str | None
    method: Method | None
    sha256: str
    size: int  # of the core itself (decompressed)
    stored_bytes: int  # on disk in the store
    source_removed: bool
    note: str = ""


def _is_full(exc: OSError) -> bool:
    return exc.errno in (errno.ENOSPC, errno.EDQUOT)


def _fsync_dir(fd: int) -> None:
    os.fsync(fd)


def _private_dir(parent_fd: int | None, path: str, name: str | None) -> int:
    """Open (creating 0700 if missing) a directory that only we may write;
    never through a symlink. ``name`` relative to ``parent_fd``, else the
    absolute ``path``."""
    where = name if name is not None else path
    try:
        os.mkdir(where, 0o700, dir_fd=parent_fd)
        created = True
    except FileExistsError:
        created = False
    except OSError as exc:
        raise StoreError(f"cannot create the store directory: {exc.strerror}", path=path) from exc
    try:
        fd = os.open(where, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC,
                     dir_fd=parent_fd)
    except OSError as exc:
        raise StoreError(f"cannot open the store directory (a symlink?): {exc.strerror}",
                         path=path) from exc
    st = os.fstat(fd)
    if st.st_uid != os.geteuid():
        os.close(fd)
        raise StoreError(f"owned by uid {st.st_uid}, not by us (uid {os.geteuid()}): "
                         "refusing to keep cores there", path=path)
    if created or name is not None:
        os.fchmod(fd, 0o700)
    elif st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        os.close(fd)
        raise StoreError(f"writable by others (mode {stat.S_IMODE(st.st_mode):04o}): "
                         "refusing to keep cores there", path=path)
    return fd


class Store:
    """An open, locked store. Use :func:`open_store`."""

    def __init__(self, path: str, dir_fd: int, crashes_fd: int, lock_fd: int,
                 conn: sqlite3.Connection, index_path: str, cleaned: tuple[str, ...]) -> None:
        self.path = path
        self.dir_fd = dir_fd
        self.crashes_fd = crashes_fd
        self.lock_fd = lock_fd
        self.conn = conn
        self.index_path = index_path
        self.cleaned = cleaned  # temporary files a killed run left, removed on open
        self.dev = os.fstat(crashes_fd).st_dev

    def close(self) -> None:
        self.conn.close()
        os.close(self.crashes_fd)
        os.close(self.lock_fd)  # releases the flock
        os.close(self.dir_fd)


@contextmanager
def open_store(path: str = DEFAULT_STORE, *, wait: bool = True, timeout: float = 600.0,
               fresh_index: bool = False) -> Iterator[Store]:
    """Open the store at ``path`` (creating it), take its lock (waiting up
    to ``timeout`` seconds for another collect when ``wait``), open and
    migrate its index, and remove what a killed run left half-written.
    ``fresh_index``: move the existing index aside first (``reindex``)."""
    dir_fd = _private_dir(None, path, None)
    lock_fd = crashes_fd = -1
    try:
        lock_fd = os.open(LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC,
                          0o600, dir_fd=dir_fd)
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if not wait or time.monotonic() > deadline:
                    raise StoreLockedError("another crashkit collect is using this store",
                                           path=path) from None
                time.sleep(0.05)
        crashes_fd = _private_dir(dir_fd, os.path.join(path, CRASHES_DIR), CRASHES_DIR)
        index_path = os.path.join(path, ix.INDEX_NAME)
        if fresh_index:
            _set_index_aside(dir_fd)
        with suppress(FileExistsError):
            # Made by us first, 0600 (SQLite's -wal and -shm copy its mode).
            os.close(os.open(ix.INDEX_NAME, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                             | os.O_CLOEXEC, 0o600, dir_fd=dir_fd))
        conn = ix.connect(index_path, writable=True)
        cleaned = _clean_temporaries(crashes_fd)
    except BaseException:
        for fd in (crashes_fd, lock_fd, dir_fd):
            if fd >= 0:
                os.close(fd)
        raise
    store = Store(path, dir_fd, crashes_fd, lock_fd, conn, index_path, cleaned)
    try:
        yield store
    finally:
        store.close()


def _set_index_aside(dir_fd: int) -> None:
    """Rename the index and its -wal/-shm to INDEX.damaged-STAMP (kept for a
    post-mortem, never deleted by us)."""
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    for suffix in ("", "-wal", "-shm"):
        with suppress(FileNotFoundError):
            os.rename(ix.INDEX_NAME + suffix, f"{ix.INDEX_NAME}.damaged-{stamp}{suffix}",
                      src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    _fsync_dir(dir_fd)


def _clean_temporaries(crashes_fd: int) -> tuple[str, ...]:
    gone = []
    with os.scandir(crashes_fd) as it:
        names = [e.name for e in it if e.name.startswith(TMP_PREFIX)]
    for name in names:
        try:
            os.unlink(name, dir_fd=crashes_fd)
            gone.append(name)
        except FileNotFoundError:
            pass
    if gone:
        _fsync_dir(crashes_fd)
    return tuple(sorted(gone))


# -- reading a source ----------------------------------------------------------

def _source_chunks(fd: int, src: Source) -> Iterator[bytes]:
    """The core's own bytes (decompressed) from an open source."""
    if src.format == "elf":
        while True:
            data = os.read(fd, _CHUNK)
            if not data:
                return
            yield data
    elif src.format == "apport-crash":
        f = os.fdopen(os.dup(fd), "rb")
        with f:
            report = coresources.read_crash_report(f, path=src.path)
            yield from coresources.iter_crash_coredump(f, report, path=src.path)
    else:
        yield from compressed.iter_decompressed(fd, path=src.path)


def _open_source(src: Source) -> tuple[int, os.stat_result]:
    try:
        fd = coresources.open_entry(src.dir_fd, src.name)
    except OSError as exc:
        raise InputError(f"cannot open the core: {exc.strerror}", path=src.path) from exc
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise InputError("not a regular file", path=src.path)
    return fd, st


def _hash(fd: int, src: Source) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    os.lseek(fd, 0, os.SEEK_SET)
    for data in _source_chunks(fd, src):
        digest.update(data)
        size += len(data)
    return digest.hexdigest(), size


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


class _Sink:
    """zstandard's stream writer wants a file object; this one writes to a
    descriptor and counts."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.written = 0

    def write(self, data: bytes) -> int:
        _write_all(self.fd, data)
        self.written += len(data)
        return len(data)


def stored_name_for(sha256: str, compression: str | None) -> str:
    return f"{sha256}.core" + ({"zstd": ".zst", "xz": ".xz", "lz4": ".lz4",
                                "gzip": ".gz"}.get(compression or "", ""))


def _verify(crashes_fd: int, name: str, sha256: str, size: int) -> None:
    fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=crashes_fd)
    try:
        digest = hashlib.sha256()
        n = 0
        for data in compressed.iter_decompressed(fd, path=name):
            digest.update(data)
            n += len(data)
    finally:
        os.close(fd)
    if (n, digest.hexdigest()) != (size, sha256):
        raise VerifyError(f"the compressed copy reads back as {n} bytes, sha256 "
                          f"{digest.hexdigest()[:16]}…, not {size} bytes, {sha256[:16]}…",
                          path=name)


# -- the index row ---------------------------------------------------------

def _record(store: Store, src: Source, facts: Facts, sha256: str, size: int,
            stored_name: str | None, compression: str | None) -> int:
    """Insert the crash and bump its group, one transaction. SQLITE_FULL
    rolls it all back."""
    return _insert(store, src.kind, src.path, facts, sha256, size, stored_name, compression)


def _insert(store: Store, kind: str, path: str, facts: Facts, sha256: str, size: int,
            stored_name: str | None, compression: str | None) -> int:
    conn = store.conn
    modules = json.dumps([{"path": m.path, "build_id": m.build_id} for m in facts.modules])
    rank = ix.CONFIDENCE_RANK.get(facts.confidence or "")
    try:
        with ix.guarded(store.index_path):
            conn.execute("BEGIN IMMEDIATE")
            try:
                cur = conn.execute(
                    "INSERT INTO crashes (stored_name, source_kind, source_path, pid, exe, signal,"
                    " si_code, time, exe_build_id, modules, truncated, signature, summary,"
                    " blamed_module, blamed_function, confidence, host, sha256, size,"
                    " compression, collected_at, evidence, analysis, signature_text, exe_version)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?,"
                    " ?, ?)",
                    (stored_name, kind, path, facts.pid, facts.exe, facts.signal,
                     facts.si_code, facts.time, facts.exe_build_id, modules, int(facts.truncated),
                     facts.signature, facts.summary, facts.blamed_module, facts.blamed_function,
                     facts.confidence, facts.host, sha256, size, compression, int(time.time()),
                     facts.evidence, facts.analysis, facts.signature_text, facts.exe_version))
                conn.execute(
                    "INSERT INTO groups (signature, count, stored, first_time, last_time, summary,"
                    " blamed_module, blamed_function, signature_text, exe, exe_version,"
                    " worst_confidence, no_core) VALUES (?, 1, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                    " ON CONFLICT (signature) DO UPDATE SET count = count + 1,"
                    " stored = stored + excluded.stored,"
                    " no_core = no_core + excluded.no_core,"
                    " first_time = MIN(COALESCE(first_time, excluded.first_time),"
                    "                  COALESCE(excluded.first_time, first_time)),"
                    " last_time = MAX(COALESCE(last_time, excluded.last_time),"
                    "                 COALESCE(excluded.last_time, last_time)),"
                    " summary = COALESCE(excluded.summary, summary),"
                    " blamed_module = COALESCE(excluded.blamed_module, blamed_module),"
                    " blamed_function = COALESCE(excluded.blamed_function, blamed_function),"
                    " signature_text = COALESCE(excluded.signature_text, signature_text),"
                    " exe = COALESCE(excluded.exe, exe),"
                    " exe_version = COALESCE(excluded.exe_version, exe_version),"
                    " worst_confidence = MIN(COALESCE(worst_confidence, excluded.worst_confidence),"
                    "     COALESCE(excluded.worst_confidence, worst_confidence))",
                    (facts.signature, int(stored_name is not None), facts.time, facts.time,
                     facts.summary, facts.blamed_module, facts.blamed_function,
                     facts.signature_text, facts.exe, facts.exe_version, rank,
                     int(facts.evidence == "log")))
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
    except ix.IndexDamagedError as exc:
        if "full" in exc.why:
            raise StoreFullError("the store's filesystem is full: the index could not grow; "
                                 "nothing was stored, the source is untouched",
                                 path=store.index_path) from exc
        raise
    rowid = cur.lastrowid
    assert rowid is not None
    return rowid


def record_log_crash(store: Store, kind: ix.SourceKind, path: str, key: str,
                     facts: Facts) -> tuple[int, bool]:
    """Count a crash that only a log line tells of (no core: SIGKILL, the
    OOM killer, a worker that could not dump). ``key`` identifies the line
    (host, pid, time), so that reading the same log again counts it once.
    (crash id, whether it is new)."""
    sha256 = hashlib.sha256(b"log\0" + key.encode("utf-8", "surrogateescape")).hexdigest()
    known = ix.find_by_content(store.conn, store.index_path, sha256, 0)
    if known is not None:
        return known.id, False
    facts = Facts(**{**facts.__dict__, "evidence": "log"})
    return _insert(store, kind, path, facts, sha256, 0, None, None), True


def drop_core(store: Store, crash_id: int) -> int:
    """Delete one crash's stored core, keeping its row (counted, no longer
    stored). The bytes freed (0 when it had none). The index is changed
    first: a kill between the two leaves a file the index does not name,
    which ``stored_orphans`` finds, never a row naming a missing file."""
    row = ix.get_crash(store.conn, store.index_path, crash_id)
    if row is None or row.stored_name is None:
        return 0
    try:
        size = os.stat(row.stored_name, dir_fd=store.crashes_fd,
                       follow_symlinks=False).st_size
    except FileNotFoundError:
        size = 0
    conn = store.conn
    with ix.guarded(store.index_path):
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute("UPDATE crashes SET stored_name = NULL WHERE id = ?", (crash_id,))
            conn.execute("UPDATE groups SET stored = stored - 1 WHERE signature = ?",
                         (row.signature,))
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
    still = conn.execute("SELECT 1 FROM crashes WHERE stored_name = ?",
                         (row.stored_name,)).fetchone()
    if still is None:
        _unlink_quiet(store.crashes_fd, row.stored_name)
        _fsync_dir(store.crashes_fd)
    return size


def stored_orphans(store: Store) -> tuple[str, ...]:
    """Files in crashes/ that no row names (a drop killed half-way): removed."""
    names = ix.stored_names(store.conn, store.index_path)
    with os.scandir(store.crashes_fd) as it:
        extra = sorted(e.name for e in it
                       if not e.name.startswith(TMP_PREFIX) and e.name not in names)
    for name in extra:
        _unlink_quiet(store.crashes_fd, name)
    if extra:
        _fsync_dir(store.crashes_fd)
    return tuple(extra)


def mark_reported(store: Store, signature: str, when: int | None = None) -> None:
    """Remember that a report was made of this signature (retention keeps
    every core newer than that)."""
    with ix.guarded(store.index_path):
        store.conn.execute("UPDATE groups SET reported_at = ? WHERE signature = ?",
                           (int(time.time()) if when is None else when, signature))


# -- ingest ----------------------------------------------------------------

def _source_alone(src: Source, st: os.stat_result) -> bool:
    """Whether only we could have changed the source: it is ours and its
    directory is not writable by anyone else. Only then is a hard link as
    good as a copy (a worker-owned core in a worker-owned directory could
    still be rewritten through a descriptor its owner kept open)."""
    if st.st_uid != os.geteuid():
        return False
    dst = os.fstat(src.dir_fd)
    return dst.st_uid == os.geteuid() and not dst.st_mode & (stat.S_IWGRP | stat.S_IWOTH)


def _remove_source(src: Source, st: os.stat_result) -> bool:
    """Unlink the source if its name still holds the inode we stored."""
    try:
        now = os.stat(src.name, dir_fd=src.dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return False
    if (now.st_dev, now.st_ino) != (st.st_dev, st.st_ino):
        return False
    os.unlink(src.name, dir_fd=src.dir_fd)
    # Not fsynced: a power loss that brings the name back only makes the
    # next collect find it already stored and remove it again.
    return True


def _exists(dir_fd: int, name: str) -> bool:
    try:
        os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        return True
    except FileNotFoundError:
        return False


def _copy_compressed(store: Store, fd: int, src: Source, level: int,
                     step: Callable[[Step], None]) -> tuple[str, str, int, int]:
    """Compress the source into a new temporary file; (its name, sha256 and
    size of the core, bytes written). Removes the file on any failure."""
    tmp = f"{TMP_PREFIX}{os.getpid()}-{secrets.token_hex(8)}"
    out = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                  0o600, dir_fd=store.crashes_fd)
    ok = False
    try:
        digest = hashlib.sha256()
        size = 0
        sink = _Sink(out)
        # threads=-1: one worker per CPU (libzstd multi-threading; the frame
        # is the same format, one stream).
        cctx = zstandard.ZstdCompressor(level=level, write_checksum=True, threads=-1)
        os.lseek(fd, 0, os.SEEK_SET)
        with cctx.stream_writer(sink, closefd=False) as w:  # type: ignore[arg-type]
            for data in _source_chunks(fd, src):
                digest.update(data)
                size += len(data)
                w.write(data)
        step("written")
        os.fsync(out)
        step("synced")
        ok = True
        return tmp, digest.hexdigest(), size, sink.written
    finally:
        os.close(out)
        if not ok:
            _unlink_quiet(store.crashes_fd, tmp)


def _unlink_quiet(dir_fd: int, name: str) -> None:
    with suppress(FileNotFoundError):
        os.unlink(name, dir_fd=dir_fd)


def ingest(store: Store, src: Source, facts: Facts | FactsOf, *, keep_core: bool = True,
           remove_source: bool = True, level: int = 3,
           on_step: Callable[[Step], None] | None = None) -> Ingested:
    """Take one source core into the store (see the module's docstring for
    the order of things). ``facts`` may be a function of the verified
    private copy (:data:`FactsOf`): the analysis then reads the store's own
    file, never the source a user could swap. ``keep_core=False`` records
    the crash without keeping its core (and leaves the source). ``on_step``
    is called after each durable step (progress; tests kill the process
    there)."""
    step: Callable[[Step], None] = on_step or (lambda _s: None)
    fd, st = _open_source(src)
    try:
        return _ingest(store, src, facts, fd, st, keep_core, remove_source, level, step)
    except OSError as exc:
        if _is_full(exc):
            raise StoreFullError("the store's filesystem is full: nothing was stored, "
                                 "the source and the index are untouched",
                                 path=store.path) from exc
        raise
    finally:
        os.close(fd)


def _facts(facts: Facts | FactsOf, path: str) -> Facts:
    return facts if isinstance(facts, Facts) else facts(path)


def _ingest(store: Store, src: Source, facts: Facts | FactsOf, fd: int, st: os.stat_result,
            keep_core: bool, remove_source: bool, level: int,
            step: Callable[[Step], None]) -> Ingested:
    link = (keep_core and st.st_dev == store.dev and src.format != "apport-crash"
            and _source_alone(src, st))
    if not keep_core or link:
        sha256, size = _hash(fd, src)
        step("hashed")
        known = ix.find_by_content(store.conn, store.index_path, sha256, size)
        if not keep_core:
            if known is not None:
                return Ingested("already", known.id, known.stored_name, None, sha256, size, 0,
                                False)
            crash_id = _record(store, src, facts if isinstance(facts, Facts) else Facts(),
                               sha256, size, None, None)
            step("recorded")
            return Ingested("counted", crash_id, None, None, sha256, size, 0, False)
        compression = None if src.format == "elf" else src.format
        name = stored_name_for(sha256, compression)
        if known is not None and known.stored_name and _exists(store.crashes_fd,
                                                                 known.stored_name):
            removed = remove_source and _remove_source(src, st)
            step("source_removed")
            return Ingested("already", known.id, known.stored_name, None, sha256, size, 0,
                            removed)
        made = False
        try:
            # The inode we opened and hashed, whatever the name holds now.
            os.link(f"/proc/self/fd/{fd}", name, dst_dir_fd=store.crashes_fd,
                    follow_symlinks=True)
            made = True
        except FileExistsError:
            there = os.stat(name, dir_fd=store.crashes_fd, follow_symlinks=False)
            if (there.st_dev, there.st_ino) != (st.st_dev, st.st_ino):
                raise StoreError("a different file already has this core's name in the "
                                 "store", path=os.path.join(store.path, CRASHES_DIR, name)) \
                    from None
        _fsync_dir(store.crashes_fd)
        step("linked")
        if known is None:
            try:
                crash_id = _record(store, src, _facts(facts, os.path.join(
                    store.path, CRASHES_DIR, name)), sha256, size, name, compression)
            except BaseException:
                # Not recorded (index full, damaged): take the link back so
                # the store holds no file its index does not know.
                if made:
                    _unlink_quiet(store.crashes_fd, name)
                raise
            step("recorded")
            status: Status = "stored"
        else:
            crash_id, status = known.id, "restored"
        removed = remove_source and _remove_source(src, st)
        step("source_removed")
        return Ingested(status, crash_id, name, "link", sha256, size, st.st_size, removed)

    tmp, sha256, size, written = _copy_compressed(store, fd, src, level, step)
    try:
        after = os.fstat(fd)
        if (after.st_size, after.st_mtime_ns) != (st.st_size, st.st_mtime_ns):
            raise InputError("the core changed while it was being copied: left for the next "
                             "run", path=src.path)
        _verify(store.crashes_fd, tmp, sha256, size)
        step("verified")
        name = stored_name_for(sha256, "zstd")
        known = ix.find_by_content(store.conn, store.index_path, sha256, size)
        if known is not None and known.stored_name and _exists(store.crashes_fd,
                                                                 known.stored_name):
            _unlink_quiet(store.crashes_fd, tmp)
            removed = remove_source and _remove_source(src, st)
            step("source_removed")
            return Ingested("already", known.id, known.stored_name, None, sha256, size, 0,
                            removed)
        if known is None:
            where = f"/proc/self/fd/{fd}" if src.format == "elf" else \
                os.path.join(store.path, CRASHES_DIR, tmp)
            crash_id = _record(store, src, _facts(facts, where), sha256, size, name, "zstd")
            step("recorded")
            status = "stored"
        else:
            # Recorded by a run killed before its rename: finish its work.
            crash_id, status = known.id, "restored"
            name = known.stored_name or name
        os.rename(tmp, name, src_dir_fd=store.crashes_fd, dst_dir_fd=store.crashes_fd)
        _fsync_dir(store.crashes_fd)
        step("renamed")
    except BaseException:
        _unlink_quiet(store.crashes_fd, tmp)
        raise
    removed = remove_source and _remove_source(src, st)
    step("source_removed")
    return Ingested(status, crash_id, name, "copy", sha256, size, written, removed)


# -- reindex ---------------------------------------------------------------

@dataclass(frozen=True)
class Reindexed:
    recorded: int
    skipped: tuple[tuple[str, str], ...]  # (file name, why)


def reindex(path: str = DEFAULT_STORE, *,
            facts_for: Callable[[str, int], Facts] | None = None) -> Reindexed:
    """Rebuild the index from the store's own files (``crashkit collect
    --reindex``): the old index is moved aside, each stored core is read
    back (its size and SHA-256 must match its name) and recorded with the
    facts ``facts_for(name, fd)`` gives (the command analyses the core
    again; without it only the content is known). Where each came from is
    lost with the old index: the source is recorded as the store."""
    skipped: list[tuple[str, str]] = []
    recorded = 0
    with open_store(path, fresh_index=True) as store:
        with os.scandir(store.crashes_fd) as it:
            names = sorted(e.name for e in it if not e.name.startswith(TMP_PREFIX))
        for name in names:
            sha_part, _, rest = name.partition(".")
            if rest not in ("core", "core.zst", "core.xz", "core.lz4", "core.gz"):
                skipped.append((name, "not a name the store gives"))
                continue
            compression = {"core": None, "core.zst": "zstd", "core.xz": "xz",
                           "core.lz4": "lz4", "core.gz": "gzip"}[rest]
            fmt: SourceFormat = "elf" if compression is None else compression  # type: ignore[assignment]
            src = Source(store.crashes_fd, name, os.path.join(store.path, CRASHES_DIR, name),
                         "store", fmt)
            try:
                fd, _st = _open_source(src)
            except InputError as exc:
                skipped.append((name, exc.message))
                continue
            try:
                try:
                    sha256, size = _hash(fd, src)
                except CrashkitError as exc:
                    skipped.append((name, exc.message))
                    continue
                if sha256 != sha_part:
                    skipped.append((name, f"its content's SHA-256 is {sha256[:16]}…"))
                    continue
                os.lseek(fd, 0, os.SEEK_SET)
                facts = facts_for(name, fd) if facts_for is not None else Facts()
            finally:
                os.close(fd)
            if ix.find_by_content(store.conn, store.index_path, sha256, size) is not None:
                skipped.append((name, "the same core is stored under another name"))
                continue
            _record(store, src, facts, sha256, size, name, compression)
            recorded += 1
    return Reindexed(recorded, tuple(skipped))


# -- for benchmarks --------------------------------------------------------

def fill_synthetic(store: Store, rows: int, *, signatures: int = 200,
                   span_seconds: int = 30 * 86400, now: int | None = None,
                   seed: int = 1) -> None:
    """Add ``rows`` made-up crashes (no core files) to the store's index, in
    one transaction: for scripts/bench and the list-speed test."""
    import random

    rnd = random.Random(seed)
    end = int(time.time()) if now is None else now
    sigs = [f"{i:016x}" for i in range(signatures)]
    conn = store.conn
    with ix.guarded(store.index_path):
        conn.execute("BEGIN IMMEDIATE")
        counts: dict[str, list[int]] = {}
        batch = []
        for i in range(rows):
            sig = sigs[min(int(rnd.paretovariate(1.2)) - 1, signatures - 1)]
            t = end - rnd.randrange(span_seconds)
            stored = rnd.random() < 0.3
            batch.append((f"{i:064x}.core.zst" if stored else None, "from", f"/synthetic/{i}",
                          1000 + i, "/usr/sbin/nginx", 11, 1, t, "[]", sig,
                          f"SIGSEGV in f{sig[-3:]}()", f"{i:064x}", 1 << 20))
            c = counts.setdefault(sig, [0, 0, t, t])
            c[0] += 1
            c[1] += int(stored)
            c[2] = min(c[2], t)
            c[3] = max(c[3], t)
        conn.executemany(
            "INSERT INTO crashes (stored_name, source_kind, source_path, pid, exe, signal,"
            " si_code, time, modules, signature, summary, sha256, size)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", batch)
        conn.executemany(
            "INSERT INTO groups (signature, count, stored, first_time, last_time, summary)"
            " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (signature) DO UPDATE SET"
            " count = count + excluded.count, stored = stored + excluded.stored,"
            " first_time = MIN(first_time, excluded.first_time),"
            " last_time = MAX(last_time, excluded.last_time)",
            [(s, c[0], c[1], c[2], c[3], f"SIGSEGV in f{s[-3:]}()") for s, c in counts.items()])
        conn.execute("COMMIT")


