"""Shared fixtures: the real crash cores made by scripts/make-sample-cores.

Integration tests need root, gcc, nginx and gdb. Outside CI they skip with the
reason; with CRASHKIT_REQUIRE_INTEGRATION=1 (set by scripts/test, which CI
runs) a missing piece is a failure, never a skip.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
CORES = Path(os.environ.get("CRASHKIT_CORES", ROOT / "build" / "cores"))
REQUIRED = os.environ.get("CRASHKIT_REQUIRE_INTEGRATION") == "1"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tiers by directory: tests/unit (pure, no process), tests/cli (the real
    command, no root), tests/integration (real gdb, nginx, Chromium, root)."""
    for item in items:
        tier = Path(str(item.fspath)).parent.name
        if tier in ("cli", "integration"):
            item.add_marker(getattr(pytest.mark, tier))


def unavailable(reason: str) -> None:
    if REQUIRED:
        pytest.fail(f"integration prerequisite missing (CI must install it): {reason}")
    pytest.skip(reason)


@contextmanager
def small_tmpfs(path: Path, size: str, mode: str = "0700") -> Iterator[Path]:
    """A real tmpfs of ``size`` (mount's size=, e.g. 4m) at ``path`` (made if
    missing), for tests of a full filesystem; root mounts it, it is unmounted
    after."""
    if os.geteuid() != 0:
        unavailable("mounting a small tmpfs needs root")
    path.mkdir(exist_ok=True)
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode={mode}", "tmpfs",
                           str(path)], capture_output=True, text=True)
    if proc.returncode != 0:
        unavailable(f"cannot mount a tmpfs: {proc.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", str(path)], check=False)


@pytest.fixture(scope="session")
def manifest() -> dict[str, Any]:
    path = CORES / "manifest.json"
    if not path.exists():
        if os.geteuid() != 0:
            unavailable("real crash cores need root to build; run scripts/make-sample-cores")
        proc = subprocess.run([str(ROOT / "scripts" / "make-sample-cores"), str(CORES)],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            unavailable(f"scripts/make-sample-cores failed: {proc.stderr[-2000:]}")
    data: dict[str, Any] = json.loads(path.read_text())
    return data["fixtures"]  # type: ignore[no-any-return]


@pytest.fixture
def live_nginx_ready() -> None:
    """For tests that run a real nginx (tests/live_nginx.py): root and the binary."""
    from tests.live_nginx import require_live_nginx

    require_live_nginx()


def fixture(manifest: dict[str, Any], name: str) -> dict[str, Any]:
    if name not in manifest:
        unavailable(f"fixture {name} is not in {CORES}/manifest.json")
    return manifest[name]  # type: ignore[no-any-return]


def run_cli(*args: str, check: bool = False,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run the real command line, as a user would."""
    # The runner's terminal width (COLUMNS) is not the test's: outputs are
    # compared as a pipe gets them unless a test sets it.
    base = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    proc = subprocess.run([sys.executable, "-m", "crashkit", *args], capture_output=True,
                          text=True, timeout=120, env={**base, **(env or {})})
    if check and proc.returncode != 0:
        raise AssertionError(f"crashkit {' '.join(args)} exited {proc.returncode}: "
                             f"{proc.stderr}")
    return proc


def cli_json(*args: str) -> tuple[int, dict[str, Any]]:
    """Run a command with --json that exits 0 or 1; its output, validated
    against the JSON Schema its "schema" key names (crashkit/<verb>/1), every
    key of it documented there."""
    proc = run_cli(*args, "--json")
    assert proc.returncode in (0, 1), proc.stderr
    data: dict[str, Any] = json.loads(proc.stdout)
    check_schema(data)
    return proc.returncode, data


def check_schema(data: dict[str, Any]) -> None:
    import jsonschema

    from tests.schema import schema, undocumented

    root = schema(data["schema"])
    jsonschema.validate(data, root)
    assert not undocumented(data, root), f"keys not in {data['schema']}'s schema"


def analyze_json(core: str, *extra: str) -> dict[str, Any]:
    proc = run_cli("analyze", core, "--json", *extra, check=True)
    data: dict[str, Any] = json.loads(proc.stdout)
    check_schema(data)
    return data


def crash_for_core(argv: list[str], cwd: Path) -> Path:
    """Run a program that crashes and return its core, made by the kernel."""
    import resource

    pattern = Path("/proc/sys/kernel/core_pattern").read_text().strip()
    if pattern.startswith("|"):
        unavailable(f"kernel.core_pattern pipes cores to {pattern.split()[0][1:]}; "
                    "run: sysctl -w kernel.core_pattern=core")
    before = {p.name for p in cwd.iterdir()}

    def limits() -> None:
        resource.setrlimit(resource.RLIMIT_CORE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))

    proc = subprocess.run(argv, cwd=cwd, preexec_fn=limits, capture_output=True, timeout=60)
    assert proc.returncode < 0, f"{argv[0]} did not die of a signal: {proc.returncode}"
    where = Path(pattern).parent if pattern.startswith("/") else cwd
    new = [p for p in where.iterdir() if p.name.startswith("core") and p.name not in before]
    if not new:
        unavailable(f"no core appeared in {where} (core_pattern {pattern!r})")
    return max(new, key=lambda p: p.stat().st_mtime)


def compile_program(d: Path, name: str, source: str, *flags: str, cxx: bool = False,
                    opt: str = "-O2") -> Path:
    """Compile ``source`` (C, or C++ with ``cxx``) with debug info into d/name."""
    compiler = "g++" if cxx else "gcc"
    if shutil.which(compiler) is None:
        unavailable(f"{compiler} is not installed")
    src = d / f"{name}.{'cc' if cxx else 'c'}"
    src.write_text(source)
    out = d / name
    subprocess.run([compiler, "-g", opt, "-o", str(out), str(src), *flags], check=True)
    return out


@pytest.fixture
def core_dir() -> Iterator[Path]:
    """A directory a live nginx worker (www-data) can write its core into: not
    under pytest's tmp_path, whose parents only root may enter."""
    import pwd
    import tempfile

    if os.geteuid() != 0:
        unavailable("a live nginx needs root")
    www = pwd.getpwnam("www-data")
    top = Path(tempfile.mkdtemp(prefix="crashkit-live-"))
    top.chmod(0o711)
    d = top / "cores"
    d.mkdir()
    os.chown(d, www.pw_uid, www.pw_gid)
    d.chmod(0o700)
    try:
        yield d
    finally:
        shutil.rmtree(top, ignore_errors=True)
