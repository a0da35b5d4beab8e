"""error.log says a worker dumped core, and no core is where the kernel would
have put it: triage says where that is and why nothing is there, from this
host's real kernel.core_pattern."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import run_cli

LINE = ("2026/11/24 04:35:59 [alert] 19242#19242: worker process 19244 exited on signal 11 "
        "(core dumped)\n")


def test_dumped_core_that_is_not_there(tmp_path: Path) -> None:
    wd = tmp_path / "cores"
    wd.mkdir()
    log = tmp_path / "error.log"
    log.write_text(LINE)
    conf = tmp_path / "nginx.conf"
    # Workers as root: the directory is writable for them, so what is left to
    # say is that the file is not there.
    conf.write_text(f"user root;\nworking_directory {wd};\nerror_log {log};\nevents {{}}\n")
    proc = run_cli("triage", "--conf", str(conf), "--error-log", str(log), "--json")
    assert proc.returncode == 1, proc.stderr
    (f,) = [f for f in json.loads(proc.stdout)["findings"] if f["kind"] == "worker-crash-core"]
    assert f["details"]["cores"] == []
    why = f["details"]["core_missing"]
    pattern = Path("/proc/sys/kernel/core_pattern").read_text().strip()
    if pattern.startswith("|"):
        assert "piped" in why and pattern[1:].split()[0] in why
    elif pattern.startswith("/"):
        assert why.startswith(f"cores go to {Path(pattern).parent}")
    else:
        assert why.startswith(f"cores go to {wd} as {pattern!r}, and none for these pids")
    text = run_cli("triage", "--conf", str(conf), "--error-log", str(log)).stdout
    assert f"         no core    {why}" in text.splitlines()
    (wd / "core.19244").write_bytes(b"\x7fELF")  # now it is there (core or core.PID)
    again = json.loads(run_cli("triage", "--conf", str(conf), "--error-log", str(log),
                               "--json").stdout)
    (g,) = [x for x in again["findings"] if x["kind"] == "worker-crash-core"]
    if not pattern.startswith(("|", "/")) and ("%" not in pattern or "%p" in pattern):
        assert g["details"]["cores"] and "core_missing" not in g["details"]
