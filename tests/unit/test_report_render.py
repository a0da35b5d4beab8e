"""report.md against golden files, from synthetic models (no gdb, no host
facts: the same bytes on every machine), and the redaction rules."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable

import pytest

from crashkit.analysis import redact as R
from crashkit.analysis.redact import redacted_config
from crashkit.analysis.verdict import build_analysis
from crashkit.model import signals as S
from crashkit.model.analyze import (
    CoreFacts,
    CrashTime,
    Frame,
    HostFacts,
    Module,
    Package,
    ProcessInfo,
    SignalInfo,
    Thread,
)
from crashkit.render.report import build_model, render_template, template_environment
from tests.golden import assert_golden

NGINX = "/usr/sbin/nginx"
LIBC = "/usr/lib/x86_64-linux-gnu/libc.so.6"
MOD = "/usr/lib/nginx/modules/ngx_http_echo_module.so"
ENVIRONMENT = [("nginx", "nginx/1.22.1"), ("kernel", "Linux 6.1.0-27-amd64 (x86_64)"),
               ("distribution", "Debian GNU/Linux 12 (bookworm)"), ("C library", "glibc 2.36")]
FILES = [("report.md", "the bug report"), ("analysis.json", "the analysis")]


def module(path: str, bid: str) -> Module:
    return Module(path=path, start=0x1000, end=0x2000, build_id=bid, file_build_id=bid,
                  build_id_match=True, file_status="ok")


def analysis(sig: SignalInfo, frames: list[Frame], host: HostFacts) -> object:
    thread = Thread(tid=4242, crashed=True, registers={"rip": 0x7F00_0000_1234,
                                                       "rsp": 0x7FFC_0000_0000},
                    pc=frames[0].pc, sp=0x7FFC_0000_0000, fp=None, cursig=sig.number,
                    frames=tuple(frames))
    facts = CoreFacts(
        path="/var/lib/crashkit/cores/core.4242", size=1560576, expected_size=1560576,
        truncated=False, arch="x86-64",
        process=ProcessInfo(pid=4242, ppid=4200, uid=33, gid=33, fname="nginx",
                            args="nginx: worker process", state="R"),
        signal=sig, threads=(thread,), mappings=(), auxv={}, exe=NGINX, execfn=NGINX,
        page_size=4096,
        modules=(module(NGINX, "74429228deec622306ed48e0188056aed01ba01f"),
                 module(LIBC, "93ac61ec5a8eb1396f9fbd350e3169a558528a40"),
                 module(MOD, "1f95d5498d283b79505861523e20b3db2afdf518")))
    return build_analysis(facts, (thread,), gdb_used=True, host=host)


def frame(i: int, module_path: str, fn: str, off: int, **kw: object) -> Frame:
    return Frame(index=i, pc=0x7F00_0000_1000 + 0x100 * i, function=fn, module=module_path,
                 module_offset=off, function_offset=0x10, source="gdb", **kw)  # type: ignore[arg-type]


CASES = {
    "report-echo-module.md": lambda: dataclasses.replace(analysis(
        SignalInfo(11, "SIGSEGV", 1, "SEGV_MAPERR", 0, 0, None, None,
                   S.describe(11, 1, 0, None, None)),
        [frame(0, LIBC, "__strlen_avx2", 0x15D, file="../sysdeps/x86_64/multiarch/strlen-avx2.S",
               line=74),
         frame(1, MOD, "ngx_http_echo_exec_echo", 0x4A2B,
               args=(("r", "0x55d0c0de1000"), ("value", '0x55d0c0de2000 "<redacted:31>"'))),
         frame(2, NGINX, "ngx_http_core_content_phase", 0x6CA10)],
        HostFacts(packages={MOD: Package("libnginx-mod-http-echo", "0.63-6"),
                            NGINX: Package("nginx", "1.22.1-9+deb12u1")})),
        crash_time=CrashTime("2026-11-24T04:35:59+00:00", "error log", 3725)),
    "report-kill.md": lambda: analysis(
        SignalInfo(11, "SIGSEGV", 0, "SI_USER", 0, None, 999, 0,
                   S.describe(11, 0, None, 999, 0)),
        [frame(0, LIBC, "epoll_wait", 0x1234)], HostFacts(sender_user="root")),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_report_md_golden(name: str) -> None:
    a = CASES[name]()
    model = build_model(a, environment=ENVIRONMENT, files=FILES,  # type: ignore[arg-type]
                        redacted=True, generator="crashkit 0.1.0")
    out = render_template(template_environment(None), "report.md.j2", r=model)
    assert_golden(name, out)


def test_markdown_fence_outgrows_backticks_in_the_content() -> None:
    """A function name with backticks (a hostile binary) cannot close the
    code block and inject Markdown."""
    a = analysis(SignalInfo(11, "SIGSEGV", 1, "SEGV_MAPERR", 0, 0, None, None, "x"),
                 [frame(0, MOD, "evil```\n# injected", 0x10)], HostFacts())
    model = build_model(a, environment=[], files=[], redacted=True,  # type: ignore[arg-type]
                        generator="crashkit")
    assert model.fence == "````"
    out = render_template(template_environment(None), "report.md.j2", r=model)
    assert "\n# injected" not in out  # the newline is shown as \x0a


def test_html_escapes_what_the_core_says() -> None:
    a = analysis(SignalInfo(11, "SIGSEGV", 1, "SEGV_MAPERR", 0, 0, None, None, "x"),
                 [frame(0, MOD, "<script>alert(1)</script>", 0x10)], HostFacts())
    model = build_model(a, environment=[], files=[], redacted=True,  # type: ignore[arg-type]
                        generator="crashkit")
    html = render_template(template_environment(None), "report.html.j2", r=model)
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_html_says_when_it_crashed() -> None:
    a = dataclasses.replace(CASES["report-echo-module.md"](), crash_time=CrashTime(
        "2026-11-24T04:35:59+01:00", "core file time", 90000))
    model = build_model(a, environment=[], files=[], redacted=True,  # type: ignore[arg-type]
                        generator="crashkit")
    html = render_template(template_environment(None), "report.html.j2", r=model)
    assert re.findall(r"<dt>crash time</dt><dd>(.*?)</dd>", html) == [
            "2026-11-24 04:35:59 +01:00 (1 day 1 h ago; from the core file time)"]


# -- redaction rules -------------------------------------------------------------------

@pytest.mark.parametrize(("value", "shown"), [
    ('0x55 "Bearer abc"', '0x55 "<redacted:10>"'),
    ('0x55 "a\\"b\\000c"', '0x55 "<redacted:5>"'),
    ("{len = 5, data = 0x60 \"hello\"}", '{len = 5, data = 0x60 "<redacted:5>"}'),
    ("104 'h'", "'<redacted:1>'"),
    ("'x' <repeats 30 times>", "'<redacted:1>' <repeats 30 times>"),
    ("0x0", "0x0"),
])
def test_gdb_values(value: str, shown: str) -> None:
    assert R.gdb_value(value) == shown


def test_config_secrets_are_redacted_in_place() -> None:
    conf = (
        "# keys below\n"
        "env API_TOKEN=s3cr3t-env;  # trailing comment\n"
        "http {\n"
        "    proxy_set_header Authorization \"Bearer tok-123\";\n"
        "    proxy_set_header Host $host;\n"
        "    fastcgi_param DB_PASSWORD hunter2;\n"
        "    fastcgi_param DB_PASS hunter3;\n"
        "    more_set_headers \"X-Api-Key: k-999\";\n"
        "    secure_link_secret lnk-555;\n"
        "    set $session_key 'abc def';\n"
        "    auth_basic_user_file /etc/nginx/htpasswd;\n"
        "    add_header X-Frame-Options DENY;\n"
        "    set $upstream_pw \"pw-4242\";\n"
        "    map $http_x_api_key $api_ok {\n"
        "        default 0;\n"
        "        \"map-998877\" 1;\n"
        "    }\n"
        "    location / {\n"
        "        if ($http_x_admin_token != \"if-55\") { return 403; }\n"
        "        if ($request_method = POST) { return 405; }\n"
        "    }\n"
        "}\n")
    out = redacted_config(conf)
    for secret in ("s3cr3t-env", "tok-123", "hunter2", "hunter3", "k-999", "lnk-555", "abc def",
                   "pw-4242", "map-998877", "if-55"):
        assert secret not in out
    assert out.splitlines() == [
        "# keys below",
        "env API_TOKEN=<redacted:10>;  # trailing comment",
        "http {",
        "    proxy_set_header Authorization <redacted:14>;",
        "    proxy_set_header Host $host;",
        "    fastcgi_param DB_PASSWORD <redacted:7>;",
        "    fastcgi_param DB_PASS <redacted:7>;",
        '    more_set_headers "X-Api-Key: <redacted:5>";',
        "    secure_link_secret <redacted:7>;",
        "    set $session_key <redacted:7>;",
        "    auth_basic_user_file /etc/nginx/htpasswd;",
        "    add_header X-Frame-Options DENY;",
        "    set $upstream_pw <redacted:7>;",
        "    map $http_x_api_key $api_ok {",
        "        default 0;",
        "        <redacted:10> 1;",
        "    }",
        "    location / {",
        "        if ($http_x_admin_token != <redacted:5>) { return 403; }",
        "        if ($request_method = POST) { return 405; }",
        "    }",
        "}",
    ]


@pytest.mark.parametrize(("text", "shown"), [
    ('request: "GET /a?token=xyz&id=7 HTTP/1.1"',
     'request: "GET /a?token=<redacted:3>&id=<redacted:1> HTTP/1.1"'),
    ("/usr/bin/app --password=hunter2 --port 80", "/usr/bin/app --password=<redacted:7> --port 80"),
    ("Authorization: Bearer abc.def.ghi", "Authorization: Bearer <redacted:11>"),
    ("plain words, nothing secret", "plain words, nothing secret"),
    ("/opt/probe --password hunter2 --token abc --port 80",
     "/opt/probe --password <redacted:7> --token <redacted:3> --port 80"),
    ("upstream: mysql://app:s3cr3t@db:3306/x", "upstream: mysql://app:<redacted:6>@db:3306/x"),
])
def test_log_and_command_line_secrets(text: str, shown: str) -> None:
    assert R.request_line(text) == shown


def test_setup_diffs_do_not_show_secrets_in_their_context() -> None:
    """People paste setup's dry run into tickets: the lines around a change
    are config too."""
    from crashkit.analysis.setup import FileEdit

    before = "env API_TOKEN=topsecret-123;\nuser www-data;\nevents {}\n"
    after = ("env API_TOKEN=topsecret-123;\nuser www-data;\nworker_rlimit_core 2G;\n"
             "events {}\n")
    diff = FileEdit("/etc/nginx/nginx.conf", before, after).diff()
    assert "topsecret-123" not in diff
    assert diff.splitlines()[2:] == [
        "@@ -1,3 +1,4 @@", " env API_TOKEN=<redacted:13>;", " user www-data;",
        "+worker_rlimit_core 2G;", " events {}"]


def test_markdown_from_the_core_cannot_make_links_or_break_code_spans() -> None:
    evil = "/opt/a`b/ngx_[x](http://evil.example).so"
    a = analysis(SignalInfo(11, "SIGSEGV", 1, "SEGV_MAPERR", 0, 0, None, None, "x"),
                 [frame(0, evil, "f![img](http://evil.example/p.png)", 0x10)], HostFacts())
    a = dataclasses.replace(a, core=dataclasses.replace(  # type: ignore[attr-defined]
        a.core, modules=(*a.core.modules, module(evil, "ab" * 20))))  # type: ignore[attr-defined]
    model = build_model(a, environment=[], files=[], redacted=True,  # type: ignore[arg-type]
                        generator="crashkit")
    out = render_template(template_environment(None), "report.md.j2", r=model)
    prose = re.sub(r"```text\n.*?\n```", "", out, flags=re.S)  # the code blocks
    prose = re.sub(r"(`+).+?\1", "", prose)  # the code spans
    assert "](" not in prose.replace("\\](", "")  # no link or image outside them
    assert "``/opt/a`b/ngx_[x](http://evil.example).so``" in out  # a whole code span


def test_setup_diffs_mark_a_last_line_without_newline() -> None:
    from crashkit.analysis.setup import FileEdit

    diff = FileEdit("/x", "user a;\nworker_rlimit_core 10m;", "user a;\nworker_rlimit_core 2G;"
                    ).diff().splitlines()
    assert diff[-4:] == ["-worker_rlimit_core 10m;", "\\ No newline at end of file",
                         "+worker_rlimit_core 2G;", "\\ No newline at end of file"]
    # It is what patch(1) expects: applied to the old text, it gives the new one.


# A config with secrets on the lines around where setup's directives go, in a
# map block, and in a quoted value over two lines (its redaction joins them,
# so the hunk's line numbers count the redacted text).
_SECRET_CONF = (
    "env API_TOKEN=topsecret-123;\n"
    'set $multi_secret "line-one\nline-two-secret";\n'
    "user www-data;\n"
    "worker_rlimit_core 10m;\n"
    "map $http_x_api_key $ok {\n"
    '    "map-key-77" 1;\n'
    "}\n"
    "events {}\n"
    "http {\n"
    '    proxy_set_header Authorization "Bearer zzz-999";\n'
    "    server { listen 80; }\n"
    "}\n")


def _full_redaction_diff(before: str, after: str, path: str) -> str:
    """The diff as setup printed it before it redacted only once: both texts
    redacted whole, every line through difflib."""
    import difflib

    lines = difflib.unified_diff(redacted_config(before).splitlines(keepends=True),
                                 redacted_config(after).splitlines(keepends=True),
                                 fromfile=path, tofile=f"{path} (crashkit setup)")
    return "".join(lines)


@pytest.mark.parametrize(("old", "new"), [
    ("worker_rlimit_core 10m;\n", "worker_rlimit_core 2G;\n"),  # an update in place
    ("user www-data;\n", "user www-data;\nworking_directory /var/lib/crashkit/cores;\n"),
    # a value that is itself redacted (a key=value pair)
    ("worker_rlimit_core 10m;\n",
     "worker_rlimit_core 10m;\nworking_directory /srv/token=1/cores;\n"),
])
def test_setup_diff_redaction_unchanged_with_secrets_in_context(old: str, new: str) -> None:
    from crashkit.analysis.setup import FileEdit
    from crashkit.formats.nginx_config import statements

    after = _SECRET_CONF.replace(old, new, 1)
    assert after != _SECRET_CONF
    want = _full_redaction_diff(_SECRET_CONF, after, "/etc/nginx/nginx.conf")
    stmts = tuple(statements(_SECRET_CONF))
    for lexed, red in ((None, None), (stmts, None), (stmts, tuple(R.config_edits(stmts)))):
        # as undo makes it, as the plan does, as the dry run does (lexed beside nginx -t)
        got = FileEdit("/etc/nginx/nginx.conf", _SECRET_CONF, after, lexed=lexed,
                       redactions=red).diff()
        assert got == want
    for secret in ("topsecret-123", "line-two-secret", "map-key-77", "zzz-999"):
        assert secret not in got
    assert "<redacted:24>" in got  # the two-line secret, a context line


def test_setup_diff_in_place_update_counts_the_redacted_lines() -> None:
    from crashkit.analysis.setup import FileEdit

    after = _SECRET_CONF.replace("worker_rlimit_core 10m;", "worker_rlimit_core 2G;")
    assert FileEdit("/x", _SECRET_CONF, after).diff().splitlines()[2:] == [
        "@@ -1,7 +1,7 @@",  # worker_rlimit_core: line 5 of the file, 4 of the diff
        " env API_TOKEN=<redacted:13>;",
        " set $multi_secret <redacted:24>;",  # two lines of the file, one of the diff
        " user www-data;",
        "-worker_rlimit_core 10m;",
        "+worker_rlimit_core 2G;",
        " map $http_x_api_key $ok {",
        "     <redacted:10> 1;",
        " }"]


def test_setup_diff_redacts_after_as_a_whole_redaction_would() -> None:
    """The diff lexes only the span of after that differs: for edits anywhere
    (inserted statements, blocks opened or closed, quotes, a Lua block, a
    map whose keys are secrets), after's redaction is the whole text's."""
    import random

    from crashkit.analysis.setup import _redacted_pair
    from crashkit.errors import InputError
    from crashkit.formats.nginx_config import statements

    pieces = ["env API_TOKEN=s3cret;\n", "user www-data;\n", "events {}\n", "http {\n", "}\n",
              'map $http_x_api_key $ok {\n "k-1" 1;\n default 0;\n}\n', 'set $token "abc";\n',
              'proxy_set_header Authorization "Bearer xyz";\n', "# token=1\n",
              "server { listen 80; }\n", 'if ($http_x_token != "s3") { return 403; }\n',
              'content_by_lua_block { a = "}" }\n', "worker_rlimit_core 10m;\n",
              'location / { add_header X-Auth "q w"; }\n', 'a "x\ny";\n', "w b\\\nc;\n"]
    inserts = ["worker_rlimit_core 2G;\n", "working_directory /var/lib/auth=1/cores;\n",
               "map $a $token {\n", "}\n", '"', "{", "env X=1;", "set $pw 2;\n", "# x\n"]
    rnd = random.Random(18)

    def outcome(f: Callable[..., object], *args: object) -> object:
        try:
            return f(*args)
        except InputError as e:
            return str(e)

    def whole(before: str, after: str) -> tuple[str, str]:
        return redacted_config(before), redacted_config(after)

    for _ in range(3000):
        before = "".join(rnd.choice(pieces) for _ in range(rnd.randint(0, 10)))
        try:
            lexed = tuple(statements(before))
        except InputError:
            lexed = None
        at = rnd.choice([0, len(before), *(s.end for s in lexed or ())])
        cut = rnd.randint(at, min(len(before), at + 12)) if rnd.random() < 0.3 else at
        after = before[:at] + rnd.choice(inserts) + before[cut:]
        red = tuple(R.config_edits(lexed)) if lexed is not None and rnd.random() < 0.5 else None
        assert outcome(_redacted_pair, before, after, lexed, red) == outcome(whole, before, after)
