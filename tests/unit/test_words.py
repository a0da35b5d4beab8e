"""The one way crashkit writes a size and a count (crashkit.model.words), and
that every renderer and analysis goes through it (no second formatter left)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from crashkit.model.readiness import human
from crashkit.model.words import plural, size

PACKAGE = Path(__file__).resolve().parents[2] / "crashkit"


@pytest.mark.parametrize(("n", "text"), [
    (0, "0 B"), (1, "1 B"), (1023, "1023 B"), (1024, "1.0 KiB"),
    (1536 * 1024, "1.5 MiB"),                       # 1.5 MiB
    (132_857_446, "126.7 MiB"),                     # what MB called 132.9 MB
    (82_248_193_638, "76.6 GiB"),                   # what df -h calls 77G
    (1024 * 1024 - 1, "1.0 MiB"),                   # not "1024.0 KiB"
    (2 << 30, "2.0 GiB"), (3 << 40, "3.0 TiB"), (2 << 60, "2.0 EiB"),
    (-2048, "-2.0 KiB"),
])
def test_size_in_binary_units(n: int, text: str) -> None:
    assert size(n) == text


def test_a_limit_is_a_size_or_unlimited() -> None:
    assert (human(None), human(1 << 30)) == ("unlimited", "1.0 GiB")


@pytest.mark.parametrize(("n", "args", "text"), [
    (0, ("worker",), "0 workers"), (1, ("worker",), "1 worker"), (2, ("worker",), "2 workers"),
    (1, ("check needs attention", "checks need attention"), "1 check needs attention"),
    (2, ("check needs attention", "checks need attention"), "2 checks need attention"),
    (1, ("address", "addresses"), "1 address"), (3, ("address", "addresses"), "3 addresses"),
    (2, ("crash", "crashes"), "2 crashes"),
])
def test_plural_agrees_with_the_count(n: int, args: tuple[str, ...], text: str) -> None:
    assert plural(n, *args) == text


def test_no_other_size_or_plural_formatter_is_left() -> None:
    """Sizes by hand (/ 1e6, "MB", "(s)") and plurals by hand ('s' if n != 1)
    in the code that writes for a person: render, analysis, commands, model."""
    hand = re.compile(r"""\(s\)|\(es\)|1e6|1e9|\bMB\b|\bGB\b|['"]e?s['"] if [^\n]*!= 1""")
    found = [f"{p.relative_to(PACKAGE)}:{i}: {line.strip()}"
             for layer in ("render", "analysis", "commands", "model")
             for p in sorted((PACKAGE / layer).glob("*.py"))
             for i, line in enumerate(p.read_text().splitlines(), 1)
             if hand.search(line) and not line.lstrip().startswith("#")]
    assert found == []
