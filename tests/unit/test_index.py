"""crashkit.store.index on real SQLite files in tmp_path: the schema and its
migrations, damaged and foreign files, and `list` over 100,000 crashes."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest

from crashkit.store import index as ix
from crashkit.writers import store as W


def make_v1(path: Path) -> None:
    """An index as the first schema left it, with two crashes."""
    conn = sqlite3.connect(path, isolation_level=None)
    ix.migrate(conn, str(path), target=1)
    conn.executemany(
        "INSERT INTO crashes (stored_name, source_kind, source_path, pid, exe, signal, time,"
        " signature, summary, sha256, size) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [("a.core.zst", "from", "/x/core.1", 1, "/usr/sbin/nginx", 11, 1000, "sig1",
          "NULL deref", "aa" * 32, 10),
         (None, "from", "/x/core.2", 2, "/usr/sbin/nginx", 6, 2000, None, None, "bb" * 32, 20)])
    conn.close()


def test_migrates_an_old_index(tmp_path: Path) -> None:
    path = tmp_path / ix.INDEX_NAME
    make_v1(path)
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 1
    conn.close()
    with pytest.raises(ix.IndexOutdatedError, match="version 1"):
        ix.connect(str(path))
    conn = ix.connect(str(path), writable=True)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == ix.SCHEMA_VERSION
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()
    ro = ix.connect(str(path))
    ix.check(ro, str(path))
    listing = ix.list_groups(ro, str(path), now=3000)
    got = {g.signature: g for g in listing.groups}
    assert got["sig1"].count == 1 and got["sig1"].stored == 1
    assert got[""].count == 1 and got[""].counted == 1 and got[""].first_time == 2000
    old = ix.find_by_content(ro, str(path), "aa" * 32, 10)
    assert old is not None and old.exe == "/usr/sbin/nginx" and old.modules == ()
    assert old.si_code is None and old.truncated is False
    # Reopening an up-to-date index changes nothing.
    assert ix.migrate(ro, str(path)) == ix.SCHEMA_VERSION
    ro.close()


def test_newer_index_refused(tmp_path: Path) -> None:
    path = tmp_path / ix.INDEX_NAME
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {ix.SCHEMA_VERSION + 1}")
    conn.close()
    for writable in (False, True):
        with pytest.raises(ix.IndexVersionError, match="upgrade crashkit"):
            ix.connect(str(path), writable=writable)


@pytest.mark.parametrize("damage", ["garbage", "truncated", "zeroed-page"])
def test_damaged_index(tmp_path: Path, damage: str) -> None:
    path = tmp_path / ix.INDEX_NAME
    conn = ix.connect(str(path), writable=True)
    conn.execute("BEGIN")
    conn.executemany("INSERT INTO crashes (source_kind, source_path, sha256, size, signature,"
                     " summary) VALUES ('from', ?, ?, 1, 's', ?)",
                     [(f"/p/{i}", f"{i:064x}", "x" * 200) for i in range(2000)])
    conn.execute("COMMIT")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    data = bytearray(path.read_bytes())
    if damage == "garbage":
        data[:100] = b"this is no longer an SQLite database" * 2 + b"!" * 28
    elif damage == "truncated":
        data = data[: len(data) // 3]
    else:
        data[4096 * 3: 4096 * 6] = bytes(4096 * 3)
    path.write_bytes(bytes(data))
    with pytest.raises(ix.IndexDamagedError) as err:
        conn = ix.connect(str(path))
        ix.check(conn, str(path))
        ix.list_groups(conn, str(path))
        ix.crashes_of(conn, str(path), "s", limit=5000)
    text = str(err.value)
    assert str(path) in text and "crashkit collect --reindex" in text


def test_store_open_names_a_damaged_index(tmp_path: Path) -> None:
    store = tmp_path / "store"
    with W.open_store(str(store)):
        pass
    (store / ix.INDEX_NAME).write_bytes(b"\0garbage" * 1000)
    with pytest.raises(ix.IndexDamagedError, match="--reindex"), W.open_store(str(store)):
        pass


def test_list_histogram(tmp_path: Path) -> None:
    now = 1_700_000_000 // 3600 * 3600 + 1800
    with W.open_store(str(tmp_path / "s")) as st:
        src = W.Source(-1, "x", "/x", "from", "elf")
        for i, (sig, t) in enumerate([("A", now), ("A", now - 3600), ("A", now - 3 * 3600),
                                      ("B", now - 100 * 3600), ("A", now - 10)]):
            W._record(st, src, W.Facts(signature=sig, time=t, summary=f"s{sig}"),
                      f"{i:064x}", 1, None if i == 4 else f"{i}.core.zst", "zstd")
        listing = ix.list_groups(st.conn, st.index_path, bucket="hour", buckets=6, now=now)
    a, b = listing.groups
    assert (a.signature, a.count, a.stored, a.counted) == ("A", 4, 3, 1)
    assert a.histogram == (0, 0, 1, 0, 1, 2) and a.last_time == now
    assert (b.signature, b.histogram, b.first_time) == ("B", (0,) * 6, now - 100 * 3600)
    assert listing.total == 5
    days = ix.list_groups(st_conn := ix.connect(str(tmp_path / "s" / ix.INDEX_NAME)),
                          "", bucket="day", buckets=7, now=now)
    st_conn.close()
    assert days.groups[0].histogram[-1] == 4 and sum(days.groups[1].histogram) == 1


def test_list_groups_100k(tmp_path: Path) -> None:
    """Every one of 100,000 crashes counted in its group (the time it takes is
    scripts/bench --only store's figure, not a test's)."""
    with W.open_store(str(tmp_path / "s")) as st:
        W.fill_synthetic(st, 100_000, signatures=500)
    conn = ix.connect(str(tmp_path / "s" / ix.INDEX_NAME))
    listing = ix.list_groups(conn, "")
    conn.close()
    assert listing.total == 100_000
    assert sum(g.count for g in listing.groups) == 100_000


def test_reader_sees_committed_rows_while_a_writer_holds_the_lock(tmp_path: Path) -> None:
    with W.open_store(str(tmp_path / "s")) as st:
        W.fill_synthetic(st, 10)
        st.conn.execute("BEGIN IMMEDIATE")
        t0 = time.perf_counter()
        ro = ix.connect(st.index_path)
        assert ix.list_groups(ro, st.index_path).total == 10  # WAL: readers do not wait
        ro.close()
        st.conn.execute("ROLLBACK")
        assert time.perf_counter() - t0 < 1


def test_sent_marks_survive_migration_and_follow_their_crash(tmp_path: Path) -> None:
    """Version 4's ``sent`` table on an index migrated from version 1: a crash
    marked pending, then sent; another failed; dropping a crash drops its mark
    (so a reused id can never look sent)."""
    from crashkit.writers import sent as S

    path = tmp_path / ix.INDEX_NAME
    make_v1(path)
    from crashkit.commands.list import open_index

    conn, p = open_index(str(tmp_path), writable=True)
    target = "https://sentry.example/7"
    S.mark_pending(conn, p, 1, target, "e1" * 16, 1)
    assert ix.sent_to(conn, p, target)[1].status == "pending"
    S.mark_sent(conn, p, 1, target, when=1234)
    S.mark_pending(conn, p, 2, target, "e2" * 16, 1)
    S.mark_failed(conn, p, 2, target, "HTTP 503: busy")
    S.mark_pending(conn, p, 2, target, "e2" * 16, 2)  # the retry keeps the event id
    marks = ix.sent_to(conn, p, target)
    assert (marks[1].status, marks[1].sent_at, marks[1].event_id) == ("sent", 1234, "e1" * 16)
    assert (marks[2].status, marks[2].attempts, marks[2].last_error) == \
        ("pending", 2, "HTTP 503: busy")
    assert ix.sent_to(conn, p, "https://other.example/1") == {}
    # Only crashes with a stored core are exported by default, oldest first.
    assert [r.id for r in ix.exportable(conn, p)] == [1]
    assert [r.id for r in ix.exportable(conn, p, ids=(2, 1))] == [1, 2]
    conn.execute("DELETE FROM crashes WHERE id = 1")
    assert set(ix.sent_to(conn, p, target)) == {2}
    conn.close()


def test_settings_file_rules(tmp_path: Path) -> None:
    import os

    from crashkit.errors import InputError
    from crashkit.host.settings import read_settings

    good = tmp_path / "crashkit.toml"
    good.write_text('[export]\nsentry_dsn = "https://k@sentry.example/1"\n')
    good.chmod(0o600)
    assert read_settings(str(good))["export"]["sentry_dsn"] == "https://k@sentry.example/1"
    bad = tmp_path / "bad.toml"
    bad.write_text("[export\n")
    with pytest.raises(InputError, match="not valid TOML"):
        read_settings(str(bad))
    if os.geteuid() == 0:
        good.chmod(0o666)  # anyone could point this host's crashes elsewhere
        with pytest.raises(InputError, match="writable by root alone"):
            read_settings(str(good))
    link = tmp_path / "link.toml"
    link.symlink_to(good)
    with pytest.raises(InputError, match="cannot open"):
        read_settings(str(link))
