"""crashkit doctor against a REAL nginx on 127.0.0.1, running and stopped.

The facts doctor reports are checked against what the test set up and
against the kernel's own answers (prlimit, the test's own pid).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import cli_json, run_cli
from tests.live_nginx import (
    WORKER_USER,
    Backend,
    LiveNginx,
    basic_conf,
    free_port,
    worker_tmpdir,
)

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("live_nginx_ready")]


def doctor(conf: Path) -> tuple[int, dict[str, Any]]:
    return cli_json("doctor", "--conf", str(conf))


def check(data: dict[str, Any], name: str) -> dict[str, Any]:
    (c,) = [c for c in data["checks"] if c["name"] == name]
    return c


@pytest.fixture
def sock_dir() -> Iterator[Path]:
    with worker_tmpdir("crashkit-doctor-") as d:
        yield d


def test_running_nginx(tmp_path: Path, sock_dir: Path) -> None:
    port, closed = free_port(), free_port()
    backend = Backend(lambda conn: None)
    alive = backend.port
    forbidden = sock_dir / "app.sock"
    unix = socket.socket(socket.AF_UNIX)
    unix.bind(str(forbidden))
    unix.listen(4)
    forbidden.chmod(0o600)
    server = (f"location /a {{ proxy_pass http://127.0.0.1:{closed}; }}\n"
              f"location /b {{ proxy_pass http://127.0.0.1:{alive}/x; }}\n"
              f"location /c {{ proxy_pass http://unix:{forbidden}:/; }}\n")
    conf = basic_conf(port, server=server, worker_connections=64,
                      main="worker_rlimit_nofile 50;")
    try:
        with LiveNginx(tmp_path / "ngx", conf) as ngx:
            workers = ngx.worker_pids()
            master_pid = ngx.master_pid
            code, data = doctor(ngx.conf)
    finally:
        backend.close()
        unix.close()
    assert code == 1 and data["needs_attention"] is True
    assert check(data, "nginx-t")["status"] == "ok"
    master = check(data, "master")
    assert master["status"] == "ok" and master["details"]["pid"] == master_pid
    assert master["details"]["pid_file"] == str(tmp_path / "ngx" / "nginx.pid")
    assert check(data, "workers")["details"]["pids"] == workers
    listen = check(data, "listen")
    assert listen["status"] == "ok"
    (row,) = listen["details"]["listens"]
    assert (row["address"], row["state"]) == (f"127.0.0.1:{port}", "nginx")
    assert {h["pid"] for h in row["holders"]} <= {master_pid, *workers}
    nofile = check(data, "nofile")
    assert nofile["status"] == "fail"  # 50 descriptors for 64 connections
    assert nofile["details"]["worker_connections"] == 64
    (limits,) = nofile["details"]["workers"]
    assert (limits["pid"], limits["soft"]) == (workers[0], 50)  # worker_rlimit_nofile 50
    ups = check(data, "upstreams")
    assert ups["status"] == "fail"
    got = {u["address"]: u["errno"] for u in ups["details"]["upstreams"]}
    assert got == {f"127.0.0.1:{closed}": 111, f"127.0.0.1:{alive}": 0,
                   f"unix:{forbidden}": 13}
    assert ups["details"]["worker_user"] == WORKER_USER
    # Core-dump readiness is setup's dry run on the same config: its checks are here.
    names = {c["name"] for c in data["checks"]}
    assert {"cores", "cores:kernel.core_pattern", "cores:kernel.core_uses_pid"} <= names
    assert check(data, "oom")["details"]["kernel_log"] in ("/dev/kmsg", "dmesg") or \
        check(data, "oom")["status"] == "skip"


def test_stopped_nginx_and_a_taken_port(tmp_path: Path) -> None:
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen(1)
    port = int(holder.getsockname()[1])
    free = free_port()
    prefix = tmp_path / "ngx"
    (prefix / "tmp").mkdir(parents=True)
    conf = prefix / "nginx.conf"
    conf.write_text(basic_conf(port).replace("{prefix}", str(prefix)).replace(
        f"listen 127.0.0.1:{port};", f"listen 127.0.0.1:{port};\n        listen 127.0.0.1:{free};"))
    try:
        code, data = doctor(conf)
    finally:
        holder.close()
    assert code == 1
    assert check(data, "nginx-t")["status"] == "ok"
    master = check(data, "master")
    assert master["status"] == "fail" and master["details"]["pid"] is None
    assert check(data, "workers")["status"] == "skip"
    assert check(data, "nofile")["status"] == "skip"
    listen = check(data, "listen")
    assert listen["status"] == "fail"
    rows = {r["address"]: r for r in listen["details"]["listens"]}
    assert rows[f"127.0.0.1:{free}"]["state"] == "free"
    taken = rows[f"127.0.0.1:{port}"]
    assert taken["state"] == "held by another process"
    assert [h["pid"] for h in taken["holders"]] == [os.getpid()]


def test_config_that_fails_nginx_t(tmp_path: Path) -> None:
    prefix = tmp_path / "ngx"
    (prefix / "tmp").mkdir(parents=True)
    conf = prefix / "nginx.conf"
    conf.write_text(basic_conf(free_port(), http="    no_such_directive on;")
                    .replace("{prefix}", str(prefix)))
    code, data = doctor(conf)
    assert code == 1
    t = check(data, "nginx-t")
    assert t["status"] == "fail"
    assert 'unknown directive "no_such_directive"' in t["summary"]
    assert f"{conf}:" in t["summary"]


def test_bad_conf_is_exit_2(tmp_path: Path) -> None:
    proc = run_cli("doctor", "--conf", str(tmp_path / "nope.conf"))
    assert proc.returncode == 2
    (line,) = proc.stderr.splitlines()
    assert line == f"crashkit: error: {tmp_path / 'nope.conf'}: nginx config not found"


RELATIVE = """user www-data;
worker_processes 1;
pid run/nginx.pid;
error_log logs/error.log info;
lock_file run/nginx.lock;
events {{ worker_connections 16; }}
http {{
    access_log off;
    client_body_temp_path tmp/body;
    proxy_temp_path tmp/proxy;
    fastcgi_temp_path tmp/fastcgi;
    uwsgi_temp_path tmp/uwsgi;
    scgi_temp_path tmp/scgi;
    server {{ listen 127.0.0.1:{port}; location / {{ return 204; }} }}
}}
"""


def test_nginx_run_with_a_prefix(tmp_path: Path) -> None:
    """nginx -p DIR: the config's relative paths (pid, logs) are under DIR.
    doctor takes the running master's -p; --prefix gives it when none runs."""
    prefix = tmp_path / "ngx"
    for d in ("run", "logs", "tmp"):
        (prefix / d).mkdir(parents=True)
    conf = tmp_path / "nginx.conf"
    conf.write_text(RELATIVE.format(port=free_port()))
    with LiveNginx(prefix, conf, error_log=prefix / "logs" / "error.log") as ngx:
        _code, data = doctor(conf)  # -p found from the running master
        master_pid = ngx.master_pid
    assert check(data, "nginx-t")["status"] == "ok"
    master = check(data, "master")
    assert (master["status"], master["details"]["pid"]) == ("ok", master_pid)
    assert master["details"]["pid_file"] == str(prefix / "run" / "nginx.pid")
    # Stopped: only --prefix can say where its files are.
    code, data = cli_json("doctor", "--conf", str(conf), "--prefix", f"{prefix}/")
    assert code == 1 and check(data, "nginx-t")["status"] == "ok"
    master = check(data, "master")
    assert master["status"] == "fail" and master["details"]["pid_file"] == str(
        prefix / "run" / "nginx.pid")
    missing = run_cli("doctor", "--conf", str(conf), "--prefix", str(tmp_path / "nope"))
    assert (missing.returncode, missing.stderr) == (
        2, f"crashkit: error: {tmp_path / 'nope'}: --prefix: no such directory\n")


def test_a_config_sharing_another_masters_pid_file(tmp_path: Path) -> None:
    """A copy of a running config names the same pid file (as a config with
    no pid directive shares the build's with the system's nginx): the master
    there runs the original, so the copy's nginx is not running; and a listen
    added to the running config without a reload is "nobody listens", whose
    fix is the reload."""
    port, added = free_port(), free_port()
    with LiveNginx(tmp_path / "ngx", basic_conf(port)) as ngx:
        copy = tmp_path / "copy.conf"
        copy.write_text(ngx.conf.read_text())
        code, data = doctor(copy)
        assert code == 1
        master = check(data, "master")
        pid_file = str(tmp_path / "ngx" / "nginx.pid")
        assert master == {
            "name": "master", "status": "fail",
            "summary": f"no nginx master runs {copy}: the master in {pid_file} runs {ngx.conf}",
            "fix": f"start nginx with this config (nginx -c {copy}), with a pid directive "
                   f"of its own so that it does not share {pid_file}",
            "details": {"pid_file": pid_file, "pid": None, "pid_file_runs": str(ngx.conf)}}
        assert check(data, "workers")["status"] == "skip"
        assert check(data, "listen")["details"]["listens"][0]["state"] == "held by another process"

        ngx.conf.write_text(ngx.conf.read_text().replace(
            f"listen 127.0.0.1:{port};",
            f"listen 127.0.0.1:{port};\n        listen 127.0.0.1:{added};"))
        code, data = doctor(ngx.conf)
        assert code == 1 and check(data, "master")["details"]["pid"] == ngx.master_pid
        listen = check(data, "listen")
    assert listen["status"] == "fail"
    assert listen["summary"].startswith(f"nobody listens on 127.0.0.1:{added} ({ngx.conf}:")
    assert listen["fix"] == ("the running master has not loaded these listen directives: "
                             "nginx -t, then reload nginx (nginx -s reload), and read the "
                             "error log (crashkit triage) if the reload fails")


def test_the_first_line_is_the_answer(tmp_path: Path) -> None:
    """Against a real nginx: the text opens with the problems the JSON has,
    failures first, each by check name; the details follow."""
    from crashkit.render.headline import problems

    port, closed = free_port(), free_port()
    conf = basic_conf(port, server=f"location /a {{ proxy_pass http://127.0.0.1:{closed}; }}")
    with LiveNginx(tmp_path / "ngx", conf) as ngx:
        code, data = doctor(ngx.conf)
        proc = run_cli("doctor", "--conf", str(ngx.conf))
    assert code == proc.returncode == 1
    bad = [c for c in data["checks"] if c["status"] == "fail"] + [
        c for c in data["checks"] if c["status"] == "warn"]
    assert bad[0]["name"] == "upstreams"  # nothing listens on the closed port
    first, second = proc.stdout.splitlines()[:2]
    assert first == problems([f"{c['name']}: {c['summary']}" for c in bad])
    assert first.startswith(f"{len(bad)} problem")
    assert second == f"nginx config {ngx.conf}"
