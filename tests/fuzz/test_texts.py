"""Hypothesis over structure-aware mutations of a real nginx error log and a
config (tests/fuzz/texts.py): every input ends in a result or one
CrashkitError line, never another exception, and in bounded time."""

from __future__ import annotations

import functools
import tempfile
import time
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fuzz import texts as X

CASES = 1000  # each of logs and configs: 2,000 with the cores' 2,000 beside them
SLOW = 5.0  # seconds: a case slower than this is a finding (a hang, a blow-up)


@functools.cache
def _scratch() -> Path:
    return Path(tempfile.mkdtemp(prefix="crashkit-fuzz-texts-"))


@settings(max_examples=CASES, deadline=None, derandomize=True, database=None,
          suppress_health_check=list(HealthCheck))
@given(kind=st.sampled_from(X.LOG_KINDS), a=st.integers(0, 1 << 32), b=st.integers(0, 1 << 32))
def test_mutated_error_logs_end_in_findings_or_one_error(kind: str, a: int, b: int) -> None:
    path = _scratch() / "error.log"
    path.write_bytes(X.mutate_log(X.log_seed(), kind, a, b))
    started = time.monotonic()
    outcome = X.check_log(str(path))
    assert outcome == "ok" or outcome.startswith("error: ")
    assert "\n" not in outcome
    assert time.monotonic() - started < SLOW


@settings(max_examples=CASES, deadline=None, derandomize=True, database=None,
          suppress_health_check=list(HealthCheck))
@given(kind=st.sampled_from(X.CONFIG_KINDS), a=st.integers(0, 1 << 32),
       b=st.integers(0, 1 << 32))
def test_mutated_configs_end_in_a_plan_or_one_error(kind: str, a: int, b: int) -> None:
    path = _scratch() / "nginx.conf"
    path.write_text(X.mutate_config(X.CONFIG_SEED, kind, a, b), errors="surrogateescape")
    started = time.monotonic()
    outcome = X.check_config(str(path))
    assert outcome == "ok" or outcome.startswith("error: ")
    assert time.monotonic() - started < SLOW
