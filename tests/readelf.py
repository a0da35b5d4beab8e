"""What `eu-readelf -n` says about a core: an independent reading to check ours against."""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass, field


@dataclass
class ReadelfNotes:
    tids: list[int] = field(default_factory=list)
    psinfo: dict[str, str] = field(default_factory=dict)
    siginfo: dict[str, str] = field(default_factory=dict)
    files: list[tuple[int, int, int, str]] = field(default_factory=list)


def readelf_notes(core: str) -> ReadelfNotes:
    out = subprocess.run(["eu-readelf", "-n", core], capture_output=True, text=True,
                         check=True).stdout
    notes = ReadelfNotes()
    section = ""
    for line in out.splitlines():
        head = re.match(r"\s+(CORE|LINUX)\s+\d+\s+(\w+)", line)
        if head:
            section = head.group(2)
            continue
        if section == "PRSTATUS":
            m = re.match(r"\s+pid: (\d+), ppid", line)
            if m:
                notes.tids.append(int(m.group(1)))
        elif section in ("PRPSINFO", "SIGINFO"):
            target = notes.psinfo if section == "PRPSINFO" else notes.siginfo
            if "psargs:" in line:  # psargs holds spaces and commas: keep it whole
                before, _, args = line.partition(", psargs: ")
                target["psargs"] = args.strip()
                line = before
            for key, value in re.findall(r"([\w ]+?): ([^,]+)", line.strip()):
                target[key.strip()] = value.strip()
        elif section == "FILE":
            m = re.match(r"\s+([0-9a-f]+)-([0-9a-f]+) ([0-9a-f]+) \d+\s+(.*)$", line)
            if m:
                notes.files.append((int(m.group(1), 16), int(m.group(2), 16),
                                    int(m.group(3), 16), m.group(4)))
    return notes
