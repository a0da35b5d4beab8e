"""``crashkit analyze`` end to end: readers in, model out.

gdb is started first (by :mod:`crashkit.launch`, before most imports), all
of its work is queued as soon as the core's notes name the executable and
the threads, and the build-ids and ELF symbols are read while gdb works. If
gdb is missing, hangs or fails, the analysis still holds every fact the
notes give, and ``gdb_error`` says why the backtraces are missing.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Generator, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

# Only what it takes to set gdb to work is imported here; the rest (attribution,
# verdict, symbols) is imported where it is used, once gdb has its work.
from crashkit.elf import layouts as L
from crashkit.elf.core import CoreFile
from crashkit.elf.files import is_elf, regular_file
from crashkit.errors import CrashkitError, GdbError
from crashkit.model.analyze import (
    Analysis,
    CoreFacts,
    CrashContext,
    CrashTime,
    HostFacts,
    Module,
    Package,
    PlacedBy,
    Thread,
)

if TYPE_CHECKING:
    from crashkit.elf.locate import Located
    from crashkit.elf.symbols import Symbolizer
    from crashkit.gdb.backtrace import Pending
    from crashkit.gdb.session import GdbSession
    from crashkit.host.debuginfod import Debuginfod


@dataclass(frozen=True)
class Options:
    exe: str | None = None
    sysroot: str | None = None
    debug_dirs: Sequence[str] = ()
    use_gdb: bool = False
    gdb: str = "gdb"
    gdb_timeout: float = 60.0
    debuginfod: bool = False
    full_frames: int = 0  # arguments and locals for this many innermost frames
    max_frames: int = 256
    redact: bool = True
    error_log: str | None = None  # nginx's error log, for the crashed pid's last lines
    host_facts: bool = True  # look up packages and the signal's sender on this host
    # Whose package to look up: "blamable" (the executable and every module
    # that is not a system library: what a verdict can name) or "all".
    packages: str = "blamable"
    sender_now: bool = True  # say what the signal's sender runs now (not in bundles)
    core: str = ""  # the core file (plain ELF: see :func:`plain_core`)
    conf: str | None = None  # the crashed nginx's config (default: its master's, if it runs)
    display_path: str | None = None  # what the core is called (a compressed original)
    # The decompressed size of a compressed core when known from elsewhere
    # (the store's index): without gdb, the stream's front is all that is read.
    core_size: int | None = None
    # Parse the core in a child under limits (read_facts); False: in this
    # process (the unit tests, which start no process).
    isolate: bool = True


def run(options: Options) -> Analysis:
    """The verb: gdb (usually pre-started by crashkit.launch) and the core."""
    with bundle_core(options) as options, plain_core(options) as options:
        session, gdb_error = start_gdb(options)
        result = analyze(options.core, options, session=session, gdb_error=gdb_error)
    if options.redact:  # the crashed program's command line, as report shows it
        from crashkit.analysis.redact import analysis as redacted

        result = redacted(result)
    return result


def resolve_core(arg: str, store: str) -> str:
    """A core argument as a file: a path, or the id of a crash in the store."""
    return resolve_stored(arg, store)[0]


def resolve_stored(arg: str, store: str) -> tuple[str, int | None]:
    """(the file, its decompressed size when the store's index knows it) of
    a core argument: a path, or the id of a crash in the store."""
    if arg.isdigit() and not os.path.lexists(arg):
        from crashkit.commands.show import stored_core

        path, row = stored_core(store, int(arg))
        return path, row.size
    return arg, None


@contextmanager
def bundle_core(options: Options) -> Iterator[Options]:
    """Options for a ``crashkit report --portable`` bundle given as the core:
    the bundle unpacked in a private temporary directory (regular files and
    directories only, nothing outside it), its core as the core, its files/
    as the sysroot and its debug/ as a debug directory; the analysis still
    calls the core by the bundle's name. Any other file: the options as they are."""
    path = options.core
    try:
        with regular_file(path) as (read, _size):
            gzip = read(0, 2) == b"\x1f\x8b"
    except OSError:
        gzip = False
    if not gzip:
        yield options
        return
    import tarfile  # ~4 ms: only for a gzip file, which may be a bundle

    try:
        archive = tarfile.open(path, "r:gz")  # noqa: SIM115 - closed by the with below
    except (tarfile.TarError, OSError, EOFError):
        yield options  # a gzip-compressed core: plain_core reads it
        return
    import json
    import tempfile

    from crashkit.errors import InputError

    with archive, tempfile.TemporaryDirectory(prefix="crashkit-bundle-") as tmp:
        try:
            members = archive.getmembers()
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise InputError(f"a damaged bundle ({exc})", path=path) from None
        top = {m.name.split("/", 1)[0] for m in members}
        manifest_name = f"{next(iter(top))}/portable.json" if len(top) == 1 else None
        if manifest_name is None or manifest_name not in {m.name for m in members}:
            raise InputError("a tar archive, but not a crashkit report --portable bundle "
                             "(no portable.json): unpack it and pass its core", path=path)
        wanted = [m for m in members if m.isfile() or m.isdir()]
        try:
            archive.extractall(tmp, members=wanted, filter="data")
        except (tarfile.TarError, OSError) as exc:
            raise InputError(f"the bundle cannot be unpacked ({exc})", path=path) from None
        root = os.path.join(tmp, next(iter(top)))
        try:
            with open(os.path.join(root, "portable.json"), encoding="utf-8") as f:
                manifest = json.load(f)
            core = os.path.join(root, os.path.basename(str(manifest["core"])))
        except (OSError, ValueError, KeyError, TypeError):
            raise InputError("the bundle's portable.json cannot be read", path=path) from None
        if not os.path.isfile(core):
            raise InputError("the bundle holds no core", path=path)
        yield dataclasses.replace(
            options, core=core, display_path=path,
            sysroot=options.sysroot or os.path.join(root, "files"),
            debug_dirs=(os.path.join(root, "debug"), *options.debug_dirs))


@contextmanager
def plain_path(path: str) -> Iterator[str]:
    """A path that reads as the plain ELF core ``path`` holds: ``path``
    itself, or for a compressed core (zstd, xz, lz4, gzip: systemd-coredump's,
    the store's) a decompression of it in a private temporary directory,
    removed afterwards. An error that names the temporary file names
    ``path`` instead. A file that cannot be opened is yielded as it is: its
    reader explains."""
    from crashkit.formats.compression import MAGIC_BYTES, detect

    try:
        with regular_file(path) as (read, _size):
            kind = detect(read(0, MAGIC_BYTES))
    except OSError:
        kind = None
    if kind is None:
        yield path
        return
    import tempfile

    from crashkit.elf import compressed

    with tempfile.TemporaryDirectory(prefix="crashkit-") as tmp:
        plain = os.path.join(tmp, "core")
        out = os.open(plain, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            compressed.decompress_to(path, out)
        finally:
            os.close(out)
        try:
            yield plain
        except CrashkitError as exc:
            if exc.path == plain:
                exc.path = path
            raise


@contextmanager
def plain_core(options: Options) -> Iterator[Options]:
    """Options whose ``core`` is a plain ELF file (see :func:`plain_path`);
    the analysis still calls the core by its own name. Without gdb a
    compressed core stays as it is: :func:`open_core` reads the front of
    its stream, so the cost does not grow with the core's size."""
    if not options.use_gdb and compression_of(options.core) is not None:
        yield options
        return
    with plain_path(options.core) as plain:
        yield options if plain == options.core else \
            dataclasses.replace(options, core=plain,
                                display_path=options.display_path or options.core)


def compression_of(path: str) -> str | None:
    """The compression of the file at ``path`` (None: plain, or unreadable)."""
    from crashkit.formats.compression import MAGIC_BYTES, detect

    try:
        with regular_file(path) as (read, _size):
            return detect(read(0, MAGIC_BYTES))
    except OSError:
        return None


def fits_front(path: str) -> bool:
    """Whether the compressed core at ``path`` decompresses whole, and
    properly ended, within the front :func:`open_core` decodes: then every
    fact reads the same from it as from a decompressed copy."""
    from crashkit.elf.compressed import FRONT_BUDGET, FrontImage

    try:
        front = FrontImage(path)
    except CrashkitError:
        return False
    try:
        front.read(FRONT_BUDGET - 1, 1)
        return front.known_size() is not None and front.decoded < FRONT_BUDGET \
            and front.problem is None
    except CrashkitError:
        return False
    finally:
        front.close()


def open_core(path: str, options: Options) -> CoreFile:
    """The core at ``path``; a compressed one read through the front of its
    stream (elf/compressed.FrontImage: at most its first 32 MiB decoded)."""
    if compression_of(path) is None:
        return CoreFile(path)
    from crashkit.elf.compressed import FrontImage

    front = FrontImage(path, size_hint=options.core_size)
    try:
        return CoreFile(path, front=front)
    except BaseException:
        front.close()
        raise


def start_gdb(options: Options) -> tuple[GdbSession | None, str | None]:
    """gdb for this analysis (the pre-started one when it fits); (session, None)
    or (None, why not)."""
    from crashkit.gdb.spawn import SafetyFlags, drop_early

    if not options.use_gdb:
        drop_early()
        return None, None
    from crashkit.gdb.session import GdbOptions, GdbSession

    try:
        return GdbSession(GdbOptions(gdb=options.gdb, timeout=options.gdb_timeout,
                                     safety=SafetyFlags(debuginfod=options.debuginfod))), None
    except GdbError as exc:
        return None, str(exc)


def _debuginfod_notes(options: Options) -> list[str]:
    """--debuginfod that cannot do what it says: no server to ask, or no
    cache to keep what it fetched (each a one-line warning)."""
    if not options.debuginfod:
        return []
    out = []
    if not os.environ.get("DEBUGINFOD_URLS", "").strip():
        out.append("--debuginfod: DEBUGINFOD_URLS is not set, so no debuginfod server is "
                   "asked (set it, e.g. DEBUGINFOD_URLS=https://debuginfod.debian.net)")
    if options.use_gdb and not os.environ.get("DEBUGINFOD_CACHE_PATH"):
        from crashkit.gdb.spawn import debuginfod_cache

        _path, problem = debuginfod_cache()
        if problem is not None:
            out.append(f"--debuginfod: crashkit's cache cannot be used ({problem}): what gdb "
                       "fetches is not kept for the next run")
    return out


# The parse of a core (its headers and notes, the build-ids of its mapped
# files, the vDSO, the stack words) runs in a child under these limits
# (host/child): a real core needs a few MB and milliseconds of them.
PARSE_CPU_SECONDS = 20
PARSE_MEMORY = 1 << 30  # address space, beyond what crashkit maps when it forks
PARSE_DEADLINE = 60.0
PARSE_DEADLINE_DEBUGINFOD = 600.0  # each download: libdebuginfod's own 60 s at most
_PARSER = "crashkit's parser of the core"

_Notes = tuple[CoreFacts, "dict[str, Located]"]
_Rest = tuple[tuple[Module, ...], str | None, tuple[int, ...], str | None]


def read_facts(path: str, options: Options,
               on_notes: Callable[[CoreFacts, dict[str, Located]], None] | None = None,
               ) -> CoreFacts:
    """Headers, notes and build-ids: everything the core says without gdb.

    ``on_notes`` runs as soon as the notes are read and each mapped file is
    located (by its build-id in the core's memory first, see elf/locate),
    before the symbol tables are read (the gdb pipeline uses it to set gdb
    to work on the same files).

    With ``options.isolate`` (the default) the parse runs in a child
    process under CPU-time, address-space and wall-clock limits, so that a
    pathological core can at worst get the child killed: stopped before
    the notes are read, that is a one-line :class:`LimitError` naming the
    core (exit 2); stopped after, the notes' facts stand and a problem says
    what was not read."""
    if not options.isolate:
        return _in_process(path, options, on_notes)
    import crashkit.elf.modules  # noqa: F401 - imported once, before the fork, for both
    from crashkit.errors import LimitError
    from crashkit.host.child import Child
    try:
        child = Child(lambda: _parse(path, options), cpu=PARSE_CPU_SECONDS,
                      memory=PARSE_MEMORY, allowed=_model_type, what=_PARSER,
                      deadline=PARSE_DEADLINE_DEBUGINFOD if options.debuginfod
                      else PARSE_DEADLINE)
    except OSError as exc:  # a host at its process limit still gets its analysis
        facts = _in_process(path, options, on_notes)
        return dataclasses.replace(facts, problems=(*facts.problems, (
            "the core was parsed in crashkit's own process, without the limits of a child: "
            f"no child process could be started ({exc.strerror or exc})")))
    with child:
        try:
            notes: _Notes = child.receive()
        except LimitError as exc:
            exc.path = options.display_path or path
            raise
        facts, located = notes
        if on_notes is not None:
            on_notes(facts, located)
        try:
            rest = child.receive()
        except LimitError as exc:
            return dataclasses.replace(facts, problems=(*facts.problems, (
                f"{exc.message}, after the notes: the mapped files' build-ids, the vDSO "
                "and the stack words are not read")))
    return _joined(facts, rest)


def _in_process(path: str, options: Options,
                on_notes: Callable[[CoreFacts, dict[str, Located]], None] | None,
                ) -> CoreFacts:
    parts = _parse(path, options)
    try:
        facts, located = cast("_Notes", next(parts))
        if on_notes is not None:
            on_notes(facts, located)
        rest = cast("_Rest", next(parts))
    finally:
        parts.close()
    return _joined(facts, rest)


def _model_type(module: str, name: str) -> bool:
    """What the parse child may send back: crashkit's model types."""
    return module.startswith("crashkit.model.") or (module, name) == (
        "crashkit.elf.locate", "Located")


def _joined(facts: CoreFacts, rest: _Rest) -> CoreFacts:
    modules, kernel, stack, not_read = rest
    problems = facts.problems + ((not_read,) if not_read else ())
    return dataclasses.replace(facts, modules=modules, crash_stack=stack, problems=problems,
                               kernel=kernel)


def _parse(path: str, options: Options) -> Generator[_Notes | _Rest, None, None]:
    """The parse itself, in two parts: (the notes' facts, each mapped file
    located), as early as they are known; then (modules, the vDSO's kernel
    version, the stack words, what a compressed core's front left unread)."""
    from crashkit.elf.modules import (
        core_build_ids,
        locate_all,
        read_modules,
        vdso_kernel,
        vdso_module,
    )

    with open_core(path, options) as core:
        facts = core.facts()
        placed_by: dict[str, PlacedBy] = {}
        if not facts.mappings and (facts.exe or options.exe):
            facts, placed_by = _placed_without_nt_file(core, facts, options)
        in_core = core_build_ids(core, facts.mappings)
        fetcher = _debuginfod(options)
        located = locate_all(in_core, exe=facts.exe, sysroot=options.sysroot,
                             debug_dirs=options.debug_dirs, exe_option=options.exe,
                             fetch=fetcher.find if fetcher is not None else None)
        yield facts, located
        modules = read_modules(core, facts.mappings, in_core=in_core, located=located,
                               exec_ranges=facts.exec_ranges)
        if placed_by:
            modules = tuple(dataclasses.replace(m, placed_by=placed_by.get(m.path, "nt-file"))
                            for m in modules)
        vdso = vdso_module(core, facts.auxv, facts.segments)
        kernel = None
        if vdso is not None:
            modules = tuple(sorted((*modules, vdso), key=lambda m: m.start))
            kernel = vdso_kernel(core, vdso)
        sp = facts.threads[0].sp if facts.threads else None
        stack = core.stack_words(sp, STACK_SCAN_BYTES) if sp is not None else ()
        yield modules, kernel, stack, core.note_not_read()


def _debuginfod(options: Options) -> Debuginfod | None:
    """The debuginfod client for --debuginfod (None without it, or without
    DEBUGINFOD_URLS: --debuginfod then warns, see gdb/spawn)."""
    if not options.debuginfod or not os.environ.get("DEBUGINFOD_URLS"):
        return None
    from crashkit.gdb.spawn import debuginfod_cache
    from crashkit.host.debuginfod import Debuginfod

    cache, _problem = debuginfod_cache()
    try:
        return Debuginfod(cache)
    except OSError:
        return None


def _placed_without_nt_file(core: CoreFile, facts: CoreFacts,
                            options: Options) -> tuple[CoreFacts, dict[str, PlacedBy]]:
    """A core without NT_FILE: the executable placed by the auxv and its
    file (--exe, or the path execve() was given, under --sysroot), the
    libraries by the dynamic linker's list in memory (elf/linkmap)."""
    from crashkit.elf.linkmap import place
    from crashkit.elf.symbols import host_path

    exe_path = facts.exe or os.path.abspath(str(options.exe))
    exe_file = options.exe or host_path(exe_path, options.sysroot)

    def find(name: str) -> str | None:
        candidate = host_path(name, options.sysroot)
        return candidate if os.path.isfile(candidate) else None

    placed = place(core.read_memory, core.read_cstring, facts.auxv, exe_path, exe_file, find,
                   facts.page_size or 4096)
    if not placed.mappings:
        return dataclasses.replace(facts, problems=facts.problems + placed.notes), {}
    problems = tuple(p for p in facts.problems if not p.startswith("no NT_FILE note"))
    return dataclasses.replace(facts, mappings=placed.mappings, exe=exe_path,
                               problems=problems + placed.notes), placed.placed_by


STACK_SCAN_BYTES = 16 * 1024
# Where dpkg installs files; a module elsewhere (a build tree, /home) is not
# looked up, which saves running dpkg-query at all for most such crashes.
DPKG_PREFIXES = ("/usr/", "/lib", "/bin/", "/sbin/", "/opt/", "/etc/", "/var/")


def _readable_elf(path: str) -> bool:
    """Only an executable gdb can read is handed to it; without one, gdb still
    loads the core and its libraries."""
    try:
        with regular_file(path) as (read, _size):  # never blocks on a FIFO the core names
            return is_elf(read)
    except OSError:
        return False


def analyze(path: str, options: Options | None = None, session: GdbSession | None = None,
            gdb_error: str | None = None) -> Analysis:
    """Analyze one core. A ``session`` from :func:`start_gdb` (or the error it
    gave) is used and closed; without either, gdb is started here when
    ``options.use_gdb``."""
    options = options or Options()
    if session is None and gdb_error is None:
        session, gdb_error = start_gdb(options)
    if session is not None:
        session, gdb_error = _gdb_for_arch(path, options, session)
    try:
        done = _analyze(path, options, session, gdb_error)
    finally:
        if session is not None:
            session.close()
    if options.display_path is not None:
        done = dataclasses.replace(done, core=dataclasses.replace(done.core,
                                                                  path=options.display_path))
    return done


_HOST_MACHINE = {"x86_64": L.EM_X86_64, "aarch64": L.EM_AARCH64}  # platform.machine()


def _gdb_for_arch(path: str, options: Options, session: GdbSession,
                  ) -> tuple[GdbSession | None, str | None]:
    """Debian's gdb reads only the host's architecture (and silently decodes
    another's as its own). For a foreign core, use gdb-multiarch if there is
    one, else go without gdb and say how to get it."""
    import platform

    try:
        with regular_file(path) as (read, _size):
            head = read(0, 20)
    except OSError:
        return session, None  # the reader will explain
    machine = int.from_bytes(head[18:20], "little") if len(head) == 20 else None
    host = _HOST_MACHINE.get(platform.machine())
    if machine is None or host is None or machine == host or machine not in L.ARCHES:
        return session, None
    session.close()
    if options.gdb != "gdb":
        return start_gdb(options)  # the user chose a gdb: trust it with the arch
    from crashkit.host.run import resolve

    if resolve("gdb-multiarch") is None:
        return None, (f"the core is {L.ARCHES[machine].name}, and gdb here reads "
                      f"{L.ARCHES[host].name} only; install gdb-multiarch "
                      "(apt-get install gdb-multiarch) or pass --gdb")
    return start_gdb(dataclasses.replace(options, gdb="gdb-multiarch"))


def _analyze(path: str, options: Options, session: GdbSession | None,
             gdb_error: str | None) -> Analysis:
    pending: list[Pending] = []
    lookups: list[Callable[[], HostFacts]] = []

    def ask_gdb(facts: CoreFacts, located: dict[str, Located]) -> None:
        _queue_gdb(facts, located)
        lookups.append(_host_lookup(facts, options))  # once gdb has its work

    def _queue_gdb(facts: CoreFacts, located: dict[str, Located]) -> None:
        nonlocal gdb_error
        if session is None:
            return
        from crashkit.elf.locate import search_dirs
        from crashkit.elf.symbols import host_path
        from crashkit.gdb import backtrace as bt

        exe = options.exe
        if exe is None and facts.exe:
            found = located.get(facts.exe)
            exe = found.path if found is not None else host_path(facts.exe, options.sysroot)
        # gdb reads the files crashkit found (by build-id first), no others.
        resolved = {p: f.path for p, f in located.items() if f.path is not None}
        solib_dirs = dict.fromkeys(os.path.dirname(resolved.get(m.path) or
                                                   host_path(m.path, options.sysroot))
                                   for m in facts.mappings if m.path.startswith("/"))
        try:
            pending.append(bt.request_all(
                session, os.path.abspath(exe) if exe and _readable_elf(exe) else None,
                os.path.abspath(path), len(facts.threads), options.max_frames,
                options.sysroot, search_dirs(options.debug_dirs, options.sysroot),
                list(solib_dirs), crash_pc=facts.threads[0].pc if facts.threads else None,
                files=[m.path for m in facts.mappings], resolved=resolved))
        except (GdbError, OSError, ValueError) as exc:  # ValueError: an unencodable path
            gdb_error = str(exc) if not isinstance(exc, ValueError) else \
                f"gdb could not be given the core's files ({type(exc).__name__})"

    facts = read_facts(path, options, on_notes=ask_gdb)
    from crashkit.analysis.attribution import is_system_library
    from crashkit.analysis.frames import pc_frame, scan_for_caller
    from crashkit.analysis.verdict import build_analysis
    from crashkit.elf.locate import search_dirs
    from crashkit.elf.symbols import Symbolizer

    other_builds = {m.path: m.build_id for m in facts.modules
                    if m.build_id_match is False and m.build_id}
    # A module read from a separate debug file of its build (its own file is
    # not here) is placed as a debug file is: by the load bias.
    debug_only = {m.path: m.build_id for m in facts.modules
                  if m.found_by == "debug-file" and m.build_id_match is not False
                  and m.build_id}
    symbolizer = Symbolizer(facts.mappings, sysroot=options.sysroot,
                            debug_dirs=search_dirs(options.debug_dirs, options.sysroot),
                            path_map={m.path: m.disk_path for m in facts.modules
                                      if m.disk_path and m.path not in debug_only},
                            other_builds={**other_builds, **debug_only})
    rescued = frozenset(p for p in other_builds if symbolizer.exact(p))
    untrusted = set(other_builds) - rescued
    threads = tuple(
        dataclasses.replace(t, frames=(pc_frame(t.pc, symbolizer.symbolize(t.pc), untrusted),)
                            if t.pc is not None else ())
        for t in facts.threads)
    context: CrashContext | None = None
    notes: list[str] = _debuginfod_notes(options)
    if session is not None and gdb_error is None and pending:
        try:
            # Where code can be: executable PT_LOADs, and file mappings (a core
            # written by gcore leaves out the PT_LOADs of unmodified text).
            code = facts.exec_ranges + tuple((m.start, m.end) for m in facts.mappings)
            threads, context = _gdb_threads(session, pending[0], threads, symbolizer,
                                            untrusted, options, notes, code, rescued)
        except (GdbError, ValueError) as exc:  # the notes' facts stand without gdb
            gdb_error = str(exc) if isinstance(exc, GdbError) else \
                f"gdb's answer could not be read ({type(exc).__name__})"
    if gdb_error:
        notes.append(f"no backtraces: {gdb_error}")
    if compression_of(path) is None:  # a compressed core is written whole before it is
        notes += _still_written(path, facts)
    notes += _debug_dir_layout(options.debug_dirs)
    threads = _demangled(_scanned_past_jit(threads, facts, symbolizer, notes))
    host = lookups[0]() if lookups else HostFacts()
    scanned = None
    top = threads[0].frames if threads else ()
    if len(top) <= 1 and (not top or top[0].module is None or is_system_library(top[0].module)):
        # Nothing unwound past a pc in the C runtime (or in no file): look for
        # a caller's return address on the stack.
        scanned = scan_for_caller(facts.crash_stack, facts.exec_ranges, symbolizer.symbolize,
                                  lambda m: m is None or is_system_library(m))
    result = build_analysis(facts, threads, gdb_used=session is not None and not gdb_error,
                            gdb_error=gdb_error, extra_warnings=notes, context=context,
                            rescued=rescued, host=host, scanned=scanned,
                            **_script_reads(path, threads, facts, options))
    when = _crash_time(options.display_path or path, facts, host)  # a compressed core's own
    return dataclasses.replace(result, crash_time=when)


def crash_time(core_mtime: float | None, log_lines: Sequence[str], pid: int | None,
               now: float) -> CrashTime | None:
    """When it crashed: the error log's "worker process PID exited on signal
    N (core dumped)" line when there is one (nginx writes it once the kernel
    has written the core and the worker is gone; a copied or moved core keeps
    no such time), else the core file's modification time (when the kernel
    finished writing it)."""
    import re
    from datetime import datetime

    from crashkit.formats.nginx_log import parse_time

    when: datetime | None = None
    source = "core file time"
    if pid is not None:
        dumped = re.compile(r"^(\d{4}/\d\d/\d\d \d\d:\d\d:\d\d) \[\w+\] \d+#\d+: "
                            rf"worker process {pid} exited on signal \d+ \(core dumped\)")
        for line in reversed(log_lines):
            m = dumped.match(line)
            if m is not None:
                try:  # a forged or damaged time (month 13, the year 1): not this one
                    when = parse_time(m.group(1)).astimezone()
                    when.timestamp()
                except (ValueError, OverflowError, OSError):
                    continue
                source = "error log"
                break
    if when is None:
        if core_mtime is None:
            return None
        when = datetime.fromtimestamp(int(core_mtime)).astimezone()
    return CrashTime(when.isoformat(), source, max(0, int(now - when.timestamp())))


def _crash_time(path: str, facts: CoreFacts, host: HostFacts) -> CrashTime | None:
    import time

    try:
        mtime: float | None = os.stat(path).st_mtime
    except OSError:
        mtime = None
    return crash_time(mtime, host.log_lines, facts.process.pid if facts.process else None,
                      time.time())


def _host_lookup(facts: CoreFacts, options: Options) -> Callable[[], HostFacts]:
    """Read this host's facts about the core; the returned function gives
    them. With --sysroot the packages come from the sysroot's dpkg database,
    and the processes and users of this host say nothing. dpkg's database is
    read through its cached index (a few milliseconds), so no thread waits."""
    from crashkit.analysis.attribution import is_system_library
    from crashkit.host import dpkg as H
    from crashkit.host import proc
    from crashkit.nginx import logtail

    log = (logtail.last_log_lines(options.error_log, facts.process.pid)
           if options.error_log and facts.process else ())
    if not options.host_facts:
        return lambda: HostFacts(log_lines=log, log_path=options.error_log)
    admindir = None
    if options.sysroot:
        admindir = os.path.join(options.sysroot, "var/lib/dpkg")
        if not os.path.isdir(admindir):
            admindir = None
    paths = [p for p in dict.fromkeys(m.path for m in facts.mappings)
             if options.packages == "all" or (p.startswith(DPKG_PREFIXES) and (
                 p == facts.exe or not is_system_library(p)))]
    packages: dict[str, Package] = {}
    if paths and (admindir or not options.sysroot):
        packages = H.dpkg_packages(paths, admindir)
    s = facts.signal
    sender_command = sender_user = None
    if s is not None and s.sender_pid and not options.sysroot and options.sender_now and (
            facts.process is None or s.sender_pid != facts.process.pid):
        sender_command = proc.process_command(s.sender_pid)
        sender_user = proc.user_name(s.sender_uid) if s.sender_uid is not None else None

    def finish() -> HostFacts:
        return HostFacts(packages=dict(packages), sender_command=sender_command,
                         sender_user=sender_user, log_lines=log, log_path=options.error_log)

    return finish


def _still_written(path: str, facts: CoreFacts) -> list[str]:
    """A core the kernel is still writing looks truncated; say which it is."""
    import time

    try:
        st = os.stat(path)
    except OSError:
        return []
    if st.st_size != facts.size:
        return [f"the core grew from {facts.size} to {st.st_size} bytes while crashkit read "
                "it: it is still being written; run again once it stops growing"]
    if facts.truncated and time.time() - st.st_mtime < 2:
        return ["the core was written to less than 2 s ago: if the process is still dumping, "
                "'truncated' only means unfinished; run again once it stops growing"]
    return []


def _debug_dir_layout(debug_dirs: Sequence[str]) -> list[str]:
    return [f"--debug-dir {d} has no .build-id directory: debug files are looked up as "
            f"{d}/.build-id/xx/yyyy.debug (xx: the build-id's first two hex digits)"
            for d in debug_dirs if not os.path.isdir(os.path.join(d, ".build-id"))]


def _demangled(threads: tuple[Thread, ...]) -> tuple[Thread, ...]:
    """C++ names that came from ELF symbol tables, demangled (gdb demangles its own)."""
    from crashkit.elf.demangle import demangle

    names = demangle(f.function for t in threads for f in t.frames
                     if f.source in ("elf", "scan") and f.function)
    if not names:
        return threads
    return tuple(dataclasses.replace(t, frames=tuple(
        dataclasses.replace(f, function=names[f.function])
        if f.source in ("elf", "scan") and f.function in names else f for f in t.frames))
        for t in threads)


def _script_reads(path: str, threads: tuple[Thread, ...], facts: CoreFacts,
                  options: Options) -> dict[str, Any]:
    """When the crashing thread ran a script: its stack from the
    interpreter's state (py-spy, for CPython, when the core's files are this
    host's own), else the chunk names its interpreter left in the process's
    memory (a bounded search; see CoreFile.search_memory)."""
    from crashkit.analysis.interpreters import recognise

    run = recognise(threads[0].frames, facts) if threads and threads[0].frames else None
    if run is None:
        return {}
    found = _script_state(path, threads, facts, options, run)
    config = _script_directives(path, facts, options, run)
    return {**found, "config": config} if config else found


def _script_state(path: str, threads: tuple[Thread, ...], facts: CoreFacts, options: Options,
                  run: Any) -> dict[str, Any]:
    interp = run.interpreter
    exe = next((m for m in facts.modules if m.path == facts.exe), None)
    if interp.vm_stack and options.sysroot is None and exe is not None and \
            exe.build_id_match is True and compression_of(path) is None:
        from crashkit.host.pyspy import python_stack

        vm = python_stack(path, threads[0].tid)
        if vm:
            return {"vm": vm}
    if interp.chunk_names is None:
        return {}
    try:
        with open_core(path, options) as core:
            return {"memory": tuple(m.group(0) for m in core.search_memory(interp.chunk_names))}
    except (OSError, CrashkitError):
        return {}


def _script_directives(path: str, facts: CoreFacts, options: Options,
                       run: Any) -> tuple[tuple[str, str, int], ...]:
    """(directive, file, line) of every directive that runs the interpreter's
    scripts in the crashed nginx's config: --conf, else the config of the
    crashed worker's master when it still runs (and can be trusted, see
    nginx.dump.running_master). Never a guessed config: nothing otherwise."""
    from crashkit.analysis.attribution import is_nginx

    if run.interpreter.directives is None or not is_nginx(facts) or options.sysroot:
        return ()
    conf = options.conf
    if conf is None and facts.process is not None and facts.exe:
        exe = next((m for m in facts.modules if m.path == facts.exe), None)
        if exe is None or exe.build_id_match is not True:
            return ()
        from crashkit.nginx import config as C
        from crashkit.nginx.dump import running_master

        master = running_master(facts.process.ppid, os.stat(path).st_mtime, facts.exe)
        if master is None:
            return ()
        conf = master.conf
        if conf is None:
            conf = C.find_config(None, C.build_info(facts.exe)).path
        elif not os.path.isabs(conf) and master.prefix:
            conf = os.path.join(master.prefix, conf)
    if conf is None:
        return ()
    from crashkit.nginx.config import load_config

    try:
        cfg = load_config(conf)
    except CrashkitError:
        return ()
    wanted = run.interpreter.directives
    return tuple((d.name, d.file, d.line) for d in cfg.walk() if wanted.match(d.name))


def _scanned_past_jit(threads: tuple[Thread, ...], facts: CoreFacts, symbolizer: Symbolizer,
                      notes: list[str]) -> tuple[Thread, ...]:
    """The crashing thread's frames beyond a pc in memory of no file (JIT
    code, a VM's generated code), which no unwinder can pass: the return
    addresses a validated scan of the stack finds."""
    from crashkit.analysis.frames import scan_chain

    if not threads or len(threads[0].frames) != 1 or threads[0].frames[0].module is not None:
        return threads
    code = facts.exec_ranges + tuple((m.start, m.end) for m in facts.mappings)
    sp = threads[0].sp
    if sp is None:
        return threads
    found = scan_chain(facts.crash_stack, sp, code, symbolizer.symbolize,
                       symbolizer.code_before, symbolizer.frame_rule)
    if not found:
        return threads
    crashed = threads[0]
    frames = crashed.frames + tuple(dataclasses.replace(f, index=i + 1)
                                    for i, (f, _) in enumerate(found))
    notes.append(f"thread {crashed.tid}: the pc is in memory of no file, which no unwinder "
                 f"can pass: frame #1 is the first word on the stack that is a return address "
                 f"(right after a call instruction, {found[0][1]} bytes above sp), a likely "
                 "caller, not a certain one; the frames beyond it were unwound from there "
                 "by the modules' call frame information")
    return (dataclasses.replace(crashed, frames=frames), *threads[1:])


def _gdb_threads(session: GdbSession, pending: Pending, threads: tuple[Thread, ...],
                 symbolizer: Symbolizer, untrusted: set[str], options: Options,
                 notes: list[str], exec_ranges: tuple[tuple[int, int], ...],
                 rescued: frozenset[str]) -> tuple[tuple[Thread, ...], CrashContext | None]:
    from crashkit.analysis.frames import cut_at_garbage, lookup_addresses, merge
    from crashkit.gdb import backtrace as bt

    def redact(value: str) -> str:
        # Imported on the first value (arguments and locals: --full only): the
        # redactor's patterns cost ~10 ms to compile.
        from crashkit.analysis.redact import gdb_value

        return gdb_value(value) if options.redact else value
    per_thread, warnings = bt.collect(
        session, pending, [(t.tid, t.pc) for t in threads], max_frames=options.max_frames,
        full_frames=options.full_frames, redact=redact)
    notes.extend(warnings)
    out = []
    for t, (raw, error) in zip(threads, per_thread, strict=True):
        symbols = [symbolizer.symbolize(a) for a in lookup_addresses(raw)]
        frames, cut = cut_at_garbage(merge(raw, symbols, untrusted, rescued), exec_ranges)
        if cut is not None:
            notes.append(f"thread {t.tid}: backtrace cut at frame #{cut}: gdb guessed pc "
                         f"{raw[cut].pc:#x}, which is not in code (the stack is missing or "
                         "corrupt, or a module's file is not on this host)")
        if frames:
            out.append(dataclasses.replace(t, frames=tuple(frames)))
        else:
            out.append(t)  # keeps the pc frame from the notes
            if t.crashed:
                notes.append(f"gdb could not unwind the crashing thread ({error or 'no frames'})"
                             "; showing its pc from the core's notes")
    context = None
    if out and out[0].frames:
        top = out[0].frames[0]
        queued = pending.disassembly if pending.crash_pc == top.pc else None
        try:
            context = bt.disassembly(session, top.pc, top.function_offset, queued=queued)
        except GdbError as exc:  # the frames already read stay
            notes.append(f"no disassembly: {exc}")
        # gdb reads code from the files, not the core: with the file gone it
        # decodes whatever it finds (zeros), which is not the crashed code.
        if context is not None and top.module and symbolizer.image(top.module).missing():
            notes.append(f"no disassembly: {top.module} is not on this host, and the core "
                         "does not hold its code")
            context = None
        if context is not None and not top.trusted:
            context = dataclasses.replace(context, trusted=False)
    return tuple(out), context
