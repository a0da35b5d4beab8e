"""analyze redacts the crashed program's command line as report does (issue 18)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import run_cli
from tests.elfwriter import SynthCore, SynthThread


def _core(tmp_path: Path) -> str:
    core = SynthCore(threads=[SynthThread(7, {"rip": 0x7F0010, "rsp": 0x2000})],
                     psargs=b"app --password hunter2 --port 80")
    path = tmp_path / "core"
    path.write_bytes(core.build())
    return str(path)


def test_json_and_text_redact_the_password(tmp_path: Path) -> None:
    core = _core(tmp_path)
    proc = run_cli("analyze", "--no-gdb", "--json", core)
    data = json.loads(proc.stdout)
    assert data["core"]["cmdline"] == "app --password <redacted:7> --port 80"
    text = run_cli("analyze", "--no-gdb", core)
    assert "hunter2" not in text.stdout + text.stderr
    assert "app --password <redacted:7> --port 80" in text.stdout


def test_show_secrets_keeps_it(tmp_path: Path) -> None:
    proc = run_cli("analyze", "--no-gdb", "--json", "--show-secrets", _core(tmp_path))
    assert json.loads(proc.stdout)["core"]["cmdline"] == "app --password hunter2 --port 80"
