"""gdb's address-space limit: CRASHKIT_GDB_MEMORY, read and described."""

from __future__ import annotations

import pytest


def test_gdb_memory_limit_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from crashkit.errors import InputError
    from crashkit.gdb.spawn import GDB_MEMORY_LIMIT, describe_limit, gdb_memory_limit

    monkeypatch.delenv("CRASHKIT_GDB_MEMORY", raising=False)
    assert gdb_memory_limit() == GDB_MEMORY_LIMIT == 4 << 30
    for text, want in (("8G", 8 << 30), ("8GiB", 8 << 30), ("512m", 512 << 20),
                       ("1t", 1 << 40), ("1048576", 1 << 20), (" unlimited ", None)):
        monkeypatch.setenv("CRASHKIT_GDB_MEMORY", text)
        assert gdb_memory_limit() == want, text
    for bad in ("lots", "0", "-1G", "1.5G", "G"):
        monkeypatch.setenv("CRASHKIT_GDB_MEMORY", bad)
        with pytest.raises(InputError, match="is not a size"):
            gdb_memory_limit()
    assert [describe_limit(x) for x in (4 << 30, 512 << 20, 1 << 40, 1000, None)] == [
        "4 GiB", "512 MiB", "1 TiB", "1000 bytes", "unlimited"]
