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
import re
from typing import NamedTuple

from crashkit.errors import InputError

_SPACE = " \t\r\n"


# Named tuples rather than frozen dataclasses: a config of 100,000 servers
# has ~10^6 tokens, and a frozen dataclass costs ~5x more to create.
class Token(NamedTuple):
    value: str  # unquoted value
    start: int  # offsets into the text, end exclusive (quotes included)
    end: int
    line: int
    quoted: bool


class Statement(NamedTuple):
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


# One token of the lexer below, after its leading whitespace: a comment, a
# structural character, a quoted string (closed), or a word (a "$" keeps a
# "{" after it in the word; a backslash escapes the next character; a lone
# backslash at the very end is an ordinary character).
_TOKEN = re.compile(r"""[ \t\r\n]*(?:
    (\#[^\n]*)
  | ([;{}])
  | ("(?:[^"\\]|\\[\s\S])*"|'(?:[^'\\]|\\[\s\S])*')
  | ((?:[^ \t\r\n;{}\#"'\\$]|\\[\s\S]|\\\Z|\$\{?)(?:[^ \t\r\n;{\\$]|\\[\s\S]|\\\Z|\$\{?)*)
)""", re.VERBOSE)
_TRAILING_SPACE = re.compile(r"[ \t\r\n]*\Z")


def statements(text: str, path: str = "<text>") -> list[Statement]:
    """Every statement of the file, in order, with its nesting depth."""
    return lex_span(text, path)[0]


def lex_span(text: str, path: str = "<text>", start: int = 0, end: int | None = None,
             depth: int = 0, line: int = 1) -> tuple[list[Statement], int]:
    """The statements of ``text[start:end]`` and the depth after them, lexed
    from ``depth`` at ``line`` (``start`` must be where the lexer rests: 0, or
    just past a statement's terminator or a closing brace). With ``end``
    (a span inside the file) the span must end just past a statement, or
    InputError; without it, the file's end is checked as nginx does.

    One regular-expression match a token, and the slow reference lexer
    (:func:`_statements_slow`) takes over from the start on anything unusual,
    so both always give the same statements and errors."""
    whole = end is None
    stop = len(text) if end is None else end
    out: list[Statement] = []
    append = out.append
    words: list[Token] = []
    match = _TOKEN.match
    count = text.count
    i, d, ln, counted = start, depth, line, start
    while i < stop:
        m = match(text, i, stop)
        if m is None:
            break
        j = m.end()
        k = m.lastindex or 0
        if k == 1:  # a comment
            i = j
            continue
        pos = m.start(k)
        ln += count("\n", counted, pos)
        counted = pos
        if k == 2:
            c = m.group(2)
            if c == "}":
                if words or d == 0:
                    break  # an error: the reference lexer words it
                d -= 1
            elif not words:
                break
            else:
                append(Statement(words[0], tuple(words[1:]), c, j, d))
                words = []
                if c == "{":
                    if out[-1].name.value.endswith("_by_lua_block"):
                        i, ln = _skip_lua(text, j, ln, path)
                        counted = i
                        continue
                    d += 1
            i = j
            continue
        raw = m.group(k)
        if k == 3:
            value = raw[1:-1] if "\\" not in raw else _unescaped(raw[1:-1])
            words.append(Token(value, pos, j, ln, True))
        elif "\\" not in raw:
            words.append(Token(raw, pos, j, ln, False))
        elif "\n" in raw:  # the reference lexer counts no line inside a word
            break
        else:
            words.append(Token(_unescaped(raw), pos, j, ln, False))
        i = j
    if not words and (not whole or d == 0) and (
            i >= stop or (whole and _TRAILING_SPACE.match(text, i))):
        return out, d
    return _statements_slow(text, path, start, end, depth, line, whole)


def _unescaped(raw: str) -> str:
    """A token's value: each backslash and the character after it as nginx reads them."""
    value = []
    i, n = 0, len(raw)
    while i < n:
        if raw[i] == "\\" and i + 1 < n:
            value.append(_unescape(raw[i + 1]))
            i += 2
        else:
            value.append(raw[i])
            i += 1
    return "".join(value)


def _statements_slow(text: str, path: str, start: int = 0, end: int | None = None,
                     depth: int = 0, line: int = 1, whole: bool = True,
                     ) -> tuple[list[Statement], int]:
    """The reference lexer, one character at a time: the statements of
    ``text[start:end]`` lexed from ``depth`` and ``line``, and the depth at
    the end. ``whole``: the span ends the file (its end is checked as EOF)."""
    out: list[Statement] = []
    words: list[Token] = []
    i, n = start, (len(text) if end is None else end)
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
    if whole and words:
        raise InputError(f'line {line}: unexpected end of file, expecting ";" or "}}"', path=path)
    if whole and depth:
        raise InputError(f'line {line}: unexpected end of file, expecting "}}"', path=path)
    if words:  # a span that ends inside a statement
        raise InputError(f"line {line}: the span ends inside a statement", path=path)
    return out, depth


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
