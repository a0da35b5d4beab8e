"""crashkit.host.dpkg's index against dpkg-query -S and -W on this host's
real database (the index must say exactly what dpkg-query says)."""

from __future__ import annotations

import glob
import os
import shutil
from pathlib import Path

import pytest

from crashkit.host import dpkg as H

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("dpkg-query") is None
                       or not os.path.isdir("/var/lib/dpkg/info"), reason="needs dpkg"),
]


def _real_paths() -> list[str]:
    """Files, directories and merged-/usr aliases from a third of the packages,
    the libraries nginx maps, and paths dpkg does not know."""
    paths: list[str] = []
    for listed in sorted(glob.glob("/var/lib/dpkg/info/*.list"))[::3]:
        with open(listed, encoding="utf-8", errors="surrogateescape") as f:
            paths += [line.rstrip("\n") for line in f if line.strip()][::11]
    paths += ["/usr/lib/x86_64-linux-gnu/libc.so.6", "/lib/x86_64-linux-gnu/libc.so.6",
              "/usr/sbin/nginx", "/usr/bin/bash", "/bin/bash", "/usr/lib", "/.",
              "/usr/lib/x86_64-linux-gnu/libssl.so.3", "/nonexistent/libx.so", "/tmp/core"]
    return paths


@pytest.mark.parametrize("admindir", [None, "/var/lib/dpkg"])
def test_the_index_says_what_dpkg_query_says(admindir: str | None, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(H, "_cache_dir", lambda: str(tmp_path))
    paths = _real_paths()
    expected = H.dpkg_query_packages(paths, admindir)
    assert len(expected) > 100  # the sample is worth something
    cold = H.dpkg_packages(paths, admindir)  # builds the index
    warm = H.dpkg_packages(paths, admindir)  # reads it back
    assert cold == expected and list(cold) == list(expected)
    assert warm == expected and list(warm) == list(expected)


def test_the_mapped_libraries_of_a_process(tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(H, "_cache_dir", lambda: str(tmp_path))
    with open("/proc/self/maps") as f:
        mapped = list(dict.fromkeys(line.split(None, 5)[5].strip() for line in f
                                    if len(line.split(None, 5)) == 6))
    expected = H.dpkg_query_packages(mapped)
    assert H.dpkg_packages(mapped) == expected
