"""analyze reads section headers with struct (pyelftools costs ~0.1 s to
import) and keeps pyelftools for what it alone reads the same way. The two
must agree: the function table of real system files, both ways."""

from __future__ import annotations

import glob
import os

import pytest

from crashkit.elf import symbols

pytestmark = pytest.mark.integration

FILES = sorted({os.path.realpath(p) for pattern in (
    "/usr/lib/x86_64-linux-gnu/*.so*", "/usr/sbin/*", "/usr/bin/*",
    "/usr/lib/nginx/modules/*.so", "/usr/lib/debug/.build-id/*/*.debug")
    for p in glob.glob(pattern) if os.path.isfile(p)})


def test_struct_and_pyelftools_give_the_same_tables() -> None:
    compared = 0
    for path in FILES[:: max(1, len(FILES) // 400)]:
        with open(path, "rb") as fh:
            if fh.read(4) != b"\x7fELF":
                continue
            fh.seek(0)
            for names in ((".symtab",), (".dynsym",)):
                fast = symbols._function_table(path, names)
                fh.seek(0)
                try:
                    slow = symbols._function_table_elftools(fh, path, names, False)
                except Exception:  # noqa: BLE001 - pyelftools refuses it: so may we
                    continue
                assert (fast.entries if fast else None) == (slow.entries if slow else None), \
                    (path, names)
                compared += 1
    assert compared >= 200, compared
