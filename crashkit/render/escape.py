"""Text that is safe to print on a terminal."""

from __future__ import annotations

# C0 and C1 control characters but tab: a core's strings (argv, paths) must
# not move the cursor, set the terminal title or forge lines of the report.
_CONTROL = dict.fromkeys([*range(0x00, 0x09), *range(0x0A, 0x20), 0x7F, *range(0x80, 0xA0)])


def visible(line: str) -> str:
    if not any(ord(c) in _CONTROL or 0xDC80 <= ord(c) <= 0xDCFF for c in line):
        return line
    out = []
    for c in line:
        o = ord(c)
        if o in _CONTROL:
            out.append(f"\\x{o:02x}")
        elif 0xDC80 <= o <= 0xDCFF:  # a byte that was not UTF-8 (surrogateescape)
            out.append(f"\\x{o - 0xDC00:02x}")
        else:
            out.append(c)
    return "".join(out)
