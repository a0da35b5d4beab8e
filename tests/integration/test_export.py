"""crashkit collect --sentry and export against a real bugsink server (from
PyPI, on 127.0.0.1; see tests/bugsink.py): real cores of two bugs, one of
them from two processes, grouped into two issues by crashkit's fingerprint;
nothing secret stored on the server; a rerun, and a sender killed between
the send and its mark, send nothing twice; a failed send is retried."""

from __future__ import annotations

import json
import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests import bugsink
from tests.conftest import check_schema, crash_for_core, fixture, run_cli, unavailable
from tests.live_nginx import free_port

pytestmark = pytest.mark.integration

SECRET = "hunter2-Cr4shk1t-SECRET"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[bugsink.Bugsink]:
    if not bugsink.installed():
        unavailable(f"bugsink is not installed in {bugsink.VENV} (scripts/bootstrap does it)")
    with bugsink.Bugsink(tmp_path_factory.mktemp("bugsink"), free_port()) as b:
        yield b


def export(store: Path, *args: str,
           env: dict[str, str] | None = None) -> tuple[int, dict[str, Any], str]:
    proc = run_cli("export", "--store", str(store), "--json", *args, env=env)
    assert proc.returncode in (0, 1), proc.stderr
    data: dict[str, Any] = json.loads(proc.stdout)
    check_schema(data)
    return proc.returncode, data, proc.stderr


def secret_crash(manifest: dict[str, Any], d: Path) -> Path:
    """Another process dying of the mt-plugin fixture's bug, with a password
    on its command line and a token in its environment."""
    f = fixture(manifest, "mt-plugin")
    exe = Path(f["exe"])
    work = d / "secret-run"
    work.mkdir()
    argv = [f"{exe} --password {SECRET}", "--threads", "2", "--plugin", f["plugin"]]
    wrapper = work / "run.sh"
    wrapper.write_text(f"#!/bin/bash\nexport API_TOKEN={SECRET}\n"
                       f"exec -a '{argv[0]}' {exe} {' '.join(argv[1:])}\n")
    wrapper.chmod(0o755)
    core = crash_for_core([str(wrapper)], work)
    assert SECRET.encode() in core.read_bytes(), "the secret is not in the core: test is moot"
    return core


def test_fleet_export_groups_by_signature_and_sends_once(
        tmp_path: Path, manifest: dict[str, Any], server: bugsink.Bugsink) -> None:
    project, dsn = server.project("nginx-fleet")
    src = tmp_path / "cores"
    src.mkdir()
    shutil.copyfile(fixture(manifest, "mt-plugin")["core"], src / "core.3001")
    shutil.copyfile(secret_crash(manifest, tmp_path), src / "core.3002")
    shutil.copyfile(fixture(manifest, "nginx-null")["core"], src / "core.3003")
    store = tmp_path / "store"

    # collect --sentry: store the three, then send each.
    proc = run_cli("collect", "--store", str(store), "--only-from", "--from", str(src),
                   "--sentry", dsn, "--json")
    assert proc.returncode == 0, proc.stderr
    collected = json.loads(proc.stdout)
    check_schema(collected)
    sent = collected["export"]
    check_schema(sent)
    assert sent["counts"]["sent"] == 3 and sent["target"] == f"http://127.0.0.1:{server.port}/{project}"

    issues = server.issues(project)
    assert sorted(i["digested_event_count"] for i in issues) == [1, 2]
    stored_events = {i["id"]: server.events(i["id"]) for i in issues}
    two = next(i for i in issues if i["digested_event_count"] == 2)
    one = next(i for i in issues if i["digested_event_count"] == 1)

    def crash_frame(e: dict[str, Any]) -> dict[str, Any]:
        frame: dict[str, Any] = e["data"]["exception"]["values"][0]["stacktrace"]["frames"][-1]
        return frame

    for e in stored_events[two["id"]]:
        f = crash_frame(e)
        assert f["function"] == "plugin_parse_record"
        assert f["package"].endswith("/libplugin.so") and f["in_app"] is True
        assert e["data"]["tags"]["blamed_module"] == "libplugin.so"
        assert e["data"]["platform"] == "native" and e["data"]["level"] == "fatal"
    pcs = {crash_frame(e)["instruction_addr"] for e in stored_events[two["id"]]}
    assert len(pcs) == 2  # two processes, other addresses: still one issue
    (nginx_event,) = stored_events[one["id"]]
    f = crash_frame(nginx_event)
    assert f["function"] == "crashkit_faulty_tag_length"
    assert f["package"].endswith("/ngx_http_crashkit_test_module.so")
    images = nginx_event["data"]["debug_meta"]["images"]
    assert any(i["code_file"] == "/usr/sbin/nginx" and i["code_id"] and i["debug_id"]
               for i in images)
    # Nothing secret on the server, in the events nor in the issue list.
    everything = json.dumps([issues, stored_events])
    assert SECRET not in everything
    assert "<redacted" in json.dumps(stored_events[two["id"]])  # the command line, redacted

    # A rerun sends nothing new.
    rc, again, _ = export(store, "--sentry", dsn)
    assert rc == 0 and again["counts"]["sent"] == 0 and again["counts"]["already"] == 3

    # A sender killed after the server took the events but before it marked
    # them: they are sent again with the same event ids, and the server keeps one each.
    with sqlite3.connect(store / "index.sqlite") as conn:
        conn.execute("UPDATE sent SET status = 'pending'")
    rc, resent, _ = export(store, "--sentry", dsn)
    assert rc == 0 and resent["counts"]["sent"] == 3
    assert {c["event_id"] for c in resent["crashes"]} == {c["event_id"] for c in sent["crashes"]}
    assert sorted(i["digested_event_count"] for i in server.issues(project)) == [1, 2]


def test_failed_send_is_retried_by_the_next_export(
        tmp_path: Path, manifest: dict[str, Any], server: bugsink.Bugsink) -> None:
    project, dsn = server.project("retry")
    src = tmp_path / "cores"
    src.mkdir()
    shutil.copyfile(fixture(manifest, "nginx-libc")["core"], src / "core.4001")
    shutil.copyfile(fixture(manifest, "nginx-abort")["core"], src / "core.4002")
    store = tmp_path / "store"
    run_cli("collect", "--store", str(store), "--only-from", "--from", str(src), check=True)
    key = dsn.split("//", 1)[1].split("@", 1)[0]
    dead = f"http://{key}@127.0.0.1:{free_port()}/{project}"
    rc, failed, stderr = export(store, "--sentry", dead)
    assert rc == 1
    assert [c["outcome"] for c in failed["crashes"]] == ["failed", "deferred"]
    assert "Connection refused" in failed["crashes"][0]["detail"]
    assert stderr.count("\n") == 1 and "retries it" in stderr  # one clear line
    assert server.issues(project) == []

    # The same server, back: both go, once each (the failed one on its 2nd attempt).
    rc, later, _ = export(store, "--sentry", dsn)
    assert rc == 0 and later["counts"]["sent"] == 2
    assert [c["attempts"] for c in later["crashes"]] == [1, 1]
    assert sorted(i["digested_event_count"] for i in server.issues(project)) == [1, 1]


def test_dry_run_prints_events_and_sends_nothing(tmp_path: Path,
                                                 manifest: dict[str, Any]) -> None:
    src = tmp_path / "cores"
    src.mkdir()
    shutil.copyfile(fixture(manifest, "nginx-null")["core"], src / "core.5001")
    store = tmp_path / "store"
    run_cli("collect", "--store", str(store), "--only-from", "--from", str(src), check=True)
    before = (store / "index.sqlite").read_bytes()
    rc, dry, _ = export(store, "--dry-run", env={"SENTRY_DSN": ""})
    assert rc == 0 and dry["counts"]["would_send"] == 1 and dry["target"] is None
    (event,) = dry["events"]
    assert event["fingerprint"][0] == "crashkit" and event["platform"] == "native"
    assert (store / "index.sqlite").read_bytes() == before


def test_bad_dsn_and_no_dsn_are_one_line_errors(tmp_path: Path) -> None:
    store = tmp_path / "store"
    store.mkdir()
    for args, env, words in (
            (("--sentry", "ftp://x@host/1"), {}, "not a Sentry DSN"),
            ((), {"SENTRY_DSN": "", "CRASHKIT_CONFIG": str(tmp_path / "none.toml")},
             "no Sentry DSN")):
        proc = run_cli("export", "--store", str(store), *args, env=env)
        assert proc.returncode == 2 and proc.stdout == ""
        assert proc.stderr.count("\n") == 1 and words in proc.stderr, proc.stderr
