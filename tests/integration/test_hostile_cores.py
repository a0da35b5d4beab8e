"""Cores made to stall or mislead gdb (issue 18): gdb sees only files
crashkit verified, so a FIFO or /dev/stdin named by the core costs nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import fixture
from tests.elfwriter import SynthCore, SynthThread


@pytest.mark.parametrize("target", ["fifo", "/dev/stdin"])
def test_core_naming_a_fifo_or_stdin_returns_at_once_with_its_facts(tmp_path: Path,
                                                                    target: str) -> None:
    if target == "fifo":
        name = str(tmp_path / "libtrap.so")
        os.mkfifo(name)
    else:
        name = target
    # The executable (AT_ENTRY points into it) and every mapping name it.
    core = SynthCore(threads=[SynthThread(7, {"rip": 0x7F0010, "rsp": 0x2000})],
                     files=[(0x7F0000, 0x7F1000, 0, name), (0x7F1000, 0x7F2000, 0x1000, name)],
                     auxv={9: 0x7F0010})
    path = tmp_path / "core"
    path.write_bytes(core.build())
    r, w = os.pipe()  # a standard input that never ends, for /dev/stdin
    try:
        started = time.monotonic()
        proc = subprocess.run([sys.executable, "-m", "crashkit", "analyze", "--json",
                               "--gdb-timeout", "60", str(path)], capture_output=True,
                              text=True, timeout=120, stdin=r)
        elapsed = time.monotonic() - started
    finally:
        os.close(r)
        os.close(w)
    assert proc.returncode == 0, proc.stderr
    assert elapsed < 15, elapsed  # gdb's deadline is 60 s: it never waited on the open
    data = json.loads(proc.stdout)
    assert data["gdb_error"] is None
    frame = data["threads"][0]["frames"][0]
    assert (frame["module"], frame["function"], frame["module_offset"]) == (name, None, 0x10)
    assert (data["core"]["pid"], data["core"]["exe"]) == (4242, name)


def test_a_path_that_is_not_utf8_still_gives_the_backtrace(manifest: dict[str, Any],
                                                           tmp_path: Path) -> None:
    """Every file gdb opens lives under a directory whose name holds byte 0xff."""
    import shutil

    from crashkit.elf.core import CoreFile

    fx = fixture(manifest, "nginx-null")
    root = os.fsencode(tmp_path) + b"/sysroot\xff"
    with CoreFile(fx["core"]) as core:
        mapped = {m.path for m in core.facts().mappings}
    for p in mapped:
        if p.startswith("/") and os.path.isfile(p):
            copy = root + os.fsencode(p)
            os.makedirs(os.path.dirname(copy), exist_ok=True)
            shutil.copy(p, copy)
    proc = subprocess.run([sys.executable, "-m", "crashkit", "analyze", "--json", "--sysroot",
                           os.fsdecode(root), fx["core"]], capture_output=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert (data["gdb_used"], data["gdb_error"]) == (True, None)
    functions = [f["function"] for f in data["threads"][0]["frames"]]
    assert functions[:len(fx["expected_functions"])] == fx["expected_functions"]
