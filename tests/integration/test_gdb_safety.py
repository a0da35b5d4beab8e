"""gdb never runs code that a binary or a home directory carries.

The binary here embeds a Python script in .debug_gdb_scripts that writes a
canary file. Each test first shows that the same setup *does* run the script
when the protection under test is off, so the test can fail."""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import sys
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


def test_debuginfod_answers_are_kept_between_runs(tmp_path: Path) -> None:
    """--debuginfod asks a real (local) debuginfod server through gdb's
    libdebuginfod; what it answered is kept in crashkit's own cache
    (gdb's HOME is thrown away after each run), so a second analysis of the
    same core asks nothing again."""
    import http.server
    import threading

    from crashkit.gdb.spawn import debuginfod_cache

    asked: list[str] = []

    class Debuginfod(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            asked.append(self.path)
            self.send_response(404)  # no debug info here: libdebuginfod caches the miss
            self.end_headers()

        def log_message(self, *_args: object) -> None:
            pass

    if shutil.which("gcc") is None:
        unavailable("gcc is not installed")
    # Without -g: a program gdb has no debug info for, so it asks debuginfod;
    # built now, its build-id is one no cache has seen.
    (tmp_path / "prog.c").write_text(SOURCE.replace("CANARY", str(tmp_path / "canary"))
                                     .replace("{ return r->b; }",
                                              f"{{ return r->b + {os.getpid()}; }}"))
    exe = tmp_path / "prog"
    subprocess.run(["gcc", "-O1", "-o", str(exe), str(tmp_path / "prog.c")], check=True)
    core = crash_for_core([str(exe)], tmp_path)
    build_id = next(m["build_id"] for m in analyze_json(str(core), "--no-gdb")["modules"]
                    if m["path"] == str(exe))
    cache, problem = debuginfod_cache()
    assert cache is not None and problem is None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Debuginfod)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEBUGINFOD_")}
    env["DEBUGINFOD_URLS"] = url
    try:
        for run in (1, 2):
            proc = subprocess.run([sys.executable, "-m", "crashkit", "analyze", "--json",
                                   "--debuginfod", str(core)], env=env, capture_output=True,
                                  text=True, timeout=120)
            assert proc.returncode in (0, 1), proc.stderr
            if run == 1:  # the program's build-id is new: gdb asked for it, once
                assert f"/buildid/{build_id}/debuginfo" in asked, asked
                first, asked[:] = list(asked), []
        assert asked == [], f"asked again: {asked} (first run: {first})"
        assert os.path.isdir(os.path.join(cache, build_id))
    finally:
        server.shutdown()
        shutil.rmtree(os.path.join(cache, build_id), ignore_errors=True)
