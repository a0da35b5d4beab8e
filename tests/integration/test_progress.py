"""Progress on stderr for long work, on a real pseudo-terminal: a bar while
collect stores many cores, a word before gdb reads a large core; nothing of
it when stderr is a pipe."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import fixture

pytestmark = pytest.mark.integration


def stderr_on_a_terminal(*args: str) -> tuple[int, str, str]:
    """(status, stdout, stderr) with stderr on a real pseudo-terminal."""
    from tests.cli.test_terminal import terminal_run

    return terminal_run(*args, stream="stderr", columns=120)


def cores(tmp: Path, manifest: dict[str, Any], n: int, name: str = "src") -> Path:
    src = tmp / name
    src.mkdir()
    data = Path(fixture(manifest, "nginx-null")["core"]).read_bytes()
    for i in range(n):
        (src / f"core.{7000 + i}").write_bytes(data + i.to_bytes(4, "little"))
    return src


def test_collect_draws_a_bar_on_a_terminal_only(tmp_path: Path,
                                                manifest: dict[str, Any]) -> None:
    src = cores(tmp_path, manifest, 12)
    status, out, err = stderr_on_a_terminal(
        "collect", "--only-from", "--from", str(src), "--store", str(tmp_path / "s1"),
        "--no-gdb", "--flood", "0", "--keep-sources")
    assert status == 0, err
    assert "crashkit: collecting" in err and "12/12" in err, err
    assert out.startswith("12 cores stored in ")
    # The same into a pipe: the stored cores and not a trace of the bar.
    src = cores(tmp_path, manifest, 12, "src2")
    proc = subprocess.run([sys.executable, "-m", "crashkit", "collect", "--only-from", "--from",
                           str(src), "--store", str(tmp_path / "s2"), "--no-gdb", "--flood",
                           "0", "--json"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and proc.stderr == ""
    assert json.loads(proc.stdout)["counts"]["stored"] == 12


def test_analyze_says_gdb_is_at_work_on_a_large_core(tmp_path: Path,
                                                     manifest: dict[str, Any]) -> None:
    big = tmp_path / "core"
    shutil.copyfile(fixture(manifest, "nginx-null")["core"], big)
    os.truncate(big, 300 << 20)  # sparse: a core as large as a busy worker's
    status, out, err = stderr_on_a_terminal("analyze", str(big))
    assert status == 0, err
    assert "crashkit: gdb is reading a 300.0 MiB core" in err, err
    assert out.startswith("NULL pointer dereference in crashkit_faulty_tag_length()")
    status, _out, err = stderr_on_a_terminal("analyze", "--no-gdb", str(big))
    assert status == 0 and "gdb is reading" not in err


def test_analyze_verdict_wraps_to_the_terminal_only(manifest: dict[str, Any]) -> None:
    from tests.cli.test_terminal import on_a_terminal, piped

    core = fixture(manifest, "nginx-null")["core"]
    narrow = on_a_terminal("analyze", "--no-gdb", core, columns=80)
    flat = piped("analyze", "--no-gdb", core)
    head = flat.split("\n\n", 1)[0].split("\n")  # the verdict and what happened
    assert len(head) == 2 and max(len(line) for line in head) > 80
    wrapped = narrow.split("\n\n", 1)[0].split("\n")
    assert len(wrapped) > 2 and max(len(line) for line in wrapped) <= 80
    assert " ".join(w.strip() for w in wrapped) == " ".join(head)
