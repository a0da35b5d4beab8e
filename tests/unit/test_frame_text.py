"""How a frame is written in the text output, report.md/html and
backtrace-full.txt: ``name+0x39``, one form (issue 15 item 14)."""

from __future__ import annotations

import pytest

from crashkit.model.analyze import Frame
from crashkit.render.analyze import _frame_line

LIB = "/usr/lib/x86_64-linux-gnu/libc.so.6"


@pytest.mark.parametrize(("frame", "line"), [
    (Frame(1, 0x1039, "parse", "/m/a.so", 0x1039, function_offset=0x39),
     "  #1  0x0000000000001039 parse+0x39 [a.so]"),
    (Frame(0, 0x1000, "parse", "/m/a.so", 0x1000, function_offset=0),
     "  #0  0x0000000000001000 parse+0x0 [a.so]"),
    # gdb's name (an alias, an inlined function) and the ELF symbol the pc is in.
    (Frame(3, 0x10d3, "__GI_abort", LIB, 0x10d3, elf_symbol="abort", elf_offset=0xd3,
           file="./stdlib/abort.c", line=79),
     "  #3  0x00000000000010d3 __GI_abort (abort+0xd3) [libc.so.6]  ./stdlib/abort.c:79"),
    # A name whose offset nothing knows: the bare name, never the prose name().
    (Frame(2, 0x1000, "parse", "/m/a.so", 0x1000), "  #2  0x0000000000001000 parse [a.so]"),
    (Frame(4, 0x1000, None, "/m/a.so", 0x1000), "  #4  0x0000000000001000 a.so+0x1000 [a.so]"),
    (Frame(5, 0x1000, None, None, None), "  #5  0x0000000000001000 0x1000 [?]"),
])
def test_frame_line(frame: Frame, line: str) -> None:
    assert _frame_line(frame) == line
