"""Where unit tests get ELF core bytes: a real crash core made by
scripts/make-sample-cores when the build has made them (CRASHKIT_CORES points
elsewhere, e.g. at the main checkout's build/cores), else a synthetic core
from tests/elfwriter.py laid out as the kernel lays one out."""

from __future__ import annotations

import random

from tests.conftest import CORES
from tests.elfwriter import SynthCore, SynthThread

NAMES = ("nginx-null", "mt-plugin", "mismatch", "truncated")


def real_core_path() -> str | None:
    for name in NAMES:
        path = CORES / name / "core"
        if path.exists():
            return str(path)
    return None


def core_bytes() -> bytes:
    path = real_core_path()
    if path is not None:
        with open(path, "rb") as f:
            return f.read()
    return synthetic_core()


def synthetic_core(loads: int = 4, size: int = 65536) -> bytes:
    """Memory half zeros, half seeded random bytes: compressors make several
    blocks of it, as they do of a real core."""
    rnd = random.Random(loads * size)
    data = [rnd.randbytes(size // 2) + bytes(size // 2) for _ in range(loads)]
    core = SynthCore(threads=[SynthThread(4242, {"rip": 0x401000, "rsp": 0x7ffd0000})],
                     loads=[(0x400000 + i * 0x100000, d) for i, d in enumerate(data)])
    return core.build()
