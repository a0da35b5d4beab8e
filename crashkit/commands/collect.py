"""``crashkit collect``: gather every core on the host into the store.

Where cores land is read from the host, never assumed: the directory of a
path ``kernel.core_pattern``; for a relative pattern, the working directory
of nginx's workers (``working_directory`` of its config) and the core
directory ``crashkit setup`` makes; systemd-coredump's and apport's stores;
and any ``--from DIR``. Each source is scanned without following a link or
blocking on a FIFO (crashkit.host.coresources); each core is taken by
crashkit.writers.store (link or copy, verify, record, then remove), and
analysed from the store's own verified copy, so the facts in the index are
those of the bytes kept.
"""

from __future__ import annotations

import dataclasses
import os
import socket
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field

from crashkit.analysis.collect import (
    LogExit,
    StoredCore,
    flood_drops,
    link_log_crashes,
    log_signature,
    retention_drops,
)
from crashkit.commands.analyze import fits_front, plain_path
from crashkit.errors import CrashkitError, InputError
from crashkit.host import coresources as cs
from crashkit.host import proc
from crashkit.model.collect import CollectResult, FileResult, LogCrash, Pruned, SourceReport
from crashkit.model.host import OomEvent
from crashkit.model.readiness import CORE_PATTERN, CORE_USES_PID, SYSTEMD_COREDUMP_DIR
from crashkit.store import index as ix
from crashkit.writers import store as W

APPORT_CORE_DIR = "/var/lib/apport/coredump"
APPORT_CRASH_DIR = "/var/crash"
SETUP_CORE_DIR = "/var/lib/crashkit/cores"  # analysis.setup.DEFAULT_CORE_DIR
STORE_ENV = "CRASHKIT_STORE"
FLOOD_KEEP = 20


def default_store() -> str:
    return os.environ.get(STORE_ENV) or W.DEFAULT_STORE


@dataclass(frozen=True)
class Options:
    store: str = W.DEFAULT_STORE
    from_dirs: tuple[str, ...] = ()
    auto: bool = True  # look where this host's settings put cores
    dry_run: bool = False
    reindex: bool = False
    use_gdb: bool = True  # signatures as `analyze` gives them; off: the notes alone
    keep_sources: bool = False  # copy, never remove a source
    conf: str | None = None
    nginx: str = "nginx"
    prefix: str | None = None
    root: str = "/"  # where systemd's and apport's stores are looked for
    error_logs: tuple[str, ...] = ()  # read for crashes without a core (default: the config's)
    kernel_log: str | None = None  # a saved kernel log instead of this host's (OOM kills)
    flood: int = FLOOD_KEEP
    max_size: int | None = None
    max_age: int | None = None
    keep_per_signature: int | None = None
    settle: float = 30.0
    core_pattern: str | None = None  # instead of the kernel's (an image's, a test's)
    progress: Callable[[str], None] | None = None
    step: Callable[[int, int, str], None] | None = None  # (done, total, core): a progress bar
    sentry_dsn: str | None = None  # --sentry: send what is not sent yet, after collecting
    sentry_from: str | None = None


@dataclass(frozen=True)
class Place:
    kind: ix.SourceKind
    path: str
    why: str
    pattern: cs.CorePattern | None = None
    keeps_source: bool = False


@dataclass
class _Found:
    places: list[Place] = field(default_factory=list)
    absent: list[SourceReport] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    error_logs: list[str] = field(default_factory=list)


def _under(root: str, path: str) -> str:
    return path if root in ("", "/") else os.path.join(root, path.lstrip("/"))


def discover(opts: Options) -> _Found:
    """The places cores land on this host, each with how crashkit knows."""
    found = _Found()
    raw = opts.core_pattern if opts.core_pattern is not None else proc.read_sysctl(CORE_PATTERN)
    uses_pid = (proc.read_sysctl(CORE_USES_PID) or "0").strip() not in ("", "0")
    pattern = cs.parse_core_pattern(raw, uses_pid) if raw is not None else None
    seen: set[str] = set()

    def add(place: Place) -> None:
        real = os.path.normpath(place.path)
        if real in seen:
            return
        seen.add(real)
        if not os.path.lexists(real):
            found.absent.append(SourceReport(place.kind, real, place.why, "absent",
                                             "does not exist", keeps_source=place.keeps_source))
            return
        found.places.append(Place(place.kind, real, place.why, place.pattern,
                                  place.keeps_source))

    for d in opts.from_dirs:
        add(Place("from", d, "--from", pattern))
    if not opts.auto:
        return found
    if pattern is not None and pattern.kind == "file" and not pattern.relative:
        if pattern.nested:
            found.notes.append(f"kernel.core_pattern {pattern.raw!r} puts a specifier in a "
                               "directory name: pass the directories with --from")
        elif pattern.directory:
            add(Place("core_pattern", pattern.directory,
                      f"kernel.core_pattern is {pattern.raw!r}", pattern))
    elif pattern is not None and pattern.kind == "file":
        why = f"kernel.core_pattern {pattern.raw!r} is relative: cores land in the crashing " \
              "process's working directory"
        for wd in _nginx_dirs(opts, found):
            add(Place("working_directory", wd, why + " (nginx's working_directory)", pattern))
        add(Place("working_directory", _under(opts.root, SETUP_CORE_DIR),
                  why + " (the core directory crashkit setup makes)", pattern))
    elif pattern is not None and pattern.kind == "pipe":
        found.notes.append(f"kernel.core_pattern pipes cores to {pattern.pipe_argv[0]}")
    add(Place("systemd", _under(opts.root, SYSTEMD_COREDUMP_DIR), "systemd-coredump's store",
              None, keeps_source=True))
    add(Place("apport-core", _under(opts.root, APPORT_CORE_DIR), "apport's core directory",
              None, keeps_source=True))
    add(Place("apport-crash", _under(opts.root, APPORT_CRASH_DIR), "apport's crash reports",
              None, keeps_source=True))
    return found


def _nginx_dirs(opts: Options, found: _Found) -> list[str]:
    """nginx's working_directory (and its error logs, for crashes without a
    core), read as setup reads the config. No config: nothing, said once."""
    from crashkit.nginx import config as nc

    try:
        _where, cfg = nc.open_config(opts.conf, opts.nginx, opts.prefix)
    except CrashkitError as exc:
        if opts.conf is not None:
            raise
        found.notes.append(f"no nginx config read ({exc}): its working_directory is not "
                           "searched")
        return []
    found.error_logs.extend(t.path for t in nc.error_logs(cfg)
                            if t.path.startswith("/") and t.path != "/dev/null")
    d = nc._last(cfg, "working_directory")
    if d is None or not d.args:
        found.notes.append("nginx's config sets no working_directory: its workers dump core "
                           "in the directory nginx was started from (pass it with --from)")
        return []
    return [nc.resolve(cfg, d.args[0])]


# -- facts from the stored copy ------------------------------------------------

def facts_from(path: str, use_gdb: bool, when: int | None) -> W.Facts:
    """Analyse one core (as `crashkit analyze` does) for the index."""
    from crashkit.commands import analyze as A

    a = A.analyze(path, A.Options(core=path, use_gdb=use_gdb, sender_now=False))
    core = a.core
    exe_mod = next((m for m in core.modules if m.path == core.exe), None)
    pkg = a.host.packages.get(core.exe or "") if core.exe else None
    v, sig = a.verdict, a.signature
    return W.Facts(
        pid=core.process.pid if core.process else None, exe=core.exe,
        signal=core.signal.number if core.signal else None,
        si_code=core.signal.code if core.signal else None, time=when,
        exe_build_id=exe_mod.build_id if exe_mod else None,
        modules=tuple(ix.ModuleRef(m.path, m.build_id) for m in core.modules),
        truncated=core.truncated, signature=sig.hash if sig else "",
        signature_text=sig.text if sig else None,
        summary=v.summary if v else a.summary,
        blamed_module=v.module if v else None, blamed_function=v.function if v else None,
        confidence=v.confidence if v else None, host=socket.gethostname(),
        analysis="gdb" if a.gdb_used else "notes",
        exe_version=pkg.version if pkg else None)


def _crash_time(entry: cs.ScanEntry) -> int | None:
    f = entry.fields
    if f is not None and f.time is not None:
        return f.time
    if f is not None and f.time_usec is not None:
        return f.time_usec // 1_000_000
    return entry.mtime_ns // 1_000_000_000 if entry.mtime_ns is not None else None


# -- the verb -----------------------------------------------------------------

def run(opts: Options) -> CollectResult:
    if opts.reindex:
        return _reindex(opts)
    found = discover(opts)
    reports: list[SourceReport] = list(found.absent)
    say = opts.progress or (lambda _m: None)
    if opts.dry_run:
        for place in found.places:
            reports.append(_scan(place, opts, None, say))
        return CollectResult(opts.store, True, _ordered(reports, found), notes=tuple(found.notes))
    with W.open_store(opts.store) as store:
        for place in found.places:
            reports.append(_scan(place, opts, store, say))
        logs = _log_crashes(store, opts, found)
        pruned = _prune(store, opts)
        orphans = W.stored_orphans(store)
        result = CollectResult(opts.store, False, _ordered(reports, found), tuple(logs),
                               tuple(pruned), store.cleaned + orphans, tuple(found.notes))
    if opts.sentry_dsn is None:
        return result
    # After the store's lock is released: a slow server never holds up the
    # next collect. Every crash not yet sent goes, so earlier failures too.
    from crashkit.commands import export

    sent = export.run(export.Options(store=opts.store, dsn=opts.sentry_dsn,
                                     use_gdb=opts.use_gdb, dsn_from=opts.sentry_from,
                                     progress=say))
    return dataclasses.replace(result, export=sent)


def _ordered(reports: list[SourceReport], found: _Found) -> tuple[SourceReport, ...]:
    order = {p.path: i for i, p in enumerate(found.places)}
    return tuple(sorted(reports, key=lambda r: (r.status == "absent", order.get(r.path, 0))))


def _kind_of(place: Place, entry: cs.ScanEntry) -> ix.SourceKind:
    if entry.format == "apport-crash":
        return "apport-crash"
    return place.kind


def _scan(place: Place, opts: Options, store: W.Store | None,
          say: Callable[[str], None]) -> SourceReport:
    try:
        dir_fd = cs.open_dir(place.path)
    except InputError as exc:
        return SourceReport(place.kind, place.path, place.why, "unreadable", exc.message,
                            keeps_source=place.keeps_source)
    try:
        entries = cs.scan_dir(dir_fd, cs.ScanOptions(pattern=place.pattern,
                                                     settle=opts.settle))
        files: list[FileResult] = []
        candidates = [e for e in entries if e.status == "candidate"]
        done = 0
        for e in entries:
            path = os.path.join(place.path, e.name)
            if e.status == "busy":
                files.append(FileResult(e.name, path, "busy", e.detail, size=e.size))
                continue
            if e.status != "candidate":
                if e.reason not in ("vanished",):
                    files.append(FileResult(e.name, path, "rejected", e.detail, size=e.size))
                continue
            if store is None:
                files.append(FileResult(e.name, path, "would_store", e.detail, size=e.size))
                continue
            done += 1
            if opts.step is not None:
                opts.step(done, len(candidates), path)
            else:
                say(f"[{done}/{len(candidates)}] {path}")
            files.append(_take(store, place, e, dir_fd, path, opts))
        return SourceReport(place.kind, place.path, place.why, "scanned",
                            files=tuple(files), keeps_source=place.keeps_source)
    finally:
        os.close(dir_fd)


def _take(store: W.Store, place: Place, e: cs.ScanEntry, dir_fd: int, path: str,
          opts: Options) -> FileResult:
    assert e.format is not None
    src = W.Source(dir_fd, e.name, path, _kind_of(place, e), e.format)
    when = _crash_time(e)
    problems: list[str] = []

    def facts_of(path: str) -> W.Facts:
        try:
            if not opts.use_gdb and fits_front(path):
                # The notes alone, and the whole core decodes in memory: no
                # decompressed copy on disk (it cost ~5 ms of a 1.6 MiB core).
                return facts_from(path, opts.use_gdb, when)
            with plain_path(path) as core:
                return facts_from(core, opts.use_gdb, when)
        except (CrashkitError, OSError) as exc:
            # Kept all the same: a core crashkit cannot read today is still
            # evidence (a newer crashkit, or gdb by hand, may read it).
            why = exc.message if isinstance(exc, CrashkitError) else exc.strerror or str(exc)
            problems.append(f"stored unread: {why}")
            return W.Facts(time=when, host=socket.gethostname(), truncated=bool(e.truncated))

    remove = not (opts.keep_sources or place.keeps_source or e.format == "apport-crash")
    try:
        got = W.ingest(store, src, facts_of, remove_source=remove)
    except W.StoreFullError:
        raise
    except CrashkitError as exc:
        return FileResult(e.name, path, "failed", exc.message, size=e.size)
    row = ix.get_crash(store.conn, store.index_path, got.crash_id)
    detail = "; ".join(problems) or e.detail
    if got.status == "already":
        detail = "already in the store" + ("; source removed" if got.source_removed else "")
    return FileResult(e.name, path, got.status, detail, crash_id=got.crash_id,
                      signature=row.signature if row else None,
                      summary=row.summary if row else None, size=got.size,
                      stored_bytes=got.stored_bytes, method=got.method,
                      source_removed=got.source_removed)


# -- crashes without a core ---------------------------------------------------

_EXIT = rb"worker process (\d+) exited on signal (\d+)( \(core dumped\))?"


def _log_crashes(store: W.Store, opts: Options, found: _Found) -> list[LogCrash]:
    """Workers that died without a core (the OOM killer, SIGKILL, a worker
    that could not dump), from nginx's error logs and the kernel's log,
    linked by pid and time: counted in the index."""
    exits = _log_exits(opts, found)
    kills, kernel_read = _oom_events(opts, found)
    out: list[LogCrash] = []
    host = socket.gethostname()
    for c in link_log_crashes(exits, kills, kernel_read=kernel_read):
        h, text = log_signature(c.signal, c.program, c.cause)
        if c.exit is not None:
            log, line = c.exit.log, c.exit.line
            kind: ix.SourceKind = "error_log"
            # The exit line's own key: the same crash whether or not the
            # kernel's line was still in its ring buffer at an earlier run.
            key = f"{host}\0{c.pid}\0{c.time}\0{c.signal}"
        else:
            assert c.kill is not None
            log, line, kind = opts.kernel_log or _KERNEL_LOG, c.kill.line, "kernel_log"
            # The kernel's own line (its boot-relative stamp included), not
            # the wall time derived from it, which moves by rounding.
            key = f"{host}\0{c.pid}\0oom\0{c.kill.raw or c.kill.line}"
        summary = {
            "oom-kill": f"{c.program} process {c.pid} killed by the kernel's OOM killer "
                        "(SIGKILL, no core)",
            "sigkill": f"worker process {c.pid} killed by SIGKILL, not by the OOM killer "
                       "(the kernel log names no OOM kill of it); no core",
        }.get(c.cause, f"worker process {c.pid} exited on signal {c.signal} without a core")
        crash_id, new = W.record_log_crash(
            store, kind, log, key,
            W.Facts(pid=c.pid, signal=c.signal, time=c.time, signature=h, signature_text=text,
                    summary=summary, host=host, exe=None))
        out.append(LogCrash(c.pid, c.signal, c.time, log, line, crash_id, new, c.cause,
                            c.kill.line if c.kill else None))
    return out


_EXIT = rb"worker process (\d+) exited on signal (\d+)( \(core dumped\))?"
_KERNEL_LOG = "kernel log"


def _log_exits(opts: Options, found: _Found) -> list[LogExit]:
    """nginx's ``worker process N exited on signal S`` lines without
    ``(core dumped)``, from the error logs."""
    import re

    from crashkit.formats.nginx_log import LEVELS, head, parse_time
    from crashkit.nginx import errorlog

    paths = list(dict.fromkeys(list(opts.error_logs) + found.error_logs))
    pattern = re.compile(head(tuple(LEVELS)) + _EXIT)
    out: list[LogExit] = []
    for log in paths:
        if not os.path.isfile(log):
            continue
        try:
            hits = list(errorlog.select([log], pattern))
        except CrashkitError as exc:
            found.notes.append(f"{log}: not read ({exc.message})")
            continue
        for ts, m, _rest in hits:
            if m.group(3):
                continue  # dumped core: the core itself is the record
            try:
                when: int | None = int(parse_time(ts).timestamp())
            except ValueError:
                when = None
            out.append(LogExit(int(m.group(1)), int(m.group(2)), when, log,
                               m.group(0).decode("ascii", "replace")))
    return out


def _oom_events(opts: Options, found: _Found) -> tuple[list[OomEvent], bool]:
    """The OOM killer's kills (a saved --kernel-log, else this host's log:
    read when collect looks at the host, or was given error logs), and
    whether a kernel log was read at all."""
    from crashkit.host import kernlog

    if opts.kernel_log is not None:
        log = kernlog.read_kernel_log_file(opts.kernel_log)
        return kernlog.oom_events(log), True
    if not opts.auto and not opts.error_logs:
        return [], False
    log = kernlog.read_kernel_log(timed=True)
    if not log.lines and log.source.startswith("unreadable"):
        found.notes.append(f"the kernel log is {log.source}: a worker killed by SIGKILL "
                           "cannot be told from an OOM kill (run as root, or pass "
                           "--kernel-log FILE)")
        return [], False
    return kernlog.oom_events(log, boot=kernlog.boot_time()), True


# -- retention ----------------------------------------------------------------

def _stored(store: W.Store) -> list[StoredCore]:
    rows = store.conn.execute(
        "SELECT c.id, c.signature, COALESCE(c.time, c.collected_at, 0), c.stored_name,"
        " g.reported_at FROM crashes c LEFT JOIN groups g ON g.signature = c.signature"
        " WHERE c.stored_name IS NOT NULL").fetchall()
    out = []
    for cid, sig, t, name, reported in rows:
        try:
            size = os.stat(name, dir_fd=store.crashes_fd, follow_symlinks=False).st_size
        except FileNotFoundError:
            size = 0
        out.append(StoredCore(int(cid), str(sig), int(t), size, reported))
    return out


def _prune(store: W.Store, opts: Options) -> list[Pruned]:
    cores = _stored(store)
    drops = flood_drops(cores, opts.flood) if opts.flood > 0 else []
    gone = {d.crash_id for d in drops}
    rest = [c for c in cores if c.crash_id not in gone]
    drops += retention_drops(rest, now=int(time.time()), max_age=opts.max_age,
                             max_size=opts.max_size,
                             keep_per_signature=opts.keep_per_signature)
    out = []
    for d in drops:
        freed = W.drop_core(store, d.crash_id)
        out.append(Pruned(d.crash_id, d.signature, d.why, freed))
    return out


def _reindex(opts: Options) -> CollectResult:
    def facts_for(name: str, _fd: int) -> W.Facts:
        try:
            with plain_path(os.path.join(opts.store, W.CRASHES_DIR, name)) as core:
                return facts_from(core, opts.use_gdb, None)
        except CrashkitError:
            return W.Facts()

    done = W.reindex(opts.store, facts_for=facts_for)
    return CollectResult(opts.store, False, (), reindexed=done.recorded,
                         reindex_skipped=done.skipped)


# -- --watch ------------------------------------------------------------------

# The kernel writes a core and closes it (IN_CLOSE_WRITE); systemd-coredump
# and apport write a temporary name and rename it (IN_MOVED_TO).
_WATCH_QUIET = 0.5  # seconds without events before a collect runs


def watch(opts: Options, emit: Callable[[CollectResult], int],
          stop: Callable[[], bool] = lambda: False, poll: float = 60.0) -> int:
    """Collect now, then again whenever a source directory gets a new file
    (inotify, through inotify_simple: a thin, maintained binding of the
    kernel API, no polling threads), and at least every ``poll`` seconds
    (a source that appears later, a busy core that settles). Runs until
    ``stop()`` or a signal."""
    from inotify_simple import INotify
    from inotify_simple import flags as F

    mask = F.CLOSE_WRITE | F.MOVED_TO | F.CREATE
    status = 0
    with INotify() as ino:
        watched: dict[str, int] = {}
        while not stop():
            result = run(opts)
            if result.count("stored") or result.count("restored") or result.count("failed") \
                    or (result.log_crashes and any(c.new for c in result.log_crashes)):
                status = max(status, emit(result))
            for s in result.sources:
                if s.status == "scanned" and s.path not in watched:
                    with suppress(OSError):
                        watched[s.path] = ino.add_watch(s.path, mask)
            busy = any(f.outcome == "busy" for s in result.sources for f in s.files)
            deadline = time.monotonic() + (min(poll, 5.0) if busy else poll)
            got = False
            while not stop() and time.monotonic() < deadline:
                events = ino.read(timeout=int(_WATCH_QUIET * 1000))
                if events:
                    got = True
                    continue  # wait for a quiet moment: a flood arrives in bursts
                if got:
                    break
    return status
