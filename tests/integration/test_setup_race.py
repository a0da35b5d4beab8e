"""setup's core directory against a racing user: root never changes anything
outside the core directory, whatever a writable parent does meanwhile.

A racer runs as user nobody in a world-writable directory (no sticky bit) and
keeps swapping the core directory's parent between a real directory and a
symlink to a root-owned 0755 "victim" directory. The descriptor walk
(crashkit.writers.coredir.open_dir: O_NOFOLLOW|O_DIRECTORY per component,
mkdirat, fchown/fchmod on the descriptor) is raced directly, 50 times, and
the whole setup --apply refuses such a parent chain with the reason.
"""

from __future__ import annotations

import os
import pwd
import shutil
import stat
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from crashkit.errors import InputError
from crashkit.writers import coredir
from tests.conftest import run_cli, unavailable
from tests.live_nginx import WORKER_USER, reachable_dir

RACER = r"""
import os, sys, time
a, victim, stop = sys.argv[1:4]
i = 0
while not os.path.exists(stop):
    i += 1
    try:
        os.rename(a, f"{a}.{i}")      # a real directory (maybe with root's cores in it)
    except OSError:
        try:
            os.unlink(a)              # a symlink of ours
        except OSError:
            pass
    try:
        if i % 2:
            os.symlink(victim, a)
        else:
            os.mkdir(a, 0o777)
    except OSError:
        pass
"""


# nobody cannot enter root's home, where the venv's interpreter lives.
_SYSTEM_PYTHON = shutil.which("python3", path="/usr/bin:/bin") or "/usr/bin/python3"


@pytest.fixture
def arena() -> Iterator[Path]:
    if os.geteuid() != 0:
        unavailable("the parent-swap race needs root and user nobody")
    try:
        pwd.getpwnam("nobody")
    except KeyError:
        unavailable("no user nobody here")
    d = reachable_dir("race")
    d.chmod(0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def _snapshot(victim: Path) -> list[tuple[str, int, int, int]]:
    out = []
    for p in [victim, *sorted(victim.rglob("*"))]:
        st = os.lstat(p)
        out.append((str(p), st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)))
    return out


def test_parent_swapped_for_a_symlink_50_times_changes_nothing_outside(arena: Path) -> None:
    victim = arena / "victim"
    victim.mkdir(mode=0o755)
    (victim / "keep").write_text("root's\n")
    ww = arena / "ww"
    ww.mkdir()
    ww.chmod(0o777)  # anyone may write here, no sticky bit
    stop = arena / "stop"
    w = pwd.getpwnam(WORKER_USER)
    worker = coredir.Worker(WORKER_USER, WORKER_USER, w.pw_uid, w.pw_gid)
    before = _snapshot(victim)
    racer = subprocess.Popen([_SYSTEM_PYTHON, "-c", RACER, str(ww / "a"), str(victim),
                              str(stop)], user="nobody", group="nogroup")
    outcomes = {"taken": 0, "refused": 0}
    try:
        deadline = time.monotonic() + 10
        while not os.path.lexists(ww / "a") and time.monotonic() < deadline:
            time.sleep(0.01)  # the racer is at work
        for _ in range(50):
            try:
                coredir.take_over(str(ww / "a" / "cores"), worker, create=True)
                outcomes["taken"] += 1
            except InputError as exc:
                assert "changed while setting it up" in exc.message
                outcomes["refused"] += 1
            assert _snapshot(victim) == before
            time.sleep(0.005)
    finally:
        stop.touch()
        racer.wait(timeout=10)
    assert _snapshot(victim) == before
    assert outcomes["taken"] + outcomes["refused"] == 50
    assert outcomes["refused"] > 0  # the racer did catch setup with a symlink on its path
    # Every directory root made or handed over is under ww, none in the victim.
    for p in ww.rglob("cores"):
        assert not p.is_symlink() and p.stat().st_uid == w.pw_uid


def test_setup_refuses_a_parent_chain_others_can_write(arena: Path) -> None:
    ww = arena / "ww"
    ww.mkdir()
    ww.chmod(0o777)
    conf = arena / "nginx.conf"
    conf.write_text(f"user {WORKER_USER};\npid {arena}/nginx.pid;\nerror_log {arena}/e.log;\n"
                    "events {}\n")
    original = conf.read_bytes()
    for args in ([], ["--apply"]):
        proc = run_cli("setup", "--conf", str(conf), "--core-dir", str(ww / "a" / "cores"),
                       *args)
        assert proc.returncode == 2 and proc.stdout == ""
        assert proc.stderr.strip() == (
            f"crashkit: error: {ww}/a/cores: unsafe place for a core directory: {ww} is "
            "writable by every user without the sticky bit (mode 0777); choose a --core-dir "
            "whose parents only root can change")
    assert conf.read_bytes() == original and not (ww / "a").exists()
    # A sticky world-writable parent (as /tmp) is fine: others cannot swap what root made.
    ww.chmod(0o1777)
    assert coredir.unsafe_parent(str(ww / "a" / "cores")) is None
    (ww / "a").mkdir()
    os.chown(ww / "a", pwd.getpwnam("nobody").pw_uid, -1)
    assert coredir.unsafe_parent(str(ww / "a" / "cores")) == (
        f"{ww}/a is owned by nobody, who could replace what is below it")
