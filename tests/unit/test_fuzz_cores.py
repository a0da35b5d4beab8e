"""Hypothesis over structure-aware mutations of the real fixture cores: every
input ends in facts or one CrashkitError line, never another exception."""

from __future__ import annotations

import functools
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import CORES, unavailable
from tests.fuzz import mutations as M

CASES = 2000


@functools.cache
def _seeds() -> tuple[M.Seed, ...]:
    found = tuple(M.seed(p) for p in M.seeds(str(CORES)))
    if not found:
        unavailable(f"no fixture cores in {CORES}; run scripts/make-sample-cores")
    return found


@functools.cache
def _scratch() -> Path:
    return Path(tempfile.mkdtemp(prefix="crashkit-fuzz-")) / "core"


@settings(max_examples=CASES, deadline=None, derandomize=True, database=None,
          suppress_health_check=list(HealthCheck))
@given(which=st.integers(0, 3), kind=st.sampled_from(M.KINDS),
       a=st.integers(0, 1 << 32), b=st.integers(0, 1 << 32))
def test_mutated_cores_end_in_facts_or_one_error_line(which: int, kind: str, a: int,
                                                      b: int) -> None:
    seeds = _seeds()
    path = _scratch()
    path.write_bytes(M.mutate(seeds[which % len(seeds)], kind, a, b))
    outcome = M.check(str(path))
    assert outcome == "ok" or outcome.startswith("error: ")
