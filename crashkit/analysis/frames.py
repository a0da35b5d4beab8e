"""Frames: gdb's view merged with ELF symbols, judged for trust. Pure functions.

The readers give gdb's raw frames (:class:`GdbFrame`) and, for the address
:func:`lookup_addresses` names for each, a :class:`Symbol` from the ELF
symbol tables; :func:`merge` turns them into model frames.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from crashkit.model.analyze import Frame, GdbFrame, Symbol

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
