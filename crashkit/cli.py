"""Command line: the table of verbs, the one :func:`emit`, and the only place
that turns errors into messages and exit codes.

Each verb is ``crashkit.commands.<verb>.run(Options) -> Result`` and
``crashkit.render.<verb>`` (``text``, ``to_json``, ``messages``); a click
command here only turns its options into that verb's ``Options``. Exit codes:
0 the command did its job (warnings included), 1 ``result.needs_attention``,
2 bad input or usage (a :class:`~crashkit.errors.CrashkitError`).
"""

from __future__ import annotations

import dataclasses
import importlib
import os
import sys
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

import click

from crashkit import __version__
from crashkit.errors import CrashkitError, InputError

F = TypeVar("F", bound=Callable[..., Any])

EXIT_CODES_HELP = """\b
Exit codes:
  0  the command did its job (warnings such as a build-id mismatch included)
  1  it ran and found something that needs attention
  2  bad input or usage, or output that could not be written (one line on
     stderr names the file and the problem)"""

CORE_EXIT_HELP = """\b
Exit codes:
  0  the core was read (warnings such as a build-id mismatch included)
  2  bad input or usage, or output that could not be written (one line on
     stderr names the file and the problem)"""

TRIAGE_EXIT_HELP = """\b
Exit codes:
  0  nothing in the logs needs attention
  1  findings that need attention
  2  bad input (a missing, unreadable or corrupt log, a bad --since)"""

DOCTOR_EXIT_HELP = """\b
Exit codes:
  0  every check passed
  1  a check warns or fails
  2  bad input (a missing config, or one that cannot be parsed)"""


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
             epilog=EXIT_CODES_HELP)
@click.version_option(__version__, "-V", "--version", prog_name="crashkit")
def cli() -> None:
    """crashkit: what crashed, and whose code is at fault.

    Core-dump forensics for Linux programs, nginx workers first. On a
    crashing host: `setup` so the next crash leaves a usable core, `analyze
    CORE` for the verdict, `report CORE` for a bundle to attach upstream;
    `triage` reads nginx's error logs and `doctor` checks the live host.
    """


_CORE_OPTIONS = [
    click.option("--exe", "exe", metavar="PATH",
                 help="Executable to use instead of the path recorded in the core."),
    click.option("--sysroot", metavar="DIR",
                 help="Look up the core's files under DIR (a copy of the crashed host's "
                      "files)."),
    click.option("--debug-dir", "debug_dirs", metavar="DIR", multiple=True,
                 help="Extra directory with separate debug files (.build-id/xx/yyyy.debug). "
                      "Repeatable; /usr/lib/debug is always searched."),
    click.option("--no-gdb", is_flag=True,
                 help="Skip gdb: only the core's notes and ELF symbol tables (pc of each "
                      "thread, no backtraces). Fast and flat in the core's size."),
    click.option("--gdb", "gdb_path", metavar="PATH", default="gdb", show_default=True,
                 help="The gdb to run."),
    click.option("--gdb-timeout", metavar="SECONDS", type=click.FloatRange(min=0.1),
                 default=60.0, show_default=True, help="Longest wait for any one gdb command."),
    click.option("--debuginfod", is_flag=True,
                 help="Let gdb fetch debug info from DEBUGINFOD_URLS servers (off by default: "
                      "the core's build-ids would be sent over the network), kept in "
                      "crashkit's cache (/var/cache/crashkit/debuginfod as root, else "
                      "$XDG_CACHE_HOME/crashkit/debuginfod) for the next run."),
    click.option("--max-frames", metavar="N", type=click.IntRange(min=1), default=256,
                 show_default=True,
                 help="Innermost frames kept per thread; a deeper stack also keeps its "
                      "outermost 16 frames (where a runaway recursion began), with a note "
                      "saying how many were left out."),
    click.option("--error-log", metavar="PATH",
                 help="nginx's error log: the crashed process's last lines (an assertion's "
                      "message, the module's last words)."),
    click.option("--no-host", "no_host", is_flag=True,
                 help="Do not look up this host's package database or the signal's sender "
                      "(for a core from another host without --sysroot)."),
]

_STORE_OPTION = click.option(
    "--store", metavar="DIR", envvar="CRASHKIT_STORE", default="/var/lib/crashkit",
    show_default=True, show_envvar=True,
    help="The crash store that `crashkit collect` fills.")


def core_options(f: F) -> F:
    """The options every command that reads a core takes."""
    for option in reversed([*_CORE_OPTIONS, _STORE_OPTION]):
        f = option(f)
    return f


def _analysis_options(kw: dict[str, Any], core: str, *, full_frames: int, redact: bool) -> Any:
    from crashkit.commands.analyze import Options

    # Checked here rather than by click, for one-line errors like every other.
    for option, path in (("--exe", kw["exe"]), ("--error-log", kw["error_log"])):
        if path is not None and not os.path.isfile(path):
            raise InputError(f"{option}: no such file" if not os.path.exists(path) else
                             f"{option}: not a regular file", path=path)
    dirs = [("--sysroot", kw["sysroot"])] + [("--debug-dir", d) for d in kw["debug_dirs"]]
    for option, directory in dirs:
        if directory is not None and not os.path.isdir(directory):
            raise InputError(f"{option}: no such directory", path=directory)
    from crashkit.commands.analyze import resolve_stored

    core, core_size = resolve_stored(core, kw["store"])
    return Options(exe=kw["exe"], sysroot=kw["sysroot"], debug_dirs=kw["debug_dirs"],
                   use_gdb=not kw["no_gdb"], gdb=kw["gdb_path"], gdb_timeout=kw["gdb_timeout"],
                   debuginfod=kw["debuginfod"], full_frames=full_frames,
                   max_frames=kw["max_frames"], redact=redact, error_log=kw["error_log"],
                   host_facts=not kw["no_host"], core=core, core_size=core_size)


class Result(Protocol):
    @property
    def needs_attention(self) -> bool: ...


def _terminal() -> Any:
    """What stdout is: a terminal (its width; colour unless NO_COLOR or
    TERM=dumb) or a pipe or file (plain, the default width). COLUMNS wins."""
    from crashkit.render.terminal import detect

    isatty = sys.stdout.isatty()
    size = None
    if isatty:
        try:
            size = os.get_terminal_size(sys.stdout.fileno()).columns
        except (OSError, ValueError):
            size = None
    return detect(isatty, os.environ, size)


def emit(verb: str, result: Result, as_json: bool, now: bool = False) -> int:
    """The one way a verb's result reaches the user: its messages on stderr, its
    text (every line escaped for the terminal) or JSON on stdout (written by
    :func:`main` once click has returned); the exit status (1: needs attention)."""
    import json

    from crashkit.render.escape import visible

    render: Any = importlib.import_module(f"crashkit.render.{verb}")
    for line in render.messages(result):
        click.echo(f"crashkit: {visible(line)}", err=True)
    if as_json:
        # Indented for a person at a terminal; compact (and several times
        # faster: CPython's C encoder does not indent) for a pipe or a file.
        _OUTPUT.append(json.dumps(render.to_json(result),
                                  indent=2 if sys.stdout.isatty() else None))
    else:
        from crashkit.render import terminal

        term = _terminal()
        with terminal.using(term):
            lines = [visible(line) for line in render.text(result).split("\n")]
        words = getattr(render, "STATUS_WORDS", None)
        if term.colour and words is not None:
            lines = terminal.paint(lines, words)  # after escaping: only our own sequences
        _OUTPUT.append("\n".join(lines))
    if now:  # a long-running command (--watch): out at once, not at the end
        for text in _OUTPUT:
            sys.stdout.write(text + "\n")
        sys.stdout.flush()
        _OUTPUT.clear()
    return 1 if result.needs_attention else 0


# analyze's and report's redaction is turned off by the same flag,
# --no-redact; --show-secrets is analyze's old name for it, kept (hidden) so
# that scripts written for it still work, and report takes it too.
_SHOW_SECRETS = click.option("--show-secrets", is_flag=True, hidden=True,
                             help="The old name of --no-redact.")


@cli.command(epilog=CORE_EXIT_HELP)
@click.argument("core")
@core_options
@click.option("--full", "full", is_flag=True,
              help="Arguments and locals of the innermost frames (--full-frames of them).")
@click.option("--full-frames", metavar="N", type=click.IntRange(min=1), default=5,
              show_default=True, help="How many frames --full covers.")
@click.option("--no-redact", is_flag=True,
              help="Do not redact string values in arguments and locals, nor secrets "
                   "(--password VALUE, token=...) in the crashed program's command line.")
@_SHOW_SECRETS
@click.option("--conf", "conf", metavar="PATH",
              help="The crashed nginx's config, for a script crash: the directives that run "
                   "scripts, with their file and line. Default: the config of the crashed "
                   "worker's master, while it runs.")
@click.option("--json", "as_json", is_flag=True,
              help="Print the analysis as JSON (schema crashkit/analysis/1, see README).")
def analyze(core: str, full: bool, full_frames: int, no_redact: bool, show_secrets: bool,
            conf: str | None, as_json: bool, **kw: Any) -> int:
    """Tell what crashed in CORE and whose code is at fault.

    CORE is a core file (plain, or compressed with zstd, xz, lz4 or gzip as
    systemd-coredump keeps them) or the id of a crash in the store (`crashkit
    list`, `crashkit show`).

    From the core's own notes: program, process, signal and why, the faulting
    address or the sender, every mapped module with its build-id (checked
    against the file on disk), and whether the core is complete. Through gdb
    (safe mode: no gdbinit, no auto-loaded scripts, no debuginfod): every
    thread's backtrace, with names gdb cannot give filled in from ELF symbol
    tables, and the instructions around the crash. The first line is the
    verdict: what happened and whose code is at fault.
    """
    from crashkit.commands import analyze as verb

    if conf is not None and not os.path.isfile(conf):
        raise InputError("--conf: no such file" if not os.path.exists(conf) else
                         "--conf: not a regular file", path=conf)
    options = _analysis_options(kw, core, full_frames=full_frames if full else 0,
                                redact=not (no_redact or show_secrets))
    _big_core_notice(options.core, options.use_gdb)
    return emit("analyze", verb.run(dataclasses.replace(options, conf=conf)), as_json)


BIG_CORE = 256 << 20  # bytes: gdb takes seconds to load a core this large


def _big_core_notice(core: str, use_gdb: bool) -> None:
    """On a terminal, say before gdb's long silence on a large core that it works."""
    if not use_gdb or not sys.stderr.isatty():
        return
    try:
        size = os.stat(core).st_size
    except OSError:
        return  # the reader says what is wrong with it
    if size >= BIG_CORE:
        from crashkit.model.words import size as shown

        click.echo(f"crashkit: gdb is reading a {shown(size)} core (--no-gdb: the notes "
                   "alone, in well under a second)…", err=True)


def _formats(value: str) -> tuple[str, ...]:
    from crashkit.commands.report import FORMATS

    wanted = tuple(dict.fromkeys(v.strip() for v in value.split(",") if v.strip()))
    unknown = [v for v in wanted if v not in FORMATS]
    if unknown or not wanted:
        raise InputError(f"--format: {', '.join(unknown) or 'nothing'} is not one of "
                         f"{', '.join(FORMATS)}")
    return wanted


@cli.command(epilog=CORE_EXIT_HELP)
@click.argument("core")
@click.option("--out", "out_dir", metavar="DIR", default=".", show_default=True,
              help="Where to write the bundle (crashkit-report-PROGRAM-PID-SIG.tar.gz).")
@click.option("--format", "formats", metavar="LIST", default="md,html,json", show_default=True,
              help="Which reports to include: md (report.md, an issue body), html "
                   "(report.html), json (analysis.json).")
@click.option("--include-core", is_flag=True,
              help="Put the core itself in the bundle. It holds the process's memory (TLS "
                   "keys, cookies, request data): share such a bundle privately.")
@click.option("--no-redact", is_flag=True,
              help="Keep strings from process memory and secrets from the config and logs.")
@_SHOW_SECRETS
@click.option("--template-dir", metavar="DIR",
              help="Templates that override the shipped ones (report.md.j2, report.html.j2).")
@click.option("--conf", metavar="PATH",
              help="The crashed nginx's config (default: the -c and -p of the crashed "
                   "worker's master when it still runs, else the one `nginx -V` names, "
                   "and report.md then says it may not be the crashed one).")
@click.option("--nginx", "nginx_path", metavar="PATH", default="nginx", show_default=True,
              help="The nginx binary for nginx -V and nginx -T.")
@click.option("--prefix", metavar="DIR",
              help="The -p the crashed nginx ran with (relative paths in its config are "
                   "under it). Default: the -p of the crashed worker's master when it still "
                   "runs (or of a running master of --conf), else the compiled-in prefix.")
@click.option("--issue", is_flag=True,
              help="Also print the upstream issue: the blamed code's tracker and why, a "
                   "prefilled new-issue URL (or the reportbug/gh command) and a duplicate "
                   "search by the signature hash.")
@click.option("--repo", metavar="OWNER/REPO|URL",
              help="The tracker to use (GitHub OWNER/REPO, or a GitHub, GitLab, Trac or "
                   "bugs.debian.org URL) instead of the one crashkit finds.")
@click.option("--budget", metavar="N", type=click.IntRange(min=500), default=6000,
              show_default=True, help="Longest prefilled URL, in characters; the body is "
                                      "cut to fit (GitHub refuses about 8 KB).")
@click.option("--submit", is_flag=True,
              help="File the issue with your own `gh issue create` (GitHub; gh installed "
                   "and logged in), after a duplicate search by the signature hash.")
@click.option("--force", is_flag=True, help="With --submit: file even when an issue "
                                            "already names the signature hash.")
@click.option("--portable", is_flag=True,
              help="Also put in the core and every file it maps (the executable, its "
                   "modules and their debug files, by build-id), so that `crashkit analyze "
                   "BUNDLE` gives the same analysis on another machine. The bundle then holds "
                   "the process's memory: share it privately.")
@click.option("--open", "open_browser", is_flag=True,
              help="Open the prefilled URL in the desktop's browser, when there is one.")
@core_options
@click.option("--json", "as_json", is_flag=True,
              help="Print what was written as JSON (schema crashkit/report/1).")
def report(core: str, out_dir: str, formats: str, include_core: bool, no_redact: bool,
           show_secrets: bool, template_dir: str | None, conf: str | None, nginx_path: str,
           prefix: str | None, as_json: bool, issue: bool, repo: str | None, budget: int,
           submit: bool, force: bool, portable: bool, open_browser: bool, **kw: Any) -> int:
    """Write a bug-report bundle for CORE (a core file or a store id), ready to attach upstream.

    A .tar.gz (mode 0600) with report.md (an issue body for GitHub or GitLab),
    report.html, analysis.json, every thread's backtrace with locals, the
    registers and instructions at the crash, the module list with packages,
    nginx -V, nginx -T, the error log around the crash and the system's
    versions. Strings from process memory, secrets in the config and
    secret-looking values in logs are redacted (<redacted:N>, N their length)
    unless --no-redact. The core goes in only with --include-core.
    """
    import dataclasses

    from crashkit.commands import report as verb

    no_redact = no_redact or show_secrets
    wanted = _formats(formats)
    if prefix is not None and not os.path.isdir(prefix):
        raise InputError("--prefix: no such directory", path=prefix)
    if template_dir is not None and not os.path.isdir(template_dir):
        raise InputError("--template-dir: no such directory", path=template_dir)
    if conf is not None and not os.path.isfile(conf):
        raise InputError("--conf: no such file" if not os.path.exists(conf) else
                         "--conf: not a regular file", path=conf)
    if not os.path.isdir(out_dir):
        raise InputError("--out: not a directory" if os.path.exists(out_dir) else
                         "--out: no such directory", path=out_dir)
    options = dataclasses.replace(_analysis_options(kw, core, full_frames=verb.FULL_FRAMES,
                                                    redact=not no_redact), packages="all",
                                  conf=conf,
                                  # Another process's command line has no place in a
                                  # bundle: it may hold its secrets, and the pid may
                                  # have been reused by then.
                                  sender_now=False)
    if no_redact:
        click.echo("crashkit: warning: --no-redact: the bundle may hold passwords, cookies and "
                   "keys from the process's memory and the config", err=True)
    if include_core or portable:
        click.echo(f"crashkit: warning: {'--portable' if portable else '--include-core'}: the "
                   "bundle holds the process's memory (passwords, keys, request data); share "
                   "it privately, never on a public tracker", err=True)
    def progress(message: str) -> None:
        if sys.stderr.isatty():
            click.echo(f"crashkit: {message}…", err=True)

    wants_issue = issue or submit or open_browser or repo is not None
    issue_options = None
    if wants_issue:
        from crashkit.analysis.trackers import from_repo_option

        if repo is not None:
            from_repo_option(repo)  # a bad --repo fails before anything is written
        if "md" not in wanted:
            raise InputError("--issue: the issue body is report.md: keep md in --format")
        if submit and (include_core or portable):
            raise InputError(f"--submit with {'--portable' if portable else '--include-core'}"
                             ": a core never goes to a public tracker")
        issue_options = verb.IssueOptions(repo=repo, budget=budget, submit=submit,
                                          force=force)
    result = verb.run(verb.Options(options, verb.ReportOptions(
        out_dir=out_dir, formats=wanted, include_core=include_core, portable=portable,
        redact=not no_redact,
        template_dir=template_dir, conf=conf, error_log=kw["error_log"], nginx=nginx_path,
        prefix=prefix, issue=issue_options), progress=progress))
    if open_browser and result.issue is not None and result.issue.url:
        import webbrowser

        if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")) or \
                not webbrowser.open(result.issue.url):
            click.echo("crashkit: --open: no desktop browser here; open the URL shown",
                       err=True)
    return emit("report", result, as_json)


# Options several commands share.
_CONF_OPTION = click.option(
    "--conf", metavar="PATH", help="nginx's main config file. Default: the --conf-path of "
    "`nginx -V`, else /etc/nginx/nginx.conf.")
_NGINX_OPTION = click.option(
    "--nginx", "nginx_path", metavar="PATH", default="nginx", show_default=True,
    help="The nginx binary (for nginx -V and nginx -t).")
_PREFIX_OPTION = click.option(
    "--prefix", metavar="DIR", help="The -p nginx runs with (relative paths in the config "
    "are under it). Default: the -p of a running master of this config, else the "
    "compiled-in prefix.")


class _TriageCommand(click.Command):
    """triage's --help ends with its finding kinds, from the registry of
    conditions (crashkit.analysis.conditions), read only when help is asked."""

    def format_epilog(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        from crashkit.render.triage import kinds_help

        formatter.write_paragraph()
        with formatter.indentation():
            formatter.write_text(kinds_help() + "\n\n" + (self.epilog or ""))


@cli.command(cls=_TriageCommand, epilog=TRIAGE_EXIT_HELP)
@click.option("--error-log", "error_logs", metavar="PATH", multiple=True,
              help="An nginx error log, plain or gzip-compressed (error.log.2.gz), or - for "
                   "standard input; only regular files are read. Repeatable. "
                   "Default: the error_log files of the nginx config, else "
                   "/var/log/nginx/error.log.")
@click.option("--since", metavar="TIME",
              help="Only lines from TIME on: an ISO time (2026-11-24T04:00, local unless it "
                   "has an offset) or an age (30m, 2h, 1d, 1w).")
@click.option("--conf", metavar="PATH",
              help="nginx config to take error logs, worker user and working_directory from "
                   "(default: nginx -V's --conf-path).")
@_PREFIX_OPTION
@click.option("--jobs", metavar="N", type=click.IntRange(min=1),
              help="Processes reading big logs in parallel (default: CPUs, at most 4).")
@click.option("--json", "as_json", is_flag=True,
              help="Print the findings as JSON (schema crashkit/triage/1, see README).")
def triage(error_logs: tuple[str, ...], since: str | None, conf: str | None,
           prefix: str | None, jobs: int | None, as_json: bool) -> int:
    """Read nginx error logs and say what needs attention, most severe first.

    Finds: upstreams refusing (111), missing or forbidden unix sockets (2,
    13), timing out (110) or resetting (104) connections, no live upstreams,
    worker_connections exhausted, too many open files (24), bind() failing
    on an address in use (98, and which process holds it), workers dying of
    a signal (with a core; or SIGKILL, matched against the kernel's OOM-killer
    lines), configurations nginx refused ([emerg]), and any other [error],
    [crit] or [alert] grouped by message (not routine 404s, nor limit_req,
    limit_conn, deny or body-size rejections). Each with its count,
    first and last time, top upstreams, clients and requests, and the fix.
    Exit 1 when there are findings. The kinds of finding are listed below.
    """
    from crashkit.commands import triage as verb
    from crashkit.nginx.errorlog import parse_since

    when = None
    if since is not None:
        try:
            when = parse_since(since)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--since") from None
    from crashkit.nginx.errorlog import stdin_spooled

    with stdin_spooled(error_logs) as logs:  # --error-log -: standard input
        result = verb.run(verb.Options(error_logs=tuple(logs), since=when, conf=conf,
                                       prefix=prefix, jobs=jobs))
    return emit("triage", result, as_json)


@cli.command(epilog=DOCTOR_EXIT_HELP)
@_CONF_OPTION
@_NGINX_OPTION
@_PREFIX_OPTION
@click.option("--json", "as_json", is_flag=True,
              help="Print the checks as JSON (schema crashkit/doctor/1, see README).")
def doctor(conf: str | None, nginx_path: str, prefix: str | None, as_json: bool) -> int:
    """Check the live nginx host: what is wrong right now.

    nginx -t; the master (from the config's pid file) and its workers;
    who listens on each configured address; each worker's open-file limit
    against worker_connections; every fixed upstream address (a TCP connect,
    or a unix-socket connect as the worker user); OOM-killer kills of nginx
    in the kernel log; and core-dump readiness (crashkit setup's dry run and
    OS checks). Exit 1 when a check warns or fails.
    """
    from crashkit.commands import doctor as verb

    return emit("doctor", verb.run(verb.Options(conf=conf, nginx=nginx_path, prefix=prefix)),
                as_json)


SETUP_EXIT_HELP = """\b
Exit codes:
  0  done: nothing needs attention (after --apply: applied, checks fine)
  1  a dry run found changes to make, or an OS check still warns or fails
  2  bad input (missing config, unreadable include, config failing nginx -t,
     core directory path that is a file, unknown worker user)"""


@cli.command(epilog=SETUP_EXIT_HELP)
@_CONF_OPTION
@click.option("--core-dir", metavar="DIR",
              help="Where workers dump core (working_directory). Default: the existing "
                   "working_directory when it is fit, else /var/lib/crashkit/cores.")
@click.option("--core-limit", metavar="SIZE",
              help="worker_rlimit_core (nginx size: 2G, 512m). Default: 2G, or a larger "
                   "existing value.")
@click.option("--apply", "do_apply", is_flag=True,
              help="Make the changes: candidate beside each file, nginx -t, backup, atomic "
                   "replace. Without it: a dry run printing the plan and a diff.")
@click.option("--reload", "do_reload", is_flag=True,
              help="Reload nginx afterwards (systemctl where systemd runs it, else SIGHUP "
                   "to the master in the pid file).")
@click.option("--undo", is_flag=True,
              help="Restore the files of the last --apply from their backups (validated "
                   "with nginx -t first).")
@click.option("--system", is_flag=True,
              help="With --apply: also apply the OS-side fixes (sysctl drop-in, systemd "
                   "LimitCORE drop-in) and say what changed.")
@click.option("--system-root", metavar="DIR", default="/", show_default=True,
              help="Write --system's drop-ins under DIR (an image or chroot); anything "
                   "but / leaves the running system alone.")
@click.option("--sysctl-root", metavar="DIR", hidden=True,
              help="Read (and with --system write) the kernel settings under DIR instead "
                   "of /proc/sys: for tests, which must not change the machine's.")
@click.option("--collect", is_flag=True,
              help="With --apply: also install crashkit-collect.service, which runs `crashkit "
                   "collect --watch` (new cores stored within seconds); with --undo: remove it.")
@click.option("--lock-wait", metavar="SECONDS", type=click.FloatRange(min=0), default=120,
              show_default=True,
              help="With --apply or --undo: how long to wait while another crashkit setup "
                   "changes the same config (then plan from what it left); 0: refuse at once.")
@_STORE_OPTION
@_NGINX_OPTION
@_PREFIX_OPTION
@click.option("--json", "as_json", is_flag=True,
              help="Print the result as JSON (schema crashkit/setup/1, see README).")
def setup(conf: str | None, core_dir: str | None, core_limit: str | None, do_apply: bool,
          do_reload: bool, undo: bool, system: bool, system_root: str, sysctl_root: str | None,
          collect: bool, lock_wait: float, store: str, nginx_path: str, prefix: str | None,
          as_json: bool) -> int:
    """Make nginx workers leave usable core dumps, safely.

    Sets worker_rlimit_core and working_directory in nginx's main context
    (where they are, or added once), prepares the core directory (owned by the
    worker user, mode 0700) and checks the OS side: core_pattern,
    core_uses_pid, suid_dumpable, systemd's LimitCORE, the hard core limit and
    free disk space. Dry run by default.
    """
    from crashkit.commands.setup import Options, run

    if undo and (do_apply or system or core_dir or core_limit):
        raise InputError("--undo restores the last backup; it takes no --apply, --system, "
                         "--core-dir or --core-limit")
    if (system or do_reload) and not (do_apply or undo):
        raise InputError("--system and --reload change the host: give --apply too")
    if prefix is not None and not os.path.isdir(prefix):
        raise InputError("--prefix: no such directory", path=prefix)
    result = run(Options(conf=conf, core_dir=core_dir, core_limit=core_limit, apply=do_apply,
                         reload=do_reload, undo=undo, system=system, system_root=system_root,
                         nginx=nginx_path, prefix=prefix, collect=collect, store=store,
                         sysctl_root=sysctl_root, lock_wait=lock_wait))
    return emit("setup", result, as_json)


COLLECT_EXIT_HELP = """\b
Exit codes:
  0  every core found was stored (or was already), or left for a reason shown
  1  a core could not be taken (it stays where it was)
  2  bad input: an unusable store or index, a --from that is not a directory"""


def _size(value: str | None, option: str) -> int | None:
    if value is None:
        return None
    import re

    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([KMGT]?)i?B?", value.strip(), re.I)
    if m is None:
        raise InputError(f"{option}: {value!r} is not a size (e.g. 500M, 20G)")
    scale = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}[m.group(2).upper()]
    return int(float(m.group(1)) * scale)


def _age(value: str | None, option: str) -> int | None:
    if value is None:
        return None
    import re

    m = re.fullmatch(r"(\d+)\s*([smhdw]?)", value.strip(), re.I)
    if m is None:
        raise InputError(f"{option}: {value!r} is not an age (e.g. 30d, 12h)")
    return int(m.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400,
                              "w": 604800}[m.group(2).lower()]


@cli.command(epilog=COLLECT_EXIT_HELP)
@click.option("--from", "from_dirs", metavar="DIR", multiple=True,
              help="Also take cores from DIR (repeatable).")
@click.option("--only-from", is_flag=True,
              help="Look only in the --from directories, not where this host's settings "
                   "put cores.")
@_STORE_OPTION
@click.option("--dry-run", is_flag=True, help="Say what would be taken; change nothing.")
@click.option("--keep-sources", is_flag=True,
              help="Copy cores and leave the originals (default: remove an original once its "
                   "copy is verified and indexed; systemd-coredump's and apport's files are "
                   "always left to their tools).")
@click.option("--no-gdb", is_flag=True,
              help="Identify cores from their notes alone (fast; coarser signatures than "
                   "`analyze` with gdb gives).")
@click.option("--error-log", "error_logs", metavar="PATH", multiple=True,
              help="nginx error log to count crashes without a core from (default: the "
                   "config's error logs).")
@click.option("--kernel-log", metavar="PATH",
              help="A saved kernel log (dmesg, dmesg -T, journalctl -k, kern.log) to read "
                   "OOM kills from, instead of this host's (/dev/kmsg, else dmesg).")
@click.option("--flood", metavar="N", type=click.IntRange(min=0), default=20,
              show_default=True,
              help="Per signature keep the first N cores and the latest; count the rest "
                   "without their cores (0: keep all).")
@click.option("--max-size", metavar="SIZE", help="Let the oldest cores go beyond this total.")
@click.option("--max-age", metavar="AGE", help="Let cores older than this go (e.g. 30d).")
@click.option("--keep-per-signature", metavar="N", type=click.IntRange(min=1),
              help="Keep at most N cores of each signature.")
@click.option("--reindex", is_flag=True,
              help="Rebuild the index from the stored cores (the old index is kept aside).")
@click.option("--watch", is_flag=True,
              help="Keep running: store each new core within seconds of the kernel "
                   "finishing it.")
@_CONF_OPTION
@_NGINX_OPTION
@_PREFIX_OPTION
@click.option("--root", "root", metavar="DIR", default="/", hidden=True)
@click.option("--settle", metavar="SECONDS", type=float, default=30.0, hidden=True)
@click.option("--core-pattern", metavar="PATTERN", hidden=True)
@click.option("--sentry", "sentry_dsn", metavar="DSN",
              help="Then send every crash not sent yet to this Sentry or bugsink project, "
                   "as `crashkit export` does (also from $SENTRY_DSN or the settings file "
                   "when given as 'auto').")
@click.option("--json", "as_json", is_flag=True,
              help="Print what was done as JSON (schema crashkit/collect/1).")
def collect(from_dirs: tuple[str, ...], only_from: bool, store: str, dry_run: bool,
            keep_sources: bool, no_gdb: bool, error_logs: tuple[str, ...],
            kernel_log: str | None, flood: int,
            max_size: str | None, max_age: str | None, keep_per_signature: int | None,
            reindex: bool, watch: bool, conf: str | None, nginx_path: str,
            prefix: str | None, root: str, settle: float, core_pattern: str | None,
            sentry_dsn: str | None, as_json: bool) -> int:
    """Gather every core on this host into the crash store, safely.

    Looks where cores land: the directory of a path kernel.core_pattern; for a
    relative pattern, nginx's working_directory and crashkit setup's core
    directory; systemd-coredump's store; apport's core directory and .crash
    reports; and every --from DIR. Each core is linked or copied (zstd),
    verified, analysed and indexed before its original is removed; links,
    FIFOs, devices and files that are not cores are never followed or taken,
    and a core still being written is left for the next run.
    """
    from crashkit.commands import collect as verb

    for d in from_dirs:
        if not os.path.isdir(d):
            raise InputError("--from: not a directory" if os.path.exists(d) else
                             "--from: no such directory", path=d)
    if only_from and not from_dirs:
        raise InputError("--only-from needs at least one --from DIR")
    for log in error_logs:
        if not os.path.isfile(log):
            raise InputError("--error-log: no such file", path=log)
    if kernel_log is not None and not os.path.isfile(kernel_log):
        raise InputError("--kernel-log: no such file", path=kernel_log)

    def progress(message: str) -> None:
        if sys.stderr.isatty() and not as_json:
            click.echo(f"crashkit: {message}", err=True)

    options = verb.Options(
        store=store, from_dirs=from_dirs, auto=not only_from, dry_run=dry_run,
        reindex=reindex, use_gdb=not no_gdb, keep_sources=keep_sources, conf=conf,
        nginx=nginx_path, prefix=prefix, root=root, error_logs=error_logs,
        kernel_log=kernel_log, flood=flood,
        max_size=_size(max_size, "--max-size"), max_age=_age(max_age, "--max-age"),
        keep_per_signature=keep_per_signature, settle=settle, core_pattern=core_pattern,
        progress=progress)
    if sentry_dsn is not None:
        if dry_run:
            raise InputError("--sentry and --dry-run: use `crashkit export --dry-run` to see "
                             "the events")
        from crashkit.commands.export import find_dsn
        from crashkit.writers.sentry import target_of

        dsn, where = find_dsn(None if sentry_dsn == "auto" else sentry_dsn)
        if dsn is None:
            raise InputError("--sentry auto: no DSN in $SENTRY_DSN nor the settings file")
        target_of(dsn)  # a bad DSN is bad input before anything is collected
        options = dataclasses.replace(options, sentry_dsn=dsn, sentry_from=where)
    if watch:
        from crashkit.commands.collect import watch as run_watch

        return run_watch(options, lambda r: emit("collect", r, as_json, now=True))
    from crashkit.render.progress import bar, wanted

    with bar("collecting", wanted(sys.stderr.isatty(), os.environ) and not as_json) as step:
        result = verb.run(dataclasses.replace(options, step=step))
    return emit("collect", result, as_json)


def _since(since: str | None) -> int | None:
    if since is None:
        return None
    from crashkit.nginx.errorlog import parse_since

    try:
        return int(parse_since(since).timestamp())
    except ValueError as exc:
        raise InputError(f"--since: {exc}") from None


@cli.command("list")
@_STORE_OPTION
@click.option("--since", metavar="TIME",
              help="Only groups seen since TIME (e.g. 2h, 3d, 2026-12-01 10:00).")
@click.option("--by", "bucket", type=click.Choice(["hour", "day"]), default="hour",
              show_default=True, help="The timeline's bucket.")
@click.option("--buckets", metavar="N", type=click.IntRange(min=1, max=400), default=24,
              show_default=True, help="How many buckets the timeline shows.")
@click.option("--limit", metavar="N", type=click.IntRange(min=1), help="At most N groups.")
@click.option("--json", "as_json", is_flag=True,
              help="Print the groups as JSON (schema crashkit/list/1).")
def list_(store: str, since: str | None, bucket: str, buckets: int, limit: int | None,
          as_json: bool) -> int:
    """One row per bug in the store: how many crashes, when, whose code.

    Crashes with the same signature are one row, whichever process or host
    they came from: count, first and last seen, the program and its version,
    the code at fault, the verdict, the worst confidence, how many cores are
    kept, and a timeline of crashes per hour (or day) to spot a storm or a
    regression. Crashes without a core (a worker killed by SIGKILL or by the
    kernel's OOM killer, as nginx's error log and the kernel log tell, linked
    by pid and time) are counted too, OOM kills in a row of their own.
    """
    from crashkit.commands import list as verb

    return emit("list", verb.run(verb.Options(store=store, since=_since(since), bucket=bucket,  # type: ignore[arg-type]
                                              buckets=buckets, limit=limit)), as_json)


@cli.command()
@click.argument("crash_id", metavar="ID", type=click.IntRange(min=1))
@_STORE_OPTION
@click.option("--json", "as_json", is_flag=True,
              help="Print the crash as JSON (schema crashkit/show/1).")
def show(crash_id: int, store: str, as_json: bool) -> int:
    """One crash of the store: its facts, where it came from, its group."""
    from crashkit.commands import show as verb

    return emit("show", verb.run(verb.Options(store=store, crash_id=crash_id)), as_json)


EXPORT_EXIT_HELP = """\b
Exit codes:
  0  every crash considered was sent (or had been), or was skipped for a reason shown
  1  a crash could not be sent (the next export retries it)
  2  bad input: no or a bad DSN, an unusable store or index, an unknown crash id"""


@cli.command(epilog=EXPORT_EXIT_HELP)
@click.argument("crash_ids", metavar="[ID]...", nargs=-1, type=click.IntRange(min=1))
@click.option("--sentry", "dsn", metavar="DSN",
              help="The Sentry or bugsink project's DSN (default: $SENTRY_DSN, else "
                   "[export] sentry_dsn in /etc/crashkit/crashkit.toml).")
@_STORE_OPTION
@click.option("--since", metavar="TIME",
              help="Only crashes since TIME (e.g. 2h, 3d, 2026-12-01 10:00).")
@click.option("--dry-run", is_flag=True,
              help="Build the events and print them (--json); send nothing, record nothing.")
@click.option("--no-gdb", is_flag=True,
              help="Frames from the core's notes alone (fast; the crashing thread's pc "
                   "and a stack scan).")
@click.option("--no-report", is_flag=True,
              help="Do not attach the redacted report.md to each event.")
@click.option("--config", "config", metavar="FILE",
              help="crashkit's settings file (default /etc/crashkit/crashkit.toml).")
@click.option("--timeout", metavar="SECONDS", type=click.FloatRange(min=1), default=30.0,
              show_default=True, help="How long to wait for the server per crash.")
@click.option("--json", "as_json", is_flag=True,
              help="Print what was sent as JSON (schema crashkit/export/1).")
def export(crash_ids: tuple[int, ...], dsn: str | None, store: str, since: str | None,
           dry_run: bool, no_gdb: bool, no_report: bool, config: str | None,
           timeout: float, as_json: bool) -> int:
    """Send the store's crashes to a Sentry or bugsink server, each once.

    Each crash with a stored core (or each ID given) becomes one native event:
    the signal and the verdict, every thread's frames with their modules, the
    build-id of every mapped file, a fingerprint that is crashkit's signature
    (the same bug on any host is one issue on the server), tags for the blamed
    module, origin and confidence, and the redacted report.md as an attachment.
    Nothing that `crashkit report` redacts is sent. The index remembers each
    send: a rerun sends only what is new or failed before.
    """
    from crashkit.commands import export as verb

    found, where = verb.find_dsn(dsn, config=config)
    if found is None and not dry_run:
        raise InputError("no Sentry DSN: pass --sentry DSN, set SENTRY_DSN, or set "
                         f"[export] sentry_dsn in {config or verb.CONFIG_FILE}")

    def progress(message: str) -> None:
        if sys.stderr.isatty() and not as_json:
            click.echo(f"crashkit: {message}", err=True)

    from crashkit.render.progress import bar, wanted

    with bar("exporting", wanted(sys.stderr.isatty(), os.environ) and not as_json) as step:
        result = verb.run(verb.Options(
            store=store, dsn=found, ids=crash_ids, since=_since(since), dry_run=dry_run,
            use_gdb=not no_gdb, attach_report=not no_report, timeout=timeout, dsn_from=where,
            progress=progress, step=step))
    return emit("export", result, as_json)


# What a command prints goes out after click returns (see main): click turns
# a broken pipe inside a command into exit 1, which scripts would misread.
_OUTPUT: list[str] = []


def _exit_on_signal(signo: int, _frame: object) -> None:
    # SIGTERM/SIGHUP (a CI timeout, systemd stopping a job) become an ordinary
    # exit, so that gdb is killed and its private directory removed.
    raise SystemExit(128 + signo)


def main(argv: list[str] | None = None) -> None:
    import signal

    for signo in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signo, _exit_on_signal)
    try:
        status = cli.main(args=argv, prog_name="crashkit", standalone_mode=False)
        for text in _OUTPUT:
            sys.stdout.write(text + "\n")
        sys.stdout.flush()
        if isinstance(status, int) and status:
            sys.exit(status)
    except click.exceptions.Abort:
        click.echo("crashkit: interrupted", err=True)
        sys.exit(130)
    except click.UsageError as exc:
        no_args = getattr(click.exceptions, "NoArgsIsHelpError", None)
        if no_args is not None and isinstance(exc, no_args):
            # Plain `crashkit`: its help, as a usage error (a script that
            # forgot its verb must not read success).
            click.echo(exc.format_message(), err=True)
            sys.exit(2)
        # One line, like every other error: what is wrong, and where help is.
        command = exc.ctx.command_path if exc.ctx is not None else "crashkit"
        from crashkit.render.escape import visible

        message = visible(exc.format_message().rstrip("."))
        click.echo(f"crashkit: error: {message} (see {command} --help)", err=True)
        sys.exit(2)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except CrashkitError as exc:
        from crashkit.render.escape import visible

        # The message names files and quotes their content: shown, never obeyed.
        click.echo(f"crashkit: error: {visible(str(exc))}", err=True)
        sys.exit(exc.exit_code)
    except BrokenPipeError:
        # The reader went away (| head, | true); not an error worth a message.
        # Point stdout at /dev/null so the final flush does not fail again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        sys.exit(0)
    except OSError as exc:  # writing the output (a full disk, /dev/full)
        from crashkit.render.escape import visible

        click.echo(f"crashkit: error: {visible(str(exc.filename or 'output'))}: "
                   f"{visible(str(exc.strerror or exc))}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        click.echo("crashkit: interrupted", err=True)
        sys.exit(130)
    except Exception as exc:
        if os.environ.get("CRASHKIT_DEBUG"):
            raise
        from crashkit.render.escape import visible

        click.echo(f"crashkit: internal error: {type(exc).__name__}: {visible(str(exc))} "
                   "(set CRASHKIT_DEBUG=1 for a traceback; please report it)", err=True)
        sys.exit(2)
