"""A progress bar on stderr for long work (collect's cores, export's
crashes), drawn by rich only when stderr is a terminal and transient: it
leaves nothing behind, so the command's own output follows on a clean
screen, and a pipe or a log file never sees it."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager

Step = Callable[[int, int, str], None]  # (done, total, what is being worked on)


def wanted(isatty: bool, environ: dict[str, str] | os._Environ[str]) -> bool:
    return isatty and environ.get("TERM") != "dumb"


@contextmanager
def bar(label: str, enabled: bool) -> Iterator[Step | None]:
    """A step callback drawing the bar, or None when it is not wanted."""
    if not enabled:
        yield None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    console = Console(stderr=True, highlight=False)
    with Progress(TextColumn(f"crashkit: {label}"), BarColumn(), MofNCompleteColumn(),
                  TimeRemainingColumn(), TextColumn("{task.fields[item]}", markup=False),
                  console=console, transient=True) as progress:
        task = progress.add_task(label, total=None, item="")

        def step(done: int, total: int, item: str) -> None:
            # A name from a core's directory may hold control characters.
            shown = "".join(c if c.isprintable() else "?" for c in os.path.basename(item))
            progress.update(task, completed=done, total=total, item=shown[:48])

        yield step
