"""crashkit setup's planning, without nginx: the exact text it produces from real files.

Configs are written to tmp_path and read with the real reader (crossplane);
the plan is a pure function of them. Each test checks the whole new text, so
a stray space or a lost comment fails it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from crashkit.analysis.setup import (
    DropIn,
    choose_dropin,
    choose_values,
    parse_size,
    plan_core_directives,
)
from crashkit.errors import InputError
from crashkit.formats.nginx_config import glob_matches, statements
from crashkit.nginx.config import load_config, upstream_targets, worker_user
from crashkit.nginx.files import read_text
from tests.conftest import unavailable


def plan(root: Path, core_dir: str = "/var/lib/crashkit/cores", limit: str = "2G",  # type: ignore[no-untyped-def]
         dropin: bool = False):
    cfg = load_config(str(root))
    texts = {os.path.realpath(f): read_text(os.path.realpath(f)) for f in cfg.files}
    return plan_core_directives(cfg, texts, core_dir, limit,
                                choose_dropin(cfg, os.path.isdir) if dropin else None)


def test_several_directives_on_one_line_and_comments_everywhere(tmp_path: Path) -> None:
    conf = tmp_path / "nginx.conf"
    conf.write_text(
        "# top comment; with { braces }\n"
        "user www-data; worker_processes 2; # two workers\n"
        "  pid /run/x.pid;   # the pid; not a directive\n"
        "events { worker_connections 64; } # events\n"
        "http { # web\n"
        "    server { listen 127.0.0.1:8080; } # one server\n"
        "}\n")
    p = plan(conf)
    assert len(p.edits) == 1 and p.edits[0].path == str(conf)
    assert p.edits[0].after == (
        "# top comment; with { braces }\n"
        "user www-data; worker_processes 2; # two workers\n"
        "  pid /run/x.pid;   # the pid; not a directive\n"
        "  worker_rlimit_core 2G;\n"
        "  working_directory /var/lib/crashkit/cores;\n"
        "events { worker_connections 64; } # events\n"
        "http { # web\n"
        "    server { listen 127.0.0.1:8080; } # one server\n"
        "}\n")
    assert [(c.directive, c.old, c.new, c.line) for c in p.changes] == [
        ("worker_rlimit_core", None, "2G", 3), ("working_directory", None,
                                               "/var/lib/crashkit/cores", 3)]


def test_anchor_followed_by_a_block_on_the_same_line(tmp_path: Path) -> None:
    conf = tmp_path / "nginx.conf"
    conf.write_text("worker_processes 1; events { } http { }")  # no newline at all
    p = plan(conf, "/srv/cores dir", "512m")
    # Its own lines, before the compact line: undo can tell crashkit's lines apart.
    assert p.edits[0].after == ('worker_rlimit_core 512m;\nworking_directory "/srv/cores dir";\n'
                                'worker_processes 1; events { } http { }')


def test_compact_line_not_starting_at_top_level_inserts_at_the_top(tmp_path: Path) -> None:
    conf = tmp_path / "nginx.conf"
    conf.write_bytes(b"\tuser www-data; worker_processes 1; events {\r\n"
                     b"} pid /run/x.pid; error_log stderr; http { }\r\n")
    p = plan(conf)  # anchor: worker_processes, on a line that starts with user
    assert p.edits[0].after == ("\tworker_rlimit_core 2G;\r\n"
                                "\tworking_directory /var/lib/crashkit/cores;\r\n"
                                "\tuser www-data; worker_processes 1; events {\r\n"
                                "} pid /run/x.pid; error_log stderr; http { }\r\n")
    # A sibling on a line that starts inside a block: the top of the file.
    conf.write_bytes(b"events {\n} worker_rlimit_core 4G; http { }\n")
    assert plan(conf, limit="4G").edits[0].after == (
        "working_directory /var/lib/crashkit/cores;\n"
        "events {\n} worker_rlimit_core 4G; http { }\n")


def test_crlf_file_stays_crlf(tmp_path: Path) -> None:
    conf = tmp_path / "nginx.conf"
    conf.write_bytes(b"user www-data;\r\n\tworker_processes 1;\r\nevents {\r\n}\r\n")
    p = plan(conf)
    assert p.edits[0].after == ("user www-data;\r\n\tworker_processes 1;\r\n"
                                "\tworker_rlimit_core 2G;\r\n"
                                "\tworking_directory /var/lib/crashkit/cores;\r\n"
                                "events {\r\n}\r\n")


def test_existing_directives_in_an_included_file_are_updated_there(tmp_path: Path) -> None:
    (tmp_path / "main.d").mkdir()
    (tmp_path / "available").mkdir()
    real = tmp_path / "available" / "core.conf"
    real.write_text("# core settings\nworker_rlimit_core   100m ;  # too small\n")
    (tmp_path / "main.d" / "core.conf").symlink_to(real)
    conf = tmp_path / "nginx.conf"
    text = "worker_processes 1;\ninclude main.d/*.conf;\nevents {}\n"
    conf.write_text(text)
    p = plan(conf, "/var/lib/crashkit/cores", "1G")
    # The symlink is resolved: the real file changes, the main file does not.
    assert [e.path for e in p.edits] == [str(real)]
    assert p.edits[0].after == ("# core settings\nworker_rlimit_core   1G ;  # too small\n"
                                "working_directory /var/lib/crashkit/cores;\n")
    assert p.changes[0].old == "100m" and p.changes[0].file == str(real)


def debian_like(d: Path, main: str = "", glob: str = "modules-enabled/*.conf") -> Path:
    (d / "modules-enabled").mkdir(parents=True)
    (d / "modules-enabled" / "50-mod-x.conf").write_text("# load_module modules/x.so;\n")
    conf = d / "nginx.conf"
    conf.write_text(f"user www-data;\nworker_processes auto;\n{main}include {glob};\n"
                    "events {\n}\nhttp {\n    include conf.d/*.conf;\n}\n")
    (d / "conf.d").mkdir()
    return conf


def test_dropin_where_the_main_context_includes_a_directory_glob(tmp_path: Path) -> None:
    conf = debian_like(tmp_path)
    cfg = load_config(str(conf))
    me = tmp_path / "modules-enabled"
    assert choose_dropin(cfg, os.path.isdir) == DropIn(
        str(me / "90-crashkit-cores.conf"), str(me / "*.conf"), f"{conf}:3")
    before = conf.read_text()
    p = plan(conf, dropin=True)
    # The main file is left alone; the new file holds both directives.
    assert [(e.path, e.new, e.before) for e in p.edits] == [
        (str(me / "90-crashkit-cores.conf"), True, "")]
    assert p.edits[0].after == (
        "# Written by crashkit setup --apply: where nginx's workers leave their cores\n"
        "# (crashkit setup --undo removes this file).\n"
        "worker_rlimit_core 2G;\nworking_directory /var/lib/crashkit/cores;\n")
    assert p.dropin is not None and p.dropin.path == p.edits[0].path
    assert [(c.directive, c.file, c.line) for c in p.changes] == [
        ("worker_rlimit_core", p.dropin.path, 2), ("working_directory", p.dropin.path, 2)]
    assert p.edits[0].diff().startswith(f"--- /dev/null\n+++ {p.dropin.path} (crashkit setup)\n"
                                        "@@ -0,0 +1,4 @@\n")
    assert conf.read_text() == before
    # Without a drop-in the same config gets the main file edited, as before.
    assert [e.path for e in plan(conf).edits] == [str(conf)]


def test_dropin_is_chosen_only_where_nginx_would_load_it(tmp_path: Path) -> None:
    def chosen(d: Path, **kw: str) -> DropIn | None:
        return choose_dropin(load_config(str(debian_like(d, **kw))), os.path.isdir)

    # The pattern's own suffix; a glob that would not load the name: none.
    assert chosen(tmp_path / "a", glob="modules-enabled/*.load") is not None
    assert chosen(tmp_path / "a2", glob="modules-enabled/*.load").path.endswith(  # type: ignore[union-attr]
        "/modules-enabled/90-crashkit-cores.load")
    assert chosen(tmp_path / "b", glob="modules-enabled/mod-*.conf") is None
    # No glob (one file), a glob in the directory part, a missing directory.
    assert chosen(tmp_path / "c", glob="modules-enabled/50-mod-x.conf") is None
    assert chosen(tmp_path / "d", glob="*/*.conf") is None
    assert chosen(tmp_path / "e", glob="missing.d/*.conf") is None
    # An include glob inside http {} is not the main context.
    conf = tmp_path / "f" / "nginx.conf"
    (tmp_path / "f" / "conf.d").mkdir(parents=True)
    conf.write_text("events {}\nhttp {\n    include conf.d/*.conf;\n}\n")
    assert choose_dropin(load_config(str(conf)), os.path.isdir) is None


def test_dropin_beside_what_is_there(tmp_path: Path) -> None:
    # One directive in the main file already: the missing one goes to the
    # drop-in (the main file is not edited) ...
    conf = debian_like(tmp_path / "a", main="worker_rlimit_core 4G;\n")
    p = plan(conf, limit="4G", dropin=True)
    assert [(e.path, e.new) for e in p.edits] == [
        (str(tmp_path / "a" / "modules-enabled" / "90-crashkit-cores.conf"), True)]
    assert p.edits[0].after.splitlines()[2:] == ["working_directory /var/lib/crashkit/cores;"]
    # ... an existing drop-in is edited in place (a later apply, other values) ...
    conf = debian_like(tmp_path / "b")
    dropin = tmp_path / "b" / "modules-enabled" / "90-crashkit-cores.conf"
    dropin.write_text(plan(conf, dropin=True).edits[0].after)
    p = plan(conf, "/srv/cores", "3G", dropin=True)
    assert [(e.path, e.new) for e in p.edits] == [(str(dropin), False)]
    assert p.edits[0].after == dropin.read_text().replace("2G", "3G").replace(
        "/var/lib/crashkit/cores", "/srv/cores")
    assert p.dropin is not None and p.dropin.path == str(dropin)
    # ... and, once there with these values, nothing changes.
    assert plan(conf, dropin=True).edits == ()


def test_plan_is_idempotent(tmp_path: Path) -> None:
    conf = tmp_path / "nginx.conf"
    conf.write_text("worker_processes 1;\nevents {}\n")
    first = plan(conf)
    conf.write_text(first.edits[0].after)
    again = plan(conf)
    assert again.edits == () and again.changes == ()
    # 2048m is the same limit as 2G: nothing to change either.
    conf.write_text(first.edits[0].after.replace("2G", "2048m"))
    assert plan(conf).edits == ()


def test_choose_values_keeps_a_larger_limit_and_a_fit_directory(tmp_path: Path) -> None:
    conf = tmp_path / "nginx.conf"
    conf.write_text("worker_rlimit_core 8G;\nworking_directory /srv/cores;\nevents {}\n")
    cfg = load_config(str(conf))
    assert choose_values(cfg, None, None, lambda p: p == "/srv/cores") == ("/srv/cores", "8G")
    assert choose_values(cfg, None, None, lambda p: False) == ("/var/lib/crashkit/cores", "8G")
    assert choose_values(cfg, "/x", "1G", lambda p: True) == ("/x", "1G")
    conf.write_text("worker_rlimit_core 10m;\nevents {}\n")
    assert choose_values(load_config(str(conf)), None, None, lambda p: True) == (
        "/var/lib/crashkit/cores", "2G")


def test_lexer_follows_nginx_tokens() -> None:
    text = ('set $a "x;y{z}"; return 200 \'it\\\'s\'; rewrite ^/(.*)$ /${1}x last;\n'
            'if ($a ~ "}") { return 404; }\n'
            'content_by_lua_block { local t = { a = "}" } ngx.say(t.a) }\n'
            'location ~ "^/a{2}$" { }\n')
    stmts = statements(text)
    assert [(s.name.value, [a.value for a in s.args], s.depth) for s in stmts] == [
        ("set", ["$a", "x;y{z}"], 0), ("return", ["200", "it's"], 0),
        ("rewrite", ["^/(.*)$", "/${1}x", "last"], 0), ("if", ["($a", "~", "}", ")"], 0),
        ("return", ["404"], 1), ("content_by_lua_block", [], 0),
        ("location", ["~", "^/a{2}$"], 0)]
    with pytest.raises(InputError, match=r"x\.conf: line 2: unexpected end of file"):
        statements("events {\n", "x.conf")


def test_glob_semantics_of_include() -> None:
    # glob(3) without GLOB_PERIOD: "*" and "?" never match a leading dot.
    assert glob_matches("/etc/nginx/conf.d/*.conf", "/etc/nginx/conf.d/a.conf")
    assert not glob_matches("/etc/nginx/conf.d/*.conf", "/etc/nginx/conf.d/.a.conf")
    assert not glob_matches("/etc/nginx/conf.d/*", "/etc/nginx/conf.d/.nginx.conf.crashkit-new")
    assert not glob_matches("/etc/nginx/*/*.conf", "/etc/nginx/conf.d/sub/a.conf")
    assert glob_matches("/etc/nginx/conf.d/.*", "/etc/nginx/conf.d/.a.conf.crashkit-new")


def test_sizes() -> None:
    assert parse_size("2G") == 2 << 30
    assert parse_size("512m") == 512 << 20
    assert parse_size("100") == 100
    assert parse_size("1T") is None and parse_size("-1") is None and parse_size("") is None


def test_reader_queries(tmp_path: Path) -> None:
    conf = tmp_path / "nginx.conf"
    conf.write_text("user  web staff;\nevents {}\nhttp {\n upstream app {\n"
                    "  server unix:/run/app.sock;\n  server 10.0.0.2:8080;\n }\n"
                    " server { location / { proxy_pass http://unix:/run/b.sock:/x; }\n"
                    "  location /g { grpc_pass grpc://127.0.0.1:9000; } }\n}\n")
    cfg = load_config(str(conf))
    u = worker_user(cfg)
    assert (u.user, u.group, u.directive.line if u.directive else None) == ("web", "staff", 1)
    assert [(t.kind, t.unix_socket, t.upstream) for t in upstream_targets(cfg)] == [
        ("proxy_pass", "/run/b.sock", None), ("grpc_pass", None, None),
        ("server", "/run/app.sock", "app"), ("server", None, "app")]


def test_a_core_dir_swapped_for_a_symlink_is_not_followed(tmp_path: Path) -> None:
    """The take-over (chown, chmod) goes through the directory's own
    descriptor: a symlink swapped in after the checks is refused and its
    target keeps its owner and mode."""
    import pwd

    from crashkit.writers.coredir import Worker, take_over

    if os.geteuid() != 0:
        unavailable("chown needs root")
    target = tmp_path / "precious"
    target.mkdir()
    target.chmod(0o755)
    link = tmp_path / "cores"
    link.symlink_to(target)
    www = pwd.getpwnam("www-data")
    worker = Worker("www-data", "www-data", www.pw_uid, www.pw_gid)
    with pytest.raises(InputError, match="changed while setting it up"):
        take_over(str(link), worker)
    st = target.stat()
    assert (st.st_uid, st.st_mode & 0o777) == (0, 0o755)
    take_over(str(target), worker)  # the directory itself is taken over
    st = target.stat()
    assert (st.st_uid, st.st_mode & 0o777) == (www.pw_uid, 0o700)


def test_an_included_file_that_is_no_config_is_named(tmp_path: Path) -> None:
    """include of a file that is not nginx syntax (here, shadow-like lines
    with no ';'): one message naming it, not crossplane's empty error."""
    garbage = tmp_path / "accounts"
    garbage.write_text("root:$6$abc:19000:0:99999:7:::\ndaemon:*:19000:0:99999:7:::")
    conf = tmp_path / "nginx.conf"
    conf.write_text(f"user www-data;\ninclude {garbage};\nevents {{}}\n")
    with pytest.raises(InputError) as caught:
        load_config(str(conf))
    assert str(caught.value) == (f"{garbage}: not an nginx configuration (it ends inside a "
                                 "directive)")


def test_the_lexer_unescapes_as_nginx_does() -> None:
    """\\" \\' \\\\ lose the backslash, \\t \\r \\n are control characters, any
    other backslash stays (a regex's \\. is two characters)."""
    text = 'set $a "x\\"y\\d\\tz"; rewrite ^/a\\.b$ /c;\n'
    got = [(s.name.value, [t.value for t in s.args]) for s in statements(text)]
    assert got == [("set", ["$a", 'x"y\\d\tz']), ("rewrite", ["^/a\\.b$", "/c"])]


def test_what_nginx_t_writes_and_how_the_check_keeps_it_away(tmp_path: Path) -> None:
    from crashkit.nginx.config import check_writes, with_prefix
    from crashkit.writers.config import _isolating_mounts

    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "old.log").write_text("x")
    (tmp_path / "temp").mkdir()
    conf = tmp_path / "nginx.conf"
    conf.write_text("pid logs/n.pid; error_log logs/old.log; error_log stderr;\n"
                    "events { } http { access_log off; access_log logs/$host.log;\n"
                    "  access_log syslog:server=x; proxy_temp_path temp/p 1 2;\n"
                    f"  server {{ access_log {tmp_path}/nodir/a.log; }} }}\n")
    cfg = load_config(str(conf), with_prefix(None, str(tmp_path)))
    t = str(tmp_path)
    assert check_writes(cfg) == (
        f"{t}/logs/n.pid", f"{t}/logs/old.log", f"{t}/nodir/a.log", f"{t}/logs/access.log",
        f"{t}/client_body_temp", f"{t}/temp/p", f"{t}/proxy_temp", f"{t}/fastcgi_temp",
        f"{t}/uwsgi_temp", f"{t}/scgi_temp")
    # Overlays where an entry would appear (parents first), an empty file
    # over the existing log; nothing for a directory that is missing (nginx
    # -t fails there, creating nothing).
    assert _isolating_mounts(cfg) == [("cow", t), ("cow", f"{t}/logs"), ("cow", f"{t}/temp"),
                                      ("blank", f"{t}/logs/old.log")]
    # The root directory cannot be overlaid: the check runs as it is.
    conf.write_text("pid /crashkit-no-such.pid; events { }\n")
    assert _isolating_mounts(load_config(str(conf), with_prefix(None, t))) is None


_TRICKY = ["a", "b", " ", "\n", "\t", "\r", "\r\n", ";", "{", "}", '"', "'", "\\", "$", "${",
           "#", "# c\n", "content_by_lua_block", "s {", "k v;", "\\\n", '"q\\"x"', "'q\\'y'",
           "\x0b", "\xa0", "\u2003", "é", "\x1c", "#x\\\n", "#\\"]


def test_fast_lexer_gives_the_reference_lexers_statements_and_errors() -> None:
    """statements() matches a regular expression a token; the character-at-a-time
    lexer it falls back to is the reference: same statements, same errors,
    over the whole file and over spans that start where the lexer rests."""
    import random

    from crashkit.formats.nginx_config import _statements_slow, lex_span

    def outcome(f: Callable[..., list[Any] | tuple[Any, ...]], *args: object) -> object:
        try:
            return f(*args)
        except InputError as e:
            return str(e)

    rnd = random.Random(18)
    for _ in range(20000):
        text = "".join(rnd.choice(_TRICKY) for _ in range(rnd.randint(0, 14)))
        fast = outcome(statements, text, "f.conf")
        slow = outcome(_statements_slow, text, "f.conf")
        assert fast == (slow[0] if isinstance(slow, tuple) else slow), repr(text)
        if isinstance(fast, list) and fast:
            first = rnd.randrange(len(fast))
            last = rnd.randrange(first, len(fast))
            start, end = fast[first - 1].end if first else 0, fast[last].end
            depth = fast[first - 1].depth + (fast[first - 1].terminator == "{") if first else 0
            line = text.count("\n", 0, start) + 1
            assert outcome(lex_span, text, "f", start, end, depth, line) == outcome(
                _statements_slow, text, "f", start, end, depth, line, False)


def test_fast_crossplane_tokens_are_crossplanes(tmp_path: Path) -> None:
    """load_config's token stream (one regular expression match a token) is
    crossplane's own lexer's, token for token, line for line, error for error."""
    import random

    import crossplane.lexer
    from crossplane.errors import NgxParserBaseException

    from crashkit.nginx.config import _crossplane_tokens

    def outcome(lex: Callable[[str], Iterator[tuple[str, int, bool]]]) -> object:
        try:
            return list(lex(str(conf)))
        except NgxParserBaseException as e:  # crossplane's syntax errors
            return (type(e).__name__, str(e))

    conf = tmp_path / "x.conf"
    rnd = random.Random(18)
    for _ in range(4000):
        text = "".join(rnd.choice(_TRICKY) for _ in range(rnd.randint(0, 14)))
        conf.write_text(text, encoding="utf-8", newline="")
        assert outcome(_crossplane_tokens) == outcome(crossplane.lexer.lex), repr(text)


def test_crossplane_whitespace_is_what_isspace_says() -> None:
    import re

    from crashkit.nginx.config import _CP_SPACE

    every = "".join(map(chr, range(0x110000)))
    assert set(re.findall(f"[{_CP_SPACE}]", every)) == {c for c in every if c.isspace()}


def test_fast_load_config_is_crossplanes(tmp_path: Path) -> None:
    """The whole tree, read through the fast token stream (and without the
    analyzer's no-op calls) and through crossplane as it comes, on a config
    with includes, quotes, escapes, comments and Lua."""
    import crossplane.lexer
    import crossplane.parser

    (tmp_path / "conf.d").mkdir()
    (tmp_path / "conf.d" / "a.conf").write_text(
        'server { listen 80; location ~ \\.php$ { return 200 "a\\"b c"; } }  # end\n')
    (tmp_path / "nginx.conf").write_text(
        "user www-data;\nevents {}\nhttp {\n  include conf.d/*.conf;\n"
        "  log_format x '$remote_addr \\'q\\'';\n"
        "  server { listen 81; location / { content_by_lua_block { ngx.say('}') } } }\n}\n")
    (tmp_path / "plain.conf").write_text(
        "events {}\nhttp {\n  include conf.d/*.conf;\n  server { listen 82; }\n}\n")
    for name in ("nginx.conf", "plain.conf"):
        import crashkit.nginx.config as C

        fast = load_config(str(tmp_path / name))
        crossplane.parser.lex = crossplane.lexer.lex  # crossplane as it comes
        crossplane.parser.analyze = C._crossplane_analyze
        try:
            slow = load_config(str(tmp_path / name))
        finally:
            crossplane.parser.lex = C._crossplane_tokens
            crossplane.parser.analyze = C._analyze
        assert fast == slow
        assert [d.name for d in fast.walk()][:3] == (["user", "events", "http"] if
                                                    name == "nginx.conf" else
                                                    ["events", "http", "include"])


def test_the_check_beside_the_lexing_keeps_the_steps_order() -> None:
    """setup runs nginx -t's check in a thread while it lexes: the check's
    error wins over the lexing's (redone later where it is used), as when
    they ran one after the other; --apply's replacement error wins over the
    diffs made meanwhile."""
    from crashkit.commands.setup import _beside

    def fails(message: str) -> Callable[[], Any]:
        def f() -> Any:
            raise InputError(message, path="/x.conf")
        return f

    assert _beside(lambda: 1, lambda: 2) == (1, 2)
    assert _beside(lambda: 1, fails("lexing")) == (1, None)  # redone where it is used
    with pytest.raises(InputError, match="check"):
        _beside(fails("check"), fails("lexing"))
    with pytest.raises(InputError, match="replace"):
        _beside(fails("diff"), fails("replace"), raise_meanwhile=True)
    with pytest.raises(InputError, match="diff"):
        _beside(fails("diff"), lambda: 2, raise_meanwhile=True)
