"""nginx's error-log times are the host's local time with no zone: triage's
JSON gives them the host's offset at that time (DST included), and a forged
time the C library cannot place still gets an offset, never a traceback."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest

from crashkit.analysis.triage import local_iso


@pytest.fixture
def new_york(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.mark.usefixtures("new_york")
def test_the_offset_is_the_one_at_that_time() -> None:
    assert local_iso(datetime(2026, 7, 1, 12, 0, 0)) == "2026-07-01T12:00:00-04:00"  # EDT
    assert local_iso(datetime(2026, 11, 24, 4, 35, 59)) == "2026-11-24T04:35:59-05:00"  # EST


@pytest.mark.usefixtures("new_york")
@pytest.mark.parametrize("when", [datetime(1, 1, 1, 0, 0, 1), datetime(9999, 12, 31, 23, 59)])
def test_a_time_out_of_the_c_librarys_range_gets_todays_offset(when: datetime) -> None:
    out = datetime.fromisoformat(local_iso(when))
    assert out.replace(tzinfo=None) == when
    assert out.utcoffset() in (timedelta(hours=-4), timedelta(hours=-5))
