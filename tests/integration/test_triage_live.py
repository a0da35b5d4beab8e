"""crashkit triage on error logs written by a REAL nginx that met each trouble for real.

Every test makes nginx log the condition (a closed port, a slow backend, a
forbidden socket, too few worker_connections, a taken port, a crashing or a
killed worker), then runs the real CLI with --json and checks the counts
against the log itself and against what the test did.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import signal
import socket
import struct
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import cli_json, fixture, unavailable
from tests.live_nginx import (
    NGINX,
    WORKER_USER,
    Backend,
    LiveNginx,
    basic_conf,
    free_port,
    http_get,
    worker_tmpdir,
)

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("live_nginx_ready")]


def triage(*args: str) -> tuple[int, dict[str, Any]]:
    return cli_json("triage", *args)


def finding(data: dict[str, Any], kind: str) -> dict[str, Any]:
    found = [f for f in data["findings"] if f["kind"] == kind]
    assert found, f"no {kind} finding in {[f['kind'] for f in data['findings']]}"
    return found[0]


def lines_with(log: Path, needle: str) -> int:
    return sum(needle in line for line in log.read_text(errors="replace").splitlines())


@pytest.fixture
def www_dir() -> Iterator[Path]:
    with worker_tmpdir("crashkit-triage-") as d:
        yield d


def reset_conn(conn: socket.socket) -> None:
    """Read the request, then reset the connection (RST)."""
    conn.recv(65536)
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.close()


def close_conn(conn: socket.socket) -> None:
    """Read the request, then close without a word."""
    conn.recv(65536)
    conn.close()


def hold(conn: socket.socket) -> None:
    """Read what nginx sends, answer nothing, keep the connection open."""
    def drain() -> None:
        with contextlib.suppress(OSError):
            while conn.recv(65536):
                pass

    threading.Thread(target=drain, daemon=True).start()


def test_refused_upstream_and_timeout(tmp_path: Path) -> None:
    port, closed = free_port(), free_port()
    slow = Backend(hold)  # accepts, reads, never answers
    try:
        server = (f"location /api {{ proxy_pass http://127.0.0.1:{closed}; }}\n"
                  f"location /slow {{ proxy_pass http://127.0.0.1:{slow.port}; "
                  f"proxy_read_timeout 1s; }}\n")
        with LiveNginx(tmp_path / "ngx", basic_conf(port, server=server)) as ngx:
            for i in range(3):
                assert http_get(f"http://127.0.0.1:{port}/api/v1?id={i}")[0] == 502
            assert http_get(f"http://127.0.0.1:{port}/api/other")[0] == 502
            # One after the other: two requests in flight at once were, once
            # in a few hundred runs, reset by the backend instead of timing out.
            results = [http_get(f"http://127.0.0.1:{port}/slow")[0] for _ in range(2)]
            assert results == [504, 504]
            log = ngx.error_log
            code, data = triage("--error-log", str(log), "--conf", str(ngx.conf))
    finally:
        slow.close()
    assert code == 1
    refused = finding(data, "upstream-refused")
    assert refused["count"] == 4 == lines_with(log, "(111: Connection refused)")
    assert refused["severity"] == "high"
    assert refused["top_upstreams"] == [{"value": f"http://127.0.0.1:{closed}", "count": 4}]
    assert refused["top_requests"] == [{"value": "GET /api/v1", "count": 3},
                                       {"value": "GET /api/other", "count": 1}]
    assert refused["top_clients"] == [{"value": "127.0.0.1", "count": 4}]
    assert refused["first"] <= refused["last"]
    timeout = finding(data, "upstream-timeout")
    assert timeout["count"] == 2 == lines_with(log, "upstream timed out (110")
    assert timeout["top_upstreams"] == [{"value": f"http://127.0.0.1:{slow.port}", "count": 2}]
    assert timeout["details"]["directives"] == [{"value": "proxy_read_timeout", "count": 2}]
    # Most severe first: the refused upstream (high) before the timeout (medium).
    kinds = [f["kind"] for f in data["findings"]]
    assert kinds.index("upstream-refused") < kinds.index("upstream-timeout")


def test_unix_socket_the_worker_cannot_open(tmp_path: Path, www_dir: Path) -> None:
    port = free_port()
    sock_path = www_dir / "app.sock"
    backend = socket.socket(socket.AF_UNIX)
    backend.bind(str(sock_path))
    backend.listen(4)
    sock_path.chmod(0o600)  # root's, and only root's
    try:
        server = f"location / {{ proxy_pass http://unix:{sock_path}:/; }}\n"
        with LiveNginx(tmp_path / "ngx", basic_conf(port, server=server)) as ngx:
            for _ in range(2):
                assert http_get(f"http://127.0.0.1:{port}/x")[0] == 502
            # No --error-log: the config's error_log is read.
            code, data = triage("--conf", str(ngx.conf))
            log = ngx.error_log
    finally:
        backend.close()
    assert code == 1
    assert [s["path"] for s in data["sources"]] == [str(log)]
    denied = finding(data, "upstream-permission")
    assert denied["count"] == 2 == lines_with(log, "(13: Permission denied)")
    assert denied["details"]["sockets"] == [{"value": str(sock_path), "count": 2}]
    state = denied["details"]["socket_state"][0]
    assert (state["owner"], state["mode"], state["user"]) == ("root", "0600", WORKER_USER)
    assert state["user_connect_errno"] == 13  # asked as www-data, with its groups
    selinux = "absent" if not Path("/sys/fs/selinux/enforce").exists() else (
        "enforcing" if Path("/sys/fs/selinux/enforce").read_text().strip() == "1"
        else "permissive")
    assert denied["details"]["selinux"] == selinux


def test_worker_connections_exhausted(tmp_path: Path) -> None:
    port = free_port()
    conf = basic_conf(port, worker_connections=4)
    with LiveNginx(tmp_path / "ngx", conf) as ngx:
        ngx.half_requests(port, 10, "worker_connections are not enough")
        log = ngx.error_log
        code, data = triage("--error-log", str(log))
    assert code == 1
    f = finding(data, "worker-connections")
    assert f["count"] == lines_with(log, "worker_connections are not enough") >= 1
    assert f["details"]["limits"][0]["value"] == "4"
    assert f["severity"] == "high"


def test_port_already_taken_names_the_holder(tmp_path: Path) -> None:
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen(1)
    port = int(holder.getsockname()[1])
    prefix = tmp_path / "ngx"
    prefix.mkdir()
    (prefix / "tmp").mkdir()
    conf = prefix / "nginx.conf"
    conf.write_text(basic_conf(port).replace("{prefix}", str(prefix)))
    log = prefix / "error.log"
    try:
        proc = subprocess.run([NGINX, "-p", f"{prefix}/", "-c", str(conf), "-e", str(log),
                               "-g", "daemon off; master_process on;"],
                              capture_output=True, text=True, timeout=30)
        assert proc.returncode != 0  # nginx could not start
        code, data = triage("--error-log", str(log))
    finally:
        holder.close()
    assert code == 1
    f = finding(data, "bind-in-use")
    # nginx tries bind() up to five times, then gives up: one failed start
    assert f["count"] == lines_with(log, "still could not bind()") == 1
    assert f["details"]["attempts"] == lines_with(log, "(98: Address already in use)") > 1
    assert f["severity"] == "critical"
    assert f["details"]["addresses"][0]["value"] == f"127.0.0.1:{port}"
    assert {(h["pid"], h["address"]) for h in f["details"]["holders"]} == \
        {(os.getpid(), f"127.0.0.1:{port}")}
    # "still could not bind()" repeats the bind failures: not a config error
    assert "config-error" not in [x["kind"] for x in data["findings"]]


def test_config_error_on_reload(tmp_path: Path) -> None:
    port = free_port()
    with LiveNginx(tmp_path / "ngx", basic_conf(port)) as ngx:
        good = ngx.conf.read_text()
        bad = good.replace("access_log off;", "access_log off;\n    no_such_thing 1;")
        ngx.conf.write_text(bad)
        lineno = bad.splitlines().index("    no_such_thing 1;") + 1
        os.kill(ngx.master_pid, signal.SIGHUP)
        ngx.wait_log("[emerg]")
        code, data = triage("--error-log", str(ngx.error_log))
    assert code == 1
    f = finding(data, "config-error")
    assert f["count"] == 1
    (msg,) = f["details"]["messages"]
    assert msg["value"] == f'unknown directive "no_such_thing" in {ngx.conf}:{lineno}'


def crash_conf(port: int, module: str, wd: Path, core: bool) -> str:
    main = f"working_directory {wd};\nworker_rlimit_core {'500M' if core else '0'};"
    return basic_conf(port, main=main, load_module=module,
                      server="location /null { crashkit_crash null; }\n")


@pytest.mark.parametrize("core", [True, False], ids=["core-dumped", "no-core"])
def test_worker_crash(tmp_path: Path, www_dir: Path, manifest: dict[str, Any],
                      core: bool) -> None:
    pattern = Path("/proc/sys/kernel/core_pattern").read_text().strip()
    if core and pattern.startswith("|"):
        unavailable(f"kernel.core_pattern pipes cores away ({pattern.split()[0]})")
    module = fixture(manifest, "nginx-null")["module"]
    port = free_port()
    wd = www_dir / "wd"
    wd.mkdir()
    pw = pwd.getpwnam(WORKER_USER)
    os.chown(wd, pw.pw_uid, pw.pw_gid)
    with LiveNginx(tmp_path / "ngx", crash_conf(port, module, wd, core)) as ngx:
        (worker,) = ngx.worker_pids()
        assert http_get(f"http://127.0.0.1:{port}/null")[0] == 0  # the connection died
        line = ngx.wait_log(f"worker process {worker} exited on signal 11")
        assert line.endswith("(core dumped)") == core
        code, data = triage("--error-log", str(ngx.error_log), "--conf", str(ngx.conf))
    assert code == 1
    f = finding(data, "worker-crash-core" if core else "worker-crash")
    assert f["count"] == 1 and f["severity"] == "critical"
    assert f["details"]["pids"] == [{"value": worker, "count": 1}]
    assert f["details"]["signals"] == [{"value": 11, "count": 1}]
    if core:
        cores = [c for c in f["details"]["cores"] if Path(c).exists()]
        assert cores and all(Path(c).parent == wd for c in cores)
        assert "crashkit analyze" in f["fix"]
    else:
        assert "crashkit setup" in f["fix"]


def test_worker_killed_by_sigkill(tmp_path: Path) -> None:
    port = free_port()
    with LiveNginx(tmp_path / "ngx", basic_conf(port)) as ngx:
        (worker,) = ngx.worker_pids()
        os.kill(worker, signal.SIGKILL)
        ngx.wait_log(f"worker process {worker} exited on signal 9")
        code, data = triage("--error-log", str(ngx.error_log))
    assert code == 1
    f = finding(data, "worker-killed")
    assert f["count"] == 1
    assert f["details"]["pids"] == [{"value": worker, "count": 1}]
    # Killed by us, not by the OOM killer: the kernel log has no line for it.
    assert f["details"]["oom_kills"] == [] and f["details"]["oom_confirmed"] is False
    assert data["kernel_log"] in ("/dev/kmsg", "dmesg") or data["kernel_log"].startswith(
        "unreadable")
    if data["kernel_log"] in ("/dev/kmsg", "dmesg"):  # no OOM record: say so, and its fix
        assert f["title"] == ("worker processes killed by SIGKILL from outside nginx "
                              "(no OOM-killer record)")
        assert f["fix"].startswith("The kernel log has no OOM-killer line for these pids, "
                                   "so something sent SIGKILL")
        assert "memory" not in f["fix"]


def test_clean_log_exits_0(tmp_path: Path) -> None:
    port = free_port()
    with LiveNginx(tmp_path / "ngx", basic_conf(port, server="location / { return 200; }")) \
            as ngx:
        assert http_get(f"http://127.0.0.1:{port}/")[0] == 200
        size = ngx.error_log.stat().st_size
        code, data = triage("--error-log", str(ngx.error_log))
    assert code == 0
    assert data["findings"] == [] and data["needs_attention"] is False
    assert data["garbage_lines"] == 0
    assert data["sources"][0]["bytes"] == size


def test_more_upstream_failures(tmp_path: Path, www_dir: Path) -> None:
    port, dead1, dead2 = free_port(), free_port(), free_port()
    resetter, closer = Backend(reset_conn), Backend(close_conn)
    gone = www_dir / "gone.sock"  # never created
    http = (f"upstream pool {{ server 127.0.0.1:{dead1}; server 127.0.0.1:{dead2}; }}\n")
    server = (f"location /gone {{ proxy_pass http://unix:{gone}:/; }}\n"
              f"location /pool {{ proxy_pass http://pool; }}\n"
              f"location /reset {{ proxy_pass http://127.0.0.1:{resetter.port}; }}\n"
              f"location /closed {{ proxy_pass http://127.0.0.1:{closer.port}; }}\n")
    try:
        with LiveNginx(tmp_path / "ngx", basic_conf(port, http=http, server=server)) as ngx:
            for path in ("gone", "gone", "reset", "closed", "closed", "closed"):
                assert http_get(f"http://127.0.0.1:{port}/{path}")[0] == 502
            # Both servers fail once and are marked down for fail_timeout (10 s):
            # the next requests find no live upstream.
            for _ in range(4):
                assert http_get(f"http://127.0.0.1:{port}/pool")[0] == 502
            log = ngx.error_log
            code, data = triage("--error-log", str(log))
    finally:
        resetter.close()
        closer.close()
    assert code == 1
    missing = finding(data, "upstream-socket-missing")
    assert missing["count"] == 2 == lines_with(log, "(2: No such file or directory) while "
                                                    "connecting to upstream")
    assert missing["details"]["sockets"] == [{"value": str(gone), "count": 2}]
    reset = finding(data, "upstream-reset")
    assert reset["count"] == 1 == lines_with(log, "(104: Connection reset by peer)")
    closed = finding(data, "upstream-closed")
    assert closed["count"] == 3 == lines_with(log, "upstream prematurely closed")
    nolive = finding(data, "no-live-upstreams")
    assert nolive["count"] == lines_with(log, "no live upstreams") >= 1
    assert nolive["top_requests"] == [{"value": "GET /pool", "count": nolive["count"]}]
    refused = finding(data, "upstream-refused")
    assert refused["count"] == lines_with(log, "(111: Connection refused)") >= 2
    assert {u["value"] for u in refused["top_upstreams"]} == {
        f"http://127.0.0.1:{dead1}", f"http://127.0.0.1:{dead2}"}


def test_too_many_open_files(tmp_path: Path) -> None:
    port = free_port()
    # 12 descriptors: the log, the listening socket, epoll and a few more;
    # a dozen clients at once run the worker out of them.
    conf = basic_conf(port, main="worker_rlimit_nofile 12;", worker_connections=64)
    with LiveNginx(tmp_path / "ngx", conf) as ngx:
        ngx.half_requests(port, 16, "(24: Too many open files)")
        log = ngx.error_log
        code, data = triage("--error-log", str(log), "--since", "10m")
    assert code == 1
    f = finding(data, "too-many-open-files")
    assert f["count"] == lines_with(log, "(24: Too many open files)") >= 1
    assert f["details"]["calls"][0]["value"] == "accept4"
    assert data["since"] is not None


def big_header(conn: socket.socket) -> None:
    """Read the whole request, answer with a header bigger than
    proxy_buffer_size. (Closing with part of the request unread would send a
    reset, and nginx would log that instead, on a busy machine.) nginx may
    close its side first, once it has seen the header is too big: whatever
    the socket says then ends this connection, never the server's thread."""
    try:
        conn.settimeout(10)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(65536)
            if not chunk:
                break
            data += chunk
        conn.sendall(b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * 8192 + b"\r\n\r\n")
        conn.shutdown(socket.SHUT_WR)
        while conn.recv(65536):
            pass
    except OSError:
        pass
    finally:
        conn.close()


def test_errors_triage_has_no_finding_for_are_not_an_all_clear(tmp_path: Path) -> None:
    port = free_port()
    backend = Backend(big_header)
    try:
        server = (f"location / {{ proxy_pass http://127.0.0.1:{backend.port}; "
                  "proxy_buffer_size 1k; }\n")
        with LiveNginx(tmp_path / "ngx", basic_conf(port, server=server)) as ngx:
            for i in range(3):
                assert http_get(f"http://127.0.0.1:{port}/big?n={i}")[0] == 502
            log = ngx.error_log
            code, data = triage("--error-log", str(log))
    finally:
        backend.close()
    assert code == 1 and data["needs_attention"] is True
    other = finding(data, "other-errors")
    assert other["count"] == 3 == lines_with(log, "upstream sent too big header")
    assert other["details"]["messages"] == [
        {"value": "upstream sent too big header while reading response header from upstream",
         "count": 3}]
    assert other["details"]["levels"] == [{"value": "error", "count": 3}]
    assert other["top_upstreams"] == [{"value": f"http://127.0.0.1:{backend.port}", "count": 3}]
    assert other["top_requests"] == [{"value": "GET /big", "count": 3}]
