"""What happened, who is at fault, and the one-line summary: pure functions
over the model."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import replace

from crashkit.analysis.access import decode_access
from crashkit.analysis.attribution import (
    Blame,
    blame,
    describe_module,
    frame_label,
    origin,
    report_to,
)
from crashkit.analysis.interpreters import (
    ScriptRun,
    handler_token,
    recognise,
    script_frame,
    script_places,
)
from crashkit.analysis.meaning import MEANINGS, is_snapshot, sent_by_other, signal_meaning
from crashkit.analysis.signature import make_signature, normalize_function
from crashkit.model.analyze import (
    Analysis,
    AnalysisKind,
    CoreFacts,
    CrashContext,
    Frame,
    HostFacts,
    Meaning,
    ScriptPlace,
    ScriptRunFacts,
    Thread,
    Verdict,
)


def _place(facts: CoreFacts, frame: Frame) -> str:
    if frame.module:
        return os.path.basename(frame.module)
    if not facts.mappings:
        return "mapping unknown: the core has no NT_FILE note"
    if any(lo <= frame.pc < hi for lo, hi in facts.exec_ranges):
        return "anonymous executable memory (JIT code?)"
    if any(lo <= frame.pc < hi for lo, hi in facts.memory_ranges):
        return "non-executable memory: heap, stack or data"
    return "unmapped memory"


def summarize(facts: CoreFacts, crashed: Thread | None, blamed: Frame | None,
              meaning: Meaning) -> str:
    crash = crashed.frames[0] if crashed and crashed.frames else None
    who = os.path.basename(facts.exe) if facts.exe else (
        facts.process.fname if facts.process else "?")
    pid = f" (pid {facts.process.pid})" if facts.process else ""
    if is_snapshot(facts):
        how = f"while stopped by {facts.signal.name}" if facts.signal else "with no signal"
        where = f"; it was in {frame_label(crash)}" if crash else ""
        return (f"{who}{pid}: a snapshot taken {how} (gcore or a debugger), not a crash"
                f"{where}")
    text = f"{who}{pid} died of {meaning.text}"
    if sent_by_other(facts):
        where = f"; it was in {frame_label(crash)} [{_place(facts, crash)}]" if crash else ""
        return (f"{text}. Another process killed it: not a bug in the code that was "
                f"running{where}")
    if crash is not None:
        text += f", in {frame_label(crash)} [{_place(facts, crash)}]"
        if blamed is not None and blamed is not crash and blamed.module != crash.module:
            text += (f", called from {frame_label(blamed)} "
                     f"[{os.path.basename(blamed.module or '?')}]")
    return text


def _short_label(frame: Frame, facts: CoreFacts) -> str:
    """A frame's name for the verdict: glibc's CPU variants by the function
    they implement (strlen(), not __strlen_evex())."""
    if frame.function and frame.trusted and origin(frame.module, facts) == "system":
        return f"{normalize_function(frame.function)}()"
    return frame_label(frame)


def _sender(facts: CoreFacts, host: HostFacts) -> str:
    s = facts.signal
    if s is None or s.sender_pid is None:
        return "another process"
    who = f"pid {s.sender_pid}"
    if s.sender_uid is not None:
        who += (f" of user {host.sender_user}, uid {s.sender_uid}" if host.sender_user
                else f", uid {s.sender_uid}")
    if host.sender_command:
        who += f"; that pid now runs {host.sender_command!r}"
    return f"another process ({who})"


def make_verdict(facts: CoreFacts, crashed: Thread | None, meaning: Meaning, found: Blame,
                 host: HostFacts) -> Verdict:
    s = facts.signal
    crash = crashed.frames[0] if crashed and crashed.frames else None
    if is_snapshot(facts):
        how = s.name if s else "no signal"
        return Verdict(kind=meaning.kind, module=None, function=None, origin=None,
                       confidence="none", reason="a core of a live process, not a crash",
                       summary=f"Not a crash: a snapshot of a live process ({how}), taken by "
                               "gcore or a debugger.")
    if sent_by_other(facts):
        sig = s.name if s else "a signal"
        return Verdict(kind=meaning.kind, module=None, function=None, origin=None,
                       confidence="none", reason=f"{sig} was sent by {_sender(facts, host)}",
                       summary=f"Not a bug in the code that was running: {sig} was sent by "
                               f"{_sender(facts, host)}.")
    title = MEANINGS[meaning.kind].title or (s.name if s else "A crash")
    frame = found.frame
    kind = origin(frame.module, facts, host.packages.get(frame.module or "")) if frame else None
    package = host.packages.get(frame.module) if frame and frame.module else None
    place = ""
    on_purpose = MEANINGS[meaning.kind].on_purpose
    if crash is not None and crash.module is not None and not on_purpose and (
            frame is None or crash is not frame):
        place = f" in {_short_label(crash, facts)}"
        if crash.module and (frame is None or crash.module != frame.module):
            place += f" [{os.path.basename(crash.module)}]"
    if frame is not None and kind != "system":
        place += (", called from " if place else " in ") + frame_label(frame)
        whose = f"{describe_module(frame.module or '?', kind)} is at fault"
    elif frame is not None:
        whose = "the code at fault is unknown"
    else:
        whose = "no module is at fault" if found.confidence == "none" else \
            "the code at fault is unknown"
    summary = f"{title}{place}: {whose} ({found.confidence} confidence)."
    at_fault = frame is not None and kind != "system"
    return Verdict(
        kind=meaning.kind, summary=summary, module=frame.module if frame and at_fault else None,
        function=frame.function if frame and at_fault and frame.function and frame.trusted
        else None, origin=kind if at_fault else None, confidence=found.confidence,
        reason=found.reason,
        frame=frame.index if frame and frame.index >= 0 else None, package=package,
        module_offset=frame.module_offset if frame and at_fault else None,
        report_to=report_to(frame.module, kind, package) if frame and at_fault else None)


def script_verdict(facts: CoreFacts, crashed: Thread | None, meaning: Meaning, run: ScriptRun,
                   host: HostFacts, memory: Sequence[bytes] = (),
                   vm: Sequence[ScriptPlace] = (),
                   config: Sequence[tuple[str, str, int]] = ()) -> tuple[Verdict, Blame]:
    """The verdict when the crashing thread was running a script: the script
    is the likely cause, the interpreter's own bug the less likely one."""
    interp = run.interpreter
    title = MEANINGS[meaning.kind].title or (facts.signal.name if facts.signal else "A crash")
    crash = crashed.frames[0] if crashed and crashed.frames else None
    place = f" in {_short_label(crash, facts)} [{_place(facts, crash)}]" if crash else ""
    frame = run.embedder
    module = frame.module if frame else run.interpreter_module
    package = host.packages.get(module or "")
    kind = origin(module, facts, package)
    ipkg = host.packages.get(run.interpreter_module or "")
    tracker = (ipkg.homepage if ipkg and ipkg.homepage else interp.tracker)
    ilib = os.path.basename(run.interpreter_module) if run.interpreter_module else interp.name
    summary = (f"{title}{place}: {interp.language} script code running in {interp.name} "
               f"(embedded by {run.embedded_by}) crashed the process; most likely the script "
               f"is at fault ({interp.example}), less likely a bug in {interp.name} "
               f"({ilib}) (medium confidence).")
    via = f", through {frame_label(frame)} (frame #{frame.index})" if frame else ""
    reason = (f"{interp.name}'s code is on the crashing stack{via}: the interpreter was "
              f"running a {interp.language} script, and scripts crash interpreters (bad "
              "pointers handed to FFI or native calls) far more often than interpreters break")
    places = script_places(run, facts, memory, vm, config)
    conf = [p for p in places if p.source == "config"]
    seen = [p for p in places if p.source != "config"]
    at = script_frame(places)
    if at is not None:
        reason += (f"; the script's stack, read from {interp.name}'s own state, is at "
                   f"{at.text}")
        who = f"the site's {interp.language} code ({at.text}, run by {run.embedded_by}"
    elif len(seen) == 1 or (not seen and len(conf) == 1):
        where = (seen or conf)[0]
        how = {"memory-scan": f"the only {interp.language} chunk name in the process's memory",
               "cmdline": "the script on the interpreter's command line",
               "config": f"the only directive of the nginx config that runs {interp.language}",
               "vm-state": f"read from {interp.name}'s state"}[where.source]
        reason += f"; the script: {where.text} ({how})"
        who = f"the site's {interp.language} code ({where.text}, run by {run.embedded_by}"
    else:
        if seen:
            reason += (f"; {len(seen)} {interp.language} chunks are in the process's memory "
                       f"({', '.join(p.text for p in seen[:5])}"
                       f"{', …' if len(seen) > 5 else ''}), which one ran is not known")
        who = f"the site's {interp.language} code (the script run by {run.embedded_by}"
    if conf and not (len(conf) == 1 and not seen):
        reason += (f"; the nginx config runs {interp.language} from "
                   f"{', '.join(p.text for p in conf[:5])}{', …' if len(conf) > 5 else ''}")
    who += ("; its directives in the nginx config)" if ".so" in run.embedded_by else ")")
    fallback = (f"{ipkg.name} ({tracker})" if ipkg else tracker) if tracker else None
    verdict = Verdict(
        kind=meaning.kind, summary=summary, module=module,
        function=frame.function if frame and frame.trusted else None, origin=kind,
        confidence="medium", reason=reason,
        frame=frame.index if frame and frame.index >= 0 else None, package=package,
        module_offset=frame.module_offset if frame else None,
        report_to=who + (f"; if the script is innocent, {interp.name}: {fallback}"
                         if fallback else ""),
        script=ScriptRunFacts(interp.name, interp.language, run.embedded_by,
                              handler_token(run).split("!", 1)[1], places))
    return verdict, Blame(frame, "medium", reason)


def _script_token(run: ScriptRun | None, verdict: Verdict) -> str | None:
    """The signature's script entry: the handler that ran the script and,
    when the script's stack was read, the script's own function and file
    (its name, not its line: a line moves with every edit of the file)."""
    if run is None:
        return None
    token = handler_token(run)
    at = script_frame(verdict.script.places) if verdict.script else None
    if at is not None and at.file:
        token += f" @ {os.path.basename(at.file)}!{at.function}"
    return token


def module_warnings(facts: CoreFacts, rescued: frozenset[str] = frozenset()) -> list[str]:
    out = []
    if facts.exe and any(m.deleted for m in facts.mappings if m.path == facts.exe):
        exe = next((m for m in facts.modules if m.path == facts.exe), None)
        if exe is None or exe.build_id_match is not True:
            out.append(f"{facts.exe} was deleted or replaced after the process started (an "
                       "upgrade?): the file now at that path may not be the build that crashed")
    for m in facts.modules:
        if m.build_id_match is False and m.path in rescued:
            out.append(f"build-id mismatch: {m.path} on disk is another build, but a debug "
                       f"file of the crashed build ({m.build_id}) was found: names come from "
                       "it (gdb's unwinding still used the file on disk)")
        elif m.build_id_match is False:
            where = m.disk_path if m.disk_path and m.disk_path != m.path else m.path
            out.append(f"BUILD-ID MISMATCH: {where} on disk is {m.file_build_id}, the crashed "
                       f"process had {m.build_id}; names, lines and instructions from this "
                       "file are not trustworthy (pass the crashed build's debug file with "
                       "--debug-dir, or its files with --sysroot/--exe)")
        elif m.file_status == "missing" and m.found_by != "core":
            fetch = (f"fetch the file of build-id {m.build_id} (`debuginfod-find executable "
                     f"{m.build_id}`, or the package of the crashed host that ships it) and "
                     "pass it with --sysroot or --debug-dir" if m.build_id else
                     "the core does not hold its build-id either: pass the crashed host's "
                     "files with --sysroot")
            out.append(f"{m.path} is not on this host (looked up by build-id and by path); "
                       f"its frames cannot be symbolized: {fetch}")
        elif m.build_id is None and m.file_build_id and m.found_by in ("path", "sysroot"):
            out.append(f"{m.path}: the core does not hold its build-id (its first page was "
                       f"not dumped), so {m.disk_path or m.path}, read for it, cannot be "
                       "checked against the crashed build")
        elif m.file_status == "not-elf":
            out.append(f"{m.disk_path or m.path} on disk is not an ELF file any more "
                       "(replaced?); its frames cannot be symbolized")
        elif m.file_status == "unreadable":
            out.append(f"{m.disk_path or m.path} cannot be read; its frames cannot be "
                       "symbolized")
    return out


def build_analysis(facts: CoreFacts, threads: tuple[Thread, ...], *, gdb_used: bool,
                   gdb_error: str | None = None, extra_warnings: Sequence[str] = (),
                   context: CrashContext | None = None,
                   rescued: frozenset[str] = frozenset(),
                   host: HostFacts | None = None,
                   scanned: tuple[Frame, int] | None = None,
                   memory: Sequence[bytes] = (),
                   vm: Sequence[ScriptPlace] = (),
                   config: Sequence[tuple[str, str, int]] = ()) -> Analysis:
    """``memory``: strings found in the process's memory for the interpreter
    the crashing thread ran (its chunk names, see interpreters.script_places)."""
    host = host or HostFacts()
    crashed = threads[0] if threads else None
    frames = crashed.frames if crashed else ()
    unwound = gdb_used and any(f.source != "notes" for f in frames) and len(frames) > 1
    why = ("gdb was turned off with --no-gdb"
           if not gdb_used and gdb_error is None else "the stack could not be unwound")
    meaning = signal_meaning(facts, crashed)
    access = None
    if context is not None and context.faulting is not None and context.trusted and \
            crashed is not None and facts.signal is not None and \
            facts.signal.fault_address is not None:
        access = decode_access(context.faulting.text, crashed.registers,
                               facts.signal.fault_address)
    if access is not None and meaning.kind in ("null-pointer", "near-null", "wild-pointer"):
        # The instruction's addressing, not the fault address alone, says
        # whether a pointer was NULL or held a small bad value.
        meaning = replace(meaning, text=f"{meaning.text.split(':')[0]}: an access at "
                                        f"{access.address:#x}: {access.text} "
                                        f"({'write' if access.write else 'read'})")
    killed, snapshot = sent_by_other(facts), is_snapshot(facts)
    found = (Blame(None, "none", "not a crash") if killed or snapshot
             else blame(frames, facts, unwound=unwound, why_not_unwound=why))
    if scanned is not None and not (killed or snapshot) and found.confidence == "low" and (
            found.frame is None or origin(found.frame.module, facts) == "system"):
        frame, offset = scanned
        found = Blame(frame, "low",
                      f"a guess: {why}, and the first word on the stack "
                      f"that points into a module's code ({offset} bytes above sp) is in "
                      f"{frame_label(frame)}; most often that is the caller's return address")
    run = None if killed or snapshot or not frames else recognise(frames, facts)
    if run is not None:
        verdict, found = script_verdict(facts, crashed, meaning, run, host, memory, vm, config)
    else:
        verdict = make_verdict(facts, crashed, meaning, found, host)
    signature = None if snapshot else make_signature(
        facts.signal.name if facts.signal else "no signal", frames, unwound=unwound,
        killed=killed, program=facts.exe or (facts.process.fname if facts.process else None),
        script=_script_token(run, verdict), exception=meaning.exception)
    # The same warning twice (one per module of a partial sysroot) says no more.
    warnings = list(dict.fromkeys([*facts.problems, *module_warnings(facts, rescued),
                                   *extra_warnings]))
    kind: AnalysisKind = "snapshot" if snapshot else "killed" if killed else "crash"
    return Analysis(core=facts, threads=threads, crash_frame=frames[0] if frames else None,
                    crash_module=verdict.module, summary=summarize(facts, crashed, found.frame,
                                                                   meaning),
                    warnings=tuple(warnings), gdb_used=gdb_used, gdb_error=gdb_error,
                    context=context, cause=meaning.text,
                    blame=found.frame if verdict.module and verdict.frame is not None else None,
                    kind=kind,
                    meaning=meaning, verdict=verdict, signature=signature, host=host,
                    access=access)
