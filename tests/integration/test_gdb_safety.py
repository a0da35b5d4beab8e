"""gdb never runs code that a binary or a home directory carries.

The binary here embeds a Python script in .debug_gdb_scripts that writes a
canary file. Each test first shows that the same setup *does* run the script
when the protection under test is off, so the test can fail."""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from crashkit.gdb import backtrace as bt
from crashkit.gdb.session import GdbOptions, GdbSession
from crashkit.gdb.spawn import SafetyFlags
from tests.conftest import analyze_json, crash_for_core, unavailable

pytestmark = pytest.mark.integration

SOURCE = r"""
#include <stdio.h>
asm(".pushsection \".debug_gdb_scripts\", \"MS\",@progbits,1\n"
    ".byte 4\n"
    ".ascii \"crashkit-canary\\n\"\n"
    ".ascii \"open('CANARY', 'w').write('the script ran')\\n\"\n"
    ".byte 0\n"
    ".popsection\n");
struct rec { long a, b; };
__attribute__((noinline)) long boom(struct rec *volatile r) { return r->b; }
int main(void) { struct rec *volatile r = 0; printf("%ld\n", boom(r)); return 0; }
"""


@pytest.fixture(scope="module")
def scripted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path, Path]:
    """(exe, core, canary, home with a gdbinit that trusts every path)."""
    for tool in ("gcc", "gdb"):
        if shutil.which(tool) is None:
            unavailable(f"{tool} is not installed")
    d = tmp_path_factory.mktemp("scripted")
    canary = d / "canary"
    (d / "prog.c").write_text(SOURCE.replace("CANARY", str(canary)))
    subprocess.run(["gcc", "-g", "-O1", "-o", str(d / "prog"), str(d / "prog.c")], check=True)
    core = crash_for_core([str(d / "prog")], d)
    home = d / "home"
    home.mkdir()
    (home / ".gdbinit").write_text("set auto-load safe-path /\n")
    return d / "prog", core, canary, home


def run_session(exe: Path, core: Path, home: Path, safety: SafetyFlags) -> None:
    old = os.environ.get("HOME")
    os.environ["HOME"] = str(home)
    try:
        with GdbSession(GdbOptions(safety=safety, timeout=60)) as s:
            bt.finish_load(s, bt.start_load(s, str(exe), str(core)))
            s.command("-stack-list-frames --thread 1")
    finally:
        if old is not None:
            os.environ["HOME"] = old


def test_plain_gdb_runs_the_script(scripted: tuple[Path, Path, Path, Path]) -> None:
    """The control: gdb as people run it executes the embedded script."""
    exe, core, canary, home = scripted
    canary.unlink(missing_ok=True)
    env = dict(os.environ, HOME=str(home))
    subprocess.run(["gdb", "-batch", "-ex", "bt", str(exe), str(core)], env=env,
                   capture_output=True, timeout=120, check=True)
    assert canary.read_text() == "the script ran"


def test_crashkit_does_not_run_it(scripted: tuple[Path, Path, Path, Path]) -> None:
    _exe, core, canary, home = scripted
    canary.unlink(missing_ok=True)
    old = os.environ.get("HOME")
    os.environ["HOME"] = str(home)
    try:
        data = analyze_json(str(core))
    finally:
        if old is not None:
            os.environ["HOME"] = old
    assert data["gdb_used"] is True
    assert [f["function"] for f in data["threads"][0]["frames"][:2]] == ["boom", "main"]
    assert not canary.exists()


@pytest.mark.parametrize(("unsafe", "safe"), [
    # Only -nx: the gdbinit that widens the safe-path is never read.
    (SafetyFlags(nx=False, auto_load_off=False, private_home=False),
     SafetyFlags(nx=True, auto_load_off=False, private_home=False)),
    # Only auto-load off: the gdbinit is read, yet nothing is auto-loaded.
    (SafetyFlags(nx=False, auto_load_off=False, private_home=False),
     SafetyFlags(nx=False, auto_load_off=True, private_home=False)),
    # Only the private HOME: the gdbinit is not where gdb looks.
    (SafetyFlags(nx=False, auto_load_off=False, private_home=False),
     SafetyFlags(nx=False, auto_load_off=False, private_home=True)),
], ids=["nx", "auto-load-off", "private-home"])
def test_each_protection_alone(scripted: tuple[Path, Path, Path, Path], unsafe: SafetyFlags,
                               safe: SafetyFlags) -> None:
    exe, core, canary, home = scripted
    canary.unlink(missing_ok=True)
    run_session(exe, core, home, unsafe)
    assert canary.exists(), "control failed: with the protection off the script should run"
    canary.unlink()
    run_session(exe, core, home, safe)
    assert not canary.exists()


def test_debuginfod_env_is_scrubbed(monkeypatch: pytest.MonkeyPatch) -> None:
    from crashkit.gdb.spawn import gdb_argv, gdb_env

    monkeypatch.setenv("DEBUGINFOD_URLS", "https://debuginfod.example.invalid")
    env = gdb_env(SafetyFlags(), "/nonexistent-home")
    assert "DEBUGINFOD_URLS" not in env and env["HOME"] == "/nonexistent-home"
    argv = gdb_argv("gdb", SafetyFlags())
    assert "-nx" in argv
    pairs = list(itertools.pairwise(argv))
    assert ("-iex", "set auto-load off") in pairs
    assert ("-iex", "set debuginfod enabled off") in pairs
