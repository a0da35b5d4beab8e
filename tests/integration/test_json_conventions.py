"""One set of JSON conventions across every verb (README, "--json: conventions"),
checked on real inputs: real cores, real error logs, a real nginx, a real store.

Every pid and signal number is an integer; every time is ISO 8601 with an
offset (the runs use a zone other than UTC, America/New_York, so a time that
only looks right in UTC fails); every document names its crashkit_version;
checks have one shape in doctor and setup; analyze's summary is its headline.
"""

from __future__ import annotations

import json
import shutil
import tarfile
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT, check_schema, fixture, run_cli
from tests.live_nginx import LiveNginx, basic_conf, free_port

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("live_nginx_ready")]

TZ = {"TZ": "America/New_York"}  # -05:00 in winter, -04:00 in summer
# Keys whose value is a pid, or a list of pids, or a signal number
PID_KEYS = {"pid", "ppid", "sender_pid", "master_pid"}
TIME_KEYS = {"time", "first", "last", "since", "first_seen", "last_seen", "collected_at",
             "histogram_start"}
CHECK_SHAPE = {"name", "status", "summary", "fix", "details"}


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def walk(data: Any, seen: Counter[str], where: str = "") -> list[str]:
    """Paths that break a convention; ``seen`` counts what was checked."""
    bad: list[str] = []
    if isinstance(data, dict):
        for key, value in data.items():
            at = f"{where}.{key}"
            if key in PID_KEYS or key.endswith("_pid"):
                seen["pid"] += value is not None
                if value is not None and not _is_int(value):
                    bad.append(f"{at}: pid {value!r} is not an integer")
            elif key in ("pids", "signals"):
                for i, v in enumerate(value):
                    v = v["value"] if isinstance(v, dict) else v  # triage's {value, count}
                    seen["pid" if key == "pids" else "signal"] += 1
                    if not _is_int(v):
                        bad.append(f"{at}[{i}]: {v!r} is not an integer")
            elif key in ("signal", "number", "signo") and not isinstance(value, dict):
                seen["signal"] += value is not None
                if value is not None and not _is_int(value):
                    bad.append(f"{at}: signal {value!r} is not an integer")
            elif key in TIME_KEYS and isinstance(value, str):
                bad += _time(value, at, seen)
            bad += walk(value, seen, at)
    elif isinstance(data, list):
        for i, value in enumerate(data):
            bad += walk(value, seen, f"{where}[{i}]")
    elif isinstance(data, str) and data[:4].isdigit() and data[4:5] == "-" \
            and data[10:11] in ("T", " ") and data[13:14] == ":":
        bad += _time(data, where, Counter())  # a time under any other key
    return bad


def _time(value: str, at: str, seen: Counter[str]) -> list[str]:
    seen["time"] += 1
    try:
        t = datetime.fromisoformat(value)
    except ValueError:
        return [f"{at}: {value!r} is not ISO 8601"]
    if "T" not in value or t.tzinfo is None:
        return [f"{at}: {value!r} has no offset"]
    return []


def cli(*args: str) -> dict[str, Any]:
    proc = run_cli(*args, "--json", env=TZ)
    assert proc.returncode in (0, 1), proc.stderr
    data: dict[str, Any] = json.loads(proc.stdout)
    check_schema(data)
    assert data["crashkit_version"], data["schema"]
    return data


def test_every_verbs_json_follows_one_convention(tmp_path: Path,
                                                 manifest: dict[str, Any]) -> None:
    null, kill = fixture(manifest, "nginx-null"), fixture(manifest, "nginx-kill")
    docs: dict[str, dict[str, Any]] = {}
    docs["analyze"] = cli("analyze", null["core"], "--error-log", null["error_log"])
    docs["analyze-kill"] = cli("analyze", kill["core"])
    report = cli("report", null["core"], "--out", str(tmp_path), "--format", "json")
    docs["report"] = report
    with tarfile.open(report["bundle"]) as tar:
        (member,) = [m for m in tar.getmembers() if m.name.endswith("/analysis.json")]
        f = tar.extractfile(member)
        assert f is not None
        docs["report analysis.json"] = json.loads(f.read())
        check_schema(docs["report analysis.json"])
    logs = (null["error_log"], kill["error_log"], str(ROOT / "tests/data/nginx-error-real.log"))
    docs["triage"] = cli("triage", *(a for log in logs for a in ("--error-log", log)),
                         "--since", "2026-01-01T00:00")
    port = free_port()
    with LiveNginx(tmp_path / "ngx", basic_conf(port)) as ngx:
        docs["doctor"] = cli("doctor", "--conf", str(ngx.conf))
        docs["setup"] = cli("setup", "--conf", str(ngx.conf))
    src = tmp_path / "cores"
    src.mkdir()
    shutil.copyfile(null["core"], src / "core.1")
    store = str(tmp_path / "store")
    docs["collect"] = cli("collect", "--store", store, "--only-from", "--from", str(src),
                          "--no-gdb", "--error-log", logs[2])
    docs["list"] = cli("list", "--store", store)
    docs["show"] = cli("show", "1", "--store", store)

    seen: dict[str, Counter[str]] = {}
    for verb, data in docs.items():
        seen[verb] = Counter()
        assert walk(data, seen[verb]) == [], verb
    # The walk looked at the facts each verb has (so it can fail).
    assert seen["analyze"]["pid"] >= 2 and seen["analyze"]["signal"] >= 1  # core.pid, ppid
    assert seen["analyze"]["time"] == 1  # crash_time.time
    assert seen["analyze-kill"]["pid"] >= 3  # and signal.sender_pid
    assert seen["triage"]["pid"] >= 3 and seen["triage"]["signal"] >= 3
    assert seen["triage"]["time"] >= 2 * len(docs["triage"]["findings"]) + 1  # first, last, since
    assert seen["doctor"]["pid"] >= 2  # the master, its worker
    assert seen["collect"]["time"] >= 1 and seen["collect"]["pid"] >= 1  # log_crashes[]
    assert seen["list"]["time"] >= 2 and seen["show"]["time"] >= 2
    assert seen["show"]["pid"] == 1 and seen["show"]["signal"] == 1

    # Local times carry this zone's offset at that time: nginx wrote these
    # logs in December and November (EST, -05:00).
    assert docs["analyze"]["crash_time"]["source"] == "error log"
    assert docs["analyze"]["crash_time"]["time"].endswith("-05:00")
    assert docs["triage"]["since"] == "2026-01-01T00:00:00-05:00"
    assert {f["first"][19:] for f in docs["triage"]["findings"]} == {"-05:00"}
    crash = next(f for f in docs["triage"]["findings"] if f["kind"] == "worker-crash-core")
    assert null["pid"] in [e["value"] for e in crash["details"]["pids"]]
    assert [e["value"] for e in crash["details"]["signals"]] == [11]

    # The headline, under the name a consumer reads first.
    for name in ("analyze", "analyze-kill", "report analysis.json"):
        a = docs[name]
        assert a["summary"] == a["verdict"]["summary"] and a["what_happened"] != a["summary"]
    assert docs["report"]["verdict"] == docs["analyze"]["summary"]

    # One check shape in doctor and setup.
    for verb in ("doctor", "setup"):
        checks = docs[verb]["checks"]
        assert checks and all(set(c) >= CHECK_SHAPE for c in checks), verb
    assert all(c["detail"] == c["summary"] for c in docs["setup"]["checks"])
    doctor_cores = {c["name"]: c["summary"] for c in docs["doctor"]["checks"]}
    for c in docs["setup"]["checks"]:  # the same OS checks, the same words
        assert doctor_cores.get(f"cores:{c['name']}") in (c["summary"], None)
