"""The acceptance test of crashkit setup: a real nginx without core settings,
``crashkit setup --apply --reload``, a worker crashed by the fixture module, and
the core it leaves read by ``crashkit analyze``."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from tests.conftest import fixture, run_cli, unavailable
from tests.integration.test_setup_nginx import SCHEMA
from tests.live_nginx import LiveNginx, basic_conf, free_port, http_get, reachable_dir

pytestmark = pytest.mark.integration


def wait_core(d: Path, timeout: float = 30.0) -> Path:
    """The core the kernel writes into d, once its size stops changing."""
    deadline, last = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        found = sorted(p for p in d.iterdir() if p.name.startswith("core"))
        if found:
            size = found[-1].stat().st_size
            if last == (found[-1], size) and size > 0:
                return found[-1]
            last = (found[-1], size)
        time.sleep(0.2)
    raise AssertionError(f"no core appeared in {d} within {timeout} s")


def test_apply_reload_then_a_crash_leaves_a_core_that_analyze_reads(
        tmp_path: Path, manifest: dict[str, Any]) -> None:
    if os.geteuid() != 0:
        unavailable("a live nginx with www-data workers needs root")
    pattern = Path("/proc/sys/kernel/core_pattern").read_text().strip()
    if pattern.startswith("|") or os.path.isabs(pattern):
        unavailable(f"kernel.core_pattern is {pattern!r}: cores would not reach "
                    "working_directory; run: sysctl -w kernel.core_pattern=core")
    module = fixture(manifest, "nginx-null")["module"]
    port = free_port()
    conf_text = basic_conf(port, load_module=module,
                           server="        location /null { crashkit_crash null; }\n"
                                  "        location /ok { crashkit_crash none; }")
    assert "worker_rlimit_core" not in conf_text and "working_directory" not in conf_text
    base = reachable_dir("setup-live")
    cores = base / "cores"  # missing: setup creates it
    try:
        with LiveNginx(tmp_path / "ngx", conf_text) as ngx:
            old_workers = set(ngx.worker_pids())
            proc = run_cli("setup", "--conf", str(ngx.conf), "--core-dir", str(cores),
                           "--apply", "--reload", "--json")
            assert proc.returncode in (0, 1), proc.stderr
            data = json.loads(proc.stdout)
            jsonschema.validate(data, SCHEMA)
            assert data["changed"] is True
            assert (data["reload"]["method"], data["reload"]["pid"]) == ("signal",
                                                                          ngx.master_pid)
            assert data["reload"]["detail"].endswith("new workers started")
            hard = next(c for c in data["checks"] if c["name"].startswith("RLIMIT_CORE"))
            assert hard["status"] == "ok"  # the master is running: its limit was read
            # The reload replaced the workers with ones that have the new settings.
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:
                now = set(ngx.worker_pids())
                if now and not now & old_workers:
                    break
                time.sleep(0.05)
            else:
                raise AssertionError("nginx did not start new workers after the reload")
            worker = sorted(now)[0]
            assert os.readlink(f"/proc/{worker}/cwd") == str(cores)
            limits = Path(f"/proc/{worker}/limits").read_text()
            assert f"Max core file size        {2 << 30:<21}{2 << 30:<21}bytes" in limits

            assert http_get(f"http://127.0.0.1:{port}/ok")[0] == 200
            status, _ = http_get(f"http://127.0.0.1:{port}/null")
            assert status == 0  # the worker died mid-request
            ngx.wait_log("exited on signal 11 (core dumped)")
            core = wait_core(cores)
        st = core.stat()
        assert st.st_uid == data["worker"]["uid"] and st.st_mode & 0o077 == 0

        proc = run_cli("analyze", str(core), "--json")
        assert proc.returncode == 0, proc.stderr
        analysis = json.loads(proc.stdout)
        assert analysis["signal"]["number"] == 11
        assert analysis["core"]["exe"] == "/usr/sbin/nginx"
        assert analysis["core"]["truncated"] is False
        assert analysis["crash"]["module"] == module
        assert analysis["crash"]["frame"]["function"] == "crashkit_faulty_tag_length"
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _new_workers(ngx: LiveNginx, old: set[int]) -> list[int]:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        now = set(ngx.worker_pids())
        if now and not now & old:
            return sorted(now)
        time.sleep(0.05)
    raise AssertionError("nginx did not start new workers after the reload")


def test_debian_layout_dropin_applies_to_live_workers_and_undo_takes_it_back(
        tmp_path: Path, manifest: dict[str, Any]) -> None:
    """Debian's layout (the module loaded from modules-enabled/, included in
    the main context): setup --apply --reload writes its drop-in there, never
    the main file, and the reloaded workers run with it; --undo --reload
    removes it and the next workers run without it."""
    if os.geteuid() != 0:
        unavailable("a live nginx with www-data workers needs root")
    pattern = Path("/proc/sys/kernel/core_pattern").read_text().strip()
    if pattern.startswith("|") or os.path.isabs(pattern):
        unavailable(f"kernel.core_pattern is {pattern!r}: cores would not reach "
                    "working_directory; run: sysctl -w kernel.core_pattern=core")
    module = fixture(manifest, "nginx-null")["module"]
    port = free_port()
    prefix = tmp_path / "ngx"
    enabled = prefix / "modules-enabled"
    enabled.mkdir(parents=True)
    (enabled / "50-mod-crashkit-test.conf").write_text(f"load_module {module};\n")
    conf_text = basic_conf(port, main="include {prefix}/modules-enabled/*.conf;\n",
                           server="        location /null { crashkit_crash null; }")
    base = reachable_dir("setup-live-dropin")
    cores = base / "cores"
    dropin = enabled / "90-crashkit-cores.conf"
    try:
        with LiveNginx(prefix, conf_text) as ngx:
            main_before = ngx.conf.read_bytes()
            old = set(ngx.worker_pids())
            before_cwd = os.readlink(f"/proc/{sorted(old)[0]}/cwd")
            proc = run_cli("setup", "--conf", str(ngx.conf), "--core-dir", str(cores),
                           "--apply", "--reload", "--json")
            assert proc.returncode in (0, 1), proc.stderr
            data = json.loads(proc.stdout)
            jsonschema.validate(data, SCHEMA)
            assert data["dropin"]["path"] == str(dropin)
            assert [f["path"] for f in data["files"]] == [str(dropin)]
            assert ngx.conf.read_bytes() == main_before
            worker = _new_workers(ngx, old)[0]
            assert os.readlink(f"/proc/{worker}/cwd") == str(cores)
            limits = Path(f"/proc/{worker}/limits").read_text()
            assert f"Max core file size        {2 << 30:<21}{2 << 30:<21}bytes" in limits
            status, _ = http_get(f"http://127.0.0.1:{port}/null")
            assert status == 0
            ngx.wait_log("exited on signal 11 (core dumped)")
            core = wait_core(cores)

            old = set(ngx.worker_pids())
            proc = run_cli("setup", "--conf", str(ngx.conf), "--undo", "--reload", "--json")
            assert proc.returncode in (0, 1), proc.stderr
            undone = json.loads(proc.stdout)
            jsonschema.validate(undone, SCHEMA)
            steps = [(u["what"], u["action"]) for u in undone["undone"]]
            assert steps == [(str(dropin), "removed"), (str(cores), "left")]  # a core is in it
            assert undone["reload"]["method"] == "signal"
            assert not dropin.exists() and ngx.conf.read_bytes() == main_before
            worker = _new_workers(ngx, old)[0]
            assert os.readlink(f"/proc/{worker}/cwd") == before_cwd != str(cores)
        assert core.exists()  # undo never deletes a core
    finally:
        shutil.rmtree(base, ignore_errors=True)
