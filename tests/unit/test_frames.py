"""The pure frame logic: which address to symbolize, merging, trust, cuts."""

from __future__ import annotations

from crashkit.analysis.frames import (
    SCAN_REACH,
    cut_at_garbage,
    lookup_addresses,
    merge,
    pc_frame,
    scan_for_caller,
)
from crashkit.model.analyze import GdbFrame, Symbol

LIB, EXE, BAD = "/usr/lib/libx.so", "/usr/sbin/prog", "/opt/rebuilt.so"


def test_return_addresses_are_looked_up_one_byte_back() -> None:
    raw = [GdbFrame(0x1000, "crash"), GdbFrame(0x2005, "caller"), GdbFrame(0x3009, "main")]
    assert lookup_addresses(raw) == [0x1000, 0x2004, 0x3008]


def test_inlined_frames_share_the_rule_of_their_pc() -> None:
    # #0 inlined into #1 at the faulting pc; #2 inlined into #3 at a return address.
    raw = [GdbFrame(0x1000, "inl", inlined=True), GdbFrame(0x1000, "outer"),
           GdbFrame(0x2005, "inl2", inlined=True), GdbFrame(0x2005, "caller")]
    assert lookup_addresses(raw) == [0x1000, 0x1000, 0x2004, 0x2004]


def test_after_a_signal_frame_the_pc_is_where_the_signal_hit() -> None:
    raw = [GdbFrame(0x1000, "handler"), GdbFrame(0x7F00, None, signal_frame=True),
           GdbFrame(0x2000, "interrupted"), GdbFrame(0x3005, "main")]
    assert lookup_addresses(raw) == [0x1000, 0x7F00, 0x2000, 0x3004]


def sym(module: str | None, off: int | None, fn: str | None = None,
        fn_off: int | None = None) -> Symbol:
    return Symbol(module, off, fn, fn_off)


def test_merge_sources_and_offsets() -> None:
    raw = [GdbFrame(0x1010, None), GdbFrame(0x2005, "gdb_named", file="a.c", line=3),
           GdbFrame(0x3005, None), GdbFrame(0x9000, None)]
    # Symbols as looked up at lookup_addresses(raw) = [0x1010, 0x2004, 0x3004, 0x8fff]
    symbols = [sym(LIB, 0x10, "from_elf", 0x10), sym(EXE, 0x104, "gdb_named", 0x4),
               sym(LIB, 0x2004), sym(None, None)]
    frames = merge(raw, symbols, set())
    assert [(f.function, f.source) for f in frames] == [
        ("from_elf", "elf"), ("gdb_named", "gdb"), (None, "elf"), (None, "notes")]
    # Offsets are of the pc itself, not of the address looked up.
    assert [f.function_offset for f in frames] == [0x10, 0x5, None, None]
    assert [f.module_offset for f in frames] == [0x10, 0x105, 0x2005, None]
    assert (frames[1].file, frames[1].line) == ("a.c", 3)
    assert [f.index for f in frames] == [0, 1, 2, 3]


def test_gdb_name_differing_from_elf_keeps_both() -> None:
    frames = merge([GdbFrame(0x1000, "__GI_raise")], [sym(LIB, 0x10, "raise", 0x8)], set())
    f = frames[0]
    assert (f.function, f.function_offset) == ("__GI_raise", None)
    assert (f.elf_symbol, f.elf_offset) == ("raise", 0x8)


def test_trust_stops_at_the_first_mismatched_module() -> None:
    raw = [GdbFrame(0x1000, "a"), GdbFrame(0x2005, "b"), GdbFrame(0x3005, "c")]
    symbols = [sym(LIB, 0x0), sym(BAD, 0x4), sym(EXE, 0x4)]
    merged = merge(raw, symbols, {BAD})
    assert [f.trusted for f in merged] == [True, False, False]
    assert [f.other_build for f in merged] == [False, True, False]
    assert [f.trusted for f in merge(raw, symbols, set())] == [True, True, True]


def test_signal_frame_is_named_and_flagged() -> None:
    raw = [GdbFrame(0x1000, "h"), GdbFrame(0x7F00, "<signal handler called>",
                                           signal_frame=True)]
    f = merge(raw, [sym(EXE, 0), sym(LIB, 0x100)], set())[1]
    assert (f.function, f.source, f.signal_frame) == ("<signal handler called>", "gdb", True)


def test_cut_at_garbage() -> None:
    frames = merge([GdbFrame(0x1000, "a"), GdbFrame(0x2005, "b"), GdbFrame(0x2, None),
                    GdbFrame(0x2010, "c")], [sym(EXE, 0)] * 4, set())
    kept, cut = cut_at_garbage(frames, [(0x1000, 0x3000)])
    assert [f.function for f in kept] == ["a", "b"] and cut == 2
    # Frame #0 is never cut: a call through a NULL function pointer faults at pc 0.
    zero = merge([GdbFrame(0x0, None), GdbFrame(0x1005, "caller")], [sym(None, None)] * 2,
                 set())
    assert cut_at_garbage(zero, [(0x1000, 0x3000)]) == (zero, None)
    assert cut_at_garbage(frames, []) == (frames, None)


def test_pc_frame() -> None:
    f = pc_frame(0x1234, sym(BAD, 0x234, "f", 4), {BAD})
    assert (f.function, f.module_offset, f.source, f.trusted) == ("f", 0x234, "elf", False)
    assert pc_frame(0x5, sym(None, None), set()).source == "notes"


def test_stack_scan_takes_the_first_code_pointer_within_reach() -> None:
    code = [(0x1000, 0x2000), (0x5000, 0x6000)]
    libc, mod = "/lib/libc.so.6", "/opt/mod.so"

    def symbolize(addr: int) -> Symbol:
        if 0x5000 <= addr < 0x6000:
            return Symbol(libc, addr - 0x5000, "memcpy", 4)
        if 0x1000 <= addr < 0x2000:
            return Symbol(mod, addr - 0x1000, "mod_copy", addr - 0x1000)
        return Symbol(None, None, None, None)

    skip = lambda m: m is None or m == libc  # noqa: E731
    # Data, a libc address, then the module's return address at sp+24.
    found = scan_for_caller([0x7FFF0000, 0x5010, 0x3000, 0x1234], code, symbolize, skip)
    assert found is not None
    frame, offset = found
    assert (frame.function, frame.module, frame.pc, frame.module_offset, offset) == (
        "mod_copy", mod, 0x1234, 0x234, 24)
    # Beyond SCAN_REACH lie stale addresses of earlier calls: not taken.
    far = [0] * (SCAN_REACH // 8) + [0x1234]
    assert scan_for_caller(far, code, symbolize, skip) is None


def test_call_ending_at_knows_the_call_encodings() -> None:
    from crashkit.analysis.frames import call_ending_at

    end = 0x1000
    # call rel32 (e8), the target relative to the return address
    assert call_ending_at(b"\x90\x90\xe8\x10\x00\x00\x00", end) == (True, 0x1010)
    assert call_ending_at(b"\x90\x90\xe8\xf0\xff\xff\xff", end) == (True, 0xFF0)
    assert call_ending_at(b"\x90\xff\x15\x00\x10\x00\x00", end) == (True, None)  # *disp(%rip)
    assert call_ending_at(b"\x90\x90\x90\x90\x90\xff\xd0", end) == (True, None)  # *%rax
    assert call_ending_at(b"\x90\x90\x90\x90\x41\xff\xd3", end) == (True, None)  # *%r11
    assert call_ending_at(b"\x90\x90\x90\x90\xff\x50\x18", end) == (True, None)  # *0x18(%rax)
    assert call_ending_at(b"\x90\x90\x90\x90\xff\x14\x24", end) == (True, None)  # *(%rsp)
    # jmp *%rax (ff /4) and plain data are no call
    assert call_ending_at(b"\x90\x90\x90\x90\x90\xff\xe0", end) == (False, None)
    assert call_ending_at(b"\x00\x00\x00\x00\x00\x00\x00", end) == (False, None)


def test_exception_type_from_libstdcxx_throw_functions() -> None:
    from crashkit.analysis.meaning import exception_type
    from crashkit.model.analyze import Frame

    def f(name: str) -> Frame:
        return Frame(index=0, pc=1, function=name, module="/lib/libstdc++.so.6", module_offset=1)

    assert exception_type([f("std::terminate()"), f("std::__throw_system_error(int)")]) == \
        "std::system_error"
    assert exception_type([f("std::__throw_out_of_range_fmt(char const*, ...)")]) == \
        "std::out_of_range"
    assert exception_type([f("std::terminate()"), f("__cxa_throw")]) is None


def test_script_argument_of_an_interpreter_command_line() -> None:
    from crashkit.analysis.interpreters import _script_argument

    assert _script_argument("python3 -I /srv/job.py --flag") == "/srv/job.py"
    assert _script_argument("python3 -X dev -W error job.py") == "job.py"
    assert _script_argument("python3 -m app.main") == "app.main"
    assert _script_argument("python3 -c import ctypes") is None
    assert _script_argument("perl -w tool.pl") == "tool.pl"
    assert _script_argument("python3") is None
