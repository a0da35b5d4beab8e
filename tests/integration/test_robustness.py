"""Hostile or awkward situations around gdb and the files a core names."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from crashkit.gdb.spawn import SafetyFlags, gdb_env
from tests.conftest import (
    analyze_json,
    compile_program,
    crash_for_core,
    fixture,
    run_cli,
    unavailable,
)
from tests.elfwriter import SynthCore, SynthThread

pytestmark = pytest.mark.integration


def fake_gdb(tmp_path: Path, body: str) -> str:
    p = tmp_path / "fake-gdb"
    p.write_text("#!/bin/sh\n" + body + "\n")
    p.chmod(0o755)
    return str(p)


def procs_running(prefix: str) -> list[str]:
    out = []
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                cmd = p.joinpath("cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if cmd.startswith(prefix):
                out.append(cmd)
    return out


def test_many_threads_and_a_gdb_that_reads_nothing(tmp_path: Path) -> None:
    """3000 threads' worth of queued commands overflow the pipe to a gdb that
    never reads: the deadline still fires, and the notes are still there."""
    core = SynthCore(threads=[SynthThread(1000 + i, {"rip": 0x1000 + i, "rsp": 0x2000})
                              for i in range(3000)])
    path = tmp_path / "core"
    path.write_bytes(core.build())
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "crashkit", "analyze", "--json", str(path),
                           "--gdb", fake_gdb(tmp_path, "exec sleep 600"), "--gdb-timeout", "2"],
                          capture_output=True, text=True, timeout=60)
    assert time.monotonic() - start < 30
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert "did not answer" in data["gdb_error"] and len(data["threads"]) == 3000


def test_core_path_with_blanks_and_quotes(manifest: dict[str, Any], tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    fx = fixture(manifest, "nginx-null")
    odd = tmp_path / "cores of 'nginx' \"today\""
    odd.mkdir()
    shutil.copy(fx["core"], odd / "core 1")
    monkeypatch.chdir(odd)
    data = analyze_json("core 1")
    assert data["gdb_used"] is True, data["gdb_error"]
    assert data["threads"][0]["frames"][0]["function"] == fx["crash_function"]
    assert len(data["threads"][0]["frames"]) >= len(fx["expected_functions"])


@pytest.mark.parametrize("mode", [["--no-gdb"], []], ids=["notes", "gdb"])
def test_core_naming_a_fifo_does_not_hang(tmp_path: Path, mode: list[str]) -> None:
    """Both as a library and as the executable (AT_ENTRY points into it)."""
    fifo = tmp_path / "libtrap.so"
    os.mkfifo(fifo)
    core = SynthCore(threads=[SynthThread(7, {"rip": 0x7F0010, "rsp": 0x2000})],
                     files=[(0x7F0000, 0x7F1000, 0, str(fifo))], auxv={9: 0x7F0010})
    path = tmp_path / "core"
    path.write_bytes(core.build())
    proc = subprocess.run([sys.executable, "-m", "crashkit", "analyze", *mode, "--json",
                           "--gdb-timeout", "20", str(path)], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["threads"][0]["frames"][0]["module"] == str(fifo)
    assert data["threads"][0]["frames"][0]["function"] is None


def test_sigterm_cleans_up_gdb(manifest: dict[str, Any], tmp_path: Path) -> None:
    fx = fixture(manifest, "nginx-null")
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    gdb = fake_gdb(tmp_path, "exec sleep 600")
    proc = subprocess.Popen([sys.executable, "-m", "crashkit", "analyze", fx["core"], "--gdb",
                             gdb, "--gdb-timeout", "120"], env={**os.environ,
                                                                "TMPDIR": str(tmpdir)},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 30
    while not procs_running("sleep 600") or not list(tmpdir.iterdir()):
        assert time.monotonic() < deadline, "gdb never started"
        time.sleep(0.05)
    time.sleep(0.3)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 128 + signal.SIGTERM
    assert list(tmpdir.iterdir()) == []
    assert not [c for c in procs_running("sleep 600")]


SNAPSHOT = r"""
#include <unistd.h>
__attribute__((noinline)) void wait_forever(void) { for (;;) pause(); }
int main(void) { wait_forever(); return 0; }
"""

SECRET = r"""
#include <stdio.h>
#include <string.h>
struct session { char pad[24]; const char *user; };
__attribute__((noinline)) int check_password(const char *password, struct session *s) {
    return (int)strlen(password) + (int)strlen(s->user);
}
int main(void) {
    struct session *volatile s = 0;
    printf("%d\n", check_password("hunter2-very-secret", s));
    return 0;
}
"""


def compile_c(d: Path, name: str, source: str) -> Path:
    return compile_program(d, name, source, opt="-O0")


def test_gcore_snapshot_is_not_a_crash(tmp_path: Path) -> None:
    if shutil.which("gcore") is None:
        unavailable("gcore (from gdb) is not installed")
    exe = compile_c(tmp_path, "idle", SNAPSHOT)
    live = subprocess.Popen([str(exe)])
    try:
        time.sleep(0.3)
        subprocess.run(["gcore", "-o", str(tmp_path / "snap"), str(live.pid)],
                       capture_output=True, check=True, timeout=120)
    finally:
        live.kill()
        live.wait()
    data = analyze_json(str(tmp_path / f"snap.{live.pid}"))
    assert data["core"]["pid"] == live.pid
    assert "a snapshot taken" in data["what_happened"] and "not a crash" in data["what_happened"]
    assert data["crash"]["module"] is None
    names = [f["function"] for f in data["threads"][0]["frames"]]
    assert "wait_forever" in names and "main" in names


def test_string_values_are_redacted_unless_asked(tmp_path: Path) -> None:
    exe = compile_c(tmp_path, "secret", SECRET)
    core = str(crash_for_core([str(exe)], tmp_path))
    frames = analyze_json(core, "--full")["threads"][0]["frames"]
    caller = next(f for f in frames if f["function"] == "check_password")
    password = next(a for a in caller["args"] if a["name"] == "password")
    assert "hunter2" not in json.dumps(frames)
    # The marker keeps the length: "hunter2-very-secret" is 19 characters.
    assert password["value"].endswith('"<redacted:19>"')
    shown = analyze_json(core, "--full", "--show-secrets")["threads"][0]["frames"]
    caller = next(f for f in shown if f["function"] == "check_password")
    assert any('"hunter2-very-secret"' in a["value"] for a in caller["args"])


def test_debuginfod_only_on_request(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEBUGINFOD_URLS", "https://debuginfod.example.invalid")
    assert "DEBUGINFOD_URLS" not in gdb_env(SafetyFlags(), "/h")
    kept = gdb_env(SafetyFlags(debuginfod=True), "/h")
    assert kept["DEBUGINFOD_URLS"] == "https://debuginfod.example.invalid"


def test_help_lists_exit_codes() -> None:
    proc = run_cli("analyze", "--help", check=True)
    assert "Exit codes:" in proc.stdout and "--no-gdb" in proc.stdout


def test_a_path_in_the_core_cannot_run_gdb_commands(tmp_path: Path) -> None:
    """A mapped file's name with newlines must not become gdb commands (its
    directory goes to solib-search-path, its path to the loads)."""
    canary = tmp_path / "pwned"
    evil = f"/a\nshell touch {canary}\n/b.so"
    core = SynthCore(threads=[SynthThread(7, {"rip": 0x7F0010, "rsp": 0x2000})],
                     files=[(0x7F0000, 0x7F1000, 0, evil)], auxv={9: 0x7F0010})
    path = tmp_path / "core"
    path.write_bytes(core.build())
    proc = run_cli("analyze", "--json", str(path))
    assert proc.returncode == 0, proc.stderr
    assert not canary.exists()
    data = json.loads(proc.stdout)
    assert data["core"]["exe"] == evil


@pytest.mark.parametrize("answer", [
    'print("1^done")\nprint("2^done")\nprint("3^done")\nprint("4^done")\n'
    'print("5^done,threads=\\"y\\"")\nprint("6^done,stack=\\"x\\"")',
], ids=["wrong-types"])
def test_gdb_answering_nonsense_keeps_the_notes(manifest: dict[str, Any], tmp_path: Path,
                                                answer: str) -> None:
    fx = fixture(manifest, "nginx-null")
    script = tmp_path / "nonsense.py"
    script.write_text("import sys, time\n" + answer + "\nsys.stdout.flush()\ntime.sleep(30)\n")
    gdb = fake_gdb(tmp_path, f"exec {sys.executable} {script}")
    proc = run_cli("analyze", fx["core"], "--json", "--gdb", gdb, "--gdb-timeout", "3")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["gdb_used"] is False and data["gdb_error"]
    assert data["threads"][0]["frames"][0]["function"] == fx["crash_function"]
    assert data["signal"]["fault_address"] == fx["fault_address"]


TRAP = r"""
__attribute__((noinline)) void breakpoint_left_in(void) { __asm__ volatile("int3"); }
int main(void) { breakpoint_left_in(); return 0; }
"""


def test_kernel_core_with_sigtrap_is_a_crash(tmp_path: Path) -> None:
    exe = compile_c(tmp_path, "trap", TRAP)
    data = analyze_json(str(crash_for_core([str(exe)], tmp_path)))
    assert data["signal"]["name"] == "SIGTRAP"
    assert data["what_happened"].startswith(f"trap (pid {data['core']['pid']}) died of SIGTRAP")
    assert data["crash"]["module"] == str(exe)


def test_output_to_a_closed_pipe_is_not_an_error(manifest: dict[str, Any]) -> None:
    fx = fixture(manifest, "mt-64")
    for _ in range(3):
        proc = subprocess.Popen([sys.executable, "-m", "crashkit", "analyze", fx["core"]],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert proc.stdout is not None
        proc.stdout.close()  # like `| true`: the reader is gone before the output
        assert proc.wait(timeout=60) == 0
        assert proc.stderr is not None and proc.stderr.read() == b""


def test_stale_gdb_directories_are_removed(manifest: dict[str, Any], tmp_path: Path) -> None:
    """A crashkit killed with SIGKILL leaves its gdb directory; the next run removes it."""
    fx = fixture(manifest, "nginx-null")
    tmpdir = tmp_path / "tmp"
    stale = tmpdir / "crashkit-gdb-home-999999999-dead"
    (stale / "sub").mkdir(parents=True)
    (stale / "sub" / "f").write_text("x")
    alive = tmpdir / f"crashkit-gdb-home-{os.getpid()}-live"
    alive.mkdir()
    proc = run_cli("analyze", fx["core"], env={"TMPDIR": str(tmpdir)})
    assert proc.returncode == 0
    assert not stale.exists() and alive.exists()


def test_cut_notes_give_a_lower_bound_on_threads(manifest: dict[str, Any], tmp_path: Path) -> None:
    """A core cut inside its notes does not claim to know the thread count."""
    fx = fixture(manifest, "mt-plugin")
    full = Path(fx["core"]).read_bytes()
    path = tmp_path / "core"
    path.write_bytes(full[:6000])
    text = run_cli("analyze", str(path), "--no-gdb", check=True).stdout
    line = next(x for x in text.splitlines() if x.lstrip().startswith("crashed"))
    assert "of at least" in line and "(the notes are cut)" in line
    assert "(the only thread)" not in text


def test_no_disassembly_from_a_missing_executable(tmp_path: Path) -> None:
    exe = compile_c(tmp_path, "trap", TRAP)
    core = crash_for_core([str(exe)], tmp_path)
    exe.rename(tmp_path / "moved-away")
    data = analyze_json(str(core))
    assert data["context"] is None
    assert any(w.startswith(f"no disassembly: {exe} is not on this host")
               for w in data["warnings"])
