"""The ``analyze`` pipeline: read the core's notes, symbolize, judge."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

from crashkit.analysis.verdict import blame_frame, summarize
from crashkit.elf.core import CoreFile
from crashkit.elf.modules import read_modules
from crashkit.elf.symbols import DEFAULT_DEBUG_DIRS, Symbolizer
from crashkit.model import Analysis, CoreFacts, Frame, Module, Thread


@dataclass(frozen=True)
class Options:
    exe: str | None = None
    sysroot: str | None = None
    debug_dirs: Sequence[str] = ()


def read_facts(path: str, options: Options) -> CoreFacts:
    """Headers, notes and build-ids: everything the core says without gdb."""
    with CoreFile(path) as core:
        facts = core.facts()
        path_map = _path_map(facts, options)
        modules = read_modules(core, facts.mappings, sysroot=options.sysroot, path_map=path_map)
    return dataclasses.replace(facts, modules=modules)


def _path_map(facts: CoreFacts, options: Options) -> dict[str, str]:
    if options.exe and facts.exe:
        return {facts.exe: options.exe}
    return {}


def pc_frame(thread: Thread, symbolizer: Symbolizer) -> Frame | None:
    if thread.pc is None:
        return None
    sym = symbolizer.symbolize(thread.pc)
    return Frame(index=0, pc=thread.pc, function=sym.function, module=sym.module,
                 module_offset=sym.module_offset, function_offset=sym.function_offset,
                 source="elf" if sym.function else "notes")


def mismatch_warnings(modules: Sequence[Module], exe_override: str | None) -> list[str]:
    out = []
    for m in modules:
        if m.build_id_match is False:
            where = f" ({exe_override})" if exe_override and m.path else ""
            out.append(f"build-id mismatch: {m.path}{where} on disk is {m.file_build_id}, the "
                       f"crashed process had {m.build_id}; symbols from this file are not "
                       "trustworthy — install the exact build or pass --sysroot")
        elif m.file_status == "missing":
            out.append(f"{m.path} is not on this host; its frames cannot be symbolized")
    return out


def analyze(path: str, options: Options | None = None) -> Analysis:
    options = options or Options()
    facts = read_facts(path, options)
    symbolizer = Symbolizer(facts.mappings, sysroot=options.sysroot,
                            debug_dirs=tuple(options.debug_dirs) + DEFAULT_DEBUG_DIRS,
                            path_map=_path_map(facts, options))
    threads = []
    for t in facts.threads:
        frame = pc_frame(t, symbolizer)
        threads.append(dataclasses.replace(t, frames=(frame,) if frame else ()))
    return build_analysis(facts, tuple(threads), options, gdb_used=False)


def build_analysis(facts: CoreFacts, threads: tuple[Thread, ...], options: Options,
                   *, gdb_used: bool, extra_warnings: Sequence[str] = ()) -> Analysis:
    crashed = threads[0] if threads else None
    crash = crashed.frames[0] if crashed and crashed.frames else None
    blame = blame_frame(crashed.frames) if crashed else None
    warnings = list(facts.problems)
    warnings += mismatch_warnings(facts.modules, options.exe)
    warnings += extra_warnings
    return Analysis(core=facts, threads=threads, crash_frame=crash,
                    crash_module=blame.module if blame else None,
                    summary=summarize(facts, crash, blame), warnings=tuple(warnings),
                    gdb_used=gdb_used)
