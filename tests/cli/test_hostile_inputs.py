"""Inputs an attacker would choose, through the real command line: nothing
blocks, every refusal is one line with exit 2 (issue 18)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import run_cli

BIND = (b"2026/12/02 10:00:00 [emerg] 1#1: bind() to 0.0.0.0:80 failed "
        b"(98: Address already in use)\n")
REFUSED = ("not a regular file (a FIFO, socket or device); to read a stream, pipe it in "
           "and pass --error-log -")


def _refused_at_once(path: str) -> None:
    started = time.monotonic()
    proc = run_cli("triage", "--error-log", path)
    elapsed = time.monotonic() - started
    assert proc.returncode == 2, proc
    assert proc.stdout == ""
    assert proc.stderr == f"crashkit: error: {path}: {REFUSED}\n"
    assert elapsed < 20  # the interpreter's start-up on a busy machine; a hang is forever


def test_triage_refuses_a_fifo_without_a_writer(tmp_path: Path) -> None:
    fifo = tmp_path / "error.log"
    os.mkfifo(fifo)
    _refused_at_once(str(fifo))


@pytest.mark.parametrize("device", ["/dev/zero", "/dev/urandom"])
def test_triage_refuses_an_endless_device(device: str) -> None:
    _refused_at_once(device)


def test_triage_reads_standard_input_for_dash() -> None:
    proc = subprocess.run([sys.executable, "-m", "crashkit", "triage", "--error-log", "-",
                           "--json"], input=BIND, capture_output=True, timeout=120)
    assert proc.returncode == 1, proc.stderr
    import json

    data = json.loads(proc.stdout)
    assert [f["kind"] for f in data["findings"]] == ["bind-in-use"]
    assert data["findings"][0]["count"] == 1


@pytest.mark.parametrize("target", ["fifo", "/dev/zero"])
@pytest.mark.parametrize("verb", ["setup", "doctor"])
def test_a_config_including_a_fifo_or_a_device_is_one_line(tmp_path: Path, target: str,
                                                            verb: str) -> None:
    """crossplane opened includes with a plain open(): a FIFO blocked it for
    ever, /dev/zero was read until memory ran out (found by tests/fuzz)."""
    if target == "fifo":
        os.mkfifo(tmp_path / "extra.conf")
        target = str(tmp_path / "extra.conf")
    conf = tmp_path / "nginx.conf"
    conf.write_text(f"include {target};\nevents {{}}\n")
    started = time.monotonic()
    proc = run_cli(verb, "--conf", str(conf))
    assert time.monotonic() - started < 20
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stderr == (f"crashkit: error: {target}: cannot read included file: not a "
                           "regular file (a named pipe, a device or a socket) (include at "
                           f"{conf}:1)\n")
