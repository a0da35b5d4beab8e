"""Where cores land and what their names and files say: core_pattern,
systemd-coredump's store, apport's core directory and .crash reports, and a
scan of one directory that never follows a link and never blocks.

Readers only: nothing here writes, moves or deletes a file.
"""

from __future__ import annotations

import base64
import binascii
import errno
import io
import os
import re
import stat
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import BinaryIO, Literal

import zstandard

from crashkit.elf import compressed
from crashkit.elf import layouts as L
from crashkit.errors import CoreFormatError, InputError

# ---------------------------------------------------------------------------
# core_pattern
#
# The kernel's rules (Documentation/admin-guide/sysctl/kernel.rst, core_pattern
# and core_uses_pid; fs/coredump.c, format_corename):
# - a pattern starting with "|" runs a program and writes no file;
# - otherwise it is a path; a relative one is taken from the crashing
#   process's current directory;
# - %p %P %i %I %u %g %d %s %t %c are decimal numbers, %h the hostname, %e the
#   comm (at most 15 bytes, TASK_COMM_LEN - 1), %E the executable's path with
#   "/" replaced by "!", %f the executable's file name, %C the CPU (newer
#   kernels), %% a "%"; an unknown specifier expands to nothing; a lone "%"
#   at the end is dropped;
# - cn_esc_printf replaces "/" with "!" in %e and %h (a comm or hostname
#   cannot add a directory level);
# - core_uses_pid = 1 appends ".PID" to a file pattern that has no %p (only
#   %p counts: fs/coredump.c sets pid_in_pattern for 'p' alone).

PatternKind = Literal["file", "pipe", "none"]

_NUMERIC = {"p": "pid", "P": "global_pid", "i": "tid", "I": "global_tid", "u": "uid",
            "g": "gid", "d": "dumpable", "s": "signal", "t": "time", "c": "rlimit", "C": "cpu"}
_TEXT = {
    "h": ("hostname", r"[^/]+?"),
    "e": ("comm", r"[^/]{0,15}?"),
    "E": ("exe_mangled", r"![^/]*?"),
    "f": ("filename", r"[^/]+?"),
}


@dataclass(frozen=True)
class NameFields:
    """What a core's file name says. Every field is None when the name does
    not carry it. ``time`` is seconds since the epoch (systemd's microseconds
    are kept in ``time_usec``)."""

    pid: int | None = None
    global_pid: int | None = None
    tid: int | None = None
    uid: int | None = None
    gid: int | None = None
    signal: int | None = None
    time: int | None = None
    time_usec: int | None = None
    comm: str | None = None
    exe: str | None = None
    hostname: str | None = None
    boot_id: str | None = None
    rlimit: int | None = None
    dumpable: int | None = None
    compression: compressed.Compression | None = None


@dataclass(frozen=True)
class CorePattern:
    """A parsed kernel.core_pattern. For a file pattern, ``directory`` is the
    fixed part of the path before any specifier ("" for the crashing
    process's cwd when the pattern is relative, and ``relative`` is True);
    ``name_regex`` matches the rest (which may hold "/" when a specifier sits
    in a directory component: ``nested``)."""

    raw: str
    kind: PatternKind
    uses_pid: bool
    directory: str | None = None
    relative: bool = False
    nested: bool = False
    name_regex: re.Pattern[str] | None = None
    specifiers: tuple[str, ...] = ()
    pipe_argv: tuple[str, ...] = ()

    def match(self, name: str) -> NameFields | None:
        """The fields of a file name (relative to ``directory``) this pattern
        could have produced; None when it could not."""
        if self.name_regex is None:
            return None
        m = self.name_regex.fullmatch(name)
        if m is None:
            return None
        g = {k: v for k, v in m.groupdict().items() if v is not None}

        def num(key: str) -> int | None:
            return int(g[key]) if key in g else None

        exe = g["exe_mangled"].replace("!", "/") if "exe_mangled" in g else None
        return NameFields(pid=num("pid") if "pid" in g else num("uses_pid"),
                          global_pid=num("global_pid"), tid=num("tid"), uid=num("uid"),
                          gid=num("gid"), signal=num("signal"), time=num("time"),
                          comm=g.get("comm"), exe=exe, hostname=g.get("hostname"),
                          rlimit=num("rlimit"), dumpable=num("dumpable"))


def parse_core_pattern(pattern: str, uses_pid: bool) -> CorePattern:
    """Parse the text of /proc/sys/kernel/core_pattern (``uses_pid`` is
    /proc/sys/kernel/core_uses_pid != 0)."""
    raw = pattern.rstrip("\n")
    if raw.startswith("|"):
        return CorePattern(raw, "pipe", uses_pid, pipe_argv=tuple(raw[1:].split()))
    if not raw:
        # An empty pattern names no file: the kernel writes no core.
        return CorePattern(raw, "none", uses_pid)
    parts: list[str] = []
    seen: set[str] = set()
    specs: list[str] = []
    i = 0
    has_p = False
    while i < len(raw):
        ch = raw[i]
        if ch != "%":
            parts.append(re.escape(ch))
            i += 1
            continue
        if i + 1 >= len(raw):
            break  # a trailing lone "%" is dropped
        spec = raw[i + 1]
        i += 2
        if spec == "%":
            parts.append("%")
            continue
        specs.append(spec)
        has_p = has_p or spec == "p"
        if spec in _NUMERIC:
            name, rx = _NUMERIC[spec], r"\d+"
        elif spec in _TEXT:
            name, rx = _TEXT[spec]
        else:
            continue  # unknown: expands to nothing
        # A specifier used twice expands to the same text: a backreference.
        parts.append(f"(?P={name})" if name in seen else f"(?P<{name}>{rx})")
        seen.add(name)
    if uses_pid and not has_p:
        parts.append(r"\.(?P<uses_pid>\d+)")
    body = "".join(parts)
    # Split off the fixed directory: the part before the last "/" that comes
    # before any specifier.
    literal_end = raw.find("%")
    fixed = raw if literal_end < 0 else raw[:literal_end]
    cut = fixed.rfind("/")
    relative = not raw.startswith("/")
    if cut < 0:
        directory, rest_rx = "", body
    else:
        directory = raw[:cut] or "/"
        # The regex parts for raw[:cut + 1] are one per character (no
        # specifier comes before cut), so drop that many.
        rest_rx = "".join(parts[cut + 1:])
    nested = "/" in raw[cut + 1:].replace("%%", "")
    return CorePattern(raw, "file", uses_pid, directory=directory, relative=relative,
                       nested=nested, name_regex=re.compile(rest_rx, re.DOTALL),
                       specifiers=tuple(specs))


# ---------------------------------------------------------------------------
# systemd-coredump
#
# src/coredump/coredump.c (systemd/systemd), make_filename():
#   "core.%s.%s." SD_ID128_FORMAT_STR ".%s.%s" of the escaped comm, uid, the
#   boot id (32 lowercase hex digits), pid and the timestamp in microseconds
#   (the kernel's %t seconds with "000000" appended in older releases);
#   save_external_coredump() then appends the compressor's extension
#   (".zst", ".xz" or ".lz4").
# Each part goes through filename_escape(s), defined there as
#   xescape(s, "./ "): src/basic/escape.c writes "\xNN" (two lowercase hex
#   digits) for every byte below 0x20 or at and above 0x7f, for "\" and for
#   the listed ".", "/" and " " -- so an escaped comm holds no ".", and the
#   name splits unambiguously on ".".
# fix_xattr() in the same file sets user.coredump.{pid,uid,gid,signal,
#   timestamp,rlimit,hostname,comm,exe} on the file, values as text.

_SYSTEMD_NAME = re.compile(
    r"core\.(?P<comm>[^.]*)\.(?P<uid>\d+)\.(?P<boot>[0-9a-f]{32})\.(?P<pid>\d+)"
    r"\.(?P<usec>\d+)(?:\.(?P<ext>zst|xz|lz4))?")
_EXT_KIND: dict[str, compressed.Compression] = {"zst": "zstd", "xz": "xz", "lz4": "lz4"}
_XESCAPE = re.compile(r"\\x([0-9a-fA-F]{2})")

SYSTEMD_XATTRS = ("pid", "uid", "gid", "signal", "timestamp", "rlimit", "hostname", "comm",
                  "exe")


def systemd_unescape(text: str) -> str:
    """Undo systemd's xescape() (bytes that are not UTF-8 become U+FFFD)."""
    raw = _XESCAPE.sub(lambda m: f"\udc00{m.group(1)}", text)
    out = bytearray()
    i = 0
    while i < len(raw):
        if raw[i] == "\udc00":
            out.append(int(raw[i + 1:i + 3], 16))
            i += 3
        else:
            out += raw[i].encode()
            i += 1
    return out.decode("utf-8", "replace")


def parse_systemd_name(name: str) -> NameFields | None:
    """The fields of a systemd-coredump file name; None for another name."""
    m = _SYSTEMD_NAME.fullmatch(name)
    if m is None:
        return None
    usec = int(m["usec"])
    return NameFields(pid=int(m["pid"]), uid=int(m["uid"]), time=usec // 1_000_000,
                      time_usec=usec, comm=systemd_unescape(m["comm"]), boot_id=m["boot"],
                      compression=_EXT_KIND[m["ext"]] if m["ext"] else None)


@dataclass(frozen=True)
class SystemdMeta:
    """systemd-coredump's user.coredump.* extended attributes of one file;
    None where absent or unparsable. ``raw`` keeps every attribute found."""

    pid: int | None
    uid: int | None
    gid: int | None
    signal: int | None
    timestamp_usec: int | None
    rlimit: int | None
    hostname: str | None
    comm: str | None
    exe: str | None
    raw: tuple[tuple[str, str], ...] = ()


def systemd_xattrs(fd: int) -> SystemdMeta:
    """Read the user.coredump.* attributes from an open descriptor (never a
    path: the file was opened without following links)."""
    found: dict[str, str] = {}
    try:
        names = os.listxattr(fd)
    except OSError as exc:
        if exc.errno not in (errno.ENOTSUP, errno.ENODATA):
            raise
        names = []
    for name in names:
        if not name.startswith("user.coredump."):
            continue
        try:
            value = os.getxattr(fd, name)
        except OSError:
            continue  # removed meanwhile
        found[name.removeprefix("user.coredump.")] = value[:4096].decode("utf-8", "replace")

    def num(key: str) -> int | None:
        text = found.get(key)
        return int(text) if text is not None and text.isdigit() else None

    return SystemdMeta(pid=num("pid"), uid=num("uid"), gid=num("gid"), signal=num("signal"),
                       timestamp_usec=num("timestamp"), rlimit=num("rlimit"),
                       hostname=found.get("hostname"), comm=found.get("comm"),
                       exe=found.get("exe"), raw=tuple(sorted(found.items())))


# ---------------------------------------------------------------------------
# apport
#
# Core files: apport/fileutils.py (canonical/apport), get_core_path():
#   f"core.{exe}.{uid}.{get_boot_id()}.{pid}.{timestamp}" in
#   /var/lib/apport/coredump, where exe is the executable's path with "/" and
#   "." replaced by "_", the boot id is /proc/sys/kernel/random/boot_id as
#   read (a dashed UUID), and the timestamp is the process's start time in
#   clock ticks since boot (field 22 of /proc/PID/stat); pid and timestamp
#   are "unknown" when apport had no pid.

_APPORT_NAME = re.compile(
    r"core\.(?P<exe>[^.]+)\.(?P<uid>\d+)\.(?P<boot>[0-9a-f-]{36})\.(?P<pid>\d+|unknown)"
    r"\.(?P<start>\d+|unknown)")


@dataclass(frozen=True)
class ApportCoreName:
    exe_mangled: str  # "/" and "." both became "_": the path cannot be recovered
    uid: int
    boot_id: str
    pid: int | None
    start_ticks: int | None


def parse_apport_core_name(name: str) -> ApportCoreName | None:
    m = _APPORT_NAME.fullmatch(name)
    if m is None:
        return None
    return ApportCoreName(m["exe"], int(m["uid"]), m["boot"],
                          None if m["pid"] == "unknown" else int(m["pid"]),
                          None if m["start"] == "unknown" else int(m["start"]))


# .crash reports: problem_report.py (canonical/apport), ProblemReport.write()
# and load(): "Key: value" lines, a value continued on lines starting with a
# space; a binary value is "Key: base64" followed by continuation lines,
# *each* the base64 of one block on its own (so lines are decoded one by
# one, never joined). The blocks, concatenated, are a gzip stream (apport
# writes the gzip header as the first block, raw deflate, then CRC and size),
# or in old reports a bare zlib stream (load() falls back to zlib when the
# first block lacks the gzip magic); newer apport writes zstd. zlib's
# automatic header detection (32 + MAX_WBITS) takes gzip and zlib alike.

# Fields a .crash may hold that carry secrets; never read into memory here.
_SECRET_FIELDS = frozenset({"ProcCmdline", "ProcEnviron", "CoreDump", "ProcMaps",
                            "UserGroups", "JournalErrors"})


@dataclass(frozen=True)
class CrashReport:
    """The metadata of an apport .crash file (secret-bearing fields such as
    ProcCmdline and ProcEnviron are skipped, never kept). ``coredump_offset``
    is where the CoreDump: field's first continuation line starts, None when
    the report has none."""

    fields: tuple[tuple[str, str], ...]
    coredump_offset: int | None
    binary_keys: tuple[str, ...]

    def get(self, key: str) -> str | None:
        return dict(self.fields).get(key)

    @property
    def signal(self) -> int | None:
        text = self.get("Signal")
        return int(text) if text is not None and text.isdigit() else None


_MAX_TEXT_VALUE = 64 * 1024


def read_crash_report(f: BinaryIO, *, path: str = "<crash>",
                      stop_at_core: bool = True) -> CrashReport:
    """Read a .crash file's keys; binary values are skipped line by line,
    never held. apport writes every text key before the binary ones
    (ProblemReport._get_sorted_keys), so by default reading stops at the
    CoreDump: key instead of reading a large core's lines; keys appended
    later (add_to_existing) need ``stop_at_core=False``."""
    fields: list[tuple[str, str]] = []
    binary: list[str] = []
    key: str | None = None
    value = bytearray()
    skipping = False
    offset = 0
    core_at: int | None = None
    lineno = 0

    def finish() -> None:
        if key is not None and not skipping and key not in _SECRET_FIELDS:
            fields.append((key, value.decode("utf-8", "replace")))

    for line in f:
        lineno += 1
        offset += len(line)
        if line.startswith(b" "):
            if key is None:
                raise InputError(f"line {lineno}: a continuation line before any key", path=path)
            if not skipping and len(value) < _MAX_TEXT_VALUE:
                if value:
                    value += b"\n"
                value += line[1:].rstrip(b"\n")
            continue
        finish()
        if not line.strip():
            key = None
            continue
        k, sep, v = line.partition(b":")
        if not sep:
            raise InputError(f"line {lineno}: no ':' between key and value "
                             "(not an apport .crash file?)", path=path)
        try:
            key = k.decode("ascii")
        except UnicodeDecodeError as exc:
            raise InputError(f"line {lineno}: a key that is not ASCII", path=path) from exc
        value = bytearray()
        skipping = v.strip() == b"base64" or key in _SECRET_FIELDS
        if v.strip() == b"base64":
            binary.append(key)
            if key == "CoreDump":
                core_at = offset
                if stop_at_core:
                    break
        else:
            value += v.strip()
    finish()
    return CrashReport(tuple(fields), core_at, tuple(binary))


def iter_crash_coredump(f: BinaryIO, report: CrashReport, *,
                        path: str = "<crash>") -> Iterator[bytes]:
    """The decompressed core of a .crash file's CoreDump: field, as chunks:
    one base64 line, one decompression step at a time (memory stays bounded
    by a line and the decompressor's window). ``f`` must be seekable."""
    if report.coredump_offset is None:
        raise InputError("the report has no CoreDump: field", path=path)
    f.seek(report.coredump_offset)
    zd: zstandard.ZstdDecompressionObj | None = None
    gz: zlib._Decompress | None = None
    done = False
    for lineno, line in enumerate(f, 1):
        if not line.startswith(b" "):
            break
        try:
            block = base64.b64decode(line[1:].strip(), validate=True)
        except binascii.Error as exc:
            raise CoreFormatError(f"CoreDump: line {lineno} is not base64 ({exc})",
                                  path=path) from exc
        if not block:
            continue
        if zd is None and gz is None:
            if compressed.detect(block) == "zstd":
                zd = zstandard.ZstdDecompressor().decompressobj()
            else:
                gz = zlib.decompressobj(32 + zlib.MAX_WBITS)
        try:
            if zd is not None:
                for i in range(0, len(block), 2048):
                    out = zd.decompress(block[i:i + 2048])
                    if out:
                        yield out
                done = bool(zd.eof)
            elif gz is not None:
                data = block
                while data:
                    out = gz.decompress(data, 1 << 20)
                    if out:
                        yield out
                    data = gz.unconsumed_tail
                done = gz.eof
        except (zstandard.ZstdError, zlib.error) as exc:
            raise CoreFormatError(f"CoreDump: damaged compressed data ({exc})",
                                  path=path) from exc
    if not done:
        raise CoreFormatError("CoreDump: the compressed stream ends early", path=path)


def open_crash_coredump(f: BinaryIO, report: CrashReport, *, path: str = "<crash>") -> BinaryIO:
    """A file object reading the decompressed core of a .crash file."""
    return io.BufferedReader(compressed.ChunkReader(iter_crash_coredump(f, report, path=path)),
                             buffer_size=1 << 17)


# ---------------------------------------------------------------------------
# Scanning one directory

Status = Literal["candidate", "busy", "rejected"]
Reason = Literal["symlink", "fifo", "device", "socket", "directory", "not_core", "empty",
                 "owner", "hardlinked", "unreadable", "vanished", "growing",
                 "segments_past_end", "world_writable", "not_apport"]
Format = Literal["elf", "zstd", "xz", "lz4", "gzip", "apport-crash"]
Naming = Literal["core_pattern", "systemd", "apport", "unknown"]

ET_CORE = 4
PN_XNUM = 0xFFFF
_PEEK = 4096


@dataclass(frozen=True)
class ScanEntry:
    """One directory entry, judged. ``reason`` says why a file is rejected
    or busy; ``detail`` says it in words. Candidates carry what the name and
    the first bytes say. ``truncated``: an ELF core whose segments reach past
    the file's end and whose writer is gone (kept: a cut core is evidence)."""

    name: str
    status: Status
    reason: Reason | None = None
    detail: str = ""
    format: Format | None = None
    naming: Naming = "unknown"
    fields: NameFields | None = None
    size: int | None = None
    uid: int | None = None
    gid: int | None = None
    mode: int | None = None
    mtime_ns: int | None = None
    dev: int | None = None
    ino: int | None = None
    truncated: bool | None = None
    extent: int | None = None  # bytes the ELF headers say the file should hold


@dataclass(frozen=True)
class ScanOptions:
    """``pattern``: the core_pattern that writes into this directory, to
    read its names; ``interval``: seconds between the two fstat passes;
    ``settle``: a core with segments past its end is busy while younger than
    this, or while a process with the pid its name gives, started before
    the file's last write, exists -- but not once it is ``give_up`` seconds
    old: a kernel writes a core in minutes at most, and an unrelated
    long-lived process may hold a reused pid; ``plausible_owner``:
    whether a file's owner could have written this core (default: root, or
    the uid the name gives, or any uid when the name gives none)."""

    pattern: CorePattern | None = None
    interval: float = 0.05
    settle: float = 30.0
    give_up: float = 3600.0
    plausible_owner: Callable[[os.stat_result, NameFields | None], bool] | None = None
    now: Callable[[], float] = field(default=time.time)
    proc: str = "/proc"


def _default_owner(st: os.stat_result, fields: NameFields | None) -> bool:
    if st.st_uid == 0:
        return True
    if fields is not None and fields.uid is not None:
        return st.st_uid == fields.uid
    return True


def open_dir(path: str) -> int:
    """A descriptor for a directory, not followed if it is a symlink."""
    try:
        return os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        raise InputError(f"cannot open the directory: {exc.strerror}", path=path) from exc


def open_entry(dir_fd: int, name: str) -> int:
    """Open a directory entry for reading: never through a symlink
    (O_NOFOLLOW), never blocking on a FIFO or a device (O_NONBLOCK), never
    making a terminal ours (O_NOCTTY)."""
    return os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY
                   | os.O_CLOEXEC, dir_fd=dir_fd)


def elf_extent(head: bytes, read: Callable[[int, int], bytes]) -> tuple[bool, int | None]:
    """(is an ELF core, the end of its furthest PT_LOAD/PT_NOTE data) from the
    first bytes and a reader. The extent is None when the headers cannot be
    read (a core cut inside its own headers). ELF64 little-endian only: the
    other layouts are not cores crashkit reads."""
    if len(head) < 18 or not head.startswith(b"\x7fELF"):
        return False, None
    if head[4] != 2 or head[5] != 1 or len(head) < L.ELF64_EHDR.size:
        # A 32-bit or big-endian core is still a core: e_type at 16.
        etype = int.from_bytes(head[16:18], "little" if head[5] == 1 else "big")
        return etype == ET_CORE, None
    ehdr = L.ELF64_EHDR.unpack(head[:L.ELF64_EHDR.size])
    etype, phoff, phentsize, phnum = ehdr[1], ehdr[5], ehdr[9], ehdr[10]
    shoff = ehdr[6]
    if etype != ET_CORE:
        return False, None
    if phnum == PN_XNUM and shoff:
        # More than 0xfffe headers: the count is section header 0's sh_info
        # (ELF gABI, "Program Header"; the kernel's fill_extnum_info).
        sh0 = read(shoff, 64)
        if len(sh0) < 64:
            return True, None
        phnum = int.from_bytes(sh0[44:48], "little")
    if phentsize != L.ELF64_PHDR.size or phnum == 0:
        return True, None
    raw = read(phoff, phnum * phentsize)
    if len(raw) < phnum * phentsize:
        return True, None
    end = phoff + phnum * phentsize
    for ptype, _f, off, _va, _pa, filesz, _m, _al in L.ELF64_PHDR.iter_unpack(raw):
        if ptype in (L.PT_LOAD, L.PT_NOTE) and filesz:
            end = max(end, off + filesz)
    return True, end


def _btime(proc: str) -> int | None:
    try:
        with open(os.path.join(proc, "stat"), "rb") as f:
            for line in f:
                if line.startswith(b"btime "):
                    return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


def writer_may_live(pid: int | None, mtime: float, proc: str = "/proc") -> bool:
    """Whether the process that wrote a core (its pid from the file name)
    may still be writing it: a process with that pid exists and started
    before the file was last written. A process started later cannot be
    the writer (the pid was reused). Used only to *postpone* a file, so a
    wrong yes costs one run's delay, never a core taken early (DESIGN.md:
    never trust /proc/<pid> of a pid that may have been reused)."""
    if pid is None:
        return False
    try:
        with open(os.path.join(proc, str(pid), "stat"), "rb") as f:
            text = f.read()
    except OSError:
        return False
    btime = _btime(proc)
    try:
        # Field 22, starttime in clock ticks since boot (proc(5)); the comm
        # in field 2 may hold spaces and parentheses, so count from the last ")".
        start_ticks = int(text[text.rindex(b")") + 2:].split()[19])
    except (ValueError, IndexError):
        return True
    if btime is None:
        return True
    started = btime + start_ticks / os.sysconf("SC_CLK_TCK")
    return started <= mtime + 1


def _name_fields(name: str, opts: ScanOptions) -> tuple[Naming, NameFields | None]:
    sd = parse_systemd_name(name)
    if sd is not None:
        return "systemd", sd
    ap = parse_apport_core_name(name)
    if ap is not None:
        return "apport", NameFields(pid=ap.pid, uid=ap.uid, boot_id=ap.boot_id)
    if opts.pattern is not None:
        pf = opts.pattern.match(name)
        if pf is not None:
            return "core_pattern", pf
    return "unknown", None


def _judge(dir_fd: int, name: str, opts: ScanOptions) -> tuple[ScanEntry, os.stat_result | None]:
    try:
        lst = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return ScanEntry(name, "rejected", "vanished", "removed while scanning"), None
    mode = lst.st_mode
    kinds: tuple[tuple[Callable[[int], bool], Reason, str], ...] = (
        (stat.S_ISLNK, "symlink", "a symbolic link (never followed)"),
        (stat.S_ISFIFO, "fifo", "a FIFO"),
        (stat.S_ISCHR, "device", "a character device"),
        (stat.S_ISBLK, "device", "a block device"),
        (stat.S_ISSOCK, "socket", "a socket"),
        (stat.S_ISDIR, "directory", "a directory"),
    )
    for test, reason, detail in kinds:
        if test(mode):
            return ScanEntry(name, "rejected", reason, detail, mode=mode, uid=lst.st_uid), None
    try:
        fd = open_entry(dir_fd, name)
    except FileNotFoundError:
        return ScanEntry(name, "rejected", "vanished", "removed while scanning"), None
    except OSError as exc:
        why: Reason = "symlink" if exc.errno == errno.ELOOP else "unreadable"
        return ScanEntry(name, "rejected", why, exc.strerror or str(exc)), None
    try:
        st = os.fstat(fd)
        naming, fields = _name_fields(name, opts)
        proto = ScanEntry(name, "rejected", naming=naming, fields=fields, size=st.st_size,
                          uid=st.st_uid, gid=st.st_gid, mode=st.st_mode,
                          mtime_ns=st.st_mtime_ns, dev=st.st_dev, ino=st.st_ino)

        def reject(reason: Reason, detail: str) -> tuple[ScanEntry, None]:
            return replace(proto, reason=reason, detail=detail), None

        if not stat.S_ISREG(st.st_mode):
            return reject("unreadable", "not a regular file any more (swapped while scanning)")
        if st.st_size == 0:
            # Kept for the second pass: a core the kernel has only just
            # created is empty for an instant, and then it grows.
            return replace(proto, reason="empty", detail="zero bytes"), st
        if st.st_nlink > 1:
            return reject("hardlinked", f"{st.st_nlink} hard links: a kernel-written core has one")
        if st.st_mode & stat.S_IWOTH:
            return reject("world_writable", "writable by anyone: not as the kernel leaves a core")
        if not (opts.plausible_owner or _default_owner)(st, fields):
            return reject("owner", f"owned by uid {st.st_uid}, not by root or the crashing user")
        head = os.pread(fd, _PEEK, 0)
        kind = compressed.detect(head)
        size = st.st_size

        def read(off: int, n: int) -> bytes:
            return os.pread(fd, n, off) if off < size else b""

        if kind is not None:
            return replace(proto, status="candidate", detail=f"{kind}-compressed",
                           format=kind), st
        if head.startswith(b"ProblemType:") or name.endswith(".crash"):
            if not head.startswith(b"ProblemType:") and b"\nProblemType:" not in head:
                return reject("not_apport", "named .crash but no ProblemType: field")
            return replace(proto, status="candidate", detail="apport crash report",
                           format="apport-crash", naming="apport"), st
        is_core, extent = elf_extent(head, read)
        if not is_core:
            what = "an ELF file but not a core" if head.startswith(b"\x7fELF") else "wrong magic"
            return reject("not_core", f"not an ELF core ({what})")
        truncated = extent is None or extent > size
        if truncated:
            age = opts.now() - st.st_mtime
            young = age < opts.settle
            pid = fields.pid if fields is not None else None
            if young or (age < opts.give_up and writer_may_live(pid, st.st_mtime, opts.proc)):
                because = f"written in the last {opts.settle:.0f} s" if young else \
                    f"pid {pid} still exists"
                return replace(proto, status="busy", reason="segments_past_end",
                               detail=f"segments reach past the end ({because}): "
                               "left for the next run", format="elf", truncated=True,
                               extent=extent), None
        return replace(proto, status="candidate", detail="ELF core", format="elf",
                       truncated=truncated, extent=extent), st
    finally:
        os.close(fd)


def scan_dir(directory: str | int, opts: ScanOptions | None = None) -> list[ScanEntry]:
    """Judge every entry of a directory (a path, opened with O_NOFOLLOW, or
    an open directory descriptor, which stays open). Two fstat passes
    ``opts.interval`` apart, one sleep for the whole directory: a candidate
    whose size or mtime moved in between is reported busy ("growing")."""
    opts = opts or ScanOptions()
    own = isinstance(directory, str)
    dir_fd = open_dir(directory) if isinstance(directory, str) else directory
    try:
        with os.scandir(dir_fd) as it:
            names = sorted(e.name for e in it)
        first = [_judge(dir_fd, n, opts) for n in names]
        if any(st is not None for _e, st in first):
            time.sleep(opts.interval)
        out: list[ScanEntry] = []
        for entry, st in first:
            if st is None or entry.status == "busy":
                out.append(entry)
                continue
            try:
                fd = open_entry(dir_fd, entry.name)
            except OSError:
                out.append(ScanEntry(entry.name, "rejected", "vanished",
                                     "removed or replaced while scanning"))
                continue
            try:
                again = os.fstat(fd)
            finally:
                os.close(fd)
            if (again.st_ino, again.st_dev) != (st.st_ino, st.st_dev):
                out.append(ScanEntry(entry.name, "rejected", "vanished",
                                     "replaced while scanning"))
            elif again.st_size != st.st_size or again.st_mtime_ns != st.st_mtime_ns:
                out.append(replace(
                    entry, status="busy", reason="growing",
                    detail=f"still being written ({st.st_size} then {again.st_size} bytes): "
                    "left for the next run", size=again.st_size, mtime_ns=again.st_mtime_ns))
            else:
                out.append(entry)
        return out
    finally:
        if own:
            os.close(dir_fd)
