"""The verdict and the crash signature on real cores: the fixtures, and a fresh
crash of Debian's nginx running the buggy module on 127.0.0.1."""

from __future__ import annotations

import json
import os
import pwd
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from elftools.elf.elffile import ELFFile

from tests.conftest import analyze_json, fixture, run_cli, unavailable
from tests.live_nginx import NGINX, LiveNginx, basic_conf, crash_worker, free_port

pytestmark = pytest.mark.integration

SCHEMA = json.loads((Path(__file__).resolve().parents[2] / "crashkit" / "schema" /
                     "analysis-1.json").read_text())


def verdict_of(core: str, *extra: str) -> dict[str, Any]:
    data = analyze_json(core, *extra)
    jsonschema.validate(data, SCHEMA)
    return data


@pytest.mark.parametrize(("name", "function"), [
    ("nginx-null", "crashkit_faulty_tag_length"),   # NULL dereference in the module
    ("nginx-libc", "crashkit_copy_header"),         # strlen(NULL) in libc, called by it
    ("nginx-abort", "crashkit_check_invariant"),    # abort() called by it
])
def test_module_bugs_name_the_module_and_function(manifest: dict[str, Any], name: str,
                                                  function: str) -> None:
    fx = fixture(manifest, name)
    data = verdict_of(fx["core"])
    v = data["verdict"]
    assert (v["module"], v["function"]) == (fx["module"], function)
    assert (v["origin"], v["confidence"]) == ("third-party-module", "high")
    assert data["threads"][0]["frames"][v["frame"]]["function"] == function
    assert v["summary"].endswith("the third-party nginx module "
                                 "ngx_http_crashkit_test_module.so is at fault (high confidence).")
    assert data["crash"]["module"] == fx["module"]
    # Not packaged: the report goes to the module's author, not to nginx.
    assert v["package"] is None and "nginx" not in (v["report_to"] or "nginx")


def test_meanings_of_the_module_bugs(manifest: dict[str, Any]) -> None:
    kinds = {n: verdict_of(fixture(manifest, n)["core"])["verdict"]["kind"]
             for n in ("nginx-null", "nginx-libc", "nginx-abort")}
    # nginx-null reads a field 0x10 bytes into a NULL struct pointer.
    assert kinds == {"nginx-null": "near-null", "nginx-libc": "null-pointer",
                     "nginx-abort": "abort"}


def test_abort_shows_the_workers_last_log_lines(manifest: dict[str, Any]) -> None:
    fx = fixture(manifest, "nginx-abort")
    data = verdict_of(fx["core"], "--error-log", fx["error_log"])
    lines = data["verdict"]["log"]["lines"]
    pid = data["core"]["pid"]
    assert lines[-1].endswith(f"worker process {pid} exited on signal 6 (core dumped)")
    # The module logged what it was about to do just before abort().
    assert f"{pid}#{pid}: *1 crashkit: crashing mode=abort" in lines[-2]
    missing = run_cli("analyze", fx["core"], "--error-log", fx["error_log"] + ".nope")
    assert missing.returncode == 2
    assert missing.stderr == (f"crashkit: error: {fx['error_log']}.nope: --error-log: no such "
                              "file\n")


def test_truncated_core_names_the_plugin(manifest: dict[str, Any]) -> None:
    fx = fixture(manifest, "truncated")
    data = verdict_of(fx["core"])
    assert data["core"]["truncated"] is True
    v = data["verdict"]
    assert (v["module"], v["function"], v["origin"]) == (
        fx["crash_module"], "plugin_parse_record", "library")


def test_no_gdb_attributes_from_the_pc(manifest: dict[str, Any]) -> None:
    """Without a backtrace, the crashing pc and the mappings still name the
    module when the pc is in it, at lower confidence. Inside libc's strlen()
    the caller's return address sits at sp: a stack scan finds it, as a
    low-confidence guess. abort()'s deep frames leave only stale addresses
    within reach: nobody is named."""
    null = verdict_of(fixture(manifest, "nginx-null")["core"], "--no-gdb")
    assert null["verdict"]["module"] == fixture(manifest, "nginx-null")["module"]
    assert null["verdict"]["confidence"] == "medium"
    assert null["signature"]["basis"] == "pc"
    libc = verdict_of(fixture(manifest, "nginx-libc")["core"], "--no-gdb")["verdict"]
    assert (libc["module"], libc["function"], libc["confidence"], libc["frame"]) == (
        fixture(manifest, "nginx-libc")["module"], "crashkit_copy_header", "low", None)
    assert libc["reason"].startswith("a guess: gdb was turned off with --no-gdb, and the first "
                                     "word on the stack")
    abort = verdict_of(fixture(manifest, "nginx-abort")["core"], "--no-gdb")["verdict"]
    assert (abort["module"], abort["confidence"]) == (None, "low")


def test_stripped_module_is_named_with_an_offset(manifest: dict[str, Any]) -> None:
    fx = fixture(manifest, "nginx-stripped")
    v = verdict_of(fx["core"])["verdict"]
    assert v["module"] == fx["module"]
    # The offset falls inside the crashing function of the unstripped build.
    with open(fx["unstripped_module"], "rb") as f:
        symtab = ELFFile(f).get_section_by_name(".symtab")
        sym = symtab.get_symbol_by_name("crashkit_faulty_tag_length")[0]  # type: ignore[union-attr]
        text = ELFFile(f).get_section_by_name(".text")
        start = sym["st_value"] - text["sh_addr"] + text["sh_offset"]
        assert start <= v["module_offset"] < start + sym["st_size"]


def test_kill_names_no_module_and_the_sender(manifest: dict[str, Any]) -> None:
    fx = fixture(manifest, "nginx-kill")
    data = verdict_of(fx["core"])
    v = data["verdict"]
    assert (v["module"], v["origin"], v["confidence"], v["kind"]) == (
        None, None, "none", "sent-by-process")
    assert v["sender"]["pid"] == fx["sender_pid"] and v["sender"]["uid"] == fx["sender_uid"]
    assert v["sender"]["user"] == pwd.getpwuid(fx["sender_uid"]).pw_name
    assert f"pid {fx['sender_pid']}" in v["summary"]
    assert v["summary"].startswith("Not a bug in the code that was running")


def test_multithreaded_program_names_its_plugin(manifest: dict[str, Any]) -> None:
    for name in ("mt-plugin", "mt-64"):
        fx = fixture(manifest, name)
        v = verdict_of(fx["core"])["verdict"]
        assert (v["module"], v["function"], v["origin"]) == (
            fx["crash_module"], "plugin_parse_record", "library")


def test_different_bugs_have_different_signatures(manifest: dict[str, Any]) -> None:
    sigs = {n: verdict_of(fixture(manifest, n)["core"])["signature"]
            for n in ("nginx-null", "nginx-libc", "nginx-abort")}
    assert len({s["hash"] for s in sigs.values()}) == 3
    assert sigs["nginx-libc"]["frames"][:2] == [
        "libc.so!strlen", "ngx_http_crashkit_test_module.so!crashkit_copy_header"]
    # abort()'s machinery is not part of a signature.
    assert sigs["nginx-abort"]["frames"][0] == \
        "ngx_http_crashkit_test_module.so!crashkit_check_invariant"


def test_same_plugin_bug_in_two_processes_shares_a_signature(manifest: dict[str, Any]) -> None:
    """6 threads and 66 threads: other pids, other load addresses, one bug."""
    a = verdict_of(fixture(manifest, "mt-plugin")["core"])["signature"]
    b = verdict_of(fixture(manifest, "mt-64")["core"])["signature"]
    assert a == b and a["basis"] == "backtrace" and len(a["frames"]) == 3


def test_package_of_a_packaged_module(manifest: dict[str, Any]) -> None:
    """dpkg names the package of the executable and of every module a verdict
    could name; the system libraries are looked up by report only."""
    data = verdict_of(fixture(manifest, "nginx-null")["core"])
    pkgs = {os.path.basename(m["path"]): m["package"] for m in data["modules"]}
    assert pkgs["nginx"]["name"] == "nginx" and pkgs["nginx"]["homepage"] == "https://nginx.org"
    assert pkgs["ngx_http_crashkit_test_module.so"] is None  # not installed by a package
    assert pkgs["libc.so.6"] is None


def test_a_fresh_crash_of_the_same_bug_shares_the_signature(
        manifest: dict[str, Any], tmp_path: Path, core_dir: Path) -> None:
    """Crash Debian's nginx again with the same module bug: another process,
    other addresses (ASLR), the same signature and verdict."""
    if not os.access(NGINX, os.X_OK):
        unavailable(f"{NGINX} is not installed")
    fx = fixture(manifest, "nginx-null")
    port = free_port()
    conf = basic_conf(port, load_module=fx["module"],
                      main=f"worker_rlimit_core 500M;\nworking_directory {core_dir};",
                      server="location /null { crashkit_crash null; }")
    with LiveNginx(tmp_path / "ngx", conf) as ngx:
        core = crash_worker(ngx, f"http://127.0.0.1:{port}/null", core_dir)
    fresh = verdict_of(str(core))
    old = verdict_of(fx["core"])
    # When: the core's file time, or the error log's "(core dumped)" line for its pid.
    from datetime import datetime

    mtime = datetime.fromtimestamp(int(core.stat().st_mtime)).astimezone()
    assert fresh["crash_time"]["time"] == mtime.isoformat()
    assert fresh["crash_time"]["source"] == "core file time"
    assert 0 <= fresh["crash_time"]["age_seconds"] < 120
    (line,) = [ln for ln in ngx.log().splitlines()
               if f"worker process {fresh['core']['pid']} exited on signal 11" in ln]
    logged = datetime.strptime(line[:19], "%Y/%m/%d %H:%M:%S").astimezone()
    with_log = analyze_json(str(core), "--error-log", str(ngx.error_log))["crash_time"]
    assert (with_log["time"], with_log["source"]) == (logged.isoformat(), "error log")
    assert fresh["core"]["pid"] != old["core"]["pid"]
    assert fresh["signature"] == old["signature"]
    assert {k: fresh["verdict"][k] for k in ("module", "function", "kind", "confidence")} == \
        {k: old["verdict"][k] for k in ("module", "function", "kind", "confidence")}
