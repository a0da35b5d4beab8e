"""Redaction: what a bug report must not carry.

A core holds the process's memory: request headers, cookies, session keys.
Strings that gdb reads from that memory, config values that carry secrets and
secret-looking words in logs and command lines are replaced by a marker that
keeps their length (``<redacted:23>``): a maintainer still sees that a header
was 23 bytes long, or empty, but not what it said.
"""

from __future__ import annotations

import re
from collections.abc import Callable

MARK = "<redacted:{}>"


def marker(text: str) -> str:
    return MARK.format(len(text))


# gdb prints char data as "strings", 'c' characters (with <repeats N times>)
# and escapes such as '\\000' inside either; a char prints as its code and
# its glyph (104 'h'): both go.
_LITERAL = re.compile(r'"((?:[^"\\]|\\.)*)"|(?:-?\d+ )?\'((?:[^\'\\]|\\.[0-7]{0,2}))\'')
_ESCAPE = re.compile(r"\\(?:[0-7]{1,3}|x[0-9a-fA-F]+|.)")


def _length(literal: str) -> int:
    """Characters in a gdb string literal's body, an escape counting as one."""
    return len(_ESCAPE.sub("x", literal))


def gdb_value(value: str) -> str:
    """Hide the contents of string and character values in a value gdb printed.
    Structure (pointers, numbers, repeat counts, field names) stays."""
    def sub(m: re.Match[str]) -> str:
        if m.group(1) is not None:
            return '"' + MARK.format(_length(m.group(1))) + '"'
        return "'" + MARK.format(_length(m.group(2))) + "'"
    return _LITERAL.sub(sub, value)


# Names of headers, parameters, variables and options whose values are secret.
SECRET_NAME = re.compile(
    r"(?i)(auth|cookie|token|secret|passw|pwd|api[-_]?key|access[-_]?key|private|"
    r"credential|session|signature|bearer|\bkey\b|_key\b|[-_]key[-_]|^key$|x-amz-security|"
    r"jwt|csrf|xsrf)")
# Values that say what they are, whatever carries them.
SECRET_VALUE = re.compile(r"(?i)^(bearer|basic|digest|negotiate|token)\s+\S")
# key=value and key: value pairs (command lines, query strings, log lines).
_PAIR = re.compile(
    r"(?i)(?P<key>[\w.-]*(?:auth|cookie|token|secret|passw|pwd|api[-_]?key|access[-_]?key|"
    r"private[-_]?key|credential|session|signature|jwt|csrf)[\w.-]*)"
    r"(?P<sep>\s*[=:]\s*)(?P<value>\"[^\"]*\"|'[^']*'|[^\s&;,\"']+)")
_AUTH_WORDS = re.compile(r"(?i)\b(Bearer|Basic|Digest)\s+([A-Za-z0-9._~+/=-]{4,})")


def text_secrets(text: str) -> str:
    """Secret-looking pairs in free text (``password=x``, ``token: y``,
    ``Authorization: Bearer z``) with their values redacted."""
    text = _AUTH_WORDS.sub(lambda m: f"{m.group(1)} {marker(m.group(2))}", text)

    def pair(m: re.Match[str]) -> str:
        value = m.group("value")
        if value.startswith("<redacted:") or value.lower() in ("bearer", "basic", "digest"):
            return m.group(0)
        if value[:1] in "\"'" and len(value) >= 2:
            return f"{m.group('key')}{m.group('sep')}{value[0]}{marker(value[1:-1])}{value[0]}"
        return f"{m.group('key')}{m.group('sep')}{marker(value)}"
    return _PAIR.sub(pair, text)


_QUERY = re.compile(r"(\?)([^\s\"#]*)")


def request_line(text: str) -> str:
    """A logged request (``GET /x?a=1&b=2 HTTP/1.1``): query values go,
    names stay; so does any secret-looking pair."""
    def query(m: re.Match[str]) -> str:
        parts = []
        for item in m.group(2).split("&"):
            name, eq, value = item.partition("=")
            parts.append(f"{name}={marker(value)}" if eq else item)
        return "?" + "&".join(parts)
    return text_secrets(_QUERY.sub(query, text))


# nginx directives whose first argument names a header, parameter or
# variable and whose next arguments are its value.
NAMED_VALUE_DIRECTIVES = frozenset({
    "proxy_set_header", "grpc_set_header", "add_header", "add_trailer", "fastcgi_param",
    "uwsgi_param", "scgi_param", "more_set_headers", "more_set_input_headers", "set",
    "proxy_set_body", "js_var",
})
# Directives whose every argument is a secret.
SECRET_DIRECTIVES = frozenset({"secure_link_secret", "secure_link_md5", "auth_jwt_key"})


def config_arguments(name: str, args: list[str]) -> list[bool]:
    """Which of a directive's arguments to redact."""
    if name in SECRET_DIRECTIVES:
        return [True] * len(args)
    out = [bool(SECRET_VALUE.match(a)) or bool(_PAIR.search(a)) for a in args]
    named = args[0].split(":", 1)[0] if name.startswith("more_set") else args[0] if args \
        else ""
    if name in NAMED_VALUE_DIRECTIVES and SECRET_NAME.search(named.lstrip("$")):
        out[1:] = [True] * (len(args) - 1)
        if name.startswith("more_set"):  # more_set_headers "Name: value"
            out[0] = ":" in args[0] or out[0]
    if name == "env" and args and "=" in args[0]:
        out[0] = True  # env NAME=value: the value (the name is kept below)
    return out


def config_text(text: str, lex: Callable[[str], list[tuple[str, list[tuple[str, int, int]]]]]
                ) -> str:
    """An nginx config's text with secret arguments replaced in place:
    comments, layout and every other byte stay. ``lex`` gives each statement
    as (name, [(value, start, end), …]) with offsets into ``text``."""
    edits: list[tuple[int, int, str]] = []
    for name, args in lex(text):
        flags = config_arguments(name, [a[0] for a in args])
        for (value, start, end), hide in zip(args, flags, strict=True):
            if not hide:
                continue
            if name == "env" and "=" in value:
                key = value.split("=", 1)[0]
                edits.append((start, end, f"{key}={marker(value[len(key) + 1:])}"))
            elif name.startswith("more_set") and ":" in value:
                key = value.split(":", 1)[0]
                edits.append((start, end, f'"{key}: {marker(value[len(key) + 1:].strip())}"'))
            else:
                edits.append((start, end, marker(value)))
    for start, end, new in sorted(edits, reverse=True):
        text = text[:start] + new + text[end:]
    return text
