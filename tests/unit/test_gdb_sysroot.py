"""The private sysroot: links only to regular files, under every alias."""

from __future__ import annotations

import os
from pathlib import Path

from crashkit.gdb.sysroot import PrivateSysroot


def test_links_only_regular_files_and_their_soname_aliases(tmp_path: Path) -> None:
    host = tmp_path / "host"
    lib = host / "usr/lib/x86_64-linux-gnu"
    lib.mkdir(parents=True)
    (lib / "libz.so.1.2.13").write_bytes(b"\x7fELF")
    os.symlink("libz.so.1.2.13", lib / "libz.so.1")
    os.symlink("/nowhere", lib / "libother.so.1")
    os.mkfifo(lib / "libtrap.so")
    root = tmp_path / "private"
    root.mkdir()
    ps = PrivateSysroot(str(root), str(host))
    real = str(lib / "libz.so.1.2.13")
    assert ps.add("/usr/lib/x86_64-linux-gnu/libz.so.1.2.13") == \
        str(root / "usr/lib/x86_64-linux-gnu/libz.so.1.2.13")
    assert ps.add("/usr/lib/x86_64-linux-gnu/libtrap.so") is None
    assert ps.add("/dev/stdin") is None
    assert ps.add("relative.so") is None
    assert ps.placed == {"/usr/lib/x86_64-linux-gnu/libz.so.1.2.13",
                         "/usr/lib/x86_64-linux-gnu/libz.so.1"}
    for p in ps.placed:
        assert os.readlink(ps.path(p)) == real
    assert ps.dirs() == [str(root / "usr/lib/x86_64-linux-gnu")]
