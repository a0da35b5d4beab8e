"""Crashes that a script caused, made here with Debian's interpreters: the
verdict blames the script run by the interpreter, not the interpreter."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.conftest import analyze_json, crash_for_core

pytestmark = pytest.mark.integration


def test_python_ctypes_null_is_blamed_on_the_script(tmp_path: Path) -> None:
    script = tmp_path / "bad.py"
    script.write_text("import ctypes\nctypes.string_at(0)\n")
    core = crash_for_core([sys.base_prefix + "/bin/python3", "-I", str(script)], tmp_path)
    data = analyze_json(str(core))
    verdict = data["verdict"]
    assert verdict["confidence"] == "medium"
    assert "Python script code running in CPython (embedded by python3" in verdict["summary"]
    assert "less likely a bug in CPython" in verdict["summary"]
    assert verdict["report_to"].startswith("the site's Python code")
    sig = data["signature"]["frames"]
    assert sig == ["libc.so!strlen", "script:CPython!PyCFuncPtr_call"], sig
