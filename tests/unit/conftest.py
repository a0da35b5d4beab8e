"""The unit tier: pure code on synthetic inputs. No process is started here
(no gdb, no dpkg-query, no nginx): a test that needs one belongs in
tests/cli or tests/integration, and this fixture makes it fail."""

from __future__ import annotations

import os
import subprocess
from typing import NoReturn

import pytest


def _refuse(*_args: object, **_kw: object) -> NoReturn:
    raise AssertionError("a unit test started a process: move it to tests/cli or "
                         "tests/integration, or keep the code under test pure")


@pytest.fixture(autouse=True)
def _no_processes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(subprocess.Popen, "__init__", _refuse)
    for name in ("fork", "posix_spawn", "posix_spawnp", "execv", "execve", "system"):
        monkeypatch.setattr(os, name, _refuse)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # A refused process in a background thread (a lookup the code started)
    # must fail its test, not pass with a warning.
    for item in items:
        if "/tests/unit/" in str(item.fspath):
            item.add_marker(pytest.mark.filterwarnings(
                "error::pytest.PytestUnhandledThreadExceptionWarning"))
