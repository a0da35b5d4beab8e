"""As root, crashkit runs only the system's tools, with an environment of
its own (issue 18): a fake gdb or nginx first in PATH, a ``.`` entry, and a
usercustomize.py under PYTHONUSERBASE never run."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import fixture, run_cli

TOOLS = ("gdb", "nginx", "dpkg-query", "openssl", "c++filt", "systemctl", "dmesg")


@pytest.fixture
def trap(tmp_path: Path) -> tuple[Path, Path]:
    """A directory of fake tools that leave a mark, and the mark."""
    bindir = tmp_path / "evil"
    bindir.mkdir()
    mark = tmp_path / "ran"
    for tool in TOOLS:
        fake = bindir / tool
        fake.write_text(f"#!/bin/sh\necho {tool} >> {mark}\nexit 0\n")
        fake.chmod(0o755)
    return bindir, mark


def test_fake_tools_first_in_path_never_run(manifest: dict[str, Any], tmp_path: Path,
                                            trap: tuple[Path, Path]) -> None:
    bindir, mark = trap
    fx = fixture(manifest, "nginx-null")
    env = {"PATH": f"{bindir}:.:{os.environ['PATH']}"}
    os.chdir(bindir)  # and '.' is the attacker's directory too
    try:
        proc = run_cli("analyze", fx["core"], "--json", env=env)
        data = json.loads(proc.stdout)
        assert data["gdb_used"] is True, data["gdb_error"]
        assert data["threads"][0]["frames"][0]["function"] == fx["crash_function"]
        run_cli("doctor", "--json", env=env)
        run_cli("report", fx["core"], "--out", str(tmp_path / "r.html"), env=env)
    finally:
        os.chdir(tmp_path)
    assert not mark.exists(), mark.read_text()


def test_usercustomize_under_pythonuserbase_never_runs_in_gdb(manifest: dict[str, Any],
                                                             tmp_path: Path) -> None:
    fx = fixture(manifest, "nginx-null")
    base = tmp_path / "userbase"
    ver = f"python{sys.version_info.major}.{sys.version_info.minor}"
    mark = tmp_path / "ran"
    for site in (base / "lib" / ver / "site-packages",
                 base / "local/lib" / ver / "dist-packages"):
        site.mkdir(parents=True)
        (site / "usercustomize.py").write_text(f"open({str(mark)!r}, 'a').write('user\\n')\n")
        (site / "evil.pth").write_text(f"import os; open({str(mark)!r}, 'a').write('pth\\n')\n")
    pyhome = tmp_path / "pystartup.py"
    pyhome.write_text(f"open({str(mark)!r}, 'a').write('startup\\n')\n")
    env = {"PYTHONUSERBASE": str(base), "PYTHONSTARTUP": str(pyhome),
           "PYTHONPATH": str(base / "lib" / ver / "site-packages"), "GDBHISTFILE": str(mark)}
    # crashkit itself must not be fooled either: run it in isolated mode.
    import subprocess

    proc = subprocess.run([sys.executable, "-I", "-m", "crashkit", "analyze", fx["core"],
                           "--json", "--full"], capture_output=True, text=True,
                          timeout=120, env={**os.environ, **env},
                          cwd=str(Path(__file__).resolve().parent.parent.parent))
    data = json.loads(proc.stdout)
    assert data["gdb_used"] is True, data["gdb_error"]
    assert data["threads"][0]["frames"][0]["function"] == fx["crash_function"]
    assert not mark.exists(), mark.read_text()
