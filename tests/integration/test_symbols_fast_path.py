"""analyze reads section headers with struct (pyelftools costs ~0.1 s to
import) and keeps pyelftools for what it alone reads the same way. The two
must agree: the function table of real system files, both ways."""

from __future__ import annotations

import glob
import os

import pytest

from crashkit.elf import symbols
from tests.conftest import unavailable

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


def test_debug_files_with_compressed_dwarf_take_the_fast_path(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Debian's debug files compress their DWARF sections, not .symtab: the
    table is still read with struct (pyelftools would cost ~0.1 s to import
    and ~30 ms on libc's), and it is the table pyelftools reads."""
    debug = sorted(glob.glob("/usr/lib/debug/.build-id/*/*.debug"))
    if not debug:
        unavailable("no debug file under /usr/lib/debug (scripts/bootstrap installs libc6-dbg)")
    compressed = 0
    for path in debug:
        with open(path, "rb") as fh:
            sections = symbols._sections(fh.fileno())
        assert sections is not None, path
        if any(isinstance(k, int) and v[4] & symbols.SHF_COMPRESSED
               for k, v in sections.items()):
            compressed += 1
        slow = None
        with open(path, "rb") as fh:
            slow = symbols._function_table_elftools(fh, path, (".symtab",), False)
        with monkeypatch.context() as m:
            m.setattr(symbols, "_function_table_elftools",
                      lambda *a, path=path: pytest.fail(f"pyelftools was used for {path}"))
            symbols._TABLES.clear()
            fast = symbols._function_table(path, (".symtab",))
        assert (fast.entries if fast else None) == (slow.entries if slow else None), path
    assert compressed >= 1
