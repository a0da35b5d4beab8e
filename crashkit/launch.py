"""The ``crashkit`` entry point: starts gdb before the rest of crashkit loads.

For ``crashkit analyze`` gdb's own start-up (about 75 ms) then runs while
Python imports click and pyelftools and reads the core's notes.
"""

from __future__ import annotations

import os
import sys


def main() -> None:
    if sys.argv[1:2] == ["analyze"]:  # the only verb gdb is started early for
        from crashkit.gdb.spawn import prestart

        prestart(sys.argv[1:])
    from crashkit.cli import main as cli_main

    try:
        cli_main()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    else:
        code = 0
    # Everything is written and gdb is gone: skip the interpreter's teardown
    # (module and object finalisation), which only costs time here.
    spawn = sys.modules.get("crashkit.gdb.spawn")  # an early gdb is only ever made there
    if spawn is not None:
        spawn.drop_early()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):
        pass
    os._exit(code)
