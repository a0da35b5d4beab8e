"""The person-readable summary of an analysis."""

from __future__ import annotations

import os

from crashkit.analysis.verdict import frame_label
from crashkit.model import Analysis, Frame


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{n} B"
        n /= 1024  # type: ignore[assignment]
    return f"{n} B"


def _frame_line(f: Frame) -> str:
    where = frame_label(f)
    if f.function and f.function_offset:
        where = f"{f.function}+{f.function_offset:#x}"
    mod = os.path.basename(f.module) if f.module else "?"
    src = f"  {f.file}:{f.line}" if f.file and f.line else ""
    tags = "".join(t for t, on in ((" [inlined]", f.inlined), (" [signal handler]",
                                                                f.signal_frame)) if on)
    return f"  #{f.index:<2} {f.pc:#018x} {where} [{mod}]{src}{tags}"


def render(a: Analysis) -> str:
    c = a.core
    lines = [a.summary, ""]
    if c.process:
        p = c.process
        lines.append(f"  process   pid {p.pid}, ppid {p.ppid}, uid {p.uid}, gid {p.gid}: "
                     f"{p.args or p.fname}")
    exe_mod = next((m for m in c.modules if m.path == c.exe), None)
    exe_bid = ""
    if exe_mod and exe_mod.build_id:
        exe_bid = f" (build-id {exe_mod.build_id[:16]}…"
        exe_bid += {True: ", matches the file on disk)", False: ", DIFFERS from the file on disk)",
                    None: ")"}[exe_mod.build_id_match]
    lines.append(f"  exe       {c.exe or 'unknown'}{exe_bid}")
    if c.signal:
        s = c.signal
        code = f" {s.code_name or s.code}" if s.code is not None else ""
        extra = ""
        if s.fault_address is not None:
            extra = f", fault address {s.fault_address:#x}"
        if s.sender_pid is not None:
            extra = f", sent by pid {s.sender_pid} uid {s.sender_uid}"
        lines.append(f"  signal    {s.name} ({s.number}){code}{extra}")
    if a.crash_frame:
        crashed = a.threads[0]
        lines.append(f"  crashed   thread {crashed.tid} of {len(a.threads)}")
    if c.truncated:
        lines.append(f"  core      TRUNCATED: {_size(c.size)} of {_size(c.expected_size)}")
    else:
        lines.append(f"  core      {_size(c.size)}, complete, {c.arch}")
    mism = sum(1 for m in c.modules if m.build_id_match is False)
    lines.append(f"  modules   {len(c.modules)} ELF files mapped"
                 + (f", {mism} with a build-id mismatch" if mism else ""))
    if a.threads:
        t = a.threads[0]
        lines += ["", f"Crashing thread {t.tid}:"]
        lines += [_frame_line(f) for f in t.frames]
        if not a.gdb_used:
            lines.append("  (pc only: backtraces need gdb)")
    if a.warnings:
        lines += ["", "Warnings:"]
        lines += [f"  ! {w}" for w in a.warnings]
    return "\n".join(lines)
