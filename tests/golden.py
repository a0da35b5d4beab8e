"""The one golden-file helper: whole outputs against reviewed files in
tests/golden. CRASHKIT_UPDATE_GOLDEN=1 rewrites them (review the diff)."""

from __future__ import annotations

import os
from pathlib import Path

GOLDEN = Path(__file__).resolve().parent / "golden"
DATA = Path(__file__).resolve().parent / "data"


def assert_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("CRASHKIT_UPDATE_GOLDEN"):
        path.write_text(text)
    assert text == path.read_text(), f"differs from {path} (CRASHKIT_UPDATE_GOLDEN=1 rewrites)"
