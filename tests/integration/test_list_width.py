"""crashkit list fits its rows to a terminal's width (issue 15 item 20): with
COLUMNS (or a terminal) each row is cut between its cells, never inside one,
and the summary is wrapped; a pipe keeps one line per row for scripts."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.integration.test_readme_examples import collected_store

pytestmark = pytest.mark.integration


def listing(store: Path, **env: str) -> str:
    base = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "NO_COLOR")}
    proc = subprocess.run([sys.executable, "-m", "crashkit", "list", "--store", str(store)],
                          capture_output=True, text=True, timeout=120, env={**base, **env})
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def rows(text: str) -> list[list[str]]:
    """The groups, each as its lines (a group starts at an unindented line)."""
    out: list[list[str]] = []
    for line in text.splitlines()[2:]:
        if not line.startswith(" "):
            out.append([])
        out[-1].append(line)
    return out


def words(lines: list[str]) -> list[str]:
    """The row's words, but how long ago (the two runs may fall either side
    of a minute)."""
    return re.sub(r"\(\d+ (?:s|min|h|days?)(?: \d+ (?:min|h))? ago\)", "(AGO)",
                  " ".join(lines)).split()


@pytest.mark.parametrize("width", [80, 60])
def test_rows_fit_the_width(manifest: dict[str, Any], tmp_path: Path, width: int) -> None:
    store = collected_store(manifest, tmp_path)
    piped, fitted = listing(store), listing(store, COLUMNS=str(width))
    wide = rows(piped)
    assert len(wide) == 3 and all(len(group) == 3 for group in wide)  # one line per row
    assert max(len(line) for group in wide for line in group) > width
    narrow = rows(fitted)
    assert [words(g) for g in narrow] == [words(g) for g in wide]  # the same text
    for g_wide, g_narrow in zip(wide, narrow, strict=True):
        # Cells stay whole: the head row's lines are runs of its cells, each
        # within the width unless it is one cell that is wider by itself.
        cells = g_wide[0].split("  ")
        head: list[str] = []
        done = 0
        for line in g_narrow:
            parts = line.strip().split("  ")
            if done == len(cells) or parts != cells[done:done + len(parts)]:
                break
            head.append(line)
            done += len(parts)
        assert done == len(cells), fitted
        assert all(len(x) <= width or x.strip() in cells for x in head), fitted
        assert len(head) > 1
        # The summary and the times are cut to the width.
        assert all(len(x) <= width for x in g_narrow[len(head):]), fitted
