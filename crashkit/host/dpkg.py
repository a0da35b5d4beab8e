"""Facts about the files and processes a core names, read on this host: which
package installed each mapped file (dpkg's database), what the signal's
sender is now, and the crashed process's last lines in nginx's error log.

Nothing here is required: every lookup that cannot be done (no dpkg, a
sysroot, a sender that has exited) leaves its fact out.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from crashkit.errors import InputError
from crashkit.host.system import run_text
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


def process_command(pid: int) -> str | None:
    """What pid runs now (its command line), or None when it has exited."""
    from crashkit.host.sockets import process_name

    comm, cmdline = process_name(pid)
    text = cmdline or (f"[{comm}]" if comm else "")  # a kernel thread has no command line
    return "".join(c if c.isprintable() else "?" for c in text) or None


def user_name(uid: int) -> str | None:
    import pwd

    try:
        return pwd.getpwuid(uid).pw_name
    except (KeyError, OverflowError):
        return None


LOG_TAIL = 8 * 1024 * 1024  # how much of the end of an error log is read
LOG_LINES = 5
_NGINX_LINE = re.compile(rb"^\d{4}/\d\d/\d\d \d\d:\d\d:\d\d \[\w+\] (\d+)#\d+: ")


def _tail_lines(path: str, option: str = "--error-log") -> list[bytes]:
    """The lines of the last LOG_TAIL bytes of a log."""
    from crashkit.elf.files import regular_file

    try:
        with regular_file(path) as (read, size):
            start = max(0, size - LOG_TAIL)
            data = read(start, size - start)
    except FileNotFoundError:
        raise InputError(f"{option}: no such file", path=path) from None
    except OSError as exc:
        raise InputError(f"{option}: cannot read it ({exc.strerror or exc})",
                         path=path) from None
    lines = data.split(b"\n")
    return lines[1:] if start else lines  # the first one is cut


def _exit_line(lines: list[bytes], pid: int) -> int | None:
    """Index of the master's "worker process PID exited on signal" line."""
    exited = re.compile(rb"worker process %d exited on signal" % pid)
    return next((i for i in range(len(lines) - 1, -1, -1) if exited.search(lines[i])), None)


def _decode(line: bytes) -> str:
    return line.decode("utf-8", "replace").rstrip("\r")[:4000]


def last_log_lines(path: str, pid: int, limit: int = LOG_LINES) -> tuple[str, ...]:
    """The crashed process's last lines in nginx's error log, up to and
    including the master's "worker process PID exited on signal" line.

    A worker's own messages carry its pid ("2026/11/24 04:21:15 [alert]
    PID#TID: ..."); what it wrote to stderr (glibc's assertion message, a
    module's fprintf) has no prefix, since nginx points stderr at the log."""
    lines = _tail_lines(path)
    own = b"%d" % pid
    end = _exit_line(lines, pid)
    picked: list[bytes] = []
    seen_own = False
    for line in reversed(lines[:end if end is not None else len(lines)]):
        if len(picked) == limit:
            break
        m = _NGINX_LINE.match(line)
        if m is not None:
            if m.group(1) == own:
                picked.append(line)
                seen_own = True
        elif line.strip() and end is not None and not seen_own:
            # stderr output has no prefix: it is the worker's only between
            # its last own line and the master's line about its exit.
            picked.append(line)
    if not seen_own and end is None:
        return ()  # the pid is not in this log
    out = [*reversed(picked)] + ([lines[end]] if end is not None else [])
    return tuple(_decode(line)[:1000] for line in out)


def log_excerpt(path: str, pid: int, before: int = 40, after: int = 5,
                around: float | None = None) -> tuple[tuple[str, ...], str | None]:
    """Lines around the crash, and how they were found.

    Up to ``before`` lines before the master's "exited on signal" line for
    pid and ``after`` after it ("exit line"). Without that line but with
    ``around`` (the crash time, seconds since the epoch: the core's mtime),
    the lines logged from two minutes before it to half a minute after
    ("time"). Otherwise nothing (None)."""
    lines = _tail_lines(path)
    while lines and not lines[-1].strip():
        lines.pop()
    end = _exit_line(lines, pid)
    if end is not None:
        return tuple(_decode(x) for x in lines[max(0, end - before):end + 1 + after]), \
            "exit line"
    if around is None:
        return (), None
    import time

    # nginx writes local time without a zone, as "YYYY/MM/DD HH:MM:SS".
    low = time.strftime("%Y/%m/%d %H:%M:%S", time.localtime(around - 120)).encode()
    high = time.strftime("%Y/%m/%d %H:%M:%S", time.localtime(around + 30)).encode()
    picked = [x for x in lines if _NGINX_LINE.match(x) and low <= x[:19] <= high]
    return tuple(_decode(x) for x in picked[-(before + after):]), "time" if picked else None
