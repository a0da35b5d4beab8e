"""Command line: the only place that turns errors into messages and exit codes.

Exit codes: 0 the command did its job (warnings included), 1 it found
something that needs attention, 2 bad input or usage.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

from crashkit import __version__
from crashkit.errors import CrashkitError

F = TypeVar("F", bound=Callable[..., Any])

EXIT_CODES_HELP = """\b
Exit codes:
  0  the command did its job (warnings such as a build-id mismatch included)
  1  it ran and found something that needs attention
  2  bad input or usage (one line on stderr names the file and the problem)"""


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
             epilog=EXIT_CODES_HELP)
@click.version_option(__version__, "-V", "--version", prog_name="crashkit")
def cli() -> None:
    """crashkit: what crashed, and whose code is at fault.

    Core-dump forensics for Linux programs, nginx workers first.
    """


@cli.command(epilog=EXIT_CODES_HELP)
@click.argument("core", type=click.Path(dir_okay=True, path_type=str))
@click.option("--exe", "exe", metavar="PATH", type=click.Path(dir_okay=False, path_type=str),
              help="Executable to use instead of the path recorded in the core.")
@click.option("--sysroot", metavar="DIR", type=click.Path(file_okay=False, path_type=str),
              help="Look up the core's files under DIR (a copy of the crashed host's files).")
@click.option("--debug-dir", "debug_dirs", metavar="DIR", multiple=True,
              type=click.Path(file_okay=False, path_type=str),
              help="Extra directory with separate debug files (.build-id/xx/yyyy.debug). "
                   "Repeatable; /usr/lib/debug is always searched.")
@click.option("--no-gdb", is_flag=True, default=True, show_default=True,
              help="Read only the core's own notes and ELF symbol tables. In this version "
                   "this is the default and only mode; gdb backtraces come next.")
@click.option("--json", "as_json", is_flag=True,
              help="Print the analysis as JSON (schema crashkit/analysis/1, see README).")
def analyze(core: str, exe: str | None, sysroot: str | None, debug_dirs: tuple[str, ...],
            no_gdb: bool, as_json: bool) -> None:
    """Tell what crashed in CORE: program, process, signal and why, the faulting
    address, the crashing thread's location, every mapped module with its
    build-id, and whether the core is complete.

    Reads only the core's headers and notes (time and memory do not grow with
    the core's size) and the ELF symbol tables of the files it names.
    """
    from crashkit.analysis.analyze import Options
    from crashkit.analysis.analyze import analyze as run_analysis

    if exe is not None and not os.path.isfile(exe):
        raise CrashkitError("--exe: no such file", path=exe)
    result = run_analysis(core, Options(exe=exe, sysroot=sysroot, debug_dirs=debug_dirs))
    if as_json:
        from crashkit.render.json_out import analysis_json

        click.echo(json.dumps(analysis_json(result), indent=2))
    else:
        from crashkit.render.text import render

        click.echo(render(result))


def main(argv: list[str] | None = None) -> None:
    try:
        cli.main(args=argv, prog_name="crashkit", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("crashkit: interrupted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except CrashkitError as exc:
        click.echo(f"crashkit: error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except BrokenPipeError:
        # The reader went away (| head); not an error worth a message.
        sys.stderr.close()
        sys.exit(0)
    except KeyboardInterrupt:
        click.echo("crashkit: interrupted", err=True)
        sys.exit(130)
    except Exception as exc:
        if os.environ.get("CRASHKIT_DEBUG"):
            raise
        click.echo(f"crashkit: internal error: {type(exc).__name__}: {exc} "
                   "(set CRASHKIT_DEBUG=1 for a traceback; please report it)", err=True)
        sys.exit(2)
