"""Which package installed each file a core maps, from dpkg's database.

Nothing here is required: a lookup that cannot be done (no dpkg, a sysroot
without a database) leaves its fact out.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from crashkit.host.run import run_text
from crashkit.model.analyze import Package

DPKG_TIMEOUT = 10.0
_GLOB = re.compile(r"[*?\[\]\\\s]")
# Debian merged /bin, /sbin and /lib into /usr; dpkg still knows many files by
# their old path, the kernel maps them by the new one (or the other way).
_MERGED = (("/usr/lib/", "/lib/"), ("/usr/lib64/", "/lib64/"), ("/usr/bin/", "/bin/"),
           ("/usr/sbin/", "/sbin/"))


def _aliases(path: str) -> list[str]:
    out = [path]
    for new, old in _MERGED:
        if path.startswith(new):
            out.append(old + path[len(new):])
        elif path.startswith(old):
            out.append(new + path[len(old):])
    return out


def dpkg_packages(paths: Iterable[str], admindir: str | None = None) -> dict[str, Package]:
    """The package of each path dpkg knows, with its version and source."""
    import shutil

    dpkg = shutil.which("dpkg-query")
    if dpkg is None:
        return {}
    wanted: dict[str, str] = {}  # query path -> path in the core
    for path in paths:
        if path.startswith("/") and not _GLOB.search(path) and path.isprintable():
            for alias in _aliases(path):
                wanted.setdefault(alias, path)
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
