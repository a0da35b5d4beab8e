"""Command line: the table of verbs, the one :func:`emit`, and the only place
that turns errors into messages and exit codes.

Each verb is ``crashkit.commands.<verb>.run(Options) -> Result`` and
``crashkit.render.<verb>`` (``text``, ``to_json``, ``messages``); a click
command here only turns its options into that verb's ``Options``. Exit codes:
0 the command did its job (warnings included), 1 ``result.needs_attention``,
2 bad input or usage (a :class:`~crashkit.errors.CrashkitError`).
"""

from __future__ import annotations

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
                      "the core's build-ids would be sent over the network)."),
    click.option("--max-frames", metavar="N", type=click.IntRange(min=1), default=256,
                 show_default=True, help="Deepest backtrace kept per thread."),
    click.option("--error-log", metavar="PATH",
                 help="nginx's error log: the crashed process's last lines (an assertion's "
                      "message, the module's last words)."),
    click.option("--no-host", "no_host", is_flag=True,
                 help="Do not look up this host's package database or the signal's sender "
                      "(for a core from another host without --sysroot)."),
]


def core_options(f: F) -> F:
    """The options every command that reads a core takes."""
    for option in reversed(_CORE_OPTIONS):
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
    return Options(exe=kw["exe"], sysroot=kw["sysroot"], debug_dirs=kw["debug_dirs"],
                   use_gdb=not kw["no_gdb"], gdb=kw["gdb_path"], gdb_timeout=kw["gdb_timeout"],
                   debuginfod=kw["debuginfod"], full_frames=full_frames,
                   max_frames=kw["max_frames"], redact=redact, error_log=kw["error_log"],
                   host_facts=not kw["no_host"], core=core)


class Result(Protocol):
    @property
    def needs_attention(self) -> bool: ...


def emit(verb: str, result: Result, as_json: bool) -> int:
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
        _OUTPUT.append("\n".join(visible(line) for line in render.text(result).split("\n")))
    return 1 if result.needs_attention else 0


@cli.command(epilog=CORE_EXIT_HELP)
@click.argument("core")
@core_options
@click.option("--full", "full", is_flag=True,
              help="Arguments and locals of the innermost frames (--full-frames of them).")
@click.option("--full-frames", metavar="N", type=click.IntRange(min=1), default=5,
              show_default=True, help="How many frames --full covers.")
@click.option("--show-secrets", is_flag=True,
              help="Do not redact string values in arguments and locals.")
@click.option("--json", "as_json", is_flag=True,
              help="Print the analysis as JSON (schema crashkit/analysis/1, see README).")
def analyze(core: str, full: bool, full_frames: int, show_secrets: bool, as_json: bool,
            **kw: Any) -> int:
    """Tell what crashed in CORE and whose code is at fault.

    From the core's own notes: program, process, signal and why, the faulting
    address or the sender, every mapped module with its build-id (checked
    against the file on disk), and whether the core is complete. Through gdb
    (safe mode: no gdbinit, no auto-loaded scripts, no debuginfod): every
    thread's backtrace, with names gdb cannot give filled in from ELF symbol
    tables, and the instructions around the crash. The first line is the
    verdict: what happened and whose code is at fault.
    """
    from crashkit.commands import analyze as verb

    options = _analysis_options(kw, core, full_frames=full_frames if full else 0,
                                redact=not show_secrets)
    return emit("analyze", verb.run(options), as_json)


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
@click.option("--template-dir", metavar="DIR",
              help="Templates that override the shipped ones (report.md.j2, report.html.j2).")
@click.option("--conf", metavar="PATH",
              help="The crashed nginx's config (default: the -c and -p of the crashed "
                   "worker's master when it still runs, else the one `nginx -V` names, "
                   "and report.md then says it may not be the crashed one).")
@click.option("--nginx", "nginx_path", metavar="PATH", default="nginx", show_default=True,
              help="The nginx binary for nginx -V and nginx -T.")
@core_options
@click.option("--json", "as_json", is_flag=True,
              help="Print what was written as JSON (schema crashkit/report/1).")
def report(core: str, out_dir: str, formats: str, include_core: bool, no_redact: bool,
           template_dir: str | None, conf: str | None, nginx_path: str, as_json: bool,
           **kw: Any) -> int:
    """Write a bug-report bundle for CORE, ready to attach upstream.

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

    wanted = _formats(formats)
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
                                  # Another process's command line has no place in a
                                  # bundle: it may hold its secrets, and the pid may
                                  # have been reused by then.
                                  sender_now=False)
    if no_redact:
        click.echo("crashkit: warning: --no-redact: the bundle may hold passwords, cookies and "
                   "keys from the process's memory and the config", err=True)
    if include_core:
        click.echo("crashkit: warning: --include-core: the bundle holds the process's memory; "
                   "share it privately, never on a public tracker", err=True)
    def progress(message: str) -> None:
        if sys.stderr.isatty():
            click.echo(f"crashkit: {message}…", err=True)

    result = verb.run(verb.Options(options, verb.ReportOptions(
        out_dir=out_dir, formats=wanted, include_core=include_core, redact=not no_redact,
        template_dir=template_dir, conf=conf, error_log=kw["error_log"], nginx=nginx_path),
        progress=progress))
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
              help="An nginx error log, plain or gzip-compressed (error.log.2.gz). Repeatable. "
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
    return emit("triage", verb.run(verb.Options(error_logs=error_logs, since=when, conf=conf,
                                                prefix=prefix, jobs=jobs)), as_json)


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
@_NGINX_OPTION
@_PREFIX_OPTION
@click.option("--json", "as_json", is_flag=True,
              help="Print the result as JSON (schema crashkit/setup/1, see README).")
def setup(conf: str | None, core_dir: str | None, core_limit: str | None, do_apply: bool,
          do_reload: bool, undo: bool, system: bool, system_root: str, nginx_path: str,
          prefix: str | None, as_json: bool) -> int:
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
                         nginx=nginx_path, prefix=prefix))
    return emit("setup", result, as_json)


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
        if no_args is not None and isinstance(exc, no_args):  # plain `crashkit`: its help
            click.echo(exc.format_message())
            sys.exit(0)
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
        click.echo(f"crashkit: error: {exc.filename or 'output'}: {exc.strerror}", err=True)
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
