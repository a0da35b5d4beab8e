"""Output that follows the terminal it goes to: the width wrapped text is cut
at, and colour for severity and status words.

The CLI decides what the terminal is (:func:`crashkit.cli.emit`): colour only
when stdout is a terminal, ``NO_COLOR`` is unset or empty (https://no-color.org)
and ``TERM`` is not ``dumb``; the width from ``COLUMNS``, else the terminal's,
else :data:`WIDTH` (a pipe or a file gets the same text as before, goldens
too). Renderers wrap with :func:`wrap`, which reads the width set here, and
name their status words with a ``STATUS_WORDS`` pattern; colour is added to
lines that were already escaped (:func:`crashkit.render.escape.visible`), so
nothing from a core or a log can inject an escape sequence. ``rich`` is
imported only when colour is on: ``analyze --no-gdb`` never loads it.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from typing import NamedTuple

WIDTH = 100  # wrapped text when the width is not known (a pipe, a file)
MIN_WIDTH = 40  # narrower than this, wrapping helps nobody

# The style of each status word, whichever verb prints it: rich style names.
STYLES: Mapping[str, str] = {
    "CRITICAL": "bold red", "FAIL": "bold red",
    "HIGH": "red",
    "MEDIUM": "yellow", "WARN": "yellow",
    "ok": "green", "fixed": "green",
    "skip": "dim",
}


class Terminal(NamedTuple):  # not a dataclass: cheaper to import on every run
    width: int = WIDTH  # where wrapped text is cut
    colour: bool = False
    columns: int | None = None  # the width when it is known (COLUMNS, a terminal); rows fit it


PLAIN = Terminal()  # a pipe or a file
_CURRENT: ContextVar[Terminal] = ContextVar("crashkit_terminal", default=PLAIN)


def detect(isatty: bool, environ: Mapping[str, str], size: int | None) -> Terminal:
    """What the output goes to: ``isatty`` of stdout, the environment, and the
    terminal's own width (``size``, None when it has none)."""
    colour = isatty and not environ.get("NO_COLOR") and environ.get("TERM") != "dumb"
    known = None
    columns = environ.get("COLUMNS", "")
    if columns.isdigit() and int(columns) > 0:
        known = max(MIN_WIDTH, int(columns))
    elif isatty and size:
        known = max(MIN_WIDTH, size)
    return Terminal(width=known or WIDTH, colour=colour, columns=known)


@contextlib.contextmanager
def using(term: Terminal) -> Iterator[None]:
    token = _CURRENT.set(term)
    try:
        yield
    finally:
        _CURRENT.reset(token)


def current() -> Terminal:
    return _CURRENT.get()


def wrap(text: str, indent: int, hanging: int) -> list[str]:
    """``text`` cut to the terminal's width at spaces: the first line
    indented by ``indent`` spaces, the rest by ``hanging``."""
    import textwrap

    # Never at a hyphen: `--max-frames` or `open-file` cut in two would not
    # be copied right.
    return textwrap.wrap(text, current().width, initial_indent=" " * indent,
                         subsequent_indent=" " * hanging, break_on_hyphens=False)


def fit(cells: list[str], indent: int, hanging: int) -> list[str]:
    """A row of cells (joined by two spaces): on one line, or, when the
    width is known and the row is wider, on as many lines as it takes, each
    cell whole and the later lines indented by ``hanging``. A pipe gets the
    one line (scripts cut rows by their columns)."""
    first = " " * indent + "  ".join(cells)
    width = current().columns
    if width is None or len(first) <= width:
        return [first]
    lines = [" " * indent + cells[0]]
    for cell in cells[1:]:
        if len(lines[-1]) + 2 + len(cell) <= width:
            lines[-1] += "  " + cell
        else:
            lines.append(" " * hanging + cell)
    return lines


def paint(lines: list[str], words: re.Pattern[str]) -> list[str]:
    """Each match of ``words`` (its group ``w``) in ``lines`` in its style."""
    from rich.color import ColorSystem
    from rich.style import Style

    styles = {word: Style.parse(name) for word, name in STYLES.items()}

    def one(m: re.Match[str]) -> str:
        word = m["w"]
        style = styles.get(word)
        if style is None:
            return m[0]
        start, end = m.start("w") - m.start(), m.end("w") - m.start()
        text = m[0]
        return (text[:start] + style.render(word, color_system=ColorSystem.STANDARD)
                + text[end:])

    return [words.sub(one, line) for line in lines]
