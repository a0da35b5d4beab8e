"""Every child under limits, in a group of its own, reaped (issue 18)."""

from __future__ import annotations

import os
import time

import pytest

from crashkit.errors import CommandError
from crashkit.host import run as R


def test_child_runs_under_memory_and_cpu_limits_with_an_allow_listed_env(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LD_PRELOAD", "/nowhere.so")
    monkeypatch.setenv("PYTHONUSERBASE", "/nowhere")
    monkeypatch.setenv("PATH", f".:{os.environ['PATH']}")
    done = R.run(["sh", "-c", "ulimit -v; ulimit -t; env | sort"], timeout=7)
    lines = done.stdout.splitlines()
    assert lines[:2] == [str(R.MEMORY_LIMIT // 1024), "8"]
    names = {line.split("=", 1)[0] for line in lines[2:]}
    assert {"LD_PRELOAD", "PYTHONUSERBASE"}.isdisjoint(names)
    assert f"PATH={R.SAFE_PATH}" in lines and "LC_ALL=C" in lines
    assert done.argv[0] == "sh"


def test_timeout_kills_the_whole_group_and_reaps_it() -> None:
    started = time.monotonic()
    with pytest.raises(CommandError) as info:
        R.run(["sh", "-c", "sleep 617 & echo $! ; wait"], timeout=1)
    assert time.monotonic() - started < 10
    assert info.value.message == "sh did not finish within 1 s; it was stopped"
    # The grandchild (sleep) went with its group.
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if not any(_cmdline(p) == b"sleep\x00617\x00" for p in os.listdir("/proc")
                   if p.isdigit()):
            break
        time.sleep(0.05)
    else:
        raise AssertionError("sleep 617 outlived its group's kill")


def test_cpu_limit_is_one_line() -> None:
    with pytest.raises(CommandError) as info:
        R.run(["sh", "-c", "while :; do :; done"], timeout=1.5)
    assert info.value.message.startswith("sh ")
    assert "\n" not in info.value.message


def _cmdline(pid: str) -> bytes:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read()
    except OSError:
        return b""
