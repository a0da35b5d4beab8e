"""The ``crashkit`` entry point: starts gdb before the rest of crashkit loads.

For ``crashkit analyze`` gdb's own start-up (about 75 ms) then runs while
Python imports click and pyelftools and reads the core's notes.
"""

from __future__ import annotations

import sys


def main() -> None:
    from crashkit.gdb.spawn import prestart

    prestart(sys.argv[1:])
    from crashkit.cli import main as cli_main

    cli_main()
