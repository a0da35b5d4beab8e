"""crashkit.writers.store on real directories in tmp_path: link and copy,
exactly once on a rerun, what a killed run leaves, the lock, and the
sources it must refuse. Killing a real ingest with SIGKILL and a full
filesystem are in tests/integration/test_store.py."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

import pytest
import zstandard

from crashkit.elf import compressed
from crashkit.errors import InputError
from crashkit.store import index as ix
from crashkit.writers import store as W
from tests.unit.cores import core_bytes
from tests.unit.test_coresources import write_crash


@pytest.fixture(scope="module")
def core() -> bytes:
    return core_bytes()


def source(d: Path, name: str, fmt: W.SourceFormat = "elf") -> W.Source:
    fd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
    return W.Source(fd, name, str(d / name), "from", fmt)


def stored_content(store: Path, name: str) -> bytes:
    data = (store / W.CRASHES_DIR / name).read_bytes()
    return zstandard.ZstdDecompressor().decompressobj().decompress(data) \
        if name.endswith(".zst") else data


def shared_dir(tmp_path: Path) -> Path:
    """A source directory others may write (like a world-writable /tmp, or a
    worker-owned core directory): a hard link would not be safe, so copy."""
    d = tmp_path / "shared"
    d.mkdir()
    d.chmod(0o1777)
    return d


def test_copy_then_rerun_is_exactly_once(tmp_path: Path, core: bytes) -> None:
    src_dir = shared_dir(tmp_path)
    (src_dir / "core.42").write_bytes(core)
    store = tmp_path / "store"
    facts = W.Facts(pid=42, exe="/usr/sbin/nginx", signal=11, si_code=1, time=1_700_000_000,
                    modules=(ix.ModuleRef("/usr/sbin/nginx", "74429228deec6223"),),
                    signature="6c73dd1c6acab265", summary="NULL deref", host="web1")
    with W.open_store(str(store)) as st:
        src = source(src_dir, "core.42")
        got = W.ingest(st, src, facts)
        assert (got.status, got.method, got.source_removed) == ("stored", "copy", True)
        assert got.size == len(core) and got.sha256 == hashlib.sha256(core).hexdigest()
        assert got.stored_name == f"{got.sha256}.core.zst"
        assert not (src_dir / "core.42").exists()
        assert stored_content(store, got.stored_name) == core
        assert got.stored_bytes == (store / W.CRASHES_DIR / got.stored_name).stat().st_size
        # The same core again (another copy of it turns up): counted once.
        (src_dir / "core.42").write_bytes(core)
        again = W.ingest(st, src, facts)
        assert (again.status, again.crash_id, again.source_removed) == \
            ("already", got.crash_id, True)
        row = ix.get_crash(st.conn, st.index_path, got.crash_id)
        assert row is not None and row.modules == facts.modules and row.host == "web1"
        assert (row.pid, row.signal, row.si_code, row.compression) == (42, 11, 1, "zstd")
        assert ix.list_groups(st.conn, st.index_path).total == 1
        os.close(src.dir_fd)
    mode = stat.S_IMODE((store / W.CRASHES_DIR).stat().st_mode)
    assert mode == 0o700 and stat.S_IMODE(store.stat().st_mode) == 0o700
    assert stat.S_IMODE((store / ix.INDEX_NAME).stat().st_mode) == 0o600
    assert stat.S_IMODE((store / W.CRASHES_DIR / got.stored_name).stat().st_mode) == 0o600


def test_same_filesystem_links(tmp_path: Path, core: bytes) -> None:
    src_dir = tmp_path / "private"
    src_dir.mkdir(mode=0o700)
    (src_dir / "core").write_bytes(core)
    ino = (src_dir / "core").stat().st_ino
    with W.open_store(str(tmp_path / "store")) as st:
        src = source(src_dir, "core")
        got = W.ingest(st, src, W.Facts(signature="s"))
        os.close(src.dir_fd)
    assert (got.status, got.method, got.source_removed) == ("stored", "link", True)
    assert got.stored_name == f"{hashlib.sha256(core).hexdigest()}.core"
    assert (tmp_path / "store" / W.CRASHES_DIR / got.stored_name).stat().st_ino == ino


def test_compressed_sources(tmp_path: Path, core: bytes) -> None:
    """A systemd-coredump .zst and .xz (made as it makes them) and an apport
    .crash: the index knows the core by its decompressed content."""
    import lzma

    src_dir = shared_dir(tmp_path)
    boot = "0f1e2d3c4b5a69788796a5b4c3d2e1f0"
    (src_dir / f"core.nginx.33.{boot}.1.1000000.zst").write_bytes(
        zstandard.ZstdCompressor().compress(core))
    (src_dir / f"core.nginx.33.{boot}.2.2000000.xz").write_bytes(lzma.compress(core[:-1]))
    write_crash(src_dir / "_usr_sbin_nginx.33.crash", core[:-2])
    sha = [hashlib.sha256(c).hexdigest() for c in (core, core[:-1], core[:-2])]
    with W.open_store(str(tmp_path / "store")) as st:
        names = sorted(p.name for p in src_dir.iterdir())
        fmts: dict[str, W.SourceFormat] = {"zst": "zstd", "xz": "xz", "crash": "apport-crash"}
        results = {}
        for name in names:
            src = source(src_dir, name, fmts[name.rsplit(".", 1)[1]])
            results[name] = W.ingest(st, src, W.Facts(),
                                     remove_source=not name.endswith(".crash"))
            os.close(src.dir_fd)
    got = {r.sha256 for r in results.values()}
    assert got == set(sha)
    for r in results.values():
        assert r.method == "copy" and r.stored_name is not None
        data = stored_content(tmp_path / "store", r.stored_name)
        assert hashlib.sha256(data).hexdigest() == r.sha256
    # apport's report stays (it is apport's); the systemd files are taken.
    assert sorted(p.name for p in src_dir.iterdir()) == ["_usr_sbin_nginx.33.crash"]


def test_bad_sources_are_refused_and_kept(tmp_path: Path, core: bytes) -> None:
    src_dir = shared_dir(tmp_path)
    (src_dir / "fake.zst").write_bytes(b"\x28\xb5\x2f\xfd" + b"junk" * 100)
    (src_dir / "cut.zst").write_bytes(zstandard.ZstdCompressor().compress(core)[:-50])
    write_crash(src_dir / "nocore.crash", None)
    (src_dir / "link").symlink_to(src_dir / "fake.zst")
    os.mkfifo(src_dir / "fifo")
    cases = [("fake.zst", "zstd", "damaged zstd"), ("cut.zst", "zstd", "ends early"),
             ("nocore.crash", "apport-crash", "no CoreDump"),
             ("link", "elf", "cannot open the core"), ("fifo", "elf", "not a regular file")]
    before = {p.name: p.lstat() for p in src_dir.iterdir()}
    with W.open_store(str(tmp_path / "store")) as st:
        for name, fmt, why in cases:
            src = source(src_dir, name, fmt)  # type: ignore[arg-type]
            with pytest.raises(InputError if fmt != "zstd" or name == "link" else
                               compressed.CoreFormatError, match=why):
                W.ingest(st, src, W.Facts())
            os.close(src.dir_fd)
        assert ix.list_groups(st.conn, st.index_path).total == 0
        assert os.listdir(tmp_path / "store" / W.CRASHES_DIR) == []
    after = {p.name: p.lstat() for p in src_dir.iterdir()}
    assert {k: (v.st_ino, v.st_size) for k, v in before.items()} == \
        {k: (v.st_ino, v.st_size) for k, v in after.items()}


def test_a_core_that_changes_while_copied_is_left(tmp_path: Path, core: bytes) -> None:
    src_dir = shared_dir(tmp_path)
    path = src_dir / "core"
    path.write_bytes(core[:-4096])

    def grow(step: W.Step) -> None:
        if step == "synced":
            with path.open("ab") as f:
                f.write(core[-4096:])

    with W.open_store(str(tmp_path / "store")) as st:
        src = source(src_dir, "core")
        with pytest.raises(InputError, match="changed while it was being copied"):
            W.ingest(st, src, W.Facts(), on_step=grow)
        os.close(src.dir_fd)
        assert os.listdir(tmp_path / "store" / W.CRASHES_DIR) == []
        assert ix.list_groups(st.conn, st.index_path).total == 0
    assert path.read_bytes() == core


def test_counted_only(tmp_path: Path, core: bytes) -> None:
    src_dir = shared_dir(tmp_path)
    (src_dir / "core").write_bytes(core)
    with W.open_store(str(tmp_path / "store")) as st:
        src = source(src_dir, "core")
        got = W.ingest(st, src, W.Facts(signature="s"), keep_core=False)
        again = W.ingest(st, src, W.Facts(signature="s"), keep_core=False)
        os.close(src.dir_fd)
        (g,) = ix.list_groups(st.conn, st.index_path).groups
    assert (got.status, got.stored_name, again.status) == ("counted", None, "already")
    assert (g.count, g.stored, g.counted) == (1, 0, 1)
    assert (src_dir / "core").exists()


def test_lock_serialises(tmp_path: Path) -> None:
    with W.open_store(str(tmp_path / "store")), pytest.raises(W.StoreLockedError), \
            W.open_store(str(tmp_path / "store"), wait=False):
        pass
    with W.open_store(str(tmp_path / "store"), wait=False):
        pass  # released when the first closed


def test_leftover_temporaries_are_removed(tmp_path: Path) -> None:
    with W.open_store(str(tmp_path / "store")):
        pass
    crashes = tmp_path / "store" / W.CRASHES_DIR
    (crashes / f"{W.TMP_PREFIX}999-dead").write_bytes(b"half a core")
    with W.open_store(str(tmp_path / "store")) as st:
        assert st.cleaned == (f"{W.TMP_PREFIX}999-dead",)
    assert os.listdir(crashes) == []


def test_unsafe_store_directories(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "alias").symlink_to(tmp_path / "real")
    with pytest.raises(W.StoreError, match="symlink"), W.open_store(str(tmp_path / "alias")):
        pass
    open_dir = tmp_path / "open"
    open_dir.mkdir()
    open_dir.chmod(0o777)
    with pytest.raises(W.StoreError, match="writable by others"), \
            W.open_store(str(open_dir)):
        pass
    # An existing store directory others may pass through (setup's core
    # directory can live inside it) is kept as it is; its crashes/ is 0700.
    walk = tmp_path / "walk"
    walk.mkdir()
    walk.chmod(0o711)
    with W.open_store(str(walk)):
        pass
    assert stat.S_IMODE(walk.stat().st_mode) == 0o711
    assert stat.S_IMODE((walk / W.CRASHES_DIR).stat().st_mode) == 0o700


def test_reindex_after_damage(tmp_path: Path, core: bytes) -> None:
    src_dir = shared_dir(tmp_path)
    priv = tmp_path / "priv"
    priv.mkdir(mode=0o700)
    (src_dir / "core.1").write_bytes(core)
    (priv / "core.2").write_bytes(core[:-7])
    store = tmp_path / "store"
    with W.open_store(str(store)) as st:
        for d, name in ((src_dir, "core.1"), (priv, "core.2")):
            src = source(d, name)
            W.ingest(st, src, W.Facts(signature="s"))
            os.close(src.dir_fd)
    (store / W.CRASHES_DIR / "stray.txt").write_text("not ours")
    (store / ix.INDEX_NAME).write_bytes(b"\0damaged" * 512)
    with pytest.raises(ix.IndexDamagedError, match="--reindex"), W.open_store(str(store)):
        pass
    seen: list[str] = []

    def facts_for(name: str, fd: int) -> W.Facts:
        seen.append(name)
        return W.Facts(signature="again", pid=len(seen))

    done = W.reindex(str(store), facts_for=facts_for)
    assert done.recorded == 2 and done.skipped == (("stray.txt", "not a name the store gives"),)
    assert any(p.name.startswith(f"{ix.INDEX_NAME}.damaged-") for p in store.iterdir())
    with W.open_store(str(store)) as st:
        (g,) = ix.list_groups(st.conn, st.index_path).groups
        assert (g.signature, g.count, g.stored) == ("again", 2, 2)
        for c in (core, core[:-7]):
            row = ix.find_by_content(st.conn, st.index_path, hashlib.sha256(c).hexdigest(),
                                     len(c))
            assert row is not None and row.source_kind == "store"
