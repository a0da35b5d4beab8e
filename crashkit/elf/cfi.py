"""Call frame information (.eh_frame) of an ELF file: for a code address,
how to find its frame's canonical frame address (CFA) and the saved
registers. Read with pyelftools, only when a stack must be unwound without
gdb's help (past JIT code), and kept per file for the process.
"""

from __future__ import annotations

import bisect
import os

from crashkit.elf.files import open_regular
from crashkit.model.analyze import FrameRule


class _Table:
    def __init__(self, fdes: list[tuple[int, int, object]]) -> None:
        fdes.sort(key=lambda e: e[0])
        self.starts = [e[0] for e in fdes]
        self.fdes = fdes


_TABLES: dict[tuple[int, int, int, int], _Table | None] = {}

# A file whose call frame information takes longer than this to read is not
# worth it for a guess at a few frames (and a hostile file must not cost more).
MAX_EH_FRAME = 8 * 1024 * 1024


def _table(path: str) -> _Table | None:
    try:
        fd = open_regular(path)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as fh:
        st = os.fstat(fh.fileno())
        key = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
        if key in _TABLES:
            return _TABLES[key]
        table = None
        try:
            from elftools.dwarf.callframe import FDE
            from elftools.elf.elffile import ELFFile

            elf = ELFFile(fh)
            section = elf.get_section_by_name(".eh_frame")
            if section is not None and section["sh_size"] <= MAX_EH_FRAME:
                dwarf = elf.get_dwarf_info(follow_links=False)
                fdes: list[tuple[int, int, object]] = [
                    (e.header["initial_location"], e.header["address_range"], e)
                    for e in dwarf.EH_CFI_entries() if isinstance(e, FDE)]
                table = _Table(fdes)
        except Exception:  # noqa: BLE001 - a damaged file has no usable CFI, nothing more
            table = None
        _TABLES[key] = table
        return table


def frame_rule(path: str, vaddr: int) -> FrameRule | None:
    """The CFI row of ``path`` that covers the file address ``vaddr``."""
    table = _table(path)
    if table is None:
        return None
    i = bisect.bisect_right(table.starts, vaddr) - 1
    if i < 0:
        return None
    start, size, fde = table.fdes[i]
    if not start <= vaddr < start + size:
        return None
    try:
        rows = fde.get_decoded().table  # type: ignore[attr-defined]
    except Exception:  # noqa: BLE001 - see above
        return None
    row = None
    for r in rows:
        if r["pc"] > vaddr:
            break
        row = r
    if row is None or row["cfa"].expr is not None or row["cfa"].reg is None:
        return None
    saved = tuple((reg, rule.arg) for reg, rule in row.items()
                  if isinstance(reg, int) and getattr(rule, "type", None) == "OFFSET")
    return FrameRule(row["cfa"].reg, row["cfa"].offset, saved)
