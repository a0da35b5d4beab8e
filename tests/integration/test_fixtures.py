"""Every fact of every real crash core, against what the crashing program (or
nginx's error.log, or the process that sent the signal) recorded from the
outside, and against eu-readelf's reading of the same notes."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from tests.conftest import analyze_json, fixture, run_cli
from tests.readelf import readelf_notes

pytestmark = pytest.mark.integration

SCHEMA = json.loads((Path(__file__).resolve().parents[2] / "crashkit" / "schema" /
                     "analysis-1.json").read_text())
ALL = ["nginx-null", "nginx-libc", "nginx-abort", "nginx-kill", "nginx-stripped", "mt-plugin",
       "mt-64", "truncated", "mismatch"]
SIGNAMES = {6: "SIGABRT", 11: "SIGSEGV", 7: "SIGBUS"}
CODENAMES = {1: "SEGV_MAPERR", 0: "SI_USER", -6: "SI_TKILL"}


@pytest.fixture(scope="module", params=ALL)
def case(request: pytest.FixtureRequest, manifest: dict[str, Any]) -> dict[str, Any]:
    fx = fixture(manifest, request.param)
    return {"name": request.param, "fx": fx, "notes": analyze_json(fx["core"], "--no-gdb")}


def test_schema(case: dict[str, Any]) -> None:
    jsonschema.validate(case["notes"], SCHEMA)


def test_process_facts(case: dict[str, Any]) -> None:
    fx, core = case["fx"], case["notes"]["core"]
    assert core["pid"] == fx["pid"]
    if fx.get("ppid") is not None:
        assert core["ppid"] == fx["ppid"]
    assert core["uid"] == fx["uid"]
    assert core["exe"] == fx["exe"]
    assert core["arch"] == "x86-64"
    assert core["truncated"] is fx["truncated"]
    assert core["path"] == fx["core"]
    size = Path(fx["core"]).stat().st_size
    assert core["size"] == size
    if fx["truncated"]:
        assert core["expected_size"] > size
        assert core["expected_size"] > fx.get("core_limit_bytes", size)
    else:
        assert core["expected_size"] == size


def test_signal_facts(case: dict[str, Any]) -> None:
    fx, sig = case["fx"], case["notes"]["signal"]
    assert sig["number"] == fx["signal"]
    assert sig["name"] == SIGNAMES[fx["signal"]]
    assert sig["code"] == fx["si_code"]
    assert sig["code_name"] == CODENAMES[fx["si_code"]]
    assert sig["fault_address"] == fx["fault_address"]
    assert sig["sender_pid"] == fx["sender_pid"]
    assert sig["sender_uid"] == fx["sender_uid"]


def test_threads(case: dict[str, Any]) -> None:
    fx, threads = case["fx"], case["notes"]["threads"]
    assert len(threads) == fx["threads"]
    assert [t["crashed"] for t in threads] == [True] + [False] * (len(threads) - 1)
    if fx.get("tids"):
        assert threads[0]["tid"] == fx["tids"][0]
        assert sorted(t["tid"] for t in threads) == sorted(fx["tids"])
    for t in threads:
        assert t["registers"]["rip"] == t["frames"][0]["pc"]
        assert t["registers"]["rsp"] > 0


def test_crashing_pc_without_gdb(case: dict[str, Any]) -> None:
    """The pc is placed in its module and named from ELF symbols alone."""
    fx, frame = case["fx"], case["notes"]["crash"]["frame"]
    assert frame["module"] == fx["crash_module"]
    assert frame["source"] in ("elf", "notes")
    if case["name"] == "mismatch":
        # The file on disk is another build: whatever it names is flagged.
        assert frame["trusted"] is False
    elif fx.get("crash_function"):
        assert frame["function"] == fx["crash_function"]
        assert frame["source"] == "elf" and frame["trusted"] is True


def test_modules_and_build_ids(case: dict[str, Any]) -> None:
    fx, mods = case["fx"], {m["path"]: m for m in case["notes"]["modules"]}
    assert fx["exe"] in mods and fx["crash_module"] in mods
    crash_mod = mods[fx["crash_module"]]
    if fx.get("crash_module_build_id") and not fx["truncated"]:
        assert crash_mod["build_id"] == fx["crash_module_build_id"]
    elif fx["truncated"]:
        # Its first page lies past the cut: unknown, not wrong. The disk still tells.
        assert crash_mod["build_id"] in (None, fx["crash_module_build_id"])
        assert crash_mod["file_build_id"] == fx["crash_module_build_id"]
    if case["name"] == "mismatch":
        assert crash_mod["build_id"] == fx["old_build_id"]
        assert crash_mod["file_build_id"] == fx["new_build_id"]
        assert crash_mod["build_id_match"] is False
        assert any("BUILD-ID MISMATCH" in w and fx["mismatch_library"] in w
                   for w in case["notes"]["warnings"])
    else:
        assert all(m["build_id_match"] is not False for m in mods.values())
        assert mods[fx["exe"]]["build_id_match"] is True


def test_against_eu_readelf(case: dict[str, Any]) -> None:
    fx, data = case["fx"], case["notes"]
    ref = readelf_notes(fx["core"])
    assert [t["tid"] for t in data["threads"]] == ref.tids
    assert data["core"]["uid"] == int(ref.psinfo["uid"])
    assert data["core"]["ppid"] == int(ref.psinfo["ppid"])
    assert data["core"]["program"] == ref.psinfo["fname"]
    assert data["core"]["cmdline"] == ref.psinfo["psargs"]
    assert data["signal"]["number"] == int(ref.siginfo["si_signo"])
    assert data["signal"]["code"] == int(ref.siginfo["si_code"])
    if "fault address" in ref.siginfo:
        assert data["signal"]["fault_address"] == int(ref.siginfo["fault address"], 16)
    if "sender PID" in ref.siginfo:
        assert data["signal"]["sender_pid"] == int(ref.siginfo["sender PID"])
    ours = [(m["start"], m["end"], m["file_offset"],
             m["path"] + (" (deleted)" if m["deleted"] else "")) for m in data["mappings"]]
    assert ours == ref.files


def test_text_summary(case: dict[str, Any]) -> None:
    """The text output opens with the verdict, then what happened, both built
    from the facts (here without gdb: only the crashing pc is known)."""
    fx = case["fx"]
    proc = run_cli("analyze", fx["core"], "--no-gdb", check=True)
    verdict, first = proc.stdout.splitlines()[:2]
    other_sender = fx["sender_pid"] is not None and fx["sender_pid"] != fx["pid"]
    if other_sender:
        assert verdict.startswith("Not a bug in the code that was running: "
                                  f"{SIGNAMES[fx['signal']]} was sent by another process "
                                  f"(pid {fx['sender_pid']} ")
    elif case["name"] == "nginx-libc":  # the caller's return address, found at sp
        assert verdict.endswith(f"{Path(fx['module']).name} is at fault (low confidence).")
    elif "/libc.so" in fx["crash_module"]:
        assert verdict.endswith(": the code at fault is unknown (low confidence).")
    else:
        # A module on disk that is another build (mismatch) is named with less trust.
        sure = "low" if case["name"] == "mismatch" else "medium"
        assert verdict.endswith(f"{Path(fx['crash_module']).name} is at fault ({sure} "
                                "confidence).")
    program = Path(fx["exe"]).name
    head = f"{program} (pid {fx['pid']}) died of {SIGNAMES[fx['signal']]}"
    assert first.startswith(head)
    if fx["fault_address"] is not None:
        assert f"address {fx['fault_address']:#x}" in first
    if other_sender:
        assert first.endswith("Another process killed it: not a bug in the code that was "
                              f"running; it was in {fx['crash_function']}() "
                              f"[{Path(fx['crash_module']).name}]")
    elif fx.get("crash_function") and case["name"] != "mismatch":
        module = Path(fx["crash_module"]).name
        assert f", in {fx['crash_function']}() [{module}]" in first


def test_expected_size_matches_program_headers(case: dict[str, Any]) -> None:
    """expected_size is where the last segment ends, as eu-readelf -l lists them."""
    out = subprocess.run(["eu-readelf", "-l", case["fx"]["core"]], capture_output=True,
                         text=True, check=True).stdout
    ends = [int(m.group(1), 16) + int(m.group(2), 16) for m in re.finditer(
        r"^\s+(?:LOAD|NOTE)\s+(0x[0-9a-f]+)\s+0x[0-9a-f]+\s+0x[0-9a-f]+\s+(0x[0-9a-f]+)",
        out, re.M)]
    assert ends and case["notes"]["core"]["expected_size"] == max(ends)
