"""``crashkit analyze`` output: the person-readable summary, and the ``--json``
form (schema crashkit/analysis/1, documented in crashkit/schema/analysis-1.json
and the README; fields are only ever added within a schema version)."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from typing import Any

from crashkit import __version__
from crashkit.analysis.attribution import frame_label
from crashkit.analysis.meaning import is_snapshot, sent_by_other
from crashkit.model.analyze import Access, Analysis, Frame, Module, Package, Thread, Verdict
from crashkit.model.words import plural, size
from crashkit.render.escape import visible as visible  # also crashkit.report's


def ago(seconds: int) -> str:
    """How long ago, as coredumpctl says it: "3 min ago", "2 h 5 min ago"."""
    if seconds < 60:
        return f"{seconds} s ago"
    minutes, hours, days = seconds // 60, seconds // 3600, seconds // 86400
    if days:
        return f"{plural(days, 'day')} {hours % 24} h ago"
    if hours:
        return f"{hours} h {minutes % 60} min ago"
    return f"{minutes} min ago"


def crash_time_text(a: Analysis) -> str | None:
    """"2026-12-02 20:44:10 +00:00 (25 min ago; from the error log)"."""
    t = a.crash_time
    if t is None:
        return None
    shown = t.time.replace("T", " ", 1)
    shown = shown[:-6] + " " + shown[-6:]  # the offset apart from the clock time
    return f"{shown} ({ago(t.age_seconds)}; from the {t.source})"


def code_place(name: str, offset: int | None) -> str:
    """The one way a place in code is written wherever frames and
    instructions are listed: ``name+0x39`` (hex, as eu-stack and the
    kernel print it), the bare name when the offset is unknown. ``name()``
    is for sentences only (the verdict, the title)."""
    return name if offset is None else f"{name}+{offset:#x}"


def _frame_where(f: Frame) -> str:
    if not (f.function and f.trusted):
        return frame_label(f)  # module+0xOFFSET, or the bare pc
    if f.function_offset is None and f.elf_symbol is not None and f.elf_offset is not None:
        # gdb's name (an inlined function, an alias) and the ELF symbol
        # the pc is in, with the offset from that symbol.
        return f"{f.function} ({code_place(f.elf_symbol, f.elf_offset)})"
    return code_place(f.function, f.function_offset)


def _frame_line(f: Frame) -> str:
    where = _frame_where(f)
    mod = os.path.basename(f.module) if f.module else "?"
    src = f"  {f.file}:{f.line}" if f.file and f.line else ""
    if not f.trusted:
        # Names and lines from another build than the crashed one: shown for
        # what they are worth, never as the answer.
        mod += ", UNTRUSTED" + (f": the file on disk says {f.function}" if f.function else "")
        src = ""
    tags = "".join(t for t, on in ((" [inlined]", f.inlined), (" [signal handler]",
                                                                f.signal_frame)) if on)
    return f"  #{f.index:<2} {f.pc:#018x} {where} [{mod}]{src}{tags}"


def _same_call(a: Frame, b: Frame) -> bool:
    return (a.pc, a.function, a.module) == (b.pc, b.function, b.module) and not (
        a.args or a.locals or b.args or b.locals)


def _frame_lines(frames: Sequence[Frame]) -> list[str]:
    """Frames one per line; a run of identical frames (recursion) is one line
    and a count."""
    lines = []
    i = 0
    while i < len(frames):
        f = frames[i]
        if i and f.index > frames[i - 1].index + 1:
            lines.append(f"  … {f.index - frames[i - 1].index - 1} frames not shown "
                         f"(#{frames[i - 1].index + 1} to #{f.index - 1}; --max-frames)")
        run = 1
        while i + run < len(frames) and _same_call(frames[i + run], f) and \
                frames[i + run].index == f.index + run:
            run += 1
        lines.append(_frame_line(f))
        for kind, values in (("arg", f.args), ("local", f.locals)):
            lines += [f"        {kind} {name} = {value}" for name, value in values]
        if run > 2:
            lines.append(f"  … the same frame {run - 1} more times (#{f.index + 1} to "
                         f"#{f.index + run - 1}): recursion")
            i += run
        else:
            i += 1
    return lines


def _stack_key(t: Thread) -> tuple[str, ...]:
    return tuple(frame_label(f) for f in t.frames)


def _other_threads(threads: Sequence[Thread], stacks: bool) -> list[str]:
    """Threads with identical stacks (idle workers) are shown once, with a count.
    Without gdb only each thread's pc is known, and the grouping says so."""
    groups: dict[tuple[str, ...], list[Thread]] = {}
    for t in threads:
        groups.setdefault(_stack_key(t), []).append(t)
    what = "stack" if stacks else "pc"
    lines: list[str] = []
    for members in sorted(groups.values(), key=len, reverse=True):
        members = sorted(members, key=lambda t: t.tid)
        tids = ", ".join(str(t.tid) for t in members[:8]) + (", …" if len(members) > 8 else "")
        head = (f"{len(members)} threads with this {what} ({tids}):" if len(members) > 1
                else f"Thread {members[0].tid}:")
        lines += ["", head]
        lines += [_frame_line(f) for f in members[0].frames] or ["  (no frames)"]
    return lines


# The general registers in the order they are shown: the pc and the stack
# first, the rest in the architecture's numbering, the flags last (32 bits
# wide, so their longer name fits the column). The segment registers and
# orig_rax stay in the JSON.
REGISTER_ORDER = (
    "rip", "rsp", "rbp", "rax", "rbx", "rcx", "rdx", "rsi", "rdi",
    *(f"r{i}" for i in range(8, 16)), "eflags",
    "pc", "sp", *(f"x{i}" for i in range(31)), "pstate",
)
_FLAGS = frozenset({"eflags", "pstate"})


def _registers(t: Thread) -> list[str]:
    regs = t.registers
    cells = [f"{r:>3} {regs[r]:#010x}" if r in _FLAGS else f"{r:>3} {regs[r]:#018x}"
             for r in REGISTER_ORDER if r in regs]
    lines = ["", "Registers:"]
    for i in range(0, len(cells), 4):
        lines.append("  " + "  ".join(f"{c:<22}" for c in cells[i:i + 4]).rstrip())
    return lines


# gdb writes a jump's target as <name+207> (decimal); objdump and the
# frames above write <name+0xcf>.
_TARGET = re.compile(r"<([^<>+\s]+)\+(\d+)>")


def _hex_targets(text: str) -> str:
    return _TARGET.sub(lambda m: f"<{code_place(m[1], int(m[2]))}>", text)


def _context(a: Analysis) -> list[str]:
    ctx = a.context
    if ctx is None:
        return []
    lines = ["", "Instructions:" if ctx.trusted else
              "Instructions (from the file on disk, which is NOT the build that crashed):"]
    for ins in ctx.instructions:
        mark = "=>" if ins.address == ctx.pc else "  "
        fn = f"<{code_place(ins.function, ins.offset)}>" if ins.function is not None else ""
        lines.append(f"  {mark} {ins.address:#018x} {fn:<32} {_hex_targets(ins.text)}")
    return lines


def full_backtrace(a: Analysis) -> str:
    """Every thread, one after the other, with arguments and locals: the
    ``bt full`` a maintainer asks for."""
    lines: list[str] = []
    for t in a.threads:
        label = " (received the signal)" if t.crashed else ""
        lines += [f"Thread {t.tid}{label}" + (f" [{t.name}]" if t.name else "") + ":"]
        lines += _frame_lines(t.frames) or ["  (no frames)"]
        lines.append("")
    return "\n".join(visible(line) for line in lines)


def crash_site(a: Analysis) -> str:
    """The crashing thread's registers and the instructions around its pc."""
    lines = _registers(a.threads[0])[1:] if a.threads else ["(no threads)"]
    lines += _context(a) or ["", "(no disassembly: gdb was not used or could not read the code)"]
    return "\n".join(visible(line) for line in lines)


def crashing_frames(a: Analysis) -> str:
    """The crashing thread's frames as the text output shows them."""
    return "\n".join(visible(line) for line in _frame_lines(a.threads[0].frames)) \
        if a.threads else ""


def _prose(sentence: str) -> list[str]:
    """The verdict's sentences: wrapped to the terminal's width when it is
    known (a terminal, COLUMNS); one line each for a pipe, as scripts expect."""
    from crashkit.render.terminal import current, wrap

    term = current()
    if term.columns is None or len(sentence) <= term.width:
        return [sentence]
    return wrap(sentence, 0, 2) or [sentence]


def text(a: Analysis) -> str:
    c = a.core
    v = a.verdict
    lines = [*_prose(v.summary), *_prose(a.summary), ""] if v else [*_prose(a.summary), ""]
    if c.process:
        p = c.process
        args = (p.args or p.fname) + (" …(the kernel keeps 79 bytes)" if p.args_truncated
                                      else "")
        lines.append(f"  process   pid {p.pid}, ppid {p.ppid}, uid {p.uid}, gid {p.gid}: "
                     f"{args}")
    when = crash_time_text(a)
    if when is not None:
        lines.append(f"  when      {when}")
    exe_mod = next((m for m in c.modules if m.path == c.exe), None)
    exe_bid = ""
    if exe_mod and exe_mod.build_id:
        disk = "the file on disk" if exe_mod.disk_path in (None, exe_mod.path) else \
            exe_mod.disk_path
        exe_bid = f" (build-id {exe_mod.build_id[:16]}…"
        exe_bid += {True: f", matches {disk})", False: f", DIFFERS from {disk})",
                    None: ")"}[exe_mod.build_id_match]
    exe_deleted = any(m.deleted for m in c.mappings if m.path == c.exe)
    lines.append(f"  exe       {c.exe or 'unknown'}{exe_bid}"
                 + (" (deleted or replaced after it started)" if exe_deleted else ""))
    if c.signal:
        s = c.signal
        code = f" {s.code_name or s.code}" if s.code is not None else ""
        extra = ""
        if s.fault_address is not None:
            extra = f", fault address {s.fault_address:#x}"
        if s.sender_pid is not None:
            own = c.process is not None and s.sender_pid == c.process.pid
            extra = (", sent by the process to itself" if own else
                     ", raised by the kernel" if s.sender_pid == 0 else
                     f", sent by pid {s.sender_pid} uid {s.sender_uid}")
        lines.append(f"  signal    {s.name} ({s.number}){code}{extra}")
    if v is not None and v.module:
        pkg = f" (package {v.package.name} {v.package.version or ''})".replace(" )", ")") \
            if v.package else ""
        lines.append(f"  at fault  {v.module}{pkg}")
    if v is not None:
        lines.append(f"  why       {v.reason}")
        if v.report_to:
            lines.append(f"  report to {v.report_to}")
        if v.script is not None and v.script.places:
            places = v.script.places
            more = f", {len(places) - 8} more" if len(places) > 8 else ""
            if places[0].source == "vm-state":
                at = next((p for p in places if not p.library), None)
                lines.append(f"  script    {at.text if at else '?'}; {v.script.language} stack "
                             f"(innermost first, read from the interpreter's state): "
                             + ", ".join(p.text for p in places[:8]) + more)
            else:
                how = {"memory-scan": "chunk name in memory", "cmdline": "command line"}
                lines.append("  script    " + ", ".join(f"{p.text} ({how.get(p.source)})"
                                                        for p in places[:8]) + more)
    if a.signature is not None:
        lines.append(f"  signature {a.signature.hash}  {a.signature.text}")
    if a.threads:
        n = len(a.threads)
        label = "stopped" if is_snapshot(c) else "signalled" if sent_by_other(c) else "crashed"
        if not c.notes_complete:
            count = f" of at least {n} threads (the notes are cut)"
        else:
            count = f" of {n} threads" if n > 1 else " (the only thread)"
        lines.append(f"  {label:<9} thread {a.threads[0].tid}{count}")
    if c.truncated:
        lines.append(f"  core      TRUNCATED: {size(c.size)} of {size(c.expected_size)}")
    else:
        lines.append(f"  core      {size(c.size)}, complete, {c.arch}")
    mism = sum(1 for m in c.modules if m.build_id_match is False)
    gone = sum(1 for m in c.modules if m.deleted)
    absent = sum(1 for m in c.modules if m.found_by == "missing")
    lines.append(f"  modules   {plural(len(c.modules), 'ELF file')} mapped"
                 + (f", {absent} not found here" if absent else "")
                 + (f", {mism} with a build-id mismatch" if mism else "")
                 + (f", {gone} deleted or replaced since loaded" if gone else ""))
    if a.threads:
        t = a.threads[0]
        title = (f"Thread {t.tid} (current when the snapshot was taken):" if is_snapshot(c)
                 else f"Thread {t.tid}, which received the signal:" if sent_by_other(c)
                 else f"Crashing thread {t.tid}:")
        lines += ["", title]
        lines += _frame_lines(t.frames)
        if not a.gdb_used:
            lines.append("  (pc only: backtraces need gdb)")
        lines += _registers(t)
        lines += _context(a)
        lines += _other_threads(a.threads[1:], stacks=a.gdb_used)
    if a.host.log_path:
        lines += ["", f"Last lines of pid {c.process.pid if c.process else '?'} in "
                      f"{a.host.log_path}:"]
        lines += [f"  {line}" for line in a.host.log_lines] or ["  (none: another log, or "
                                                                 "another host?)"]
    if a.warnings:
        lines += ["", "Warnings:"]
        lines += [f"  ! {w}" for w in a.warnings]
    # Each entry is one line: a newline inside a value is shown, not obeyed.
    return "\n".join(visible(line) for line in lines)


def messages(a: Analysis) -> list[str]:
    """What a person should hear on stderr, besides the output."""
    if a.gdb_error:
        return [f"warning: {a.gdb_error}; showing what the core's notes hold"]
    return []


# ---------------------------------------------------------------- --json

SCHEMA = "crashkit/analysis/1"


def frame_json(f: Frame) -> dict[str, Any]:
    # Names, files and lines read from another build than the crashed one are
    # never given as the frame's own: a script reading .function must not get
    # a wrong name. They are kept, labelled, under other_build.
    own = not f.other_build
    return {
        "index": f.index, "pc": f.pc, "function": f.function if own else None,
        "function_offset": f.function_offset if own else None, "module": _p(f.module),
        "module_offset": f.module_offset, "file": f.file if own else None,
        "line": f.line if own else None,
        "other_build": None if own else {"function": f.function, "file": f.file,
                                         "line": f.line},
        "elf_symbol": None if f.elf_symbol is None else {"name": f.elf_symbol,
                                                         "offset": f.elf_offset},
        "inlined": f.inlined, "signal_frame": f.signal_frame, "source": f.source,
        "args": [{"name": n, "value": v} for n, v in f.args],
        "locals": [{"name": n, "value": v} for n, v in f.locals],
        "trusted": f.trusted,
    }


def thread_json(t: Thread) -> dict[str, Any]:
    # pc, sp and fp under those names on every architecture, then the
    # architecture's own (rip, rsp, rbp, … or pc, sp, x29, …).
    neutral = {k: v for k, v in (("pc", t.pc), ("sp", t.sp), ("fp", t.fp)) if v is not None}
    return {"tid": t.tid, "crashed": t.crashed, "name": t.name,
            "registers": {**neutral, **t.registers},
            "frames": [frame_json(f) for f in t.frames]}


def module_json(m: Module, package: Package | None = None) -> dict[str, Any]:
    return {"package": package_json(package), "path": _p(m.path), "start": m.start,
            "end": m.end, "build_id": m.build_id,
            "file_build_id": m.file_build_id, "build_id_match": m.build_id_match,
            "file_status": m.file_status, "deleted": m.deleted, "file": _p(m.disk_path),
            "found_by": m.found_by, "build_id_from": m.build_id_from,
            "placed_by": m.placed_by}


def _p(value: str | None) -> str | None:
    """A path as JSON text. Paths from a core may hold bytes that are not UTF-8;
    they are kept as lone surrogates (so the file can still be opened) and
    shown here as \\xNN, since lone surrogates are not valid JSON for strict
    parsers. Other strings never hold them (they are decoded with 'replace')."""
    if value is None or value.isascii():
        return value
    return value.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def package_json(p: Package | None) -> dict[str, Any] | None:
    return None if p is None else {"name": p.name, "version": p.version, "source": p.source,
                                   "homepage": p.homepage}


def verdict_json(a: Analysis, v: Verdict) -> dict[str, Any]:
    s = a.core.signal
    sender = None
    if a.kind == "killed" and s is not None:
        sender = {"pid": s.sender_pid, "uid": s.sender_uid, "user": a.host.sender_user,
                  "command_now": a.host.sender_command}
    return {"summary": v.summary, "kind": v.kind, "module": _p(v.module),
            "function": v.function, "module_offset": v.module_offset, "origin": v.origin,
            "confidence": v.confidence,
            "reason": v.reason, "frame": v.frame, "package": package_json(v.package),
            "report_to": v.report_to, "sender": sender,
            "script": None if v.script is None else {
                "interpreter": v.script.interpreter, "language": v.script.language,
                "embedded_by": v.script.embedded_by, "handler": v.script.handler,
                "places": [{"text": p.text, "file": p.file, "line": p.line, "source": p.source,
                            "function": p.function, "library": p.library}
                           for p in v.script.places]},
            "log": {"path": _p(a.host.log_path), "lines": list(a.host.log_lines)}
            if a.host.log_path else None}


def access_json(x: Access) -> dict[str, Any]:
    return {"instruction": x.instruction, "base": x.base, "base_value": x.base_value,
            "index": x.index, "index_value": x.index_value, "scale": x.scale,
            "displacement": x.displacement, "width": x.width, "write": x.write,
            "address": x.address, "text": x.text}


def to_json(a: Analysis) -> dict[str, Any]:
    """The ``--json`` form: schema crashkit/analysis/1 (crashkit/schema/analysis-1.json);
    fields are only ever added within a schema version."""
    c = a.core
    p = c.process
    s = c.signal
    return {
        "schema": SCHEMA,
        "crashkit_version": __version__,
        # The headline (verdict.summary) under the name every consumer reads
        # first; the line below it in the text output is what_happened.
        "summary": a.verdict.summary if a.verdict else a.summary,
        "what_happened": a.summary,
        "verdict": verdict_json(a, a.verdict) if a.verdict else None,
        "signature": None if a.signature is None else {
            "text": a.signature.text, "hash": a.signature.hash,
            "frames": list(a.signature.frames), "basis": a.signature.basis},
        "core": {
            "path": _p(c.path), "size": c.size, "truncated": c.truncated,
            "expected_size": c.expected_size, "arch": c.arch,
            "pid": p.pid if p else None, "ppid": p.ppid if p else None,
            "uid": p.uid if p else None, "gid": p.gid if p else None,
            "program": p.fname if p else None,
            "exe": _p(c.exe), "execfn": c.execfn,
            "cmdline": p.args if p else None,
            "cmdline_truncated": p.args_truncated if p else None,
        },
        "signal": None if s is None else {
            "number": s.number, "name": s.name, "code": s.code, "code_name": s.code_name,
            "errno": s.errno, "fault_address": s.fault_address, "sender_pid": s.sender_pid,
            "sender_uid": s.sender_uid, "description": s.description,
        },
        "crash": {
            "kind": a.kind,
            "cause": a.cause,
            "module": _p(a.crash_module),
            "frame": frame_json(a.crash_frame) if a.crash_frame else None,
            "blamed_frame": frame_json(a.blame) if a.blame else None,
            "access": access_json(a.access) if a.access else None,
            "exception": a.meaning.exception if a.meaning else None,
        },
        "threads": [thread_json(t) for t in a.threads],
        "modules": [module_json(m, a.host.packages.get(m.path)) for m in c.modules],
        "mappings": [{"start": m.start, "end": m.end, "file_offset": m.file_offset,
                      "path": _p(m.path), "deleted": m.deleted} for m in c.mappings],
        "auxv": dict(c.auxv),
        "gdb_used": a.gdb_used,
        "gdb_error": a.gdb_error,
        "context": None if a.context is None else {
            "pc": a.context.pc,
            "instructions": [{"address": i.address, "text": i.text, "function": i.function,
                              "offset": i.offset} for i in a.context.instructions],
            "faulting_instruction": None if a.context.faulting is None else
            a.context.faulting.text,
            "trusted": a.context.trusted,
        },
        "warnings": list(a.warnings),
        "crash_time": None if a.crash_time is None else {
            "time": a.crash_time.time, "source": a.crash_time.source,
            "age_seconds": a.crash_time.age_seconds},
    }
