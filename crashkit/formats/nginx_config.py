"""nginx config text with positions: where each statement and argument sits in a file.

crossplane tells what a config means (and where, by line); editing a file
without losing its comments, indentation and line endings needs character
offsets. This lexer follows nginx's own tokenizer (ngx_conf_read_token):
whitespace separates, ``;``/``{``/``}`` end statements, ``#`` starts a
comment at a token's start, quotes and backslashes escape, ``${var}`` keeps
its braces. It reads text as str decoded with surrogateescape, so writing the
text back gives the same bytes.
"""

from __future__ import annotations

import fnmatch
import posixpath
from dataclasses import dataclass

from crashkit.errors import InputError

_SPACE = " \t\r\n"


@dataclass(frozen=True)
class Token:
    value: str  # unquoted value
    start: int  # offsets into the text, end exclusive (quotes included)
    end: int
    line: int
    quoted: bool


@dataclass(frozen=True)
class Statement:
    name: Token
    args: tuple[Token, ...]
    terminator: str  # ";" or "{"
    end: int  # offset just past the terminator
    depth: int  # 0: top level of this file

    @property
    def line(self) -> int:
        return self.name.line


def to_bytes(text: str) -> bytes:
    return text.encode("utf-8", errors="surrogateescape")


def newline_of(text: str) -> str:
    """The file's line ending: CRLF when its first line ends so, else LF."""
    first = text.find("\n")
    return "\r\n" if first > 0 and text[first - 1] == "\r" else "\n"


def statements(text: str, path: str = "<text>") -> list[Statement]:
    """Every statement of the file, in order, with its nesting depth."""
    out: list[Statement] = []
    words: list[Token] = []
    depth = 0
    i, line, n = 0, 1, len(text)
    while i < n:
        c = text[i]
        if c in _SPACE:
            line += c == "\n"
            i += 1
            continue
        if c == "#":
            while i < n and text[i] != "\n":
                i += 1
            continue
        if c in ";{}":
            if c == "}":
                if words:
                    raise InputError(f'line {line}: unexpected "}}"', path=path)
                depth -= 1
                if depth < 0:
                    raise InputError(f'line {line}: unexpected "}}"', path=path)
            elif not words:
                raise InputError(f'line {line}: unexpected "{c}"', path=path)
            else:
                out.append(Statement(words[0], tuple(words[1:]), c, i + 1, depth))
                if c == "{":
                    if words[0].value.endswith("_by_lua_block"):
                        i, line = _skip_lua(text, i + 1, line, path)
                        words = []
                        continue
                    depth += 1
                words = []
            i += 1
            continue
        start, start_line = i, line
        if c in "\"'":
            i += 1
            value = []
            while i < n and text[i] != c:
                if text[i] == "\\" and i + 1 < n:
                    step = _unescape(text[i + 1])
                    value.append(step)
                    line += text[i + 1] == "\n"
                    i += 2
                    continue
                line += text[i] == "\n"
                value.append(text[i])
                i += 1
            if i >= n:
                raise InputError(f"line {start_line}: unterminated quoted string", path=path)
            i += 1
            words.append(Token("".join(value), start, i, start_line, True))
            continue
        value = []
        # As in nginx, a word ends at whitespace, ";" or "{" (but "${" goes
        # on: a variable); "}" inside a word is an ordinary character.
        while i < n and text[i] not in _SPACE and text[i] != ";" and (
                text[i] != "{" or (value and value[-1] == "$")):
            if text[i] == "\\" and i + 1 < n:
                value.append(_unescape(text[i + 1]))
                i += 2
                continue
            value.append(text[i])
            i += 1
        words.append(Token("".join(value), start, i, start_line, False))
    if words:
        raise InputError(f'line {line}: unexpected end of file, expecting ";" or "}}"', path=path)
    if depth:
        raise InputError(f'line {line}: unexpected end of file, expecting "}}"', path=path)
    return out


def _unescape(c: str) -> str:
    """What nginx makes of a backslash and ``c`` in a token: \\", \\', \\\\ lose the
    backslash, \\t \\r \\n become those characters, any other keeps both."""
    if c in "\"'\\":
        return c
    return {"t": "\t", "r": "\r", "n": "\n"}.get(c, "\\" + c)


def _skip_lua(text: str, i: int, line: int, path: str) -> tuple[int, int]:
    """Past the closing brace of a *_by_lua_block body (braces counted, strings skipped)."""
    depth, n, start = 1, len(text), line
    while i < n:
        c = text[i]
        if c == "\n":
            line += 1
        elif c in "\"'":
            i += 1
            while i < n and text[i] != c:
                if text[i] == "\\":
                    i += 1
                i += 1
        elif c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                return i + 1, line
        i += 1
    raise InputError(f"line {start}: unterminated Lua block", path=path)


def quote(value: str) -> str:
    """``value`` as one nginx argument: bare when it can be, else double-quoted."""
    if value and not any(ch in value for ch in " \t\r\n;{}#\"'\\$"):
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def line_span(text: str, offset: int) -> tuple[int, int]:
    """(start of the line holding ``offset``, offset of its newline or len(text))."""
    start = text.rfind("\n", 0, offset) + 1
    end = text.find("\n", offset)
    return start, (len(text) if end < 0 else end)


def glob_matches(pattern: str, path: str) -> bool:
    """Would glob(3) without GLOB_PERIOD, as nginx's include uses it, match ``path``?"""
    pat_parts = posixpath.normpath(pattern).split("/")
    path_parts = posixpath.normpath(path).split("/")
    if len(pat_parts) != len(path_parts):
        return False
    for p, n in zip(pat_parts, path_parts, strict=True):
        if n.startswith(".") and not p.startswith("."):
            return False  # a leading dot must be matched by a literal dot
        if not fnmatch.fnmatchcase(n, p):
            return False
    return True
