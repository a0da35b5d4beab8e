"""analyze redacts the crashed program's command line as report does (issue 18),
and both verbs turn it off with --no-redact."""

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


def test_no_redact_keeps_it_and_show_secrets_is_its_old_name(tmp_path: Path) -> None:
    """analyze and report turn redaction off with the same flag, --no-redact
    (issue 15 item 18); --show-secrets, analyze's old name, still works and
    is no longer offered by --help."""
    core = _core(tmp_path)
    outs = [run_cli("analyze", "--no-gdb", "--json", flag, core, check=True).stdout
            for flag in ("--no-redact", "--show-secrets")]
    assert json.loads(outs[0])["core"]["cmdline"] == "app --password hunter2 --port 80"
    assert outs[0] == outs[1]
    for verb in ("analyze", "report"):
        shown = run_cli(verb, "--help", check=True).stdout
        assert "--no-redact" in shown.split("Options:", 1)[1]
        assert "--show-secrets" not in shown
