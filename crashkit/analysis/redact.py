"""Redaction: what a bug report must not carry.

A core holds the process's memory: request headers, cookies, session keys.
Strings that gdb reads from that memory, config values that carry secrets and
secret-looking words in logs and command lines are replaced by a marker that
keeps their length (``<redacted:23>``): a maintainer still sees that a header
was 23 bytes long, or empty, but not what it said.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from crashkit.formats.nginx_config import Statement
    from crashkit.model.analyze import Analysis

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
    r"(?i)(auth|cookie|token|secret|passw|pwd|(?<![a-z])pw(?![a-z])|(?<![a-z])pass(?![a-z])|"
    r"api[-_]?key|"
    r"access[-_]?key|private|"
    r"credential|session|signature|bearer|\bkey\b|_key\b|[-_]key[-_]|^key$|x-amz-security|"
    r"jwt|csrf|xsrf)")
# Values that say what they are, whatever carries them.
SECRET_VALUE = re.compile(r"(?i)^(bearer|basic|digest|negotiate|token)\s+\S")
# key=value and key: value pairs (command lines, query strings, log lines).
# The key starts where a run of name characters starts (the lookbehind):
# the same matches as without it, but a regex search no longer retries the
# name's every suffix, which made a 8 KiB token cost seconds (cubic).
_PAIR = re.compile(
    r"(?i)(?<![\w.-])(?P<key>[\w.-]*(?:auth|cookie|token|secret|passw|pwd|api[-_]?key|access[-_]?key|"
    r"private[-_]?key|credential|session|signature|jwt|csrf)[\w.-]*)"
    r"(?P<sep>\s*[=:]\s*)(?P<value>\"[^\"]*\"|'[^']*'|[^\s&;,\"']+)")
_AUTH_WORDS = re.compile(r"(?i)\b(Bearer|Basic|Digest)\s+([A-Za-z0-9._~+/=-]{4,})")
# --password hunter2, --api-key=… is _PAIR's: an option whose name says
# secret, then its value after a space.
_OPTION = re.compile(
    r"(?i)(?P<key>--?[\w-]*(?:passw|pass\b|pwd|token|secret|api[-_]?key|auth|credential)"
    r"[\w-]*)(?P<sep>\s+)(?P<value>[^\s-][^\s]*)")
# scheme://user:password@host
_URL_PASSWORD = re.compile(r"(?P<head>\b[a-z][a-z0-9+.-]*://[^\s:/@]+:)(?P<value>[^\s@/]+)(?=@)",
                           re.I)


def text_secrets(text: str) -> str:
    """Secret-looking pairs in free text (``password=x``, ``token: y``,
    ``Authorization: Bearer z``) with their values redacted."""
    text = _AUTH_WORDS.sub(lambda m: f"{m.group(1)} {marker(m.group(2))}", text)
    text = _URL_PASSWORD.sub(lambda m: m.group("head") + marker(m.group("value")), text)
    text = _OPTION.sub(lambda m: m.group("key") + m.group("sep") + (
        m.group("value") if m.group("value").startswith("<redacted:")
        else marker(m.group("value"))), text)

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


Block = tuple[str, tuple[str, ...]]  # a block statement's name and arguments


_OPERATORS = frozenset({"=", "!=", "~", "~*", "!~", "!~*", "-f", "!-f", "-d", "!-d", "-e",
                        "!-e", "-x", "!-x", "(", ")"})
_MAP_KEYWORDS = frozenset({"default", "hostnames", "include", "volatile"})


def _secret_variable(text: str) -> bool:
    return any(SECRET_NAME.search(v) for v in re.findall(r"\$\{?(\w+)", text))


def config_arguments(name: str, args: list[str], parent: Block | None = None) -> list[bool]:
    """Which of a directive's arguments to redact."""
    if name in SECRET_DIRECTIVES:
        return [True] * len(args)
    # _PAIR needs a "=" or ":" (cheap to look for: most arguments have neither).
    out = [bool(SECRET_VALUE.match(a)) or (("=" in a or ":" in a) and bool(_PAIR.search(a)))
           for a in args]
    named = args[0].split(":", 1)[0] if name.startswith("more_set") else args[0] if args \
        else ""
    if name in NAMED_VALUE_DIRECTIVES and SECRET_NAME.search(named.lstrip("$")):
        out[1:] = [True] * (len(args) - 1)
        if name.startswith("more_set"):  # more_set_headers "Name: value"
            out[0] = ":" in args[0] or out[0]
    if name == "env" and args and "=" in args[0]:
        out[0] = True  # env NAME=value: the value (the name is kept below)
    if name == "if" and any(_secret_variable(a) for a in args):
        # if ($http_x_token != "s3cret"): the literal it is compared with.
        out = [not (a.strip("()") in _OPERATORS or "$" in a or not a.strip("()"))
               for a in args]
    if parent is not None and parent[0] == "map" and len(parent[1]) >= 2 and \
            SECRET_NAME.search(parent[1][1]):
        out = [True] * len(args)  # map … $api_key { key "value"; }: the values
    return out


def _map_key_is_secret(name: str, parent: Block | None) -> bool:
    """map $http_x_api_key $ok { "k-123" 1; }: the keys are the secrets."""
    return (parent is not None and parent[0] == "map" and bool(parent[1])
            and _secret_variable(parent[1][0]) and name not in _MAP_KEYWORDS)


def _replacement(name: str, value: str) -> str:
    if name == "env" and "=" in value:
        key = value.split("=", 1)[0]
        return f"{key}={marker(value[len(key) + 1:])}"
    if name.startswith("more_set") and ":" in value:
        key = value.split(":", 1)[0]
        return f'"{key}: {marker(value[len(key) + 1:].strip())}"'
    core = value.lstrip("(")
    tail = len(core) - len(core.rstrip(")"))
    return value[:len(value) - len(core)] + marker(core[:len(core) - tail]) + ")" * tail


Edit = tuple[int, int, str]  # start, end, replacement


def config_edits(stmts: Iterable[Statement], blocks: list[tuple[int, Block]] | None = None,
                 ) -> list[Edit]:
    """The replacements that hide the secret arguments of ``stmts`` (lexed by
    crashkit.formats.nginx_config), in text order. ``blocks``: the blocks open
    where they start, as (depth, block), innermost last; updated in place."""
    edits: list[Edit] = []
    stack = [] if blocks is None else blocks
    for s in stmts:
        while stack and stack[-1][0] >= s.depth:
            stack.pop()
        parent = stack[-1][1] if stack else None
        name = s.name.value
        if s.terminator == "{":
            stack.append((s.depth, (name, tuple(t.value for t in s.args))))
        if not s.args:
            if parent is not None and _map_key_is_secret(name, parent):
                edits.append((s.name.start, s.name.end, marker(name)))
            continue
        if name in _NAMED_OR_SECRET or (parent is not None and parent[0] == "map"):
            if parent is not None and _map_key_is_secret(name, parent):
                edits.append((s.name.start, s.name.end, marker(name)))
            flags = config_arguments(name, [t.value for t in s.args], parent)
        else:  # what config_arguments does for any other directive, its answers kept
            flags = [_secret_argument(t.value) for t in s.args]
        if any(flags):
            edits += [(t.start, t.end, _replacement(name, t.value))
                      for t, hide in zip(s.args, flags, strict=True) if hide]
    return edits


# Directives that config_arguments treats apart (a "more_set*" name is one
# of NAMED_VALUE_DIRECTIVES, or else an ordinary directive there too).
_NAMED_OR_SECRET = SECRET_DIRECTIVES | NAMED_VALUE_DIRECTIVES | {"env", "if"}
_SECRET_ARGUMENT: dict[str, bool] = {}  # a config repeats its arguments (listen, return...)


def _secret_argument(value: str) -> bool:
    """config_arguments' test of one argument of an ordinary directive."""
    known = _SECRET_ARGUMENT.get(value)
    if known is None:
        known = bool(SECRET_VALUE.match(value)) or (
            ("=" in value or ":" in value) and bool(_PAIR.search(value)))
        if len(_SECRET_ARGUMENT) < 100_000:
            _SECRET_ARGUMENT[value] = known
    return known


def apply_edits(text: str, edits: list[Edit]) -> str:
    """``text`` with ``edits`` (in text order, none overlapping) made."""
    if not edits:
        return text
    parts: list[str] = []
    at = 0
    for start, end, new in edits:
        parts += (text[at:start], new)
        at = end
    parts.append(text[at:])
    return "".join(parts)


def redacted_config(text: str, stmts: list[Statement] | None = None) -> str:
    """An nginx config's text with secret arguments replaced in place:
    comments, layout and every other byte stay. ``stmts``: the text's
    statements, when the caller lexed it already."""
    from crashkit.formats.nginx_config import statements

    return apply_edits(text, config_edits(statements(text) if stmts is None else stmts))


def analysis(a: Analysis) -> Analysis:
    """The analysis as ``analyze`` shows it by default: secrets on the crashed
    program's command line (--password VALUE, token=...) redacted. (report
    redacts the error-log lines it adds on top of this; redacting the command
    line twice changes nothing.)"""
    import dataclasses

    p = a.core.process
    if p is None:
        return a
    core = dataclasses.replace(a.core, process=dataclasses.replace(p, args=text_secrets(p.args)))
    return dataclasses.replace(a, core=core)
