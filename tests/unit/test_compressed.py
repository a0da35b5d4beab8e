"""crashkit.elf.compressed over real cores compressed in-process by the same
libraries crashkit uses (zstandard, lzma, lz4.frame, gzip). Copies made by
the zstd/xz/lz4 command-line tools are in tests/integration/test_compressed.py."""

from __future__ import annotations

import gzip
import hashlib
import lzma
import os
from pathlib import Path

import lz4.frame  # type: ignore[import-untyped]
import pytest
import zstandard

from crashkit.elf import compressed as C
from crashkit.errors import CoreFormatError, InputError
from tests.unit.cores import core_bytes

COMPRESSORS = {
    "zstd": lambda b: zstandard.ZstdCompressor(level=3).compress(b),
    "xz": lambda b: lzma.compress(b, format=lzma.FORMAT_XZ),
    "lz4": lambda b: lz4.frame.compress(b),
    "gzip": lambda b: gzip.compress(b),
}


@pytest.fixture(scope="module")
def core() -> bytes:
    return core_bytes()


@pytest.mark.parametrize("kind", sorted(COMPRESSORS))
def test_front_and_whole(tmp_path: Path, core: bytes, kind: str) -> None:
    path = tmp_path / f"core.{kind}"
    path.write_bytes(COMPRESSORS[kind](core))
    assert C.detect(path.read_bytes()[:C.MAGIC_BYTES]) == kind
    front = C.open_front(str(path), 4096)
    assert front.kind == kind and front.data == core[:4096] and not front.complete
    whole = C.open_front(str(path), len(core) + 10)
    assert whole.data == core and whole.complete
    out = tmp_path / "out"
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        got = C.decompress_to(str(path), fd)
    finally:
        os.close(fd)
    assert (got.kind, got.size, got.sha256) == (kind, len(core), hashlib.sha256(core).hexdigest())
    assert out.read_bytes() == core


@pytest.mark.parametrize("kind", sorted(COMPRESSORS))
def test_truncated_stream_is_an_error(tmp_path: Path, core: bytes, kind: str) -> None:
    data = COMPRESSORS[kind](core)
    path = tmp_path / f"cut.{kind}"
    path.write_bytes(data[: len(data) * 3 // 4])
    # The front is still readable: notes-only analysis of a cut copy works.
    assert C.open_front(str(path), 512).data == core[:512]
    fd = os.open(tmp_path / "out", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        with pytest.raises(CoreFormatError, match=r"truncated|damaged"):
            C.decompress_to(str(path), fd)
    finally:
        os.close(fd)


def test_concatenated_zstd_frames(tmp_path: Path, core: bytes) -> None:
    half = len(core) // 2
    z = zstandard.ZstdCompressor()
    path = tmp_path / "two.zst"
    path.write_bytes(z.compress(core[:half]) + z.compress(core[half:]))
    fd = os.open(tmp_path / "out", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        got = C.decompress_to(str(path), fd)
    finally:
        os.close(fd)
    assert got.size == len(core) and (tmp_path / "out").read_bytes() == core


def test_zeros_stay_bounded(tmp_path: Path) -> None:
    """256 MiB of zeros compress to a few KiB; every chunk handed out stays at
    most 1 MiB and the front read does not decompress the rest."""
    z = zstandard.ZstdCompressor().compressobj()
    path = tmp_path / "zeros.zst"
    with path.open("wb") as f:
        block = bytes(1 << 20)
        for _ in range(256):
            f.write(z.compress(block))
        f.write(z.flush())
    assert path.stat().st_size < 1 << 20
    front = C.open_front(str(path), 100)
    assert front.data == bytes(100)
    fd = os.open(path, os.O_RDONLY)
    try:
        sizes = [len(c) for c in C.iter_decompressed(fd)]
    finally:
        os.close(fd)
    assert sum(sizes) == 256 << 20 and max(sizes) <= 1 << 20


def test_not_compressed_and_bad_streams(tmp_path: Path, core: bytes) -> None:
    plain = tmp_path / "core"
    plain.write_bytes(core[:4096])
    assert C.detect(core[:8]) is None
    with pytest.raises(CoreFormatError, match="unknown magic"):
        C.open_front(str(plain), 10)
    fake = tmp_path / "core.zst"
    fake.write_bytes(b"\x28\xb5\x2f\xfd" + b"not zstd at all" * 100)
    with pytest.raises(CoreFormatError, match="damaged zstd"):
        C.open_front(str(fake), 10)


def test_symlink_and_fifo_refused(tmp_path: Path, core: bytes) -> None:
    target = tmp_path / "real.zst"
    target.write_bytes(COMPRESSORS["zstd"](core[:1000]))
    (tmp_path / "link.zst").symlink_to(target)
    with pytest.raises(InputError, match="cannot open"):
        C.open_front(str(tmp_path / "link.zst"), 10)
    os.mkfifo(tmp_path / "fifo.zst")
    with pytest.raises(InputError, match="not a regular file"):
        C.open_front(str(tmp_path / "fifo.zst"), 10)


def test_open_stream_reads_like_a_file(tmp_path: Path, core: bytes) -> None:
    path = tmp_path / "c.xz"
    path.write_bytes(COMPRESSORS["xz"](core))
    fd = os.open(path, os.O_RDONLY)
    try:
        f = C.open_stream(fd)
        assert f.read(64) == core[:64]
        assert f.read() == core[64:]
    finally:
        os.close(fd)
