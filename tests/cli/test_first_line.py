"""triage's first line is the answer, as a user runs it: the count of
findings and the most severe by title, or "all clear" naming what was read."""

from __future__ import annotations

import json
import re
from pathlib import Path

from tests.conftest import run_cli
from tests.golden import DATA

REAL = DATA / "nginx-error-real.log"


def test_triage_opens_with_the_problems_most_severe_first() -> None:
    proc = run_cli("triage", "--error-log", str(REAL))
    assert proc.returncode == 1
    findings = json.loads(run_cli("triage", "--error-log", str(REAL), "--json").stdout)[
        "findings"]
    assert len(findings) == 11
    assert proc.stdout.splitlines()[0] == (
        f"11 problems: {findings[0]['title']}; {findings[1]['title']}; and 9 more below")
    assert findings[0]["severity"] == "critical"
    # Then the details as before: what was read, and each finding.
    assert re.fullmatch(rf"{re.escape(str(REAL))}: 4\.1 KiB read in \d+\.\d\d s",
                        proc.stdout.splitlines()[1])


def test_triage_all_clear_says_so_first(tmp_path: Path) -> None:
    log = tmp_path / "error.log"
    log.write_bytes(b"".join(line + b"\n" for line in REAL.read_bytes().splitlines()
                             if b"[notice]" in line))
    proc = run_cli("triage", "--error-log", str(log))
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == f"all clear: nothing in {log} needs attention"
    assert lines[1].startswith(f"{log}: ") and len(lines) == 2
