"""Which package installed each file a core maps, from dpkg's database.

Nothing here is required: a lookup that cannot be done (no dpkg, a sysroot
without a database) leaves its fact out.

The database is read directly (``info/*.list``: which package installed
which file; ``status``: versions, sources, homepages), not through
``dpkg-query -S``, which reads all of it on every run (about 0.1 s). What is
read is kept in an index file (sorted paths, found by binary search), keyed
by the size and mtime of ``status`` and of the ``info`` directory, so a run
reads a few pages of it. Only a path several packages share (directories,
files of ``Multi-Arch: same`` packages) is still asked of ``dpkg-query``,
which alone knows the order it names them in.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable

from crashkit.model.analyze import Package

DPKG_TIMEOUT = 10.0
DEFAULT_ADMINDIR = "/var/lib/dpkg"
_GLOB = re.compile(r"[*?\[\]\\\s]")
# Debian merged /bin, /sbin and /lib into /usr; dpkg still knows many files by
# their old path, the kernel maps them by the new one (or the other way).
_MERGED = (("/usr/lib/", "/lib/"), ("/usr/lib64/", "/lib64/"), ("/usr/bin/", "/bin/"),
           ("/usr/sbin/", "/sbin/"))
_MAGIC = b"crashkit-dpkg-index 2\n"


def _aliases(path: str) -> list[str]:
    out = [path]
    for new, old in _MERGED:
        if path.startswith(new):
            out.append(old + path[len(new):])
        elif path.startswith(old):
            out.append(new + path[len(old):])
    return out


def _wanted(paths: Iterable[str]) -> dict[str, str]:
    """Query path -> path in the core, in the order dpkg-query is asked."""
    wanted: dict[str, str] = {}
    for path in paths:
        if path.startswith("/") and not _GLOB.search(path) and path.isprintable():
            for alias in _aliases(path):
                wanted.setdefault(alias, path)
    return wanted


def dpkg_packages(paths: Iterable[str], admindir: str | None = None) -> dict[str, Package]:
    """The package of each path dpkg knows, with its version and source."""
    wanted = _wanted(paths)
    if not wanted:
        return {}
    index = DpkgIndex.open(admindir)
    if index is None:
        return {}
    owner: dict[str, Package] = {}
    shared: list[str] = []
    decided: set[str] = set()  # the first of a path's aliases that dpkg knows decides
    for query, path in wanted.items():
        if path in decided:
            continue
        found = index.owners(query)
        if found:
            decided.add(path)
            if len(found) > 1:
                shared.append(path)
            else:
                owner[path] = found[0]
    if shared:  # dpkg-query's own order of several owners: ask it
        asked = dpkg_query_packages(shared, admindir)
        for path in shared:
            if path in asked:
                owner.setdefault(path, asked[path])
    return {path: owner[path] for path in dict.fromkeys(wanted.values()) if path in owner}


def dpkg_query_packages(paths: Iterable[str], admindir: str | None = None,
                        ) -> dict[str, Package]:
    """:func:`dpkg_packages` through ``dpkg-query -S`` and ``-W`` (what it did
    before the index; the reference the index is tested against)."""
    from crashkit.host.run import resolve, run_text

    dpkg = resolve("dpkg-query")
    if dpkg is None:
        return {}
    wanted = _wanted(paths)
    if not wanted:
        return {}
    admin = [f"--admindir={admindir}"] if admindir else []
    owner: dict[str, str] = {}
    # dpkg-query exits 1 when some paths are unknown: only stdout matters.
    _status, out = run_text([dpkg, *admin, "-S", *wanted], DPKG_TIMEOUT, stderr=False)
    for line in out.splitlines():
        names, sep, file = line.partition(": ")
        if not sep or line.startswith(("diversion ", "local diversion")) or file not in wanted:
            continue
        owner.setdefault(wanted[file], names.split(",")[0].strip())
    if not owner:
        return {}
    fields = "${binary:Package}\t${Package}\t${Version}\t${source:Package}\t${Homepage}\n"
    info: dict[str, Package] = {}
    _status, out = run_text([dpkg, *admin, "-W", "-f", fields, *sorted(set(owner.values()))],
                            DPKG_TIMEOUT, stderr=False)
    for line in out.splitlines():
        parts = line.split("\t")
        if len(parts) != 5:
            continue
        binary, name, version, source, homepage = parts
        pkg = Package(name=name, version=version or None,
                      source=source if source and source != name else None,
                      homepage=homepage or None)
        info[binary] = info[name] = pkg
    return {path: info[name] for path, name in owner.items() if name in info}


# ---------------------------------------------------------------- the index


class DpkgIndex:
    """File -> owning packages of one dpkg database, from its index file
    (made or remade when the database changed) or, when no index file can be
    kept, built in memory."""

    def __init__(self, packages: list[bytes], data: bytes | object, lo: int, hi: int) -> None:
        self._lines = packages  # b"name\tversion\tsource\thomepage", read when asked for
        self._packages: dict[int, Package] = {}
        self._data = data  # bytes or an mmap: sorted lines b"path\tI,J\n"
        self._lo, self._hi = lo, hi

    @classmethod
    def open(cls, admindir: str | None = None) -> DpkgIndex | None:
        """The index of ``admindir`` (default: dpkg's own), or None without a
        database there."""
        admin = admindir or os.environ.get("DPKG_ADMINDIR") or DEFAULT_ADMINDIR
        key = _db_key(admin)
        if key is None:
            return None
        cache = _cache_file(admin)
        if cache is not None:
            index = _load(cache, key)
            if index is not None:
                return index
        blob = _build(admin, key)
        if cache is not None:
            _store(cache, blob)
        return _parse(blob, key)

    def owners(self, path: str) -> list[Package]:
        """The packages whose files list ``path`` exactly (dpkg-query -S of
        a path without wildcards), in no particular order."""
        try:
            key = os.fsencode(path)
        except UnicodeError:
            return []
        data: bytes = self._data  # type: ignore[assignment]
        lo, hi = self._lo, self._hi
        while lo < hi:
            mid = (lo + hi) // 2
            start = data.rfind(b"\n", lo, mid)
            start = lo if start < 0 else start + 1
            end = data.find(b"\n", start)
            name, _tab, ids = data[start:end].partition(b"\t")
            if name == key:
                return [self._package(int(i)) for i in ids.split(b",")]
            if name < key:
                lo = end + 1
            else:
                hi = start
        return []


    def _package(self, i: int) -> Package:
        pkg = self._packages.get(i)
        if pkg is None:
            name, version, source, homepage = self._lines[i].decode(
                "utf-8", "surrogateescape").split("\t")
            pkg = self._packages[i] = Package(name=name, version=version or None,
                                              source=source or None, homepage=homepage or None)
        return pkg


def _db_key(admin: str) -> bytes | None:
    """What changes whenever dpkg changes its database: status is rewritten
    (a new inode) and info/*.list replaced by rename (the directory's mtime)."""
    try:
        status = os.stat(os.path.join(admin, "status"))
        info = os.stat(os.path.join(admin, "info"))
    except OSError:
        return None
    real = os.fsencode(os.path.realpath(admin))
    return b"%s\t%d %d %d %d\t%d %d %d\n" % (
        real, status.st_dev, status.st_ino, status.st_size, status.st_mtime_ns,
        info.st_dev, info.st_ino, info.st_mtime_ns)


def _cache_dir() -> str | None:
    if os.geteuid() == 0:
        return "/var/cache/crashkit"
    base = os.environ.get("XDG_CACHE_HOME")
    if not base or not os.path.isabs(base):
        home = os.path.expanduser("~")
        if not os.path.isabs(home):
            return None
        base = os.path.join(home, ".cache")
    return os.path.join(base, "crashkit")


def _cache_file(admin: str) -> str | None:
    """The index file for this database, in a directory of our own (made
    0700; an existing one used only if it is ours and no one else can write
    to it)."""
    import hashlib
    import stat

    directory = _cache_dir()
    if directory is None:
        return None
    try:
        os.makedirs(directory, mode=0o700, exist_ok=True)
        st = os.lstat(directory)
    except OSError:
        return None
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid() or st.st_mode & 0o022:
        return None
    tag = hashlib.sha256(os.fsencode(os.path.realpath(admin))).hexdigest()[:16]
    return os.path.join(directory, f"dpkg-index-{tag}")


def _load(cache: str, key: bytes) -> DpkgIndex | None:
    import mmap
    import stat

    try:
        fd = os.open(cache, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if (not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid() or st.st_mode & 0o077
                or st.st_size < len(_MAGIC) + len(key)):
            return None
        data = mmap.mmap(fd, 0, prot=mmap.PROT_READ)
    except (OSError, ValueError):
        return None
    finally:
        os.close(fd)
    return _parse(data, key)


def _parse(data: bytes | object, key: bytes) -> DpkgIndex | None:
    """The index in ``data``: magic, key, the package count and the size of
    their lines (name, version, source, homepage), then the sorted path lines."""
    buf: bytes = data  # type: ignore[assignment]
    head = len(_MAGIC) + len(key)
    if buf[:len(_MAGIC)] != _MAGIC or buf[len(_MAGIC):head] != key:
        return None
    end = buf.find(b"\n", head)
    try:
        count, size = (int(v) for v in buf[head:end].split(b" ")) if end > 0 else (-1, -1)
    except ValueError:
        return None
    lines = buf[end + 1:end + 1 + size].split(b"\n")[:-1]
    if count < 0 or len(lines) != count:
        return None
    return DpkgIndex(lines, data, end + 1 + size, len(buf))


def _store(cache: str, blob: bytes) -> None:
    """Written beside, then renamed over: a reader sees the old index or the new."""
    tmp = f"{cache}.{os.getpid()}.tmp"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                     0o600)
    except OSError:
        return
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(blob)
        os.replace(tmp, cache)
    except OSError:
        import contextlib

        with contextlib.suppress(OSError):
            os.unlink(tmp)


def _stanzas(text: str) -> Iterable[dict[str, str]]:
    """The fields of each stanza of a deb822 file (continuation lines dropped:
    none of the fields read here has any)."""
    fields: dict[str, str] = {}
    for line in text.split("\n"):
        if not line:
            if fields:
                yield fields
                fields = {}
        elif line[0] not in " \t":
            name, sep, value = line.partition(":")
            if sep:
                fields[name] = value.strip()
    if fields:
        yield fields


def _build(admin: str, key: bytes) -> bytes:
    """The index of the database in ``admin``, as written to the cache."""
    try:
        with open(os.path.join(admin, "status"), encoding="utf-8",
                  errors="surrogateescape") as f:
            status = f.read()
    except OSError:
        status = ""
    # info/NAME.list, or NAME:ARCH.list for a Multi-Arch: same package.
    by_list: dict[str, Package] = {}
    for fields in _stanzas(status):
        name = fields.get("Package")
        if not name:
            continue
        source = fields.get("Source", "").split(" ", 1)[0]
        pkg = Package(name=name, version=fields.get("Version") or None,
                      source=source if source and source != name else None,
                      homepage=fields.get("Homepage") or None)
        arch = fields.get("Architecture", "")
        by_list.setdefault(f"{name}:{arch}", pkg)
        if fields.get("Multi-Arch") != "same":
            by_list[name] = pkg
    info = os.path.join(admin, "info")
    try:
        names = sorted(n for n in os.listdir(info) if n.endswith(".list"))
    except OSError:
        names = []
    packages: list[Package] = []
    owners: dict[bytes, list[int]] = {}
    for list_name in names:
        listed = by_list.get(list_name[:-5])
        if listed is None:
            continue
        try:
            with open(os.path.join(info, list_name), "rb") as f:
                files = f.read().split(b"\n")
        except OSError:
            continue
        i = len(packages)
        packages.append(listed)
        for file in files:
            if file and b"\t" not in file:
                owners.setdefault(file, []).append(i)
    lines = b"".join("\t".join((p.name, p.version or "", p.source or "", p.homepage or ""))
                     .encode("utf-8", "surrogateescape") + b"\n" for p in packages)
    out = [_MAGIC, key, b"%d %d\n" % (len(packages), len(lines)), lines]
    out += [b"%s\t%s\n" % (file, b",".join(b"%d" % i for i in owners[file]))
            for file in sorted(owners)]
    return b"".join(out)


def package_fields(name: str, admindir: str | None = None) -> dict[str, str] | None:
    """The status stanza of the installed package ``name`` (Package, Version,
    Homepage, Vcs-Git, Vcs-Browser, …), read from dpkg's status file; None when
    dpkg does not know it. Debian names a package's upstream in Homepage (and
    its packaging in Vcs-*): Debian Policy §5.6.23 and §5.6.26."""
    admin = admindir or os.environ.get("DPKG_ADMINDIR") or DEFAULT_ADMINDIR
    try:
        with open(os.path.join(admin, "status"), encoding="utf-8",
                  errors="surrogateescape") as f:
            status = f.read()
    except OSError:
        return None
    bare = name.split(":", 1)[0]
    for fields in _stanzas(status):
        if fields.get("Package") == bare and "installed" in fields.get("Status", "").split():
            return fields
    return None
