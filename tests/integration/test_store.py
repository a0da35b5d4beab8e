"""crashkit.writers.store against real failures: an ingest SIGKILLed at every
step and at many instants, then run again, ends with the core stored exactly
once; a store on a full filesystem (a real 4 MiB tmpfs, so root) leaves the
source and the index as they were."""

from __future__ import annotations

import errno
import hashlib
import os
import random
import signal
import time
from pathlib import Path

import pytest
import zstandard

from crashkit.store import index as ix
from crashkit.writers import store as W
from tests.conftest import small_tmpfs
from tests.unit.cores import synthetic_core

pytestmark = pytest.mark.integration

STEPS: tuple[W.Step, ...] = ("hashed", "linked", "written", "synced", "verified", "recorded",
                             "renamed", "source_removed")


def big_core(mib: int) -> bytes:
    """A core whose memory is half random, half zeros, as real ones are:
    slow enough to copy that a timed kill lands inside the copy."""
    return synthetic_core(loads=mib, size=1 << 20)


def run_child(store: Path, src_dir: Path, name: str, *, kill_at: W.Step | None = None,
              kill_after: float | None = None) -> int:
    """Ingest in a forked child; SIGKILL it at a step (from inside) or after
    a delay (from outside). The child's wait status."""
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 0
        try:
            def step(s: W.Step) -> None:
                if s == kill_at:
                    os.kill(os.getpid(), signal.SIGKILL)

            with W.open_store(str(store)) as st:
                fd = os.open(src_dir, os.O_RDONLY | os.O_DIRECTORY)
                W.ingest(st, W.Source(fd, name, str(src_dir / name), "from", "elf"),
                         W.Facts(signature="sig", time=1), on_step=step)
        except BaseException as exc:  # noqa: BLE001 - any failure becomes the exit code
            os.write(2, f"child ingest failed: {exc!r}\n".encode())
            code = 3
        os._exit(code)
    if kill_after is not None:
        time.sleep(kill_after)
        os.kill(pid, signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    return status


def check_never_lost(store: Path, src: Path, sha: str) -> None:
    """Between runs: the core is in the source, or stored and indexed."""
    if src.exists():
        return
    conn = ix.connect(str(store / ix.INDEX_NAME))
    row = conn.execute("SELECT stored_name FROM crashes WHERE sha256 = ?", (sha,)).fetchone()
    conn.close()
    assert row is not None, "source gone and no index row"
    assert row[0] and (store / W.CRASHES_DIR / row[0]).exists(), \
        "source gone, stored file missing"


def check_exactly_once(store: Path, src: Path, core: bytes) -> None:
    sha = hashlib.sha256(core).hexdigest()
    conn = ix.connect(str(store / ix.INDEX_NAME))
    rows = conn.execute("SELECT stored_name, size FROM crashes WHERE sha256 = ?",
                        (sha,)).fetchall()
    groups = ix.list_groups(conn, "").groups
    conn.close()
    assert len(rows) == 1 and rows[0][1] == len(core)
    assert [(g.signature, g.count, g.stored) for g in groups] == [("sig", 1, 1)]
    files = os.listdir(store / W.CRASHES_DIR)
    assert files == [rows[0][0]], files
    data = (store / W.CRASHES_DIR / rows[0][0]).read_bytes()
    if rows[0][0].endswith(".zst"):
        data = b"".join(zstandard.ZstdDecompressor().read_to_iter(data))
    assert hashlib.sha256(data).hexdigest() == sha
    assert not src.exists()


@pytest.mark.parametrize("method", ["copy", "link"])
@pytest.mark.parametrize("kill_at", STEPS)
def test_killed_at_each_step_then_rerun(tmp_path: Path, method: str, kill_at: W.Step) -> None:
    core = synthetic_core(loads=8, size=1 << 16)
    src_dir = tmp_path / "src"
    src_dir.mkdir(mode=0o700)
    if method == "copy":
        src_dir.chmod(0o1777)  # others may write it: never linked
    (src_dir / "core").write_bytes(core)
    store = tmp_path / "store"
    status = run_child(store, src_dir, "core", kill_at=kill_at)
    path_steps = {"link": ("hashed", "linked", "recorded", "source_removed"),
                  "copy": ("written", "synced", "verified", "recorded", "renamed",
                           "source_removed")}
    applies = kill_at in path_steps[method]
    if applies:
        assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
    else:
        assert status == 0  # that step is not on this method's path
    check_never_lost(store, src_dir / "core", hashlib.sha256(core).hexdigest())
    if (src_dir / "core").exists():
        # The rerun finishes the job: stores, restores or just unlinks.
        assert run_child(store, src_dir, "core") == 0
    check_exactly_once(store, src_dir / "core", core)


def test_killed_at_random_instants(tmp_path: Path) -> None:
    core = big_core(24)
    sha = hashlib.sha256(core).hexdigest()
    src_dir = tmp_path / "src"
    src_dir.mkdir()
    src_dir.chmod(0o1777)
    store = tmp_path / "store"
    store.mkdir()
    # How long one whole ingest takes here, to spread the kills over it.
    (src_dir / "core").write_bytes(core)
    t0 = time.monotonic()
    assert run_child(tmp_path / "timing", src_dir, "core") == 0
    whole = time.monotonic() - t0
    rnd = random.Random(7)
    kills = 0
    for i in range(12):
        if not (src_dir / "core").exists():
            (src_dir / "core").write_bytes(core)
        store_i = store / str(i)
        delay = rnd.uniform(0, whole * 1.1)
        status = run_child(store_i, src_dir, "core", kill_after=delay)
        kills += os.WIFSIGNALED(status)
        check_never_lost(store_i, src_dir / "core", sha)
        while (src_dir / "core").exists():
            assert run_child(store_i, src_dir, "core") == 0
        check_exactly_once(store_i, src_dir / "core", core)
    assert kills >= 6, f"only {kills} of 12 runs were killed before finishing"


def test_store_filesystem_full(tmp_path: Path) -> None:
    with small_tmpfs(tmp_path / "small", "4m") as small:
        store = small / "store"
        with W.open_store(str(store)) as st:
            W.fill_synthetic(st, 50)
        index_before = (store / ix.INDEX_NAME).read_bytes()
        src_dir = tmp_path / "src"
        src_dir.mkdir()
        core = synthetic_core(loads=1, size=16 << 20)  # 8 MiB random: does not fit
        (src_dir / "core").write_bytes(core)
        before = (src_dir / "core").stat()
        with W.open_store(str(store)) as st:
            fd = os.open(src_dir, os.O_RDONLY | os.O_DIRECTORY)
            with pytest.raises(W.StoreFullError, match="full") as err:
                W.ingest(st, W.Source(fd, "core", str(src_dir / "core"), "from", "elf"),
                         W.Facts(signature="x"))
            os.close(fd)
            assert str(store) in str(err.value)
            assert ix.list_groups(st.conn, st.index_path).total == 50
        assert os.listdir(store / W.CRASHES_DIR) == []
        after = (src_dir / "core").stat()
        assert (after.st_ino, after.st_size, after.st_mtime_ns) == \
            (before.st_ino, before.st_size, before.st_mtime_ns)
        assert (src_dir / "core").read_bytes() == core
        conn = ix.connect(str(store / ix.INDEX_NAME))
        assert ix.list_groups(conn, "").total == 50
        conn.close()
        del index_before


def test_index_cannot_grow(tmp_path: Path) -> None:
    """Same filesystem (so the core is hard-linked, no data to write), but no
    room left for the index's write-ahead log: the link is taken back, the
    source and the index stay as they were."""
    with small_tmpfs(tmp_path / "small", "4m") as small:
        src_dir = small / "src"
        src_dir.mkdir(mode=0o700)
        core = synthetic_core(loads=4, size=1 << 16)
        (src_dir / "core").write_bytes(core)
        store = small / "store"
        with W.open_store(str(store)) as st:
            W.fill_synthetic(st, 20)
        with W.open_store(str(store)) as st:
            filler = os.open(small / "filler", os.O_WRONLY | os.O_CREAT, 0o600)
            try:
                while True:
                    os.write(filler, b"\xff" * 4096)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
            finally:
                os.close(filler)
            fd = os.open(src_dir, os.O_RDONLY | os.O_DIRECTORY)
            steps: list[W.Step] = []
            with pytest.raises(W.StoreFullError, match="index could not grow"):
                W.ingest(st, W.Source(fd, "core", str(src_dir / "core"), "from", "elf"),
                         W.Facts(signature="x"), on_step=steps.append)
            os.close(fd)
            assert steps == ["hashed", "linked"]  # the link was made, then taken back
            assert os.listdir(store / W.CRASHES_DIR) == []
        (small / "filler").unlink()
        assert (src_dir / "core").read_bytes() == core
        conn = ix.connect(str(store / ix.INDEX_NAME))
        assert ix.list_groups(conn, "").total == 20
        conn.close()
