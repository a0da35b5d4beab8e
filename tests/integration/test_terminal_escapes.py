"""doctor and setup print process names and paths: text a local user controls
(prctl(PR_SET_NAME), a directory name) must reach the terminal as visible
escapes, never as control sequences."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.live_nginx import basic_conf

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("live_nginx_ready")]

# Sets the terminal's title, then turns text red: what an attacker would try.
EVIL = "\x1b]0;pwned\x07\x1b[31m"

HOLDER = r"""
import ctypes, socket, sys
libc = ctypes.CDLL(None)
libc.prctl(15, ctypes.c_char_p(sys.argv[1].encode()), 0, 0, 0)  # PR_SET_NAME
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(1)
print(s.getsockname()[1], flush=True)
sys.stdin.read()
"""


def test_doctor_escapes_a_process_name(tmp_path: Path) -> None:
    name = "x" + EVIL  # comm holds 15 bytes
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, name], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None
        port = int(holder.stdout.readline())
        comm = Path(f"/proc/{holder.pid}/comm").read_text().rstrip("\n")
        assert "\x1b" in comm  # the kernel kept the escape: the test is real
        prefix = tmp_path / "ngx"
        (prefix / "tmp").mkdir(parents=True)
        conf = prefix / "nginx.conf"
        conf.write_text(basic_conf(port).replace("{prefix}", str(prefix)))
        proc = run_cli("doctor", "--conf", str(conf))
    finally:
        holder.kill()
        holder.wait()
    assert proc.returncode == 1, proc.stderr
    assert comm == name[:15]
    line = next(ln for ln in proc.stdout.splitlines() if "held by pid" in ln)
    assert "\x1b" not in proc.stdout and "\x07" not in proc.stdout
    assert f"held by pid {holder.pid} (x\\x1b]0;pwned\\x07\\x1b[31)" in line, line


def test_setup_escapes_a_path(tmp_path: Path) -> None:
    # No ";" here: nginx would read it as the end of a directive.
    odd = tmp_path / "conf\x1b[2J\x07dir"
    prefix = odd / "ngx"
    (prefix / "tmp").mkdir(parents=True)
    conf = prefix / "nginx.conf"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    conf.write_text(basic_conf(port).replace("{prefix}", str(prefix)))
    proc = run_cli("setup", "--conf", str(conf), "--core-dir", str(tmp_path / "cores"))
    assert proc.returncode in (0, 1), proc.stderr
    assert "\x1b" not in proc.stdout and "\x07" not in proc.stdout
    assert "conf\\x1b[2J\\x07dir" in proc.stdout
    # An error naming the path is one escaped line too.
    bad = run_cli("setup", "--conf", str(odd / "missing.conf"))
    assert bad.returncode == 2
    assert bad.stderr.count("\n") == 1 and "\x1b" not in bad.stderr
    assert "conf\\x1b[2J\\x07dir" in bad.stderr
    shutil.rmtree(odd)
