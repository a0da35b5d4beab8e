"""The ``analyze`` pipeline: read the core's notes, backtrace with gdb, judge.

gdb is started first, so its own start-up overlaps the reading of the notes;
if gdb is missing, hangs or fails, the analysis still holds every fact the
notes give, with ``gdb_error`` saying why the backtraces are missing.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from crashkit.analysis.options import Options, start_gdb
from crashkit.analysis.verdict import blame_frame, sent_by_other, summarize
from crashkit.elf.core import CoreFile
from crashkit.elf.modules import read_modules
from crashkit.elf.symbols import DEFAULT_DEBUG_DIRS, Symbolizer, host_path
from crashkit.errors import GdbError
from crashkit.model import Analysis, CoreFacts, CrashContext, Frame, Module, Thread

if TYPE_CHECKING:
    from crashkit.gdb.backtrace import Pending
    from crashkit.gdb.session import GdbSession


def read_facts(path: str, options: Options,
               on_notes: Callable[[CoreFacts], None] | None = None) -> CoreFacts:
    """Headers, notes and build-ids: everything the core says without gdb.

    ``on_notes`` runs as soon as the notes are read, before the slower
    build-id reads (the gdb pipeline uses it to start gdb loading)."""
    with CoreFile(path) as core:
        facts = core.facts()
        if on_notes is not None:
            on_notes(facts)
        modules = read_modules(core, facts.mappings, sysroot=options.sysroot,
                               path_map=_path_map(facts, options))
    return dataclasses.replace(facts, modules=modules)


def _path_map(facts: CoreFacts, options: Options) -> dict[str, str]:
    if options.exe and facts.exe:
        return {facts.exe: options.exe}
    return {}


def pc_frame(thread: Thread, symbolizer: Symbolizer, untrusted: set[str]) -> Frame | None:
    if thread.pc is None:
        return None
    sym = symbolizer.symbolize(thread.pc)
    return Frame(index=0, pc=thread.pc, function=sym.function, module=sym.module,
                 module_offset=sym.module_offset, function_offset=sym.function_offset,
                 source="elf" if sym.function else "notes",
                 trusted=sym.module not in untrusted)


def mismatch_warnings(modules: Sequence[Module], exe_override: str | None) -> list[str]:
    out = []
    for m in modules:
        if m.build_id_match is False:
            out.append(f"BUILD-ID MISMATCH: {m.path} on disk is {m.file_build_id}, the crashed "
                       f"process had {m.build_id}; names from this file are not trustworthy "
                       "(install the exact build, or pass --sysroot/--exe)")
        elif m.file_status == "missing":
            out.append(f"{m.path} is not on this host; its frames cannot be symbolized")
    return out


def analyze(path: str, options: Options | None = None, session: GdbSession | None = None,
            gdb_error: str | None = None) -> Analysis:
    """Analyze one core. A ``session`` from :func:`start_gdb` (or the error it
    gave) is used and closed; without either, gdb is started here when
    ``options.use_gdb``."""
    options = options or Options()
    if session is None and gdb_error is None:
        session, gdb_error = start_gdb(options)
    try:
        return _analyze(path, options, session, gdb_error)
    finally:
        if session is not None:
            session.close()


def _analyze(path: str, options: Options, session: GdbSession | None,
             gdb_error: str | None) -> Analysis:
    from crashkit.gdb import backtrace as bt

    pending: list[bt.Pending] = []

    def ask_gdb(facts: CoreFacts) -> None:
        """Queue all of gdb's work as soon as the notes name the executable and
        the threads; gdb does it while build-ids are read here."""
        nonlocal gdb_error
        if session is None:
            return
        exe = options.exe
        if exe is None and facts.exe:
            candidate = host_path(facts.exe.removesuffix(" (deleted)"), options.sysroot)
            exe = candidate if os.path.isfile(candidate) else None
        try:
            # gdb runs in its own empty directory: every path it gets is absolute.
            pending.append(bt.request_all(session, exe and os.path.abspath(exe),
                                          os.path.abspath(path), len(facts.threads),
                                          options.max_frames, options.sysroot,
                                          options.debug_dirs))
        except GdbError as exc:
            gdb_error = str(exc)

    facts = read_facts(path, options, on_notes=ask_gdb)
    symbolizer = Symbolizer(facts.mappings, sysroot=options.sysroot,
                            debug_dirs=tuple(options.debug_dirs) + DEFAULT_DEBUG_DIRS,
                            path_map=_path_map(facts, options))
    untrusted = {m.path for m in facts.modules if m.build_id_match is False}
    threads = tuple(dataclasses.replace(t, frames=(f,) if f else ())
                    for t in facts.threads
                    for f in [pc_frame(t, symbolizer, untrusted)])
    context: CrashContext | None = None
    extra: list[str] = []
    if session is not None and gdb_error is None and pending:
        try:
            threads, context = _gdb_threads(session, pending[0], threads, symbolizer,
                                            untrusted, options, extra, facts.exec_ranges)
        except GdbError as exc:
            gdb_error = str(exc)
    if gdb_error:
        extra.append(f"no backtraces: {gdb_error}")
    return build_analysis(facts, threads, options,
                          gdb_used=session is not None and not gdb_error,
                          gdb_error=gdb_error, extra_warnings=extra, context=context)


def _cut_at_garbage(thread: Thread, frames: list[Frame],
                    exec_ranges: tuple[tuple[int, int], ...], notes: list[str]) -> list[Frame]:
    """Drop the frames from the first one whose pc is not in executable memory:
    gdb guessed them from a stack that is missing (truncated core) or smashed."""
    if not exec_ranges:
        return frames
    for i, f in enumerate(frames):
        if i and not any(lo <= f.pc < hi for lo, hi in exec_ranges):
            notes.append(f"thread {thread.tid}: backtrace cut at frame #{i}: pc {f.pc:#x} is "
                         "not in executable memory (stack missing or corrupt)")
            return frames[:i]
    return frames


def _gdb_threads(session: GdbSession, pending: Pending, threads: tuple[Thread, ...],
                 symbolizer: Symbolizer, untrusted: set[str], options: Options,
                 notes: list[str], exec_ranges: tuple[tuple[int, int], ...],
                 ) -> tuple[tuple[Thread, ...], CrashContext | None]:
    from crashkit.gdb import backtrace as bt

    redact = bt.redact_strings if options.redact else (lambda v: v)
    per_thread, warnings = bt.collect(
        session, pending, [(t.tid, t.pc) for t in threads], symbolizer, untrusted,
        max_frames=options.max_frames, full_frames=options.full_frames, redact=redact)
    notes.extend(warnings)
    out = []
    for t, (frames, error) in zip(threads, per_thread, strict=True):
        frames = _cut_at_garbage(t, frames, exec_ranges, notes)
        if frames:
            out.append(dataclasses.replace(t, frames=tuple(frames)))
        else:
            out.append(t)  # keeps the pc frame from the notes
            if t.crashed:
                notes.append(f"gdb could not unwind the crashing thread ({error or 'no frames'})"
                             "; showing its pc from the core's notes")
    context = None
    if out and out[0].frames:
        top = out[0].frames[0]
        context = bt.disassembly(session, top.pc, top.function_offset)
    return tuple(out), context


def build_analysis(facts: CoreFacts, threads: tuple[Thread, ...], options: Options,
                   *, gdb_used: bool, gdb_error: str | None = None,
                   extra_warnings: Sequence[str] = (),
                   context: CrashContext | None = None) -> Analysis:
    crashed = threads[0] if threads else None
    crash = crashed.frames[0] if crashed and crashed.frames else None
    blame = blame_frame(crashed.frames) if crashed and not sent_by_other(facts) else None
    warnings = list(facts.problems)
    warnings += mismatch_warnings(facts.modules, options.exe)
    warnings += extra_warnings
    return Analysis(core=facts, threads=threads, crash_frame=crash,
                    crash_module=blame.module if blame else None,
                    summary=summarize(facts, crash, blame), warnings=tuple(warnings),
                    gdb_used=gdb_used, gdb_error=gdb_error, context=context)
