"""Shared fixtures: the real crash cores made by scripts/make-sample-cores.

Integration tests need root, gcc, nginx and gdb. Outside CI they skip with the
reason; with CRASHKIT_REQUIRE_INTEGRATION=1 (set by scripts/test, which CI
runs) a missing piece is a failure, never a skip.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
CORES = Path(os.environ.get("CRASHKIT_CORES", ROOT / "build" / "cores"))
REQUIRED = os.environ.get("CRASHKIT_REQUIRE_INTEGRATION") == "1"


def unavailable(reason: str) -> None:
    if REQUIRED:
        pytest.fail(f"integration prerequisite missing (CI must install it): {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def manifest() -> dict[str, Any]:
    path = CORES / "manifest.json"
    if not path.exists():
        if os.geteuid() != 0:
            unavailable("real crash cores need root to build; run scripts/make-sample-cores")
        proc = subprocess.run([str(ROOT / "scripts" / "make-sample-cores"), str(CORES)],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            unavailable(f"scripts/make-sample-cores failed: {proc.stderr[-2000:]}")
    data: dict[str, Any] = json.loads(path.read_text())
    return data["fixtures"]  # type: ignore[no-any-return]


def fixture(manifest: dict[str, Any], name: str) -> dict[str, Any]:
    if name not in manifest:
        unavailable(f"fixture {name} is not in {CORES}/manifest.json")
    return manifest[name]  # type: ignore[no-any-return]


def run_cli(*args: str, check: bool = False) -> subprocess.CompletedProcess[str]:
    """Run the real command line, as a user would."""
    proc = subprocess.run([sys.executable, "-m", "crashkit", *args], capture_output=True,
                          text=True, timeout=120)
    if check and proc.returncode != 0:
        raise AssertionError(f"crashkit {' '.join(args)} exited {proc.returncode}: "
                             f"{proc.stderr}")
    return proc


def analyze_json(core: str, *extra: str) -> dict[str, Any]:
    proc = run_cli("analyze", core, "--json", *extra, check=True)
    data: dict[str, Any] = json.loads(proc.stdout)
    return data
