"""crashkit.host.dpkg's index on a fake dpkg database built in tmp_path (the
real one is compared with dpkg-query in tests/integration/test_dpkg_index.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from crashkit.host import dpkg as H
from crashkit.model.analyze import Package

STATUS = """\
Package: libfoo1
Status: install ok installed
Architecture: amd64
Multi-Arch: same
Source: foo (1.2-3)
Version: 1.2-3+b1
Homepage: https://foo.example/
Description: foo
 a continuation line: Version: 9

Package: bar
Status: install ok installed
Architecture: amd64
Version: 2.0
Description: bar

Package: baz
Status: install ok installed
Architecture: all
Source: baz
Version: 0.1
"""

LISTS = {
    "libfoo1:amd64.list": ["/.", "/usr", "/usr/lib", "/usr/lib/x86_64-linux-gnu",
                           "/usr/lib/x86_64-linux-gnu/libfoo.so.1"],
    "bar.list": ["/.", "/bin", "/bin/bar", "/usr/sbin/bard"],
    "baz.list": ["/usr/share/baz/a file"],
    "gone.list": ["/usr/bin/gone"],  # no status entry: dpkg-query -W knows nothing of it
}

FOO = Package(name="libfoo1", version="1.2-3+b1", source="foo",
              homepage="https://foo.example/")
BAR = Package(name="bar", version="2.0", source=None, homepage=None)


@pytest.fixture
def admindir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    admin = tmp_path / "dpkg"
    (admin / "info").mkdir(parents=True)
    (admin / "status").write_text(STATUS)
    for name, files in LISTS.items():
        (admin / "info" / name).write_text("".join(f + "\n" for f in files))
    (admin / "info" / "bar.md5sums").write_text("x  bin/bar\n")
    monkeypatch.setattr(H, "_cache_dir", lambda: str(tmp_path / "cache"))
    return admin


def test_owners_versions_and_sources(admindir: Path) -> None:
    got = H.dpkg_packages(["/usr/lib/x86_64-linux-gnu/libfoo.so.1", "/bin/bar",
                           "/usr/bin/gone", "/usr/lib/nothing.so", "relative/bin/bar"],
                          str(admindir))
    assert got == {"/usr/lib/x86_64-linux-gnu/libfoo.so.1": FOO, "/bin/bar": BAR}


def test_merged_usr_aliases(admindir: Path) -> None:
    # The kernel maps /usr/bin/bar, dpkg knows /bin/bar; and the other way.
    got = H.dpkg_packages(["/usr/bin/bar", "/sbin/bard", "/lib/x86_64-linux-gnu/libfoo.so.1"],
                          str(admindir))
    assert got == {"/usr/bin/bar": BAR, "/sbin/bard": BAR,
                   "/lib/x86_64-linux-gnu/libfoo.so.1": FOO}


def test_paths_dpkg_query_is_never_asked(admindir: Path) -> None:
    # Globs, blanks and unprintable paths were never passed to dpkg-query -S.
    assert H.dpkg_packages(["/usr/share/baz/a file", "/bin/ba?", "/bin/bar\n"],
                           str(admindir)) == {}


def test_a_shared_path_is_asked_of_dpkg_query(admindir: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[list[str]] = []

    def query(paths: list[str], admin: str | None = None) -> dict[str, Package]:
        asked.append(list(paths))
        return {"/.": BAR}

    monkeypatch.setattr(H, "dpkg_query_packages", query)
    assert H.dpkg_packages(["/.", "/bin/bar"], str(admindir)) == {"/.": BAR, "/bin/bar": BAR}
    assert asked == [["/."]]


def test_no_database() -> None:
    assert H.dpkg_packages(["/bin/bar"], "/nonexistent/dpkg") == {}


def test_the_index_is_cached_and_remade_when_dpkg_changes(admindir: Path,
                                                         monkeypatch: pytest.MonkeyPatch,
                                                         tmp_path: Path) -> None:
    assert H.dpkg_packages(["/bin/bar"], str(admindir)) == {"/bin/bar": BAR}
    [cache] = (tmp_path / "cache").iterdir()
    assert cache.stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "cache").stat().st_mode & 0o777 == 0o700
    real_build = H._build

    def no_build(*_a: object) -> bytes:
        raise AssertionError("index rebuilt though dpkg's database did not change")

    monkeypatch.setattr(H, "_build", no_build)
    assert H.dpkg_packages(["/bin/bar"], str(admindir)) == {"/bin/bar": BAR}
    # dpkg replaces status (a new file) on every change
    new = admindir / "status.new"
    new.write_text(STATUS.replace("Version: 2.0", "Version: 2.1"))
    os.replace(new, admindir / "status")
    monkeypatch.setattr(H, "_build", real_build)
    got = H.dpkg_packages(["/bin/bar"], str(admindir))
    assert got["/bin/bar"].version == "2.1"
    assert [p.name for p in (tmp_path / "cache").iterdir()] == [cache.name]  # no leftovers


def test_a_cache_others_can_write_is_not_trusted(admindir: Path, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    H.dpkg_packages(["/bin/bar"], str(admindir))
    [cache] = (tmp_path / "cache").iterdir()
    # a forged index: bar now at another version
    cache.write_bytes(cache.read_bytes().replace(b"bar\t2.0", b"bar\t6.6"))
    assert H.dpkg_packages(["/bin/bar"], str(admindir))["/bin/bar"].version == "6.6"
    cache.chmod(0o666)
    assert H.dpkg_packages(["/bin/bar"], str(admindir))["/bin/bar"].version == "2.0"
    (tmp_path / "cache").chmod(0o777)  # a directory others can write to: no cache at all
    cache.unlink()
    assert H.dpkg_packages(["/bin/bar"], str(admindir))["/bin/bar"].version == "2.0"
    assert not cache.exists()


def test_a_damaged_index_is_rebuilt(admindir: Path, tmp_path: Path) -> None:
    H.dpkg_packages(["/bin/bar"], str(admindir))
    [cache] = (tmp_path / "cache").iterdir()
    for damaged in (b"", cache.read_bytes()[:40], b"crashkit-dpkg-index 0\n"):
        cache.write_bytes(damaged)
        assert H.dpkg_packages(["/bin/bar"], str(admindir)) == {"/bin/bar": BAR}


def test_every_listed_file_is_found(admindir: Path) -> None:
    index = H.DpkgIndex.open(str(admindir))
    assert index is not None
    for name, files in LISTS.items():
        for f in files:
            owners = index.owners(f)
            assert owners or name == "gone.list", f
    assert {p.name for p in index.owners("/.")} == {"libfoo1", "bar"}
    assert index.owners("/usr/lib/x86_64-linux-gnu/libfoo.so") == []
    assert index.owners("/zzz") == [] and index.owners("/") == []
