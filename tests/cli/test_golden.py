"""The text output, whole, against reviewed golden files (synthetic cores, so
nothing depends on this host). CRASHKIT_UPDATE_GOLDEN=1 rewrites them."""

from __future__ import annotations

import os
import re
import struct
import time
from pathlib import Path

import pytest

from crashkit.render.analyze import ago
from tests.conftest import run_cli
from tests.elfwriter import SynthCore, SynthThread
from tests.golden import assert_golden
from tests.unit.test_core_synthetic import aarch64_core

CORE_TIME = 1795494959  # 2026-11-24 04:35:59 UTC


def x86_kill_core() -> SynthCore:
    return SynthCore(
        threads=[SynthThread(4242, {"rip": 0x401000, "rsp": 0x7FFC0000, "rbp": 0x7FFC0100}),
                 SynthThread(4243, {"rip": 0x401000, "rsp": 0x7FFB0000}),
                 SynthThread(4244, {"rip": 0x401000, "rsp": 0x7FFA0000})],
        siginfo=(11, 0, 0, struct.pack("<iI", 999, 0)), fname=b"nginx",
        psargs=b"nginx: worker process", auxv={9: 0x401000},
        files=[(0x400000, 0x402000, 0, "/opt/synthetic/sbin/nginx (deleted)")])


@pytest.mark.parametrize(("name", "make"), [("aarch64-bus", aarch64_core),
                                            ("x86-kill", x86_kill_core)])
def test_text_output(tmp_path: Path, name: str, make) -> None:  # type: ignore[no-untyped-def]
    core = tmp_path / "core"
    core.write_bytes(make().build())
    os.utime(core, (CORE_TIME, CORE_TIME))
    out = run_cli("analyze", "--no-gdb", "--no-host", str(core), check=True,
                  env={"TZ": "UTC"}).stdout
    # The crash time is the core's file time; only how long ago changes from run to run.
    age = int(time.time()) - CORE_TIME
    m = re.search(r"^  when      (.+) \((.+); from the core file time\)$", out, re.M)
    assert m is not None and m[1] == "2026-11-24 04:35:59 +00:00"
    assert m[2] in (ago(age - 1), ago(age))
    out = re.sub(r"\(\d+ days? \d+ h ago;", "(AGE;", out)
    assert_golden(f"{name}.txt", out)
