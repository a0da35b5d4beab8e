"""When it crashed: the error log's "(core dumped)" line, else the core's file time."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import pytest

from crashkit.commands.analyze import crash_time
from crashkit.model.analyze import CrashTime
from crashkit.render.analyze import ago

NOW = 1795494959.0 + 3 * 3600 + 125  # 2026-11-24 07:38:04 UTC


@pytest.fixture(autouse=True)
def utc() -> Iterator[None]:
    old = os.environ.get("TZ")
    os.environ["TZ"] = "UTC"
    time.tzset()
    yield
    if old is None:
        del os.environ["TZ"]
    else:
        os.environ["TZ"] = old
    time.tzset()


def test_core_file_time_when_no_log_says() -> None:
    assert crash_time(1795494959.7, (), 4242, NOW) == CrashTime(
        "2026-11-24T04:35:59+00:00", "core file time", 3 * 3600 + 125)


def test_the_core_dumped_line_of_this_pid_corrects_it() -> None:
    log = ("2026/11/24 04:35:58 [alert] 4242#4242: *1 something before",
           "2026/11/24 04:36:01 [alert] 4240#4240: worker process 4243 exited on signal 11 "
           "(core dumped)",
           "2026/11/24 04:35:59 [alert] 4240#4240: worker process 4242 exited on signal 11 "
           "(core dumped)")
    # The core was copied an hour later: its file time is the copy's.
    assert crash_time(1795494959.0 + 3600, log, 4242, NOW) == CrashTime(
        "2026-11-24T04:35:59+00:00", "error log", 3 * 3600 + 125)
    assert crash_time(None, (), 4242, NOW) is None


@pytest.mark.parametrize("forged", ["2026/13/45 04:35:59", "0001/01/01 00:00:00"])
def test_a_log_time_that_is_no_time_is_passed_over(forged: str) -> None:
    """A month 13 or a year the C library cannot place: the line before it
    that can be read gives the time, else the core's file time (no traceback)."""
    line = f"{forged} [alert] 4240#4240: worker process 4242 exited on signal 11 (core dumped)"
    good = ("2026/11/24 04:35:59 [alert] 4240#4240: worker process 4242 exited on signal 11 "
            "(core dumped)")
    assert crash_time(1795494959.0 + 3600, (good, line), 4242, NOW) == CrashTime(
        "2026-11-24T04:35:59+00:00", "error log", 3 * 3600 + 125)
    assert crash_time(1795494959.0, (line,), 4242, NOW) == CrashTime(
        "2026-11-24T04:35:59+00:00", "core file time", 3 * 3600 + 125)


def test_how_long_ago() -> None:
    assert [ago(s) for s in (5, 59, 60, 3599, 3600, 3 * 3600 + 125, 86400, 2 * 86400 + 7200)] \
        == ["5 s ago", "59 s ago", "1 min ago", "59 min ago", "1 h 0 min ago", "3 h 2 min ago",
            "1 day 0 h ago", "2 days 2 h ago"]
