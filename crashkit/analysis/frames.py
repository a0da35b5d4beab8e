"""Frames: gdb's view merged with ELF symbols, judged for trust. Pure functions.

The readers give gdb's raw frames (:class:`GdbFrame`) and, for the address
:func:`lookup_addresses` names for each, a :class:`Symbol` from the ELF
symbol tables; :func:`merge` turns them into model frames.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from crashkit.model.analyze import Frame, FrameRule, GdbFrame, Symbol

SIGNAL_HANDLER = "<signal handler called>"


def lookup_addresses(raw: Sequence[GdbFrame]) -> list[int]:
    """The address to symbolize for each frame.

    A caller's pc is a return address, which may already lie in the next
    function when a call ends its function, so pc - 1 is looked up. Not for
    the innermost frame (the pc that faulted), not for a frame right outside a
    signal-handler frame (the pc the signal interrupted), and an inlined frame
    shares its pc, and so its rule, with the frame it was inlined into.
    """
    out: list[int] = []
    is_return = False
    for i, f in enumerate(raw):
        if i == 0 or f.signal_frame:
            is_return = False
        elif f.pc != raw[i - 1].pc:
            is_return = not raw[i - 1].signal_frame
        out.append(f.pc - 1 if is_return else f.pc)
    return out


def merge(raw: Sequence[GdbFrame], symbols: Sequence[Symbol], untrusted: set[str],
          prefer_elf: frozenset[str] = frozenset()) -> list[Frame]:
    """Model frames from gdb's frames and the symbols of :func:`lookup_addresses`.

    ``untrusted`` holds the paths of modules whose file on disk is another
    build than the crashed one: their frames are untrusted, and so is every
    frame outside them, since gdb unwound those with that file's unwind data.
    ``prefer_elf`` holds modules whose file on disk is another build but whose
    ELF symbols come from a debug file of the crashed build: there the ELF
    name wins over gdb's (gdb read the wrong file), and gdb's lines are dropped.
    """
    frames: list[Frame] = []
    suspect = False
    addresses = lookup_addresses(raw)
    for i, (g, sym) in enumerate(zip(raw, symbols, strict=True)):
        delta = g.pc - addresses[i]  # the symbol was looked up at pc - delta
        module_offset = sym.module_offset + delta if sym.module_offset is not None else None
        function: str | None
        function_offset: int | None = None
        elf_symbol = elf_offset = None
        file, line = g.file, g.line
        if g.signal_frame:
            function, source = SIGNAL_HANDLER, "gdb"
        elif sym.module in prefer_elf:
            function, source = sym.function, "elf"
            function_offset = (sym.function_offset + delta) if sym.function_offset is not None \
                else None
            file = line = None
        elif g.function:
            function, source = g.function, "gdb"
            if sym.function is not None and sym.function_offset is not None:
                if sym.function == g.function:
                    function_offset = sym.function_offset + delta
                else:  # an alias (__GI_abort for abort) or an inlined function's name
                    elf_symbol, elf_offset = sym.function, sym.function_offset + delta
        elif sym.function:
            function, source = sym.function, "elf"
            function_offset = (sym.function_offset or 0) + delta
        else:
            function, source = None, ("elf" if sym.module else "notes")
        other_build = sym.module in untrusted
        suspect = suspect or other_build
        frames.append(Frame(
            index=g.level if g.level is not None else i, pc=g.pc, function=function,
            module=sym.module,
            module_offset=module_offset, function_offset=function_offset,
            file=file, line=line, inlined=g.inlined, signal_frame=g.signal_frame,
            source=source, args=g.args, locals=g.locals,  # type: ignore[arg-type]
            trusted=not suspect, other_build=other_build, elf_symbol=elf_symbol,
            elf_offset=elf_offset))
    return frames


def pc_frame(pc: int, sym: Symbol, untrusted: set[str]) -> Frame:
    """The one frame the notes give without gdb: a thread's pc."""
    other = sym.module in untrusted
    return Frame(index=0, pc=pc, function=sym.function, module=sym.module,
                 module_offset=sym.module_offset, function_offset=sym.function_offset,
                 source="elf" if sym.module else "notes", trusted=not other,
                 other_build=other)


def cut_at_garbage(frames: Sequence[Frame], exec_ranges: Sequence[tuple[int, int]],
                   ) -> tuple[list[Frame], int | None]:
    """Frames up to the first one (after #0) whose pc is not in executable
    memory — gdb guessed it from a missing (truncated core) or smashed stack —
    and the index where the cut was made."""
    if not exec_ranges:
        return list(frames), None
    for i, f in enumerate(frames):
        if i and not any(lo <= f.pc < hi for lo, hi in exec_ranges):
            return list(frames[:i]), i
    return list(frames), None


# How far above sp a return address is looked for. A leaf function of the C
# runtime (strlen, memcpy: where most crashes in libc happen) keeps its
# caller's return address at sp or a few words above; deeper in the stack
# lie stale addresses of earlier calls, which would name the wrong code.
SCAN_REACH = 64


def scan_for_caller(words: Sequence[int], code: Sequence[tuple[int, int]],
                    symbolize: Callable[[int], Symbol],
                    skip: Callable[[str | None], bool]) -> tuple[Frame, int] | None:
    """When the stack cannot be unwound: the first word of the SCAN_REACH
    bytes above sp that points into code of a module ``skip`` does not
    reject and that a symbol covers, as (frame, its offset above sp). Such a
    word is most often the caller's return address, sometimes a function
    pointer: a guess, which callers must present as one."""
    for i, word in enumerate(words[:SCAN_REACH // 8]):
        if not any(lo <= word < hi for lo, hi in code):
            continue
        sym = symbolize(word - 1)  # a return address: look up the call
        if sym.module is None or sym.function is None or skip(sym.module):
            continue
        frame = Frame(index=-1, pc=word, function=sym.function, module=sym.module,
                      module_offset=None if sym.module_offset is None else sym.module_offset + 1,
                      function_offset=None if sym.function_offset is None
                      else sym.function_offset + 1, source="elf")
        return frame, i * 8
    return None


# How far above sp a validated scan looks (below): deep enough for the
# frames a JIT trace or a hand-written VM keeps on the C stack, which gdb
# cannot unwind through.
SCAN_DEEP = 2048
SCAN_FRAMES = 8


def call_ending_at(code: bytes, end: int) -> tuple[bool, int | None]:
    """Whether the bytes just before a return address ``end`` (``code``:
    the 7 bytes that precede it) are an x86-64 call instruction, and the
    target of a direct call (None for an indirect one). A word on the stack
    that is preceded by a call is a return address; one that is not is a
    stale pointer or data. This is the check debuggers' stack scanners make
    before trusting a scanned word."""
    n = len(code)
    if n >= 5 and code[-5] == 0xE8:  # call rel32
        return True, (end + int.from_bytes(code[-4:], "little", signed=True)) & (2**64 - 1)
    # call r/m64: FF /2, with an optional REX prefix
    for length in range(2, min(n, 7) + 1):
        at = n - length
        if code[at] != 0xFF:
            continue
        modrm = code[at + 1]
        if (modrm >> 3) & 7 != 2:
            continue
        mod, rm = modrm >> 6, modrm & 7
        size = 2
        if mod != 3 and rm == 4:
            if at + 2 >= n:
                continue
            size += 1
            if mod == 0 and code[at + 2] & 7 == 5:
                size += 4
        if mod == 0 and rm == 5:
            size += 4  # rip-relative
        size += {1: 1, 2: 4}.get(mod, 0)
        if size == length or (size == length - 1 and at >= 1 and 0x40 <= code[at - 1] <= 0x4F):
            return True, None
    return False, None


def scan_chain(words: Sequence[int], sp: int, code: Sequence[tuple[int, int]],
               symbolize: Callable[[int], Symbol],
               code_before: Callable[[int, int], bytes | None],
               rule_of: Callable[[int], FrameRule | None],
               reach: int = SCAN_DEEP, limit: int = SCAN_FRAMES) -> list[tuple[Frame, int]]:
    """Frames of a thread gdb could not unwind (its pc in JIT code, in no
    file), innermost first, as (frame, offset of its return address above sp).

    The first is found by scanning the ``reach`` bytes above sp for a word
    that points into a named function of a module right after a call
    instruction (a return address; a stale pointer or data is rarely preceded
    by a call). From there the stack is unwound by the modules' call frame
    information (``rule_of``: the CFI row for an address), which tells
    exactly where each caller's return address is: no more guessing, and
    none of the stale return addresses of finished calls that a plain scan
    would list. Unwinding stops where a module has no CFI for its pc."""
    first = None
    for i, word in enumerate(words[:reach // 8]):
        frame = _return_frame(word, code, symbolize, code_before)
        if frame is not None:
            first = (frame, i * 8)
            break
    if first is None:
        return []
    out = [first]
    regs = {RSP: sp + first[1] + 8}
    pc = first[0].pc

    def word_at(address: int) -> int | None:
        i, rest = divmod(address - sp, 8)
        return words[i] if not rest and 0 <= i < len(words) else None

    while len(out) < limit:
        rule = rule_of(pc - 1)
        base = regs.get(rule.cfa_register) if rule is not None else None
        if rule is None or base is None:
            break
        cfa = base + rule.cfa_offset
        saved = dict(rule.saved)
        ra = word_at(cfa + saved.get(RETURN_ADDRESS, -8))
        for reg, offset in saved.items():
            value = word_at(cfa + offset)
            if value is None:
                regs.pop(reg, None)
            else:
                regs[reg] = value
        regs[RSP] = cfa
        frame = _return_frame(ra, code, symbolize, code_before) if ra else None
        if frame is None:
            break
        out.append((frame, cfa + saved.get(RETURN_ADDRESS, -8) - sp))
        pc = frame.pc
    return out


# DWARF register numbers on x86-64.
RSP, RETURN_ADDRESS = 7, 16


def _return_frame(word: int, code: Sequence[tuple[int, int]], symbolize: Callable[[int], Symbol],
                  code_before: Callable[[int, int], bytes | None]) -> Frame | None:
    """A frame for ``word`` when it is a return address into a module."""
    if not any(lo <= word < hi for lo, hi in code):
        return None
    sym = symbolize(word - 1)
    if sym.module is None or sym.function is None:
        return None
    before = code_before(word, 7)
    if before is None or not call_ending_at(before, word)[0]:
        return None
    return Frame(index=-1, pc=word, function=sym.function, module=sym.module,
                 module_offset=None if sym.module_offset is None else sym.module_offset + 1,
                 function_offset=None if sym.function_offset is None
                 else sym.function_offset + 1, source="scan")
