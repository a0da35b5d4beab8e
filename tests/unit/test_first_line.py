"""The first line of triage and doctor is the answer: "N problems: <the most
severe>; <the next>; and M more below", or "all clear: …". Whole outputs
against reviewed goldens; the headline rules on their own."""

from __future__ import annotations

from crashkit.analysis.doctor import judge
from crashkit.model.doctor import Check, Doctor, ListenState
from crashkit.model.host import OomKill, PortHolder
from crashkit.render.doctor import text
from crashkit.render.headline import CLIP, all_clear, problems
from tests.golden import assert_golden
from tests.unit.test_host_units import facts


def test_problems_names_the_first_two_and_counts_the_rest() -> None:
    assert problems(["a"]) == "1 problem: a"
    assert problems(["a", "b"]) == "2 problems: a; b"
    assert problems(["a", "b", "c", "d"]) == "4 problems: a; b; and 2 more below"
    long = problems(["x" * 200, "two\nlines"])
    first, second = long.removeprefix("2 problems: ").split("; ")
    assert len(first) == CLIP and first.endswith("…") and second == "two lines"
    assert all_clear("9 checks passed") == "all clear: 9 checks passed"


def test_doctor_all_clear_opens_with_it() -> None:
    out = text(Doctor("/etc/nginx/nginx.conf", judge(facts())))
    assert out.splitlines()[0] == "all clear: 5 checks passed, 2 skipped"
    assert_golden("doctor-clear.txt", out + "\n")


def test_doctor_problems_open_with_the_failures_first() -> None:
    theirs = ListenState("0.0.0.0:443", "n.conf:10",
                         (PortHolder("0.0.0.0:443", 99, "apache2", "apache2"),))
    checks = judge(facts(listens=(theirs,), worker_pids=(11,),
                         oom_kills=(OomKill(12, "nginx", "Out of memory: Killed process 12"),)))
    checks += (Check("cores:kernel.core_uses_pid", "warn", "0: every core is named 'core'"),)
    out = text(Doctor("/etc/nginx/nginx.conf", checks))
    bad = [c for c in checks if c.status in ("warn", "fail")]
    assert len(bad) == 4 and [c.status for c in bad].count("fail") == 1
    assert out.splitlines()[0] == (
        "4 problems: listen: 0.0.0.0:443 is held by pid 99 (apache2); "
        "workers: 1 worker process, the config asks for 2; and 2 more below")
    assert out.splitlines()[-1] == "4 checks need attention"
    assert_golden("doctor-problems.txt", out + "\n")
