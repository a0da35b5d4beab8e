"""--debuginfod with no server configured says so (issue 15 item 13)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from tests.conftest import run_cli
from tests.elfwriter import SynthCore, SynthThread

WARNING = ("--debuginfod: DEBUGINFOD_URLS is not set, so no debuginfod server is asked "
           "(set it, e.g. DEBUGINFOD_URLS=https://debuginfod.debian.net)")


def _core(tmp_path: Path) -> str:
    path = tmp_path / "core"
    path.write_bytes(SynthCore(threads=[SynthThread(7, {"rip": 0x7F0010,
                                                        "rsp": 0x2000})]).build())
    return str(path)


def _warnings(*args: str, env: dict[str, str]) -> list[str]:
    proc = run_cli("analyze", "--no-gdb", "--json", *args, env=env)
    assert proc.returncode in (0, 1), proc.stderr
    return list(json.loads(proc.stdout)["warnings"])


def test_no_urls_is_one_warning(tmp_path: Path) -> None:
    core = _core(tmp_path)
    env = {k: v for k, v in os.environ.items() if k != "DEBUGINFOD_URLS"}
    env["DEBUGINFOD_URLS"] = ""  # set but empty: no server either
    got = _warnings("--debuginfod", core, env=env)
    assert got.count(WARNING) == 1
    text = run_cli("analyze", "--no-gdb", "--debuginfod", core, env=env).stdout
    assert f"  ! {WARNING}\n" in text
    # With a server configured, or without --debuginfod: no such warning.
    assert not any("DEBUGINFOD_URLS" in w for w in _warnings(
        "--debuginfod", core, env={**env, "DEBUGINFOD_URLS": "https://debuginfod.example"}))
    assert not any("DEBUGINFOD_URLS" in w for w in _warnings(core, env=env))
