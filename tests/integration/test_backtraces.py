"""Backtraces through real gdb on the real fixture cores."""

from __future__ import annotations

import json
import stat
import time
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from tests.conftest import analyze_json, fixture, run_cli

pytestmark = pytest.mark.integration

SCHEMA = json.loads((Path(__file__).resolve().parents[2] / "crashkit" / "schema" /
                     "analysis-1.json").read_text())


def crashing(data: dict[str, Any]) -> list[dict[str, Any]]:
    frames: list[dict[str, Any]] = data["threads"][0]["frames"]
    return frames


def functions(frames: list[dict[str, Any]]) -> list[str | None]:
    return [f["function"] for f in frames]


def assert_in_order(expected: list[str], got: list[str | None]) -> None:
    """Every expected function appears, innermost first, in this order."""
    pos = 0
    for name in expected:
        assert name in got[pos:], f"{name} missing after #{pos} in {got}"
        pos = got.index(name, pos) + 1


@pytest.mark.parametrize("name", ["nginx-null", "nginx-libc", "nginx-abort", "nginx-kill",
                                  "mt-plugin"])
def test_crashing_thread_frames(manifest: dict[str, Any], name: str) -> None:
    fx = fixture(manifest, name)
    data = analyze_json(fx["core"])
    jsonschema.validate(data, SCHEMA)
    assert data["gdb_used"] is True and data["gdb_error"] is None
    frames = crashing(data)
    assert_in_order(fx["expected_functions"], functions(frames))
    assert [f["index"] for f in frames] == list(range(len(frames)))
    assert frames[0]["module"] == fx["crash_module"]
    assert frames[0]["pc"] == data["threads"][0]["registers"]["rip"]
    for f in frames:
        assert f["source"] in ("gdb", "elf") and f["module"] is not None
        assert f["trusted"] is True
    if fx.get("caller_function"):
        caller = next(f for f in frames if f["function"] == fx["caller_function"])
        # The caller lives in the nginx module (nginx fixtures) or the plugin.
        assert caller["module"] == fx.get("module", fx["crash_module"])


def test_module_frames_have_source_lines(manifest: dict[str, Any]) -> None:
    fx = fixture(manifest, "nginx-null")
    top = crashing(analyze_json(fx["core"]))[0]
    assert top["function"] == "crashkit_faulty_tag_length" and top["source"] == "gdb"
    assert top["file"].endswith("ngx_http_crashkit_test_module.c") and top["line"] > 0


def test_blame_goes_past_libc(manifest: dict[str, Any]) -> None:
    """strlen(NULL) crashes inside libc; the module that called it is at fault."""
    for name in ("nginx-libc", "nginx-abort"):
        fx = fixture(manifest, name)
        data = analyze_json(fx["core"])
        assert crashing(data)[0]["module"] == fx["libc"]
        assert data["crash"]["module"] == fx["module"]
        assert data["crash"]["kind"] == "crash"
        assert data["crash"]["blamed_frame"]["function"] == fx["caller_function"]
        assert f"called from {fx['caller_function']}()" in data["what_happened"]


def test_killed_by_another_process_blames_nobody(manifest: dict[str, Any]) -> None:
    fx = fixture(manifest, "nginx-kill")
    data = analyze_json(fx["core"])
    assert data["crash"]["module"] is None and data["crash"]["blamed_frame"] is None
    assert data["crash"]["kind"] == "killed"
    assert data["crash"]["cause"] == (f"SIGSEGV: sent by kill() from a process; sender process "
                                      f"{fx['sender_pid']} (uid 0)")
    assert "Another process killed it" in data["what_happened"]
    assert f"sender process {fx['sender_pid']}" in data["what_happened"]


def test_stripped_module_named_from_elf(manifest: dict[str, Any]) -> None:
    """gdb has no names for the stripped module's static functions: frames say
    module+offset (source elf); with the debug file every name is back."""
    fx = fixture(manifest, "nginx-stripped")
    frames = crashing(analyze_json(fx["core"]))
    assert_in_order(fx["expected_functions"], functions(frames))
    in_module = [f for f in frames if f["module"] == fx["module"]]
    assert len(in_module) >= 3
    unnamed = [f for f in in_module if f["function"] is None]
    assert unnamed, "static functions of a stripped module cannot have names"
    for f in unnamed:
        assert f["source"] == "elf" and f["module_offset"] > 0
    with_debug = crashing(analyze_json(fx["core"], "--debug-dir", fx["debug_dir"]))
    assert_in_order(fx["expected_functions_with_debug"], functions(with_debug))


def test_multithreaded_all_threads(manifest: dict[str, Any]) -> None:
    fx = fixture(manifest, "mt-plugin")
    data = analyze_json(fx["core"])
    threads = data["threads"]
    assert threads[0]["tid"] == fx["tids"][0]
    assert sorted(t["tid"] for t in threads) == sorted(fx["tids"])
    idle = [t for t in threads[1:] if fx["idle_function"] in functions(t["frames"])]
    assert len(idle) == fx["threads"] - 2  # all but the crashing and the main thread
    text = run_cli("analyze", fx["core"], check=True).stdout
    assert f"{len(idle)} threads with this stack" in text
    # The crashing thread's backtrace comes before any other thread's.
    assert text.index("Crashing thread") < text.index("threads with this stack")


def test_context_has_faulting_instruction(manifest: dict[str, Any]) -> None:
    fx = fixture(manifest, "nginx-null")
    data = analyze_json(fx["core"])
    ctx = data["context"]
    pc = data["threads"][0]["registers"]["rip"]
    assert ctx["pc"] == pc
    at_pc = [i for i in ctx["instructions"] if i["address"] == pc]
    assert len(at_pc) == 1 and at_pc[0]["text"] == ctx["faulting_instruction"]
    # A NULL+0x10 load: the faulting instruction reads memory at 0x10 off a register.
    assert "0x10(%r" in ctx["faulting_instruction"]
    assert any(i["address"] < pc for i in ctx["instructions"])


def test_full_gives_args_and_locals(manifest: dict[str, Any]) -> None:
    fx = fixture(manifest, "nginx-null")
    frames = crashing(analyze_json(fx["core"], "--full"))
    top = frames[0]
    assert top["function"] == "crashkit_faulty_tag_length"
    # The NULL pointer the module dereferenced, as gdb prints it.
    assert ("tag", "0x0") in [(a["name"], a["value"]) for a in top["args"]]
    handler = next(f for f in frames if f["function"] == "ngx_http_crashkit_handler")
    assert "r" in [a["name"] for a in handler["args"]]
    # Only the innermost --full-frames (5) frames carry them.
    assert not any(f["args"] or f["locals"] for f in frames[5:])
    plain = crashing(analyze_json(fx["core"]))
    assert not any(f["args"] or f["locals"] for f in plain)


def test_truncated_core_keeps_notes_frame(manifest: dict[str, Any]) -> None:
    fx = fixture(manifest, "truncated")
    data = analyze_json(fx["core"])
    frames = crashing(data)
    assert frames[0]["pc"] == data["threads"][0]["registers"]["rip"]
    assert frames[0]["function"] == fx["crash_function"]
    assert_in_order(fx["expected_functions"], functions(frames))
    assert data["core"]["truncated"] is True
    # No made-up frames from the missing stack: each pc lies in a mapped file.
    for f in frames:
        assert f["module"] is not None


def test_mismatched_library_is_not_trusted(manifest: dict[str, Any]) -> None:
    """The library was rebuilt after the crash: nothing read from it is trusted."""
    fx = fixture(manifest, "mismatch")
    data = analyze_json(fx["core"])
    frames = crashing(data)
    first = next(i for i, f in enumerate(frames) if f["module"] == fx["mismatch_library"])
    # Its frames, and every frame gdb unwound through it, are untrusted.
    assert [f["trusted"] for f in frames] == [True] * first + [False] * (len(frames) - first)
    assert data["context"]["trusted"] is False
    # JSON never gives the other build's names as the frame's own.
    for f in frames[first:]:
        if f["module"] == fx["mismatch_library"]:
            assert f["function"] is None and f["file"] is None and f["line"] is None
            assert f["other_build"]["function"] is not None
    assert frames[first]["other_build"]["function"] != fx["crash_function"]
    top = frames[0]
    m = next(m for m in data["mappings"] if m["start"] <= top["pc"] < m["end"])
    offset = top["pc"] - m["start"] + m["file_offset"]
    assert top["module_offset"] == offset
    assert f"in libmismatch.so+{offset:#x} [libmismatch.so]" in data["what_happened"]
    assert fx["crash_function"] not in data["what_happened"]
    text = run_cli("analyze", fx["core"], check=True).stdout
    lib_lines = [line for line in text.splitlines() if "[libmismatch.so" in line
                 and line.lstrip().startswith("#")]
    assert lib_lines and all("UNTRUSTED" in line and ".c:" not in line for line in lib_lines)
    assert "Instructions (from the file on disk, which is NOT the build that crashed):" in text
    assert any(w.startswith(f"BUILD-ID MISMATCH: {fx['mismatch_library']} on disk is "
                            f"{fx['new_build_id']}, the crashed process had {fx['old_build_id']}")
               for w in data["warnings"])


def test_wrong_exe_is_flagged(manifest: dict[str, Any]) -> None:
    """--exe pointing at another build: analyze says so loudly and still works."""
    fx = fixture(manifest, "mt-plugin")
    other = fixture(manifest, "mismatch")["exe"]
    data = analyze_json(fx["core"], "--exe", other)
    exe = next(m for m in data["modules"] if m["path"] == fx["exe"])
    assert exe["build_id_match"] is False
    assert any("BUILD-ID MISMATCH" in w for w in data["warnings"])
    assert data["signal"]["fault_address"] == fx["fault_address"]


def fake_gdb(tmp_path: Path, body: str) -> str:
    p = tmp_path / "fake-gdb"
    p.write_text("#!/bin/sh\n" + body + "\n")
    p.chmod(p.stat().st_mode | stat.S_IXUSR)
    return str(p)


@pytest.mark.parametrize(("body", "expect"), [
    ("exec sleep 600", "did not answer"),
    ("while :; do echo 'garbage ^done'; sleep 0.05; done", "did not answer"),
    ("echo '1^done,stack=[frame={level=' ; exit 3", "gdb ended (exit 3)"),
    ("kill -SEGV $$", "gdb ended (killed by signal 11)"),
], ids=["hangs", "garbage", "exits", "crashes"])
def test_broken_gdb_falls_back_to_notes(manifest: dict[str, Any], tmp_path: Path,
                                         body: str, expect: str) -> None:
    fx = fixture(manifest, "nginx-null")
    start = time.monotonic()
    proc = run_cli("analyze", fx["core"], "--json", "--gdb", fake_gdb(tmp_path, body),
                   "--gdb-timeout", "2")
    assert time.monotonic() - start < 30
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["gdb_used"] is False and expect in data["gdb_error"]
    assert data["signal"]["fault_address"] == fx["fault_address"]
    assert crashing(data)[0]["function"] == fx["crash_function"]
    assert proc.stderr.startswith("crashkit: warning:") and len(proc.stderr.splitlines()) == 1


def test_missing_gdb_says_how_to_install(manifest: dict[str, Any]) -> None:
    fx = fixture(manifest, "nginx-null")
    proc = run_cli("analyze", fx["core"], "--gdb", "/nonexistent/gdb")
    assert proc.returncode == 0
    assert "apt-get install gdb" in proc.stderr
    assert proc.stdout.splitlines()[1].startswith("nginx (pid ")


@pytest.mark.parametrize("body", [None, "exec sleep 600"], ids=["normal", "gdb-hangs"])
def test_gdb_home_is_removed(manifest: dict[str, Any], tmp_path: Path, body: str | None) -> None:
    """gdb's private HOME goes away, and no gdb is left running, even when it hangs."""
    fx = fixture(manifest, "nginx-null")
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    extra = [] if body is None else ["--gdb", fake_gdb(tmp_path, body), "--gdb-timeout", "1"]
    proc = run_cli("analyze", fx["core"], *extra, env={"TMPDIR": str(tmpdir)})
    assert proc.returncode == 0
    assert ("did not answer" in proc.stderr) is (body is not None)
    assert list(tmpdir.iterdir()) == []
    leftovers = [p for p in Path("/proc").iterdir() if p.name.isdigit()
                 and _cmdline(p).startswith(str(tmp_path))]
    assert leftovers == []


def _cmdline(p: Path) -> str:
    try:
        return p.joinpath("cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""
