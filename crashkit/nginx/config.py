"""Read an nginx configuration: find it, parse it (crossplane, includes followed), query it.

The reader returns :class:`NginxConfig`, a tree of :class:`Directive` records
with every ``include`` expanded in place (the ``include`` directive itself is
kept, followed by what it pulled in), each directive carrying the file and
line it came from. The query functions below answer what crashkit's commands
ask (worker user, limits, pid file, logs, listen addresses, upstreams); they
apply nginx's own defaults where a directive is absent.

Paths in the answers are as nginx would use them: relative ones are resolved
against the prefix (``-p``, else the build's ``--prefix``), as nginx does.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from typing import Any

import crossplane
import crossplane.lexer
import crossplane.parser
from crossplane.errors import NgxParserBaseException, NgxParserSyntaxError
from crossplane.ext.lua import LuaBlockPlugin

from crashkit.errors import InputError
from crashkit.model.nginx import (
    BuildInfo,
    ConfigLocation,
    Directive,
    Listen,
    LogTarget,
    NginxConfig,
    UpstreamTarget,
    WorkerUser,
)
from crashkit.nginx import safeparse

DEFAULT_CONF = "/etc/nginx/nginx.conf"
DEFAULT_NGINX = "nginx"
# nginx's compiled-in defaults when ./configure was given no --user/--group
# (auto/unix): "nobody", and the group "nogroup" where it exists (Debian).
DEFAULT_USER = "nobody"
DEFAULT_WORKER_CONNECTIONS = 512

# *_by_lua_block bodies are Lua, not nginx syntax; without this crossplane
# would read their braces as blocks.
LuaBlockPlugin().register_extension()


# ---------------------------------------------------------------- lexing

# crossplane's lexer goes one character at a time through three generators
# (about 3 s for a config of 100,000 servers, more than nginx -t takes). This
# one gives the very same (token, line, quoted) tuples with one regular
# expression match a token, and hands over to crossplane's own lexer (from
# the same token on) at anything it does not follow exactly: a "${" (which
# crossplane reads up to the next "}"), an external lexer's directive (Lua
# blocks), a comment or file that ends in a backslash or without a newline,
# an unterminated quote. Whitespace is what str.isspace() says, as there.
_CP_SPACE = ("\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029"
             "\u202f\u205f\u3000")
_CP_BLANK = _CP_SPACE.replace("\n", "")
_CP_WORD = (f"(?:[^{_CP_SPACE}{{}};#\"'\\\\]|\\\\[\\s\\S])"
            f"(?:[^{_CP_SPACE}{{}};\\\\]|\\\\[\\s\\S])*")
# Every token after its blanks; a newline is a token, a comment takes its
# newline; one character that starts none of them (a quote never closed, a
# lone backslash or "#" at the end, the file's trailing blank) is a token of
# its own, so that nothing is skipped unseen.
_CP_TOKENS = re.compile(
    f"[{_CP_BLANK}]*("
    r"\n|#(?:[^\n\\]|\\[^\n])*\n|[{};]"
    r'|"(?:[^"\\]|\\[\s\S])*"'  # a backslash escapes the next character
    r"|'(?:[^'\\]|\\[\s\S])*'"
    f"|{_CP_WORD}"
    r"|[\s\S])")
_CP_ESCAPED = re.compile(r"\\([\s\S])")


def _unescape_quote(q: str) -> Callable[[re.Match[str]], str]:
    """In a string quoted with ``q``, an escaped ``q`` loses its backslash;
    every other escape stays as written (crossplane's lexer)."""
    return lambda e: q if e.group(1) == q else e.group(0)


_SAME_QUOTE = {'"': _unescape_quote('"'), "'": _unescape_quote("'")}


def _crossplane_tokens(filename: str) -> Iterator[tuple[str, int, bool]]:
    """crossplane.lexer.lex, faster (see above); its errors at the same tokens."""
    # As crossplane reads it, but never a FIFO, a device or a huge file (safeparse).
    with open(safeparse.open_regular(filename), encoding="utf-8", errors="replace") as f:
        text = f.read()
    found = _tokens_of(text)
    if found is None:
        yield from safeparse.lex(filename)
        return
    tokens, unbalanced = found
    yield from tokens
    if unbalanced is not None:  # crossplane.lexer._balance_braces's errors
        raise NgxParserSyntaxError(unbalanced[0], filename, unbalanced[1])


def _tokens_of(text: str) -> tuple[list[tuple[str, int, bool]], tuple[str, int] | None] | None:
    """The tokens up to a brace error (and that error), or None where only
    crossplane's own lexer will do."""
    if "${" in text or any(d in text for d in crossplane.lexer.EXTERNAL_LEXERS):
        return None
    tokens = _CP_TOKENS.findall(text)
    trailing = bool(tokens) and tokens[-1] != "\n" and tokens[-1].isspace()
    if trailing:
        tokens.pop()  # the file's last blank
    out: list[tuple[str, int, bool]] = []
    append = out.append
    line, depth, word = 1, 0, False
    for tok in tokens:
        c = tok[0]
        word = False
        if c == "\n":
            line += 1
        elif c == "#":
            if tok[-1] != "\n":
                return None  # no newline ends it
            append((tok[:-1], line, False))
            line += 1
        elif c == '"' or c == "'":
            if len(tok) == 1:
                return None  # never closed
            value = tok[1:-1]
            if "\\" in value:
                value = _CP_ESCAPED.sub(_SAME_QUOTE[c], value)
            append((value, line, True))
            if "\n" in tok:
                line += tok.count("\n")
        elif c == "{" or c == ";":
            depth += c == "{"
            append((c, line, False))
        elif c == "}":
            depth -= 1
            if depth < 0:  # crossplane.lexer._balance_braces's errors
                return out, ('unexpected "}"', line)
            append((c, line, False))
        elif len(tok) == 1 and (c == "\\" or c.isspace()):
            return None  # a lone backslash at the end
        else:
            # An escaped newline is one character there, counted as it starts.
            append((tok, line + tok.startswith("\\\n"), False))
            word = True
            if "\n" in tok:
                line += tok.count("\n")
    if word and not trailing:
        out.pop()  # crossplane drops a word that the file's end ends
    # At the end, crossplane names the line of the last token.
    return out, (('unexpected end of file, expecting "}"', out[-1][1]) if depth else None)


crossplane.parser.lex = _crossplane_tokens
safeparse.install()  # crossplane's own open() of includes: regular files only, bounded
_crossplane_analyze = crossplane.parser.analyze


def _analyze(fname: str, stmt: dict[str, Any], term: str, ctx: tuple[str, ...] = (),
             strict: bool = False, check_ctx: bool = True, check_args: bool = True) -> None:
    """crossplane's analyzer, skipped where it can neither raise nor change
    anything: not strict, no context and no argument checks (load_config's
    way; 10^6 calls on a config of 100,000 servers)."""
    if strict or check_ctx or check_args:
        _crossplane_analyze(fname, stmt, term, ctx, strict, check_ctx, check_args)


crossplane.parser.analyze = _analyze


# ---------------------------------------------------------------- nginx -V

_VERSION_RE = re.compile(r"nginx version: \S+/(\S+)")


def parse_build_info(text: str) -> BuildInfo:
    """Parse ``nginx -V`` output (nginx prints it on stderr)."""
    version = _VERSION_RE.search(text)
    args: tuple[str, ...] = ()
    for line in text.splitlines():
        if line.startswith("configure arguments:"):
            args = tuple(_split_configure_args(line.split(":", 1)[1]))
    opts: dict[str, str] = {}
    for arg in args:
        if arg.startswith("--") and "=" in arg:
            key, value = arg[2:].split("=", 1)
            opts[key] = value
    return BuildInfo(version=version.group(1) if version else None,
                     prefix=opts.get("prefix"), conf_path=opts.get("conf-path"),
                     pid_path=opts.get("pid-path"), error_log_path=opts.get("error-log-path"),
                     user=opts.get("user"), group=opts.get("group"), configure_args=args)


def _split_configure_args(text: str) -> list[str]:
    # ./configure's arguments as nginx echoes them: shell words, single quotes
    # around values with spaces (--with-cc-opt='-g -O2').
    import shlex

    try:
        return shlex.split(text)
    except ValueError:
        return text.split()


def build_info(nginx: str = DEFAULT_NGINX) -> BuildInfo | None:
    """``nginx -V`` of the given binary; None when it cannot be run."""
    from crashkit.nginx.dump import version_text

    text = version_text(nginx)
    return parse_build_info(text) if text is not None else None


def with_prefix(build: BuildInfo | None, prefix: str) -> BuildInfo:
    """The build, run with ``-p prefix``."""
    import dataclasses

    base = build or BuildInfo(None, None, None, None, None, None, None, ())
    return dataclasses.replace(base, prefix=prefix, prefix_option=prefix)


def prefix_args(cfg: NginxConfig | None) -> list[str]:
    """``-p PREFIX`` for an nginx command about this config, when it needs one."""
    build = cfg.build if cfg is not None else None
    return ["-p", build.prefix_option] if build is not None and build.prefix_option else []


def open_config(conf: str | None, nginx: str = DEFAULT_NGINX, prefix: str | None = None,
                ) -> tuple[ConfigLocation, NginxConfig]:
    """Find and load the config as the nginx that runs it sees it: with
    ``prefix`` (crashkit's --prefix), else the -p of a running master of
    this very config (trusted: root, the same binary), else the build's."""
    build = build_info(nginx)
    where = find_config(conf, build)
    if prefix is None:
        from crashkit.nginx.dump import running_prefix

        prefix = running_prefix(where.path, nginx)
    if prefix is not None:
        build = with_prefix(build, prefix)
    return where, load_config(where.path, build)


def find_config(conf: str | None, build: BuildInfo | None) -> ConfigLocation:
    """The config to use: ``--conf``, else nginx's --conf-path, else the Debian default."""
    if conf:
        return ConfigLocation(conf, "option")
    if build is not None and build.conf_path:
        return ConfigLocation(build.conf_path, "nginx -V")
    return ConfigLocation(DEFAULT_CONF, "default")


# ---------------------------------------------------------------- parsing

def load_config(path: str, build: BuildInfo | None = None) -> NginxConfig:
    """Parse ``path`` and every file it includes.

    Raises InputError naming the file (and line) for a missing or unreadable
    file and for syntax errors. Directive names and argument counts are left
    to ``nginx -t``: modules add directives crossplane does not know.
    """
    path = os.path.abspath(path)
    if not os.path.exists(path):
        raise InputError("nginx config not found", path=path)
    if os.path.isdir(path):
        raise InputError("is a directory, not an nginx config file", path=path)
    if not os.access(path, os.R_OK):
        raise InputError("nginx config is not readable", path=path)
    payload = crossplane.parse(path, onerror=lambda e: e, catch_errors=False,
                               check_ctx=False, check_args=False)
    if payload["errors"]:
        raise _input_error(payload["errors"][0])
    configs: list[dict[str, Any]] = payload["config"]
    files = tuple(c["file"] for c in configs)

    def convert(stmts: list[dict[str, Any]], file: str, ctx: tuple[str, ...],
                seen: frozenset[int]) -> list[Directive]:
        out: list[Directive] = []
        append = out.append
        for s in stmts:
            name = s["directive"]
            block = None
            if "block" in s:
                block = tuple(convert(s["block"], file, (*ctx, name), seen))
            includes = s.get("includes")
            if not includes:  # the 10^6 directives of a big config: no generator each
                append(Directive(name, tuple(s["args"]), file, s["line"], ctx, block))
                continue
            included = tuple(configs[i]["file"] for i in includes)
            append(Directive(name, tuple(s["args"]), file, s["line"], ctx, block, included))
            for index in includes:
                if index in seen:  # an include loop: nginx would fail on it anyway
                    continue
                out.extend(convert(configs[index]["parsed"], configs[index]["file"], ctx,
                                   seen | {index}))
        return out

    def includes_of(stmts: list[dict[str, Any]]) -> list[tuple[str, ...]]:
        out: list[tuple[str, ...]] = []
        for s in stmts:
            if s["directive"] == "include":
                out.append(tuple(configs[i]["file"] for i in s.get("includes", ())))
            if "block" in s:
                out.extend(includes_of(s["block"]))
        return out

    return NginxConfig(root=path, files=files,
                       directives=tuple(convert(configs[0]["parsed"], path, (), frozenset({0}))),
                       build=build,
                       includes=tuple((c["file"], tuple(includes_of(c["parsed"])))
                                      for c in configs))


def _input_error(err: dict[str, Any]) -> InputError:
    exc = err.get("callback")
    if isinstance(exc, NgxParserBaseException):
        where = f"line {exc.lineno}: " if exc.lineno else ""
        return InputError(f"{where}{exc.strerror}", path=exc.filename or err["file"])
    if isinstance(exc, OSError):
        target = exc.filename or err["file"]
        reason = (exc.strerror or str(exc)).lower()
        if target != err["file"] and err.get("line"):
            return InputError(f"cannot read included file: {reason} "
                              f"(include at {err['file']}:{err['line']})", path=target)
        return InputError(f"cannot read: {reason}", path=target)
    line = f"line {err['line']}: " if err.get("line") else ""
    # crossplane's lexer gives an empty error (a bare StopIteration) when a
    # file ends inside a directive: text that is no nginx config at all.
    what = err.get("error") or (f"{type(exc).__name__}: {exc}" if exc and str(exc) else
                                "not an nginx configuration (it ends inside a directive)")
    return InputError(f"{line}{what}", path=err["file"])


# ---------------------------------------------------------------- queries

def main_directives(cfg: NginxConfig) -> tuple[Directive, ...]:
    """The main context's directives (includes expanded; ``include`` lines left out)."""
    return tuple(d for d in cfg.directives if d.name != "include")


def _in_main(cfg: NginxConfig, name: str) -> tuple[Directive, ...]:
    """``cfg.find(name, ())`` without walking every block: the main context's
    directives are the top level of ``cfg.directives`` (includes expanded)."""
    return tuple(d for d in cfg.directives if d.name == name and not d.context)


def _last(cfg: NginxConfig, name: str, context: tuple[str, ...] = ()) -> Directive | None:
    found = _in_main(cfg, name) if context == () else cfg.find(name, context)
    return found[-1] if found else None


def worker_user(cfg: NginxConfig) -> WorkerUser:
    """The user and group the workers run as (``user``; nginx's default when absent)."""
    d = _last(cfg, "user")
    if d is not None and d.args:
        # "user name;" means the group of the same name (ngx_set_user).
        return WorkerUser(d.args[0], d.args[1] if len(d.args) > 1 else d.args[0], d)
    user = (cfg.build.user if cfg.build else None) or DEFAULT_USER
    group = cfg.build.group if cfg.build else None
    if not group:
        group = _default_group(user)
    return WorkerUser(user, group, None)


def _default_group(user: str) -> str:
    # auto/unix: for "nobody", the group "nogroup" when /etc/group has it.
    if user != "nobody":
        return user
    import grp

    try:
        grp.getgrnam("nogroup")
        return "nogroup"
    except KeyError:
        return "nobody"


def worker_processes(cfg: NginxConfig) -> str:
    """The ``worker_processes`` value as written ("auto" or a number); nginx's default 1."""
    d = _last(cfg, "worker_processes")
    return d.args[0] if d is not None and d.args else "1"


def worker_process_count(cfg: NginxConfig) -> int:
    """How many workers nginx starts here ("auto": one per online CPU, as nginx counts)."""
    value = worker_processes(cfg)
    if value == "auto":
        return os.cpu_count() or 1
    try:
        return max(int(value), 1)
    except ValueError:
        return 1


def worker_connections(cfg: NginxConfig) -> int:
    d = _last(cfg, "worker_connections", ("events",))
    try:
        return int(d.args[0]) if d is not None and d.args else DEFAULT_WORKER_CONNECTIONS
    except ValueError:
        return DEFAULT_WORKER_CONNECTIONS


def worker_rlimit_nofile(cfg: NginxConfig) -> int | None:
    d = _last(cfg, "worker_rlimit_nofile")
    try:
        return int(d.args[0]) if d is not None and d.args else None
    except ValueError:
        return None


def resolve(cfg: NginxConfig, path: str) -> str:
    """A path from the config as nginx opens it (relative to the prefix)."""
    return path if os.path.isabs(path) else os.path.normpath(os.path.join(cfg.prefix, path))


def pid_path(cfg: NginxConfig) -> str:
    """The master's pid file (``pid``; the build's --pid-path when absent)."""
    d = _last(cfg, "pid")
    if d is not None and d.args:
        return resolve(cfg, d.args[0])
    if cfg.build is not None and cfg.build.pid_path:
        return resolve(cfg, cfg.build.pid_path)
    return resolve(cfg, "logs/nginx.pid")


# What nginx -t itself creates or changes on disk (ngx_init_cycle): the pid
# file (opened O_CREAT even in test mode), every log file it opens (error_log,
# access_log without variables; O_CREAT|O_APPEND), and the temp and cache
# paths (ngx_create_paths: mkdir, then chown to the worker user).
_TEMP_PATHS = {  # directive: (./configure option, nginx's default)
    "client_body_temp_path": ("http-client-body-temp-path", "client_body_temp"),
    "proxy_temp_path": ("http-proxy-temp-path", "proxy_temp"),
    "fastcgi_temp_path": ("http-fastcgi-temp-path", "fastcgi_temp"),
    "uwsgi_temp_path": ("http-uwsgi-temp-path", "uwsgi_temp"),
    "scgi_temp_path": ("http-scgi-temp-path", "scgi_temp"),
}
_CACHE_PATHS = ("proxy_cache_path", "fastcgi_cache_path", "uwsgi_cache_path",
                "scgi_cache_path")


def check_writes(cfg: NginxConfig) -> tuple[str, ...]:
    """The paths ``nginx -t`` opens for writing or creates with this config
    (relative ones resolved against the prefix), the build's defaults
    included: what a side-effect-free check must keep away from the disk.
    Modules' own files (perl, lua code run at load) are not known here."""
    def build_opt(name: str) -> str | None:
        prefix = f"--{name}="
        found = [a[len(prefix):] for a in (cfg.build.configure_args if cfg.build else ())
                 if a.startswith(prefix)]
        return found[-1] if found else None

    # One walk of the tree (a config of 100,000 servers holds ~10^6 directives).
    wanted = {"access_log", *_TEMP_PATHS, *_CACHE_PATHS}
    found: dict[str, list[str]] = {}
    has_http = False
    for d in cfg.walk():
        if d.name in wanted and d.args:
            found.setdefault(d.name, []).append(d.args[0])
        elif d.name == "http" and not d.context:
            has_http = True
    out = [pid_path(cfg)]
    out += [t.path for t in error_logs(cfg) if t.path.startswith("/")]
    startup = cfg.build.error_log_path if cfg.build else None  # opened before the config
    if startup and startup != "stderr":
        out.append(resolve(cfg, startup))
    out += [resolve(cfg, a) for a in found.get("access_log", ())
            if a != "off" and "$" not in a and not a.startswith("syslog:")]
    if has_http:  # every location without an access_log gets the default
        out.append(resolve(cfg, build_opt("http-log-path") or "logs/access.log"))
    for name, (option, default) in _TEMP_PATHS.items():
        out += [resolve(cfg, a) for a in found.get(name, ())]
        if has_http:
            out.append(resolve(cfg, build_opt(option) or default))
    out += [resolve(cfg, a) for name in _CACHE_PATHS for a in found.get(name, ())]
    return tuple(dict.fromkeys(out))


def error_logs(cfg: NginxConfig) -> tuple[LogTarget, ...]:
    """Every ``error_log`` in any context; the build's default when there is none."""
    out = []
    for d in cfg.find("error_log"):
        if not d.args:
            continue
        target = d.args[0]
        if target != "stderr" and not target.startswith(("syslog:", "memory:")):
            target = resolve(cfg, target)
        out.append(LogTarget(target, d.args[1] if len(d.args) > 1 else None, d))
    if not out:
        default = (cfg.build.error_log_path if cfg.build else None) or "logs/error.log"
        out.append(LogTarget(default if default == "stderr" else resolve(cfg, default),
                             None, None))
    return tuple(out)


def listens(cfg: NginxConfig) -> tuple[Listen, ...]:
    """``listen`` directives of every server block (http, stream, mail)."""
    return tuple(Listen(d.args[0], d.args[1:], d) for d in cfg.find("listen")
                 if d.args and d.context and d.context[-1] == "server")


_PASS_DIRECTIVES = ("proxy_pass", "fastcgi_pass", "uwsgi_pass", "scgi_pass", "grpc_pass")


def upstream_targets(cfg: NginxConfig) -> tuple[UpstreamTarget, ...]:
    """Where nginx connects: *_pass targets and ``server`` lines of upstream blocks."""
    out: list[UpstreamTarget] = []
    for d in cfg.walk():
        if d.name in _PASS_DIRECTIVES and d.args:
            out.append(UpstreamTarget(d.name, d.args[0], unix_socket(d.args[0]), None, d))
    for up in cfg.find("upstream"):
        for d in up.block or ():
            if d.name == "server" and d.args:
                out.append(UpstreamTarget("server", d.args[0], unix_socket(d.args[0]),
                                          up.args[0] if up.args else None, d))
    return tuple(out)


def unix_socket(target: str) -> str | None:
    """The socket path of "unix:/path", "http://unix:/path:/uri", "grpc://unix:..."."""
    rest = target.split("://", 1)[1] if "://" in target else target
    if not rest.startswith("unix:"):
        return None
    path = rest[len("unix:"):]
    # In URLs the socket path ends at the next ":" (http://unix:/tmp/s.sock:/uri).
    return path.split(":", 1)[0] if "://" in target else path
