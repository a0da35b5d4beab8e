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
