"""gdb under its address-space limit (issue 18 finding 5): an executable that
claims a huge ``.symtab`` (a sparse file, so it costs no disk) once made gdb
grow past 20 GB. gdb runs with RLIMIT_AS (4 GiB, CRASHKIT_GDB_MEMORY sets
another): it gives up on that file's symbols, or dies, and crashkit reports
the core's facts with one warning naming the limit.

The tests set a small limit so that they stay light on a shared machine, and
watch gdb's own peak sizes (VmPeak, VmHWM) in /proc while it runs.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT, fixture
from tests.elfwriter import with_huge_section

pytestmark = pytest.mark.integration

MiB = 1 << 20


def _children(pid: int) -> list[int]:
    try:
        return [int(x) for x in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def _status_kib(pid: int, key: str) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return None


def analyze_watching_gdb(args: list[str], limit: str) -> tuple[subprocess.CompletedProcess[str],
                                                               float, dict[str, int]]:
    """Run crashkit analyze with CRASHKIT_GDB_MEMORY=limit; its result, how long
    it took, and gdb's peak VmPeak and VmHWM in bytes (sampled every 5 ms)."""
    env = {**os.environ, "CRASHKIT_GDB_MEMORY": limit}
    started = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "crashkit", "analyze", *args], cwd=ROOT,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peaks = {"VmPeak": 0, "VmHWM": 0, "seen": 0}

    def watch() -> None:
        while proc.poll() is None:
            for child in _children(proc.pid):
                if Path(f"/proc/{child}/comm").read_text().strip() == "gdb" if \
                        os.path.exists(f"/proc/{child}/comm") else False:
                    peaks["seen"] = 1
                    for key in ("VmPeak", "VmHWM"):
                        peaks[key] = max(peaks[key], (_status_kib(child, key) or 0) * 1024)
            time.sleep(0.005)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        out, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
        watcher.join()
    done = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
    return done, time.monotonic() - started, peaks


def notes_facts(data: dict[str, Any], fx: dict[str, Any]) -> None:
    assert data["core"]["pid"] == fx["pid"]
    assert data["signal"]["number"] == fx["signal"]
    assert len(data["threads"]) == fx["threads"]


HINT = "crashkit limits gdb to {} of address space; CRASHKIT_GDB_MEMORY=SIZE raises it"


def test_huge_symtab_stays_under_gdbs_limit(manifest: dict[str, Any], tmp_path: Path) -> None:
    fx = fixture(manifest, "mt-64")
    exe = tmp_path / "mt_plugin"
    with_huge_section(fx["exe"], str(exe), b".symtab", 1 << 30)  # claims 1 GiB
    assert exe.stat().st_size > 1 << 30 and exe.stat().st_blocks * 512 < 4 * MiB
    proc, elapsed, peaks = analyze_watching_gdb(["--json", "--exe", str(exe), fx["core"]],
                                                "512M")
    assert proc.returncode == 0, proc.stderr
    assert elapsed < 60, elapsed
    data = json.loads(proc.stdout)
    notes_facts(data, fx)
    # gdb gave up on the executable's symbols, and said why; the core and its
    # libraries still gave the backtrace.
    assert data["gdb_error"] is None
    assert (f"gdb could not load the executable (Can't read symbols from {exe}: memory "
            f"exhausted; {HINT.format('512 MiB')}); backtraces come from the core and its "
            "libraries alone") in data["warnings"]
    assert data["threads"][0]["frames"][0]["function"] == fx["crash_function"]
    # gdb never grew past its limit.
    assert peaks["seen"] and 0 < peaks["VmHWM"] <= peaks["VmPeak"] <= 512 * MiB, peaks
    # Nor crashkit itself: it does not read a symbol table of that size
    # (elf/symbols.MAX_TABLE_BYTES); GNU time's %M is the peak RSS in KiB.
    timed = subprocess.run(["/usr/bin/time", "-f", "%M", sys.executable, "-m", "crashkit",
                            "analyze", "--no-gdb", "--json", "--exe", str(exe), fx["core"]],
                           cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert timed.returncode == 0, timed.stderr
    assert int(timed.stderr.split()[-1]) < 200 * 1024, timed.stderr


def test_gdb_stopped_by_its_limit_leaves_the_notes_facts(manifest: dict[str, Any]) -> None:
    # Too small for gdb even to start: it dies, and crashkit says so in one
    # line naming the limit, with the facts of the core's notes.
    fx = fixture(manifest, "mt-64")
    proc, elapsed, peaks = analyze_watching_gdb(["--json", fx["core"]], "64M")
    assert proc.returncode == 0, proc.stderr
    assert elapsed < 30, elapsed
    data = json.loads(proc.stdout)
    notes_facts(data, fx)
    said = (r"gdb (?:ran out of memory and )?ended \((?:killed by signal \d+|exit \d+)\) before "
            r"answering -[\w-]+ \((?:if it ran out of memory: )?" +
            re.escape(HINT.format("64 MiB")) + r"\)")
    assert re.fullmatch(said, data["gdb_error"]), data["gdb_error"]
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and re.fullmatch(
        "crashkit: warning: " + said + "; showing what the core's notes hold", lines[0]), lines
    assert peaks["VmPeak"] <= 64 * MiB, peaks


def test_a_limit_that_is_not_a_size_is_bad_input(manifest: dict[str, Any]) -> None:
    fx = fixture(manifest, "mt-64")
    proc = subprocess.run([sys.executable, "-m", "crashkit", "analyze", fx["core"]], cwd=ROOT,
                          env={**os.environ, "CRASHKIT_GDB_MEMORY": "lots"},
                          capture_output=True, text=True, timeout=60)
    assert (proc.returncode, proc.stdout) == (2, "")
    assert proc.stderr == ("crashkit: error: CRASHKIT_GDB_MEMORY='lots' is not a size (bytes, "
                           "or a number with K, M, G or T; or unlimited)\n")
