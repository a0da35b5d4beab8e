"""gdb's environment with --debuginfod: crashkit's own cache, kept across runs."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from crashkit.gdb.spawn import (
    ROOT_DEBUGINFOD_CACHE,
    SafetyFlags,
    debuginfod_cache,
    debuginfod_cache_path,
    gdb_env,
)


def test_cache_path_root_xdg_home() -> None:
    assert debuginfod_cache_path(0, {"XDG_CACHE_HOME": "/home/u/.cache", "HOME": "/root"}) \
        == ROOT_DEBUGINFOD_CACHE == "/var/cache/crashkit/debuginfod"
    assert debuginfod_cache_path(1000, {"XDG_CACHE_HOME": "/x/cache", "HOME": "/home/u"}) \
        == "/x/cache/crashkit/debuginfod"
    # A relative XDG_CACHE_HOME is invalid (XDG spec): ~/.cache instead.
    assert debuginfod_cache_path(1000, {"XDG_CACHE_HOME": "cache", "HOME": "/home/u"}) \
        == "/home/u/.cache/crashkit/debuginfod"
    assert debuginfod_cache_path(1000, {"HOME": "/home/u"}) == "/home/u/.cache/crashkit/debuginfod"


def test_the_cache_reaches_gdbs_environment_only_with_debuginfod(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DEBUGINFOD_CACHE_PATH", raising=False)
    monkeypatch.setenv("DEBUGINFOD_URLS", "https://debuginfod.example.invalid")
    path, problem = debuginfod_cache(1000, {"XDG_CACHE_HOME": str(tmp_path / "xdg")})
    assert (path, problem) == (str(tmp_path / "xdg" / "crashkit" / "debuginfod"), None)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o700
    env = gdb_env(SafetyFlags(debuginfod=True), "/private-home", path)
    assert env["DEBUGINFOD_CACHE_PATH"] == path and env["HOME"] == "/private-home"
    assert env["DEBUGINFOD_URLS"] == "https://debuginfod.example.invalid"
    # Off: neither the cache nor the caller's servers.
    off = gdb_env(SafetyFlags(), "/private-home", path)
    assert "DEBUGINFOD_CACHE_PATH" not in off and "DEBUGINFOD_URLS" not in off
    # The caller's own DEBUGINFOD_CACHE_PATH wins over crashkit's.
    monkeypatch.setenv("DEBUGINFOD_CACHE_PATH", "/srv/mine")
    assert gdb_env(SafetyFlags(debuginfod=True), "/h", path)["DEBUGINFOD_CACHE_PATH"] == "/srv/mine"


def test_a_cache_others_can_write_is_not_used(tmp_path: Path) -> None:
    # gdb reads what is in it as debug info: it must be this user's alone.
    base = tmp_path / "xdg"
    (base / "crashkit" / "debuginfod").mkdir(parents=True)
    (base / "crashkit" / "debuginfod").chmod(0o777)
    path, problem = debuginfod_cache(1000, {"XDG_CACHE_HOME": str(base)})
    assert path is None and problem == (f"{base}/crashkit/debuginfod: writable by others "
                                        "(mode 0777)")
    (base / "crashkit" / "debuginfod").rmdir()
    (base / "crashkit" / "debuginfod").symlink_to(tmp_path)
    path, problem = debuginfod_cache(1000, {"XDG_CACHE_HOME": str(base)})
    assert path is None and problem == f"{base}/crashkit/debuginfod: not a directory"
