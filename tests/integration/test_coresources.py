"""crashkit.host.coresources against the real kernel: a core the kernel
writes for a crashing process (named by this machine's core_pattern, read,
never changed), and device nodes (root) beside it."""

from __future__ import annotations

import os
import resource
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from crashkit.host import coresources as S
from crashkit.host.proc import read_sysctl
from tests.conftest import unavailable

pytestmark = pytest.mark.integration


def test_kernel_written_core_and_devices(tmp_path: Path) -> None:
    pattern_text = read_sysctl("kernel/core_pattern")
    uses_pid = read_sysctl("kernel/core_uses_pid")
    if pattern_text is None or uses_pid is None:
        unavailable("cannot read kernel.core_pattern")
    assert pattern_text is not None and uses_pid is not None
    pattern = S.parse_core_pattern(pattern_text, uses_pid.strip() != "0")
    if pattern.kind != "file" or not pattern.relative or pattern.nested:
        unavailable(f"core_pattern {pattern_text!r} does not write into the crashing "
                    "process's directory")
    d = tmp_path / "cores"
    d.mkdir()

    def limits() -> None:
        resource.setrlimit(resource.RLIMIT_CORE, (resource.RLIM_INFINITY,
                                                  resource.RLIM_INFINITY))

    proc = subprocess.run([sys.executable, "-c", "import os; os.abort()"], cwd=d,
                          preexec_fn=limits, capture_output=True)
    assert proc.returncode == -signal.SIGABRT
    if os.geteuid() == 0:
        os.mknod(d / "tty", stat.S_IFCHR | 0o600, os.makedev(5, 0))
        os.mknod(d / "disk", stat.S_IFBLK | 0o600, os.makedev(7, 0))
    got = {e.name: e for e in S.scan_dir(str(d), S.ScanOptions(pattern=pattern, settle=0))}
    cores = [e for e in got.values() if e.format == "elf"]
    assert len(cores) == 1, got
    (core,) = cores
    assert core.status == "candidate" and core.truncated is False
    assert core.naming == "core_pattern" and core.fields is not None
    if pattern.uses_pid and "p" not in pattern.specifiers:
        assert core.name == f"core.{core.fields.pid}"
    assert stat.S_IMODE(core.mode or 0) == 0o600  # as the kernel creates cores
    if os.geteuid() == 0:
        assert got["tty"].reason == "device" and got["disk"].reason == "device"
