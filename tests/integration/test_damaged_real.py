"""Real cores, damaged: cut short at many points and with bytes flipped in
their headers and notes. Every case is either one CrashkitError naming the
file or an analysis; never another exception."""

from __future__ import annotations

import random
import struct
from pathlib import Path
from typing import Any

import pytest

from crashkit.commands.analyze import Options, analyze
from crashkit.errors import CrashkitError
from tests.conftest import fixture

pytestmark = pytest.mark.integration


def note_end(data: bytes) -> int:
    phoff, = struct.unpack_from("<Q", data, 32)
    phnum, = struct.unpack_from("<H", data, 56)
    for i in range(phnum):
        p_type, _f, off, _v, _p, filesz = struct.unpack_from("<IIQQQQ", data, phoff + 56 * i)
        if p_type == 4:
            return int(off + filesz)
    raise AssertionError("no PT_NOTE")


def test_real_core_cut_anywhere(manifest: dict[str, Any], tmp_path: Path) -> None:
    fx = fixture(manifest, "mt-plugin")
    full = Path(fx["core"]).read_bytes()
    end = note_end(full)
    cut_path = tmp_path / "core"
    cuts = sorted({*range(0, end + 1, max(1, end // 400)), end,
                   *range(end, len(full), 100_003)})
    partial = 0
    for cut in cuts:
        cut_path.write_bytes(full[:cut])
        try:
            a = analyze(str(cut_path))
        except CrashkitError as exc:
            assert str(cut_path) in str(exc)
            continue
        partial += 1
        assert a.core.truncated and a.core.expected_size == len(full)
        if cut >= end:
            # Notes whole: every fact they hold is there.
            assert len(a.threads) == fx["threads"]
            assert a.core.signal is not None
            assert a.core.signal.fault_address == fx["fault_address"]
            assert a.core.exe == fx["exe"]
            assert a.crash_frame is not None and a.crash_frame.module == fx["crash_module"]
    assert partial >= len([c for c in cuts if c >= end])


def test_real_core_cut_through_gdb(manifest: dict[str, Any], tmp_path: Path) -> None:
    """The same, with gdb (the default): a cut core may leave gdb with nothing
    to unwind, never crashkit without its notes."""
    fx = fixture(manifest, "nginx-null")
    full = Path(fx["core"]).read_bytes()
    end = note_end(full)
    path = tmp_path / "core"
    for cut in [end, end + 4096, len(full) // 3, len(full) // 2, len(full) - 4096]:
        path.write_bytes(full[:cut])
        a = analyze(str(path), Options(use_gdb=True, gdb_timeout=30))
        assert a.core.truncated and a.core.signal is not None
        assert a.core.signal.fault_address == fx["fault_address"]
        assert a.crash_frame is not None and a.crash_frame.pc == a.threads[0].pc
        assert a.crash_frame.function == fx["crash_function"]


def test_real_core_with_flipped_bytes(manifest: dict[str, Any], tmp_path: Path) -> None:
    fx = fixture(manifest, "nginx-null")
    full = bytearray(Path(fx["core"]).read_bytes())
    end = note_end(bytes(full))
    rng = random.Random(1234)
    path = tmp_path / "core"
    errors = 0
    for _ in range(400):
        data = bytearray(full[:end])  # headers and notes only: the part we parse
        for _ in range(rng.randint(1, 8)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        path.write_bytes(bytes(data))
        try:
            analyze(str(path))
        except CrashkitError as exc:
            errors += 1
            assert str(path) in str(exc)
    assert errors < 400  # most flips leave a readable core
