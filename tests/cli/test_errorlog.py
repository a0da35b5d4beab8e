"""The error-log reader and triage's counting, on lines real nginx wrote.

tests/data/nginx-error-real.log holds lines captured from Debian's nginx
1.22 during the live tests (tests/test_triage_live.py) and a manual run:
every kind triage knows, plus ordinary [notice] noise and a 404.
"""

from __future__ import annotations

import gzip
from collections import Counter
from datetime import datetime
from pathlib import Path

import pytest

from crashkit.analysis import triage
from crashkit.errors import InputError
from crashkit.formats import nginx_log as logformat
from crashkit.nginx import errorlog
from tests.conftest import cli_json, run_cli
from tests.golden import DATA, assert_golden

REAL = DATA / "nginx-error-real.log"

# What the real sample holds, counted by hand from the file.
EXPECTED = {"upstream-refused": 5, "upstream-timeout": 1, "upstream-permission": 1,
            "upstream-reset": 1, "upstream-closed": 1, "worker-connections": 1,
            "worker-crash-core": 1, "worker-crash": 1, "worker-killed": 1,
            "config-error": 1, "bind-in-use": 2}


def counts(paths: list[str], *, since: datetime | None = None, jobs: int = 1,
           block_size: int = errorlog.BLOCK_SIZE, min_split: int = 64 << 20,
           ) -> tuple[dict[str, int], errorlog.ScanStats, tuple[triage.Finding, ...]]:
    key = errorlog.since_key(since) if since else None
    tasks = errorlog.plan(paths, jobs, min_split=min_split)
    stats = errorlog.ScanStats()
    tallies = [triage.tally(errorlog.select_task(t, triage.PATTERN, since=key, stats=stats,
                                                 block_size=block_size)) for t in tasks]
    found = triage.findings(triage.merge(tallies))
    return {f.kind: f.count for f in found}, stats, found


def test_parse_line_fields() -> None:
    line = REAL.read_bytes().splitlines()[8]
    e = errorlog.parse_line(line)
    assert e is not None
    assert (e.time, e.level, e.pid, e.tid, e.connection) == (
        datetime(2026, 11, 24, 4, 23, 40), "crit", 2038, 2038, 5)
    assert e.message == ("connect() to unix:/tmp/tcap/sock/app.sock failed (13: Permission "
                         "denied) while connecting to upstream")
    assert (e.client, e.server, e.request, e.upstream, e.host) == (
        "127.0.0.1", "crashkit.test", "GET /unix?q=1 HTTP/1.1",
        "http://unix:/tmp/tcap/sock/app.sock:/?q=1", "127.0.0.1:38015")


def test_parse_line_without_connection_or_context() -> None:
    e = errorlog.parse_line(b"2026/11/24 04:35:59 [alert] 19242#19242: worker process 19244 "
                            b"exited on signal 11 (core dumped)\n")
    assert e is not None and e.connection is None and e.client is None
    assert e.message == "worker process 19244 exited on signal 11 (core dumped)"


@pytest.mark.parametrize("junk", [b"", b"garbage", b"2026/13/45 99:99:99 [error] 1#1: x",
                                  b"\tstack traceback:", b"2026/11/24 04:35:59 error 1#1: x"])
def test_parse_line_rejects_garbage(junk: bytes) -> None:
    assert errorlog.parse_line(junk) is None


def test_context_keys() -> None:
    def keys(ctx: bytes) -> tuple[bytes | None, bytes | None, bytes | None]:
        return logformat.context_keys(b" while x" + ctx)[:3]

    assert keys(b', client: 10.0.0.9, server: s, request: "GET /a?b=1 HTTP/1.1", upstream: '
                b'"http://127.0.0.1:8080/a?b=1", host: "h"') == (
        b"10.0.0.9", b"GET /a", b"http://127.0.0.1:8080")
    assert keys(b', client: c, server: s, request: "POST /x HTTP/1.1", upstream: '
                b'"http://unix:/run/a.sock:/x", host: "h"')[2] == b"http://unix:/run/a.sock"
    assert keys(b', client: c, server: s, request: "GET / HTTP/1.1", upstream: '
                b'"fastcgi://unix:/run/php.sock:", host: "h"')[2] == b"fastcgi://unix:/run/php.sock"
    assert keys(b', client: c, server: s, request: "GET / HTTP/2.0", upstream: '
                b'"http://[::1]:81/", host: "h"')[2] == b"http://[::1]:81"
    assert logformat.context_keys(b"no context here") == (None, None, None, 15)


def test_real_lines_counted() -> None:
    got, stats, found = counts([str(REAL)])
    assert got == EXPECTED
    assert stats.garbage_lines == 0
    assert stats.bytes_read == REAL.stat().st_size
    # The order a person reads: critical first, then by count.
    sev = [f.severity for f in found]
    assert sev == sorted(sev, key=lambda s: ["critical", "high", "medium", "low"].index(s))
    refused = next(f for f in found if f.kind == "upstream-refused")
    assert [(c.value, c.count) for c in refused.upstreams] == [
        ("http://127.0.0.1:36239", 4), ("fastcgi://127.0.0.1:36239", 1)]
    assert [(c.value, c.count) for c in refused.requests] == [
        ("GET /up", 3), ("GET /refused", 1), ("GET /fcgi", 1)]
    assert (refused.first, refused.last) == tuple(  # local, with this host's offset then
        datetime(2026, 11, 24, 4, 23, s).astimezone().isoformat() for s in (39, 40))
    # select(): the same lines, whole files in this process
    hits = list(errorlog.select([str(REAL)], triage.PATTERN))
    assert len(hits) == sum(EXPECTED.values())
    assert hits[0][0] == b"2026/11/24 04:23:39" and hits[0][2].startswith(b"Connection refused)")


@pytest.mark.parametrize("block_size", [1, 7, 64, 200, 4096])
def test_block_boundaries_do_not_change_counts(block_size: int) -> None:
    got, stats, _ = counts([str(REAL)], block_size=block_size)
    assert got == EXPECTED and stats.garbage_lines == 0


def test_byte_ranges_cover_every_line_once(tmp_path: Path) -> None:
    # The parallel plan cuts plain files in byte ranges: anywhere in a line.
    log = tmp_path / "error.log"
    log.write_bytes(REAL.read_bytes() * 7)
    for jobs in (2, 3, 5):
        tasks = errorlog.plan([str(log)], jobs, min_split=1)
        assert len(tasks) == jobs
        got, stats, _ = counts([str(log)], jobs=jobs, min_split=1, block_size=50)
        assert got == {k: 7 * n for k, n in EXPECTED.items()}
        assert stats.bytes_read >= log.stat().st_size


def test_parallel_processes_give_the_same_answer(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    log = tmp_path / "error.log"
    log.write_bytes(REAL.read_bytes() * 3)
    tasks = errorlog.plan([str(log)], 2, min_split=1)
    monkeypatch.setattr(errorlog, "PARALLEL_MIN_BYTES", 1)
    tallies, stats = errorlog.reduce_tasks(tasks, triage.PATTERN, None, triage.tally, 2)
    got = {f.kind: f.count for f in triage.findings(triage.merge(tallies))}
    assert got == {k: 3 * n for k, n in EXPECTED.items()}
    assert [f.path for f in stats.files] == [str(log)]
    assert stats.files[0].bytes_read == log.stat().st_size


def test_rotated_gzip_and_plain(tmp_path: Path) -> None:
    lines = REAL.read_bytes().splitlines(keepends=True)
    old, new = tmp_path / "error.log.2.gz", tmp_path / "error.log"
    with gzip.open(old, "wb") as f:
        f.writelines(lines[:15])
    new.write_bytes(b"".join(lines[15:]))
    got, stats, _ = counts([str(old), str(new)])
    assert got == EXPECTED
    assert [(f.path, f.compressed) for f in stats.files] == [(str(old), True), (str(new), False)]


def test_garbage_lines_counted_not_fatal(tmp_path: Path) -> None:
    lines = REAL.read_bytes().splitlines(keepends=True)
    junk = [b"this is not nginx\n", b"\n", b"\tstack traceback:\n", b"\x00\xff\xfe binary\n",
            b"x" * (2 << 20) + b"\n"]  # over a megabyte: cut off, counted once
    mixed = lines[:3] + junk[:2] + lines[3:20] + junk[2:] + lines[20:]
    log = tmp_path / "error.log"
    log.write_bytes(b"".join(mixed).rstrip(b"\n"))  # and no newline at the very end
    for block_size in (4096, errorlog.BLOCK_SIZE):
        got, stats, _ = counts([str(log)], block_size=block_size)
        assert got == EXPECTED
        assert stats.garbage_lines == len(junk)


def test_since_iso_and_block_skipping(tmp_path: Path) -> None:
    since = datetime(2026, 11, 24, 4, 35, 0)
    want = {k: n for k, n in EXPECTED.items() if not k.startswith("upstream")}
    got, stats, _ = counts([str(REAL)], since=since)
    assert got == want
    # With small blocks, the old ones are skipped without being looked at.
    log = tmp_path / "error.log"
    log.write_bytes(REAL.read_bytes().split(b"\n2026/11/24 04:35:55")[0] * 50 + b"\n" +
                    REAL.read_bytes())
    got, stats, _ = counts([str(log)], since=since, block_size=1024)
    assert got == want
    assert stats.skipped_bytes > 40 * 1024


def test_parse_since() -> None:
    now = datetime(2026, 11, 24, 12, 0, 0)
    assert errorlog.parse_since("2h", now) == datetime(2026, 11, 24, 10, 0, 0)
    assert errorlog.parse_since("30m", now) == datetime(2026, 11, 24, 11, 30, 0)
    assert errorlog.parse_since("1d", now) == datetime(2026, 11, 23, 12, 0, 0)
    assert errorlog.parse_since("2026-11-24T04:00", now) == datetime(2026, 11, 24, 4, 0)
    assert errorlog.parse_since("2026-11-24", now) == datetime(2026, 11, 24)
    with pytest.raises(ValueError, match="not a time"):
        errorlog.parse_since("yesterday-ish", now)
    assert errorlog.since_key(datetime(2026, 1, 2, 3, 4, 5)) == b"2026/01/02 03:04:05"


def test_truncated_gzip_keeps_what_was_read(tmp_path: Path) -> None:
    whole = gzip.compress(REAL.read_bytes() * 200)
    cut = tmp_path / "error.log.1.gz"
    cut.write_bytes(whole[: len(whole) * 3 // 4])
    got, stats, _ = counts([str(cut)])
    assert stats.files[0].truncated is True
    assert 0 < got["upstream-refused"] < 5 * 200


def test_bad_input_is_one_line_exit_2(tmp_path: Path) -> None:
    fake = tmp_path / "error.log.1.gz"
    fake.write_text("plain text, not gzip\n")
    corrupt = tmp_path / "error.log.3.gz"
    corrupt.write_bytes(b"\x1f\x8b\x08\x00" + b"\xff" * 64)
    cases = {str(tmp_path / "missing.log"): "no such file",
             str(tmp_path): "is a directory",
             str(fake): "named .gz but not gzip-compressed",
             str(corrupt): "gzip"}
    for path, reason in cases.items():
        proc = run_cli("triage", "--error-log", str(REAL), "--error-log", path)
        assert proc.returncode == 2, proc.stderr
        assert proc.stdout == ""  # nothing half-written
        (line,) = proc.stderr.splitlines()
        assert line.startswith(f"crashkit: error: {path}: ") and reason in line
    proc = run_cli("triage", "--error-log", str(REAL), "--since", "soonish")
    assert proc.returncode == 2 and "not a time" in proc.stderr


def test_cli_text_and_json_agree() -> None:
    code, data = cli_json("triage", "--error-log", str(REAL))
    assert code == 1
    assert {f["kind"]: f["count"] for f in data["findings"]} == EXPECTED
    text = run_cli("triage", "--error-log", str(REAL)).stdout
    titles = [line.split(None, 1)[1] for line in text.splitlines()
              if line.split(None, 1)[:1] in (["CRITICAL"], ["HIGH"], ["MEDIUM"])]
    assert titles == [f["title"] for f in data["findings"]]
    assert Counter(f["severity"] for f in data["findings"]) == {
        "critical": 5, "high": 3, "medium": 3}


def test_text_golden() -> None:
    """The text a person reads, whole, for the real sample (no host facts:
    rendered from the pure analysis)."""
    from crashkit.model.triage import LogSource, Triage
    from crashkit.render.triage import text

    _, stats, found = counts([str(REAL)])
    t = Triage(found, (LogSource("error.log", False, stats.bytes_read, False),), None, 0, 0,
               0.0, "not needed")
    assert_golden("triage-real.txt", text(t) + "\n")


# ---------------------------------------------------------------- review fixes

REFUSED_LINE = (b"[error] 1#1: connect() failed (111: Connection refused) while connecting to "
                b"upstream")


def test_bad_heads_are_garbage_not_fatal(tmp_path: Path) -> None:
    real = REAL.read_bytes()
    bad = [b"x" * 19 + b" " + REFUSED_LINE,  # 19 bytes where a time should be
           b"2026/13/45 10:00:00 " + REFUSED_LINE,  # no 13th month
           b"2026/02/30 10:00:00 " + REFUSED_LINE,  # no 30th of February
           REFUSED_LINE]  # the level within the first 20 bytes of the file
    log = tmp_path / "error.log"
    log.write_bytes(b"\n".join([bad[3], *bad[:3]]) + b"\n" + real)
    code, data = cli_json("triage", "--error-log", str(log))
    assert code == 1
    assert data["garbage_lines"] == 4
    assert {f["kind"]: f["count"] for f in data["findings"]}["upstream-refused"] == \
        EXPECTED["upstream-refused"]
    # tail -c: the first line is cut inside its timestamp
    first_error = real.index(b"2026/11/24 04:23:39 [error]")
    cut = tmp_path / "cut.log"
    cut.write_bytes(real[first_error + 11:])
    assert cut.read_bytes().startswith(b"04:23:39 [error]")
    code, data = cli_json("triage", "--error-log", str(cut))
    assert code == 1 and data["garbage_lines"] == 1
    got = {f["kind"]: f["count"] for f in data["findings"]}
    assert got["upstream-refused"] == EXPECTED["upstream-refused"] - 1


def test_since_too_far_back_is_one_line_exit_2() -> None:
    proc = run_cli("triage", "--error-log", str(REAL), "--since", "99999999999d")
    assert proc.returncode == 2 and proc.stdout == ""
    (line,) = proc.stderr.strip().splitlines()
    assert "too far back" in line


# Lines nginx 1.22 writes for trouble triage has no finding of its own for.
OTHER = """\
2026/11/24 05:00:01 [error] 812#812: *41 upstream sent too big header while reading response \
header from upstream, client: 10.1.2.3, server: shop.example, request: "GET /cart HTTP/1.1", \
upstream: "http://10.0.0.7:8080/cart", host: "shop.example"
2026/11/24 05:00:02 [error] 812#812: *97 upstream sent too big header while reading response \
header from upstream, client: 10.1.2.4, server: shop.example, request: "GET /cart HTTP/1.1", \
upstream: "http://10.0.0.7:8080/cart", host: "shop.example"
2026/11/24 05:00:03 [error] 812#812: *43 SSL_do_handshake() failed (SSL: error:0A000086:SSL \
routines::certificate verify failed) while SSL handshaking to upstream, client: 10.1.2.3, \
server: shop.example, request: "GET /pay HTTP/1.1", upstream: "https://10.0.0.8:443/pay", \
host: "shop.example"
2026/11/24 05:00:04 [crit] 812#812: *44 pwrite() "/var/lib/nginx/body/0000000012" failed \
(28: No space left on device), client: 10.1.2.3, server: shop.example, request: \
"POST /upload HTTP/1.1", host: "shop.example"
2026/11/24 05:00:05 [error] 812#812: *45 connect() failed (113: No route to host) while \
connecting to upstream, client: 10.1.2.3, server: shop.example, request: "GET / HTTP/1.1", \
upstream: "http://10.0.0.9:80/", host: "shop.example"
2026/11/24 05:00:06 [error] 812#812: *46 backend.internal could not be resolved (3: Host not \
found), client: 10.1.2.3, server: shop.example, request: "GET / HTTP/1.1", host: "shop.example"
2026/11/24 05:00:07 [crit] 812#812: *47 open() "/var/lib/nginx/proxy/1/00/0000000001" failed \
(13: Permission denied) while reading upstream, client: 10.1.2.3, server: shop.example, \
request: "GET /big HTTP/1.1", upstream: "http://10.0.0.7:8080/big", host: "shop.example"
2026/11/24 05:00:08 [error] 812#812: *48 upstream sent invalid header while reading response \
header from upstream, client: 10.1.2.3, server: shop.example, request: "GET / HTTP/1.1", \
upstream: "http://10.0.0.7:8080/", host: "shop.example"
2026/11/24 05:00:09 [alert] 812#812: *49 ngx_slab_alloc() failed: no memory in cache keys zone \
"zone_one"
2026/11/24 05:00:10 [error] 812#812: *50 open() "/var/www/html/favicon.ico" failed (2: No such \
file or directory), client: 10.1.2.3, server: shop.example, request: "GET /favicon.ico \
HTTP/1.1", host: "shop.example"
2026/11/24 05:00:10 [error] 812#812: *52 "/var/www/html/docs/index.html" is not found (2: No \
such file or directory), client: 10.1.2.3, server: shop.example, request: "GET /docs/ HTTP/1.1", \
host: "shop.example"
2026/11/24 05:00:10 [error] 812#812: *53 open() "/var/www/html/a.txt/b" failed (20: Not a \
directory), client: 10.1.2.3, server: shop.example, request: "GET /a.txt/b HTTP/1.1", host: \
"shop.example"
2026/11/24 05:00:11 [warn] 812#812: *51 an upstream response is buffered to a temporary file \
/var/lib/nginx/proxy/2/00/0000000002 while reading upstream, client: 10.1.2.3
"""


def test_other_errors_are_findings_not_an_all_clear(tmp_path: Path) -> None:
    log = tmp_path / "error.log"
    log.write_text(OTHER)
    code, data = cli_json("triage", "--error-log", str(log))
    assert code == 1 and data["needs_attention"] is True
    by_kind = {f["kind"]: f for f in data["findings"]}
    assert sorted(by_kind) == ["other-critical", "other-errors"]  # the 404s and [warn]: not
    errors, serious = by_kind["other-errors"], by_kind["other-critical"]
    assert (errors["count"], errors["severity"]) == (6, "medium")
    assert (serious["count"], serious["severity"]) == (3, "high")
    assert [f["kind"] for f in data["findings"]] == ["other-critical", "other-errors"]
    assert errors["details"]["messages"][0] == {
        "value": "upstream sent too big header while reading response header from upstream",
        "count": 2}  # two connections, one message
    msgs = {m["value"] for m in errors["details"]["messages"]}
    assert "connect() failed (113: No route to host) while connecting to upstream" in msgs
    assert "backend.internal could not be resolved (3: Host not found)" in msgs
    assert {m["value"] for m in serious["details"]["messages"]} == {
        'pwrite() "/var/lib/nginx/body/N" failed (28: No space left on device)',
        'open() "/var/lib/nginx/proxy/N/N/N" failed (13: Permission denied) while reading '
        "upstream",
        'ngx_slab_alloc() failed: no memory in cache keys zone "zone_one"'}
    assert serious["details"]["levels"] == [{"value": "crit", "count": 2},
                                            {"value": "alert", "count": 1}]
    assert errors["top_upstreams"][0] == {"value": "http://10.0.0.7:8080", "count": 3}
    # The log's local times, with this host's offset at that time.
    assert (errors["first"], errors["last"]) == tuple(
        datetime(2026, 11, 24, 5, 0, s).astimezone().isoformat() for s in (1, 8))


@pytest.mark.parametrize("content", [
    b'10.1.2.3 - - [24/Nov/2026:05:00:01 +0000] "GET / HTTP/1.1" 200 612 "-" "curl/8.0"\n' * 3,
    b"\x7fELF\x02\x01\x01\x00" + bytes(range(256)) * 40,
], ids=["access-log", "binary"])
def test_not_an_error_log_is_exit_2(tmp_path: Path, content: bytes) -> None:
    log = tmp_path / "access.log"
    log.write_bytes(content)
    proc = run_cli("triage", "--error-log", str(REAL), "--error-log", str(log))
    assert proc.returncode == 2 and proc.stdout == ""
    lines = content.count(b"\n") + (not content.endswith(b"\n"))
    (line,) = proc.stderr.splitlines()
    assert line == (f"crashkit: error: {log}: does not look like an nginx error log: none of "
                    f"its {lines} lines starts with a date")
    empty = tmp_path / "empty.log"  # nothing logged yet: fine
    empty.write_bytes(b"")
    code, data = cli_json("triage", "--error-log", str(empty))
    assert code == 0 and data["findings"] == []


def test_config_error_logs_that_do_not_exist_are_noted(tmp_path: Path) -> None:
    from crashkit.commands.triage import NginxFacts, missing_logs

    conf = tmp_path / "nginx.conf"
    conf.write_text("error_log logs/error.log;\nevents {}\n")
    code, data = cli_json("triage", "--conf", str(conf), "--error-log", str(REAL))
    assert code == 1
    (note,) = data["notes"]
    assert note.startswith("error_log /") and note.endswith(
        f"logs/error.log of {conf} does not exist")
    facts = NginxFacts(str(conf), (str(tmp_path / "logs/error.log"),))
    assert missing_logs(facts, [errorlog.DEFAULT_ERROR_LOG])[-1] == (
        f"none of the config's error logs exists: read {errorlog.DEFAULT_ERROR_LOG} instead")
    assert missing_logs(NginxFacts(str(conf), (str(REAL),)), [str(REAL)]) == ()
    # The log read in their place is missing too: the error says both.
    from crashkit.commands.triage import scan

    with pytest.raises(InputError) as err:
        scan([str(tmp_path / "fallback.log")], since=None, facts=facts, jobs=1)
    assert str(err.value) == (f"{tmp_path}/fallback.log: no such file; error_log "
                              f"{tmp_path}/logs/error.log of {conf} does not exist")


def test_long_values_clipped_and_control_characters_escaped(tmp_path: Path) -> None:
    path = "/\x1b]0;owned\x07" + "a" * 400_000  # a terminal escape and a long path
    line = (f"2026/11/24 05:00:01 [error] 812#812: *41 connect() failed (111: Connection "
            f'refused) while connecting to upstream, client: 10.1.2.3, server: s, request: '
            f'"GET {path} HTTP/1.1", upstream: "http://10.0.0.7:8080{path}", host: "s"\n')
    log = tmp_path / "error.log"
    log.write_text(line * 2)
    code, data = cli_json("triage", "--error-log", str(log))
    assert code == 1
    (f,) = data["findings"]
    (req,) = f["top_requests"]
    assert req["count"] == 2 and len(req["value"]) == 201 and req["value"].endswith("…")
    assert req["value"].startswith("GET /\x1b]0;owned\x07aaa")
    proc = run_cli("triage", "--error-log", str(log))
    assert proc.returncode == 1
    assert "\x1b" not in proc.stdout and "\x07" not in proc.stdout
    assert "GET /\\x1b]0;owned\\x07aaa" in proc.stdout
    assert max(len(x) for x in proc.stdout.splitlines()) < 300


STREAM = """\
2026/11/24 05:10:00 [error] 900#900: *7 connect() failed (111: Connection refused) while \
connecting to upstream, client: 127.0.0.1, server: 0.0.0.0:15432, upstream: "10.0.0.10:5432", \
bytes from/to client:0/0, bytes from/to upstream:0/0
2026/11/24 05:10:01 [error] 900#900: *8 upstream timed out (110: Connection timed out) while \
connecting to upstream, client: 127.0.0.1, server: 0.0.0.0:15432, upstream: "10.0.0.11:5432", \
bytes from/to client:0/0, bytes from/to upstream:0/0
2026/11/24 05:10:02 [alert] 812#812: socketpair() failed while spawning "worker process" \
(24: Too many open files)
"""


def test_stream_upstreams_and_socketpair_nofile(tmp_path: Path) -> None:
    log = tmp_path / "error.log"
    log.write_text(STREAM)
    code, data = cli_json("triage", "--error-log", str(log))
    assert code == 1
    by_kind = {f["kind"]: f for f in data["findings"]}
    assert sorted(by_kind) == ["too-many-open-files", "upstream-connect-timeout",
                               "upstream-refused"]
    assert by_kind["upstream-refused"]["top_upstreams"] == [
        {"value": "10.0.0.10:5432", "count": 1}]
    timeout = by_kind["upstream-connect-timeout"]
    assert timeout["top_upstreams"] == [{"value": "10.0.0.11:5432", "count": 1}]
    assert timeout["details"]["directives"] == [
        {"value": "stream proxy_connect_timeout", "count": 1}]
    assert "in stream it has no such cap" in timeout["fix"]
    nofile = by_kind["too-many-open-files"]
    assert nofile["details"]["calls"] == [{"value": "socketpair", "count": 1}]
    assert "reload" in nofile["fix"] and "then restart" not in nofile["fix"]


def test_core_files_match_whole_pids(tmp_path: Path) -> None:
    from crashkit.commands.triage import core_files

    for name in ("core.nginx.1234.1700000000", "core.nginx.12.1700000012", "core.nginx.3120"):
        (tmp_path / name).write_bytes(b"")
    got = core_files(f"{tmp_path}/core.%e.%p.%t", ["12"], None)
    assert got == [str(tmp_path / "core.nginx.12.1700000012")]
    assert core_files(f"{tmp_path}/core.%e.%p.%t", ["123"], None) == []


def test_bind_counts_failed_starts_not_attempts(tmp_path: Path) -> None:
    # One failed start: five bind() attempts, then "still could not bind()".
    attempt = ("2026/11/24 05:20:00 [emerg] 700#700: bind() to 0.0.0.0:80 failed (98: Address "
               "already in use)\n")
    log = tmp_path / "error.log"
    log.write_text((attempt + "2026/11/24 05:20:00 [notice] 700#700: try again to bind() "
                    "after 500ms\n") * 5 + "2026/11/24 05:20:02 [emerg] 700#700: still could "
                   "not bind()\n")
    code, data = cli_json("triage", "--error-log", str(log))
    assert code == 1
    (f,) = data["findings"]
    assert (f["kind"], f["count"], f["details"]["attempts"]) == ("bind-in-use", 1, 5)
    assert f["details"]["addresses"] == [{"value": "0.0.0.0:80", "count": 5}]


ROUTINE = """\
2026/11/24 10:00:00 [error] 200#200: *1 limiting requests, excess: 10.520 by zone "one", \
client: 10.0.0.1, server: a, request: "GET / HTTP/1.1", host: "a"
2026/11/24 10:00:01 [error] 200#200: *2 access forbidden by rule, client: 10.0.0.2, server: a, \
request: "GET /admin HTTP/1.1", host: "a"
2026/11/24 10:00:02 [error] 200#200: *3 client intended to send too large body: 2000000 bytes, \
client: 10.0.0.3, server: a, request: "POST /up HTTP/1.1", host: "a"
2026/11/24 10:00:03 [error] 200#200: *4 directory index of "/var/www/x/" is forbidden, \
client: 10.0.0.3, server: a, request: "GET /x/ HTTP/1.1", host: "a"
2026/11/24 10:00:04 [error] 200#200: *5 limiting connections by zone "addr", client: 10.0.0.4, \
server: a, request: "GET / HTTP/1.1", host: "a"
"""


def test_a_sites_own_policy_at_work_is_not_an_error_to_fix(tmp_path: Path) -> None:
    """limit_req/limit_conn rejections, deny rules, client_max_body_size and a
    forbidden directory index are logged at [error] by design: no finding."""
    log = tmp_path / "error.log"
    log.write_text(ROUTINE)
    code, data = cli_json("triage", "--error-log", str(log))
    assert (code, data["findings"]) == (0, [])
    log.write_text(ROUTINE + "2026/11/24 10:00:05 [error] 200#200: *6 upstream sent too big "
                   "header while reading response header from upstream, client: 10.0.0.5, "
                   'server: a, request: "GET / HTTP/1.1", upstream: "http://127.0.0.1:9000/", '
                   'host: "a"\n')
    code, data = cli_json("triage", "--error-log", str(log))
    assert code == 1 and [(f["kind"], f["count"]) for f in data["findings"]] == [
        ("other-errors", 1)]
