"""``crashkit report``: a bug-report bundle (.tar.gz, mode 0600) built from a
core, the host's nginx and its logs, with secrets redacted by default."""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable
from dataclasses import dataclass

from crashkit import __version__
from crashkit.analysis import redact as R
from crashkit.commands.analyze import Options as AnalyzeOptions
from crashkit.errors import InputError
from crashkit.model.analyze import Analysis
from crashkit.model.report import ReportResult

FORMATS = ("md", "html", "json")
PORTABLE = "portable.json"  # the manifest of a --portable bundle
FULL_FRAMES = 64  # frames per thread with arguments and locals in backtrace-full.txt


def _quiet(_message: str) -> None:
    pass


@dataclass(frozen=True)
class Options:
    """The analysis's options (``analysis.core`` the core) and the bundle's."""

    analysis: AnalyzeOptions
    report: ReportOptions
    progress: Callable[[str], None] = _quiet  # "analyzing the core", … for a person


def run(options: Options) -> ReportResult:
    from crashkit.commands import analyze

    options.progress("analyzing the core")
    a = analyze.run(options.analysis)
    done = make_report(a, options.report, progress=options.progress)
    if a.gdb_error:
        return dataclasses.replace(done, warnings=(
            f"{a.gdb_error}; showing what the core's notes hold",))
    return done


@dataclass(frozen=True)
class ReportOptions:
    out_dir: str = "."
    formats: tuple[str, ...] = FORMATS
    include_core: bool = False
    portable: bool = False  # the core and every file it maps, for analysis elsewhere
    redact: bool = True
    template_dir: str | None = None
    conf: str | None = None  # None: the one `nginx -V` names
    error_log: str | None = None  # None: the one the config names
    nginx: str = "nginx"
    issue: IssueOptions | None = None  # --issue
    prefix: str | None = None  # --prefix: the -p nginx runs with; None: the master's, the build's


@dataclass(frozen=True)
class IssueOptions:
    repo: str | None = None  # --repo OWNER/REPO or URL
    budget: int = 6000  # characters of prefilled URL
    submit: bool = False  # file it with gh
    force: bool = False  # file even when the signature hash is already reported
    gh: str = "gh"


def redacted(a: Analysis) -> Analysis:
    """Command lines can carry passwords (--password=…, token=…), and the
    error-log lines of --error-log requests with tokens in their query."""
    host = dataclasses.replace(a.host, log_lines=tuple(R.request_line(line)
                                                       for line in a.host.log_lines))
    p = a.core.process
    if p is None:
        return dataclasses.replace(a, host=host)
    core = dataclasses.replace(a.core, process=dataclasses.replace(p, args=R.text_secrets(
        p.args)))
    return dataclasses.replace(a, core=core, host=host)


def _nginx_files(a: Analysis, options: ReportOptions, notes: list[str],
                 files: dict[str, str], caveats: list[str]) -> str | None:
    """nginx-V.txt, nginx-T.txt and the error log excerpt; returns the log path.
    ``caveats`` get what report.md must say at its top about these files."""
    from crashkit.analysis.redact import redacted_config
    from crashkit.model.nginx import ConfigLocation
    from crashkit.nginx import config as C
    from crashkit.nginx import dump

    build = C.build_info(options.nginx)
    version = dump.version_text(options.nginx)
    exe = next((m for m in a.core.modules if m.path == a.core.exe), None)
    if version is None:
        notes.append(f"nginx-V.txt: `{options.nginx} -V` could not be run here")
    else:
        files["nginx-V.txt"] = version
        if exe is not None and exe.build_id_match is not True:
            notes.append("nginx-V.txt describes the nginx installed here, which may not be "
                         "the build that crashed (its build-id differs or is unknown)")
    where = C.find_config(options.conf, build)
    master = None
    p = a.core.process
    if options.conf is None and p is not None:
        # The crashed worker's master may still run: its -c is the config
        # that crashed, whatever nginx -V says.
        master = dump.running_master(p.ppid, os.stat(a.core.path).st_mtime, options.nginx)
        if master is not None and master.conf:
            conf = master.conf if os.path.isabs(master.conf) or not master.prefix \
                else os.path.join(master.prefix, master.conf)
            where = ConfigLocation(conf, "option")
            notes.append(f"nginx-T.txt: the config of the crashed worker's master (pid "
                         f"{master.pid}, still running): {conf}")
    # Relative paths in the config (includes, error_log) are under the prefix
    # nginx runs with: --prefix, else the crashed worker's master's -p, else
    # the build's.
    prefix = options.prefix or (master.prefix if master is not None else None)
    if prefix is None and options.conf is not None:
        prefix = dump.running_prefix(where.path, options.nginx)  # as doctor does
    if prefix:
        build = C.with_prefix(build, prefix)
    try:
        cfg = C.load_config(where.path, build)
    except InputError:
        if options.conf is not None:
            raise  # the user named it: a bad one is bad input
        notes.append(f"nginx-T.txt: no readable nginx config at {where.path} (--conf)")
        cfg = None
    if cfg is not None:
        pairs, how = dump.config_dump(options.nginx, cfg.root, cfg.files, prefix or None)
        chunks = [f"# crashkit: {how}\n"]
        for path, text in pairs:
            if options.redact:
                text = redacted_config(text)
            chunks.append(f"# configuration file {path}:\n{text}\n")
        files["nginx-T.txt"] = "".join(chunks)
        if options.conf is None and master is None:
            ppid = f"pid {p.ppid}" if p is not None else "unknown"
            caveats.append(
                f"nginx-T.txt holds {cfg.root} (from {where.source}), not the config of the "
                f"crashed worker's master ({ppid}), which no longer runs here or could not "
                "be trusted: it may not be the configuration that crashed.")
    if options.error_log is not None:
        return options.error_log
    if cfg is not None:
        logs = [t.path for t in C.error_logs(cfg) if t.path.startswith("/")]
        found = next((p for p in logs if os.path.isfile(p)), None)
        if found is None:
            notes.append("error-log.txt: none of the config's error logs is readable here "
                         f"({', '.join(logs) or 'none'}); pass --error-log")
        return found
    return None


def collect(a: Analysis, options: ReportOptions, notes: list[str],
            caveats: list[str] | None = None,
            ) -> tuple[dict[str, str], list[tuple[str, str]]]:
    """Every text file of the bundle but the reports, by name, and the
    environment (what, version) pairs."""
    from crashkit.analysis.attribution import is_nginx
    from crashkit.host import system
    from crashkit.nginx import logtail
    from crashkit.render.analyze import crash_site, full_backtrace
    from crashkit.render.analyze import to_json as analysis_json

    files: dict[str, str] = {}
    files["analysis.json"] = json.dumps(analysis_json(a), indent=2) + "\n"
    files["backtrace-full.txt"] = full_backtrace(a) + "\n"
    files["crash-site.txt"] = crash_site(a) + "\n"
    log = None
    if is_nginx(a.core):
        try:
            log = _nginx_files(a, options, notes, files,
                               caveats if caveats is not None else [])
        except InputError as exc:
            if options.conf is not None or options.error_log is not None:
                raise
            notes.append(f"nginx files left out: {exc}")
    elif options.error_log is not None:
        log = options.error_log
    if log is not None and a.core.process is not None:
        pid = a.core.process.pid
        # A log the user named is theirs: without the exit line, the lines
        # around the core's time still belong to the crash. A log found from a
        # config may be another instance's: then only the exit line counts.
        around = os.stat(a.core.path).st_mtime if options.error_log is not None else None
        lines, how = logtail.log_excerpt(log, pid, around=around)
        if how is not None:
            if options.redact:
                lines = tuple(R.request_line(line) for line in lines)
            head = (f"# {log}: lines around the exit of pid {pid}\n" if how == "exit line" else
                    f"# {log}: no line about the exit of pid {pid}; the lines logged from 2 "
                    "minutes before the core was written to 30 s after\n")
            files["error-log.txt"] = head + "\n".join(lines) + "\n"
        else:
            # Another instance's log (or rotated since): its lines would only
            # mislead, and may say things about other traffic.
            notes.append(f"error-log.txt left out: {log} does not mention the exit of pid "
                         f"{pid} (another nginx's log, or rotated since?); pass --error-log")
            if options.conf is None and "nginx-T.txt" in files:
                notes.append("nginx-T.txt is the config nginx -V names, which may not be the "
                             "crashed nginx's; pass --conf")
    from crashkit.analysis.environment import crashed_environment, libc_module

    libc = libc_module(a)
    release = _libc_release(libc.disk_path) if libc is not None and libc.disk_path and \
        libc.build_id_match else None
    environment = crashed_environment(a, system.system_facts(), release)
    nginx_v = files.get("nginx-V.txt", "").splitlines()
    if nginx_v:
        environment.insert(0, ("nginx", nginx_v[0].split(": ", 1)[-1]))
    files["system.txt"] = "".join(f"{k}: {v}\n" for k, v in environment)
    return files, environment


def _libc_release(path: str) -> str | None:
    """glibc's version from its own file ("... release version 2.36."), read
    from the crashed build's file (at most 8 MiB of it)."""
    import re

    from crashkit.elf.files import regular_file

    try:
        with regular_file(path) as (read, size):
            data = read(0, min(size, 8 << 20))
    except OSError:
        return None
    m = re.search(rb"release version (\d+\.\d+(?:\.\d+)?)", data)
    return m.group(1).decode() if m else None


DESCRIPTIONS = {
    "report.md": "the bug report, ready to paste into a GitHub or GitLab issue",
    "report.html": "the same report, self-contained, for a browser",
    "analysis.json": "crashkit analyze --json of the core (schema crashkit/analysis/1)",
    "backtrace-full.txt": "every thread's backtrace with arguments and locals",
    "crash-site.txt": "the crashing thread's registers and the instructions around the pc",
    "modules.txt": "every mapped module: path, build-id, package and version",
    "nginx-V.txt": "nginx -V: version, compiler and configure arguments",
    "nginx-T.txt": "the whole nginx configuration (nginx -T)",
    "error-log.txt": "nginx's error log around the crash",
    "system.txt": "the crashed host's architecture, kernel and C library (from the core "
                  "when it was made elsewhere), or this host's kernel, distribution, C "
                  "library and OpenSSL versions",
    PORTABLE: "--portable: the core's name and the mapped files in files/ and debug/, "
              "by path and build-id",
}


def make_report(a: Analysis, options: ReportOptions,
                progress: Callable[[str], None] = lambda _m: None) -> ReportResult:
    from crashkit.render.report import (
        build_model,
        module_rows,
        render_template,
        template_environment,
    )
    from crashkit.writers.bundle import write_bundle

    notes: list[str] = []
    if options.redact:
        a = redacted(a)
    progress("collecting nginx and system facts")
    caveats: list[str] = []
    files, environment = collect(a, options, notes, caveats)
    rows = module_rows(a)
    width = max((len(r.path) for r in rows), default=4)
    files["modules.txt"] = "".join(
        f"{r.path:<{width}}  {r.build_id:<40}  {r.package}  [{r.on_disk}"
        f"{', deleted' if r.deleted else ''}]\n" for r in rows)
    wanted = ["report.md"] * ("md" in options.formats) + \
        ["report.html"] * ("html" in options.formats)
    if "json" not in options.formats:
        files.pop("analysis.json")
    names = sorted([*wanted, *files], key=lambda n: list(DESCRIPTIONS).index(n))
    listing = [(n, DESCRIPTIONS[n]) for n in names]
    copies: list[tuple[str, str]] = []
    if options.portable:
        progress("gathering the files the core maps")
        copies, manifest = portable_files(a)
        files[PORTABLE] = json.dumps(manifest, indent=2, sort_keys=True) + "\n"
        names.append(PORTABLE)
        listing.append((PORTABLE, DESCRIPTIONS[PORTABLE]))
    if options.include_core or options.portable:
        listing.append((os.path.basename(a.core.path), "the core file (process memory: "
                                                       "handle as a secret)"))
    model = build_model(a, environment=environment, files=listing, redacted=options.redact,
                        generator=f"crashkit {__version__}", caveats=caveats)
    env = template_environment(options.template_dir)
    progress("rendering the reports")
    for name in wanted:
        files[name] = render_template(env, f"{name}.j2", r=model)
    progress("writing the bundle")
    bundle = write_bundle(a, files, names, out_dir=options.out_dir, redact=options.redact,
                          include_core=options.include_core or options.portable, copies=copies)
    issue = None
    if options.issue is not None:
        from crashkit.commands.issue import make_issue

        progress("preparing the upstream issue")
        issue = make_issue(a, model, files, bundle, options)
    return ReportResult(bundle=bundle, files=tuple(n for n, _ in listing),
                        size=os.path.getsize(bundle), notes=tuple(notes),
                        verdict=model.verdict, redacted=options.redact,
                        include_core=options.include_core or options.portable, issue=issue,
                        portable=options.portable, biggest=_biggest(a, copies))




def portable_files(a: Analysis) -> tuple[list[tuple[str, str]], dict[str, object]]:
    """What a --portable bundle adds so that the core can be analysed away
    from this host: every mapped file whose build-id is the crashed one (the
    executable and each module, under files/ at its path in the core), the
    separate debug file of each, found by build-id (under debug/ in gdb's
    .build-id layout), and the manifest that names them."""
    from crashkit.elf.symbols import DEFAULT_DEBUG_DIRS, find_debug_file

    copies: list[tuple[str, str]] = []
    mapped: dict[str, str] = {}
    skipped: dict[str, str] = {}
    for m in a.core.modules:
        source = m.disk_path or m.path
        if not m.path.startswith("/"):
            continue
        if m.build_id_match is False:
            skipped[m.path] = "the file here is another build"
            continue
        if not os.path.isfile(source):
            skipped[m.path] = "not on this host"
            continue
        name = "files" + os.path.normpath(m.path)
        copies.append((name, source))
        mapped[m.path] = name
        debug = find_debug_file(m.build_id, DEFAULT_DEBUG_DIRS)
        if debug is not None and m.build_id:
            copies.append((f"debug/.build-id/{m.build_id[:2]}/{m.build_id[2:]}.debug", debug))
    manifest: dict[str, object] = {
        "version": 1, "core": os.path.basename(a.core.path), "files": mapped,
        "missing": skipped,
        "debug": sorted(n for n, _ in copies if n.startswith("debug/")),
    }
    return copies, manifest


def _biggest(a: Analysis, copies: list[tuple[str, str]]) -> tuple[tuple[str, int], ...]:
    if not copies:
        return ()
    sizes = [(name, os.path.getsize(source)) for name, source in copies]
    sizes.append((os.path.basename(a.core.path), a.core.size))
    return tuple(sorted(sizes, key=lambda x: -x[1])[:5])
