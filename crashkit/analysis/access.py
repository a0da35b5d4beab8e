"""The faulting memory access, read from the faulting instruction: which
register held the pointer, what it held, and the offset the instruction
added. "0x8 past a NULL pointer" and "a pointer whose value was 8" fault at
the same address; only the instruction's addressing tells them apart.

Reads gdb's AT&T-syntax x86-64 disassembly (``disp(base,index,scale)``);
other architectures give no access (None), never a guess."""

from __future__ import annotations

import re
from collections.abc import Mapping

from crashkit.model.analyze import Access

_MEM = re.compile(r"(?P<seg>%[cdefgs]s:)?(?P<disp>-?(?:0x[0-9a-f]+|\d+))?"
                  r"\((?P<base>%\w+)?(?:,(?P<index>%\w+)(?:,(?P<scale>[1248]))?)?\)")
_SIZES = {"b": 1, "w": 2, "l": 4, "q": 8}
_READ_ONLY = re.compile(r"^(cmp|test|bt|ucomis|comis|vcomis|vucomis|vpcmp|pcmp|vptest|ptest|"
                        r"push|prefetch|lea|nop)")
_NO_MEMORY = re.compile(r"^(lea|nop)")
_REG32 = {f"e{r}": f"r{r}" for r in ("ax", "bx", "cx", "dx", "si", "di", "bp", "sp")}


def _register(name: str, registers: Mapping[str, int]) -> int | None:
    if name in registers:
        return registers[name]
    if name in _REG32 and _REG32[name] in registers:
        return registers[_REG32[name]] & 0xFFFFFFFF
    if name.endswith("d") and name[:-1] in registers:  # r8d … r15d
        return registers[name[:-1]] & 0xFFFFFFFF
    return None


def _width(mnemonic: str, operands: list[str]) -> int | None:
    regs = [o for o in operands if o.startswith("%")]
    for r in regs:
        if r.startswith("%ymm"):
            return 32
        if r.startswith("%xmm"):
            return 16
        if r.startswith("%zmm"):
            return 64
    if mnemonic.startswith("mov") and mnemonic[-1:] in _SIZES and mnemonic not in (
            "movs", "movsb"):
        return _SIZES[mnemonic[-1]]
    for r in regs:
        n = r[1:]
        if re.fullmatch(r"r(ax|bx|cx|dx|si|di|bp|sp|[0-9]+)", n):
            return 8
        if re.fullmatch(r"e\w\w|r\d+d", n):
            return 4
        if re.fullmatch(r"[a-d]x|[sd]i|r\d+w", n):
            return 2
        if re.fullmatch(r"[a-d]l|r\d+b|[sd]il", n):
            return 1
    if mnemonic[-1:] in _SIZES and len(mnemonic) > 3:
        return _SIZES[mnemonic[-1]]
    return None


def _operands(text: str) -> list[str]:
    out, depth, cur = [], 0, ""
    for ch in text:
        if ch == "," and depth == 0:
            out.append(cur.strip())
            cur = ""
            continue
        depth += {"(": 1, ")": -1}.get(ch, 0)
        cur += ch
    if cur.strip():
        out.append(cur.strip())
    return out


def decode_access(text: str, registers: Mapping[str, int],
                  fault_address: int | None = None) -> Access | None:
    """The memory operand of ``text`` (one instruction, AT&T syntax), with the
    registers' values, or None when it has none or cannot be read."""
    text = text.split("#")[0].split("<")[0].strip()
    parts = text.split(None, 1)
    if len(parts) < 2:
        return None
    mnemonic, rest = parts[0].lower(), parts[1].lower()
    while mnemonic in ("lock", "rep", "repz", "repnz", "repe", "repne", "notrack", "bnd") \
            and len(rest.split(None, 1)) == 2:
        mnemonic, rest = rest.split(None, 1)
    if _NO_MEMORY.match(mnemonic):
        return None
    operands = _operands(rest)
    mems = [(i, o) for i, o in enumerate(operands) if _MEM.fullmatch(o)]
    if len(mems) != 1:
        return None
    position, operand = mems[0]
    m = _MEM.fullmatch(operand)
    assert m is not None
    if m.group("seg") or m.group("base") == "%rip":
        return None
    base = m.group("base")[1:] if m.group("base") else None
    index = m.group("index")[1:] if m.group("index") else None
    disp = int(m.group("disp"), 0) if m.group("disp") else 0
    base_value = _register(base, registers) if base else None
    index_value = _register(index, registers) if index else None
    if (base and base_value is None) or (index and index_value is None):
        return None
    scale = int(m.group("scale") or 1)
    write = position == len(operands) - 1 and len(operands) > 1 and not _READ_ONLY.match(
        mnemonic)
    if mnemonic.startswith(("stos", "movs")) or (len(operands) == 1 and mnemonic.startswith(
            ("inc", "dec", "neg", "not", "set"))):
        write = True
    address = ((base_value or 0) + (index_value or 0) * scale + disp) & 0xFFFFFFFFFFFFFFFF
    if fault_address is not None and fault_address != address and not (
            address <= fault_address < address + 64):
        return None  # not the access that faulted (the disassembly is of another build?)
    return Access(instruction=text, base=base, base_value=base_value, index=index,
                  index_value=index_value, scale=scale, displacement=disp,
                  width=_width(mnemonic, operands), write=write, address=address,
                  text=_describe(base, base_value, index, index_value, scale, disp))


def _describe(base: str | None, base_value: int | None, index: str | None,
              index_value: int | None, scale: int, disp: int) -> str:
    if base is None or base_value is None:
        return f"an access to the absolute address {disp:#x}"
    if base_value == 0 and index is None:
        if disp == 0:
            return f"a NULL pointer dereferenced ({base} = 0)"
        return f"the field at offset {disp:#x} of a NULL struct pointer ({base} = 0)"
    if index is not None and index_value is not None and index_value * scale != 0 and (
            base_value != 0):
        return (f"element {index_value:#x} (scale {scale}) past the base {base_value:#x} in "
                f"{base}, indexed by {index}")
    if disp == 0:
        return f"dereferenced the pointer value {base_value:#x} in {base}"
    return (f"the field at offset {disp:#x} of the pointer value {base_value:#x} in {base}")
