"""The text output, whole, against reviewed golden files (synthetic cores, so
nothing depends on this host). CRASHKIT_UPDATE_GOLDEN=1 rewrites them."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.elfwriter import SynthCore, SynthThread
from tests.golden import assert_golden
from tests.unit.test_core_synthetic import aarch64_core


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
    out = run_cli("analyze", "--no-gdb", "--no-host", str(core), check=True).stdout
    assert_golden(f"{name}.txt", out)
