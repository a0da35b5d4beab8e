"""analysis/trackers: which tracker the blamed code goes to, and why; the
prefilled URLs parse back to the same title and body."""

from __future__ import annotations

import dataclasses
from urllib.parse import parse_qs, urlsplit

import pytest

from crashkit.analysis import trackers as T
from crashkit.errors import InputError
from crashkit.model.analyze import HostFacts, Package, SignalInfo
from crashkit.model.report import Tracker
from tests.unit.test_report_render import LIBC, MOD, NGINX, analysis, frame

SEGV = SignalInfo(11, "SIGSEGV", 1, "SEGV_MAPERR", 0, 0, None, None, "x")
SSL = "/usr/lib/x86_64-linux-gnu/libssl.so.3"

# nginx/nginx .github/ISSUE_TEMPLATE/bug_report.yml at commit
# 06ce1d0e13273e8dee3510ff8ab20cabb71c8a3f: the textarea ids in order are
# overview, behavior, steps, configuration, environment, logs, context.
NGINX_FORM_IDS = ("overview", "behavior", "steps", "configuration", "environment", "logs",
                  "context")


def test_nginx_form_ids_come_from_its_bug_report_yml() -> None:
    assert set(T.NGINX_FORM_FIELDS) == set(NGINX_FORM_IDS) - {"environment"}
    assert T.NGINX_FORM == "bug_report.yml"


def _crash(*frames: tuple[str, str], packages: dict[str, Package] | None = None) -> object:
    return analysis(SEGV, [frame(i, m, f, 0x10 * (i + 1)) for i, (m, f) in enumerate(frames)],
                    HostFacts(packages=packages or {}))


def test_nginx_own_code_goes_to_nginx_form() -> None:
    a = _crash((NGINX, "ngx_http_parse_request_line"), (NGINX, "ngx_http_process_request"))
    t = T.choose(a)  # type: ignore[arg-type]
    # The process had a third-party module loaded (echo): nginx wants the bug
    # reproduced without it, which the note says.
    assert t == Tracker("github", "nginx", "https://github.com/nginx/nginx",
                        "the crash is in nginx's own code (nginx)", form="bug_report.yml",
                        note="third-party modules are loaded (ngx_http_echo_module.so): "
                             "nginx's tracker asks that a bug reproduce without them, and a "
                             "module can break nginx's state without being on the crashing "
                             "stack: try without them first")
    pkg = {MOD: Package("libnginx-mod-http-echo", "0.63-6")}
    a = _crash((NGINX, "ngx_http_parse_request_line"), packages=pkg)
    clean = T.choose(dataclasses.replace(a, core=dataclasses.replace(  # type: ignore[call-overload]
        a.core, modules=tuple(m for m in a.core.modules if m.path != MOD))))  # type: ignore[attr-defined]
    assert clean.note is None


def test_a_library_with_its_own_tracker() -> None:
    lib = "/usr/lib/x86_64-linux-gnu/libpcre2-8.so.0"
    a = _crash((lib, "pcre2_match_8"), (LIBC, "abort"))
    v = a.verdict  # type: ignore[attr-defined]
    a = dataclasses.replace(a, verdict=dataclasses.replace(v, module=lib,  # type: ignore
                                                           origin="library"))
    t = T.choose(a)  # type: ignore[arg-type]
    assert (t.kind, t.project, t.url) == ("github", "PCRE2",
                                          "https://github.com/PCRE2Project/pcre2")
    assert t.reason == ("the crash is in libpcre2-8.so.0, part of PCRE2, which has its own "
                        "tracker")


def test_a_debian_packaged_module_goes_to_the_bts_with_its_upstream() -> None:
    a = _crash((LIBC, "__strlen_avx2"), (MOD, "ngx_http_echo_exec_echo"), (NGINX, "x"),
               packages={MOD: Package("libnginx-mod-http-echo", "0.63-6")})
    fields = {"Package": "libnginx-mod-http-echo", "Version": "0.63-6",
              "Homepage": "https://github.com/openresty/echo-nginx-module",
              "Vcs-Git": "https://salsa.debian.org/nginx-team/nginx.git"}
    t = T.choose(a, fields=fields)  # type: ignore[arg-type]
    assert t.kind == "debian" and t.package == "libnginx-mod-http-echo"
    assert t.url == "https://bugs.debian.org/libnginx-mod-http-echo"
    assert t.upstream == "https://github.com/openresty/echo-nginx-module"
    assert t.reason == ("ngx_http_echo_module.so is installed by the Debian package "
                        "libnginx-mod-http-echo (its Homepage names upstream: "
                        "https://github.com/openresty/echo-nginx-module)")
    assert t.note == T.NO_THIRD_PARTY
    assert T.issue_url(t, "x", "y") is None  # reportbug, not a URL
    assert T.search_url(t, "abc") == ("https://bugs.debian.org/cgi-bin/pkgreport.cgi?"
                                      "package=libnginx-mod-http-echo")


def test_third_party_module_order_repo_remote_table_unknown() -> None:
    a = _crash((MOD, "ngx_http_echo_exec_echo"), (NGINX, "ngx_http_core_content_phase"))
    t = T.choose(a, repo="me/fork")  # type: ignore[arg-type]
    assert (t.url, t.reason, t.note) == ("https://github.com/me/fork", "--repo me/fork",
                                         T.NO_THIRD_PARTY)
    t = T.choose(a, git_remote=("/src/echo", "git@gitlab.com:me/echo.git"))  # type: ignore
    assert (t.kind, t.url) == ("gitlab", "https://gitlab.com/me/echo")
    assert t.reason == ("ngx_http_echo_module.so was built from /src/echo, whose git remote "
                        "is git@gitlab.com:me/echo.git")
    t = T.choose(a)  # type: ignore[arg-type]
    assert t.url == "https://github.com/openresty/echo-nginx-module" and t.kind == "github"
    other = "/opt/mods/ngx_http_mine_module.so"
    b = _crash((other, "mine"), (NGINX, "ngx_http_core_content_phase"))
    b = dataclasses.replace(b, core=dataclasses.replace(  # type: ignore
        b.core, modules=(*b.core.modules[:2], dataclasses.replace(  # type: ignore
            b.core.modules[2], path=other))))  # type: ignore
    from crashkit.analysis.verdict import build_analysis

    b = build_analysis(b.core, b.core.threads, gdb_used=True, host=HostFacts())  # type: ignore
    t = T.choose(b)
    assert t.kind == "unknown" and t.reason.endswith("pass --repo")


@pytest.mark.parametrize(("text", "found"), [
    ("nginx/nginx", ("github", "https://github.com/nginx/nginx")),
    ("https://github.com/openresty/lua-nginx-module.git",
     ("github", "https://github.com/openresty/lua-nginx-module")),
    ("https://github.com/a/b/issues/12", ("github", "https://github.com/a/b")),
    ("git@github.com:a/b.git", ("github", "https://github.com/a/b")),
    ("https://gitlab.com/g/sub/p/-/issues", ("gitlab", "https://gitlab.com/g/sub/p")),
    ("https://trac.nginx.org/nginx/newticket", ("trac", "https://trac.nginx.org/nginx")),
    ("https://bugs.debian.org/nginx", ("debian", "https://bugs.debian.org/nginx")),
    ("ftp://example.org/x", None), ("not a repo", None), ("https://example.org/", None),
])
def test_repository_forms(text: str, found: tuple[str, str] | None) -> None:
    assert T.repository(text) == found


def test_a_bad_repo_is_input_error() -> None:
    with pytest.raises(InputError, match="--repo: 'x y z' is not OWNER/REPO"):
        T.from_repo_option("x y z")


@pytest.mark.parametrize(("tracker", "keys"), [
    (Tracker("github", "p", "https://github.com/o/p", "r"), ("title", "body")),
    (Tracker("gitlab", "p", "https://gitlab.com/o/p", "r"),
     ("issue[title]", "issue[description]")),
    (Tracker("trac", "p", "https://trac.example.org/p", "r"), ("summary", "description")),
])
def test_urls_parse_back_to_title_and_body(tracker: Tracker, keys: tuple[str, str]) -> None:
    title, body = "nginx crash [crashkit 0123abcd] & 100%", "# x\n\n`a+b` ?q=1&r=#2 — é\n"
    url = T.issue_url(tracker, title, body, labels=None)
    assert url is not None
    q = parse_qs(urlsplit(url).query, keep_blank_values=True)
    assert q[keys[0]] == [title] and q[keys[1]] == [body]


def test_nginx_form_url_carries_fields_by_id() -> None:
    t = Tracker("github", "nginx", T.NGINX_REPO, "r", form=T.NGINX_FORM)
    fields = {k: f"{k} text & more" for k in T.NGINX_FORM_FIELDS}
    url = T.issue_url(t, "T", "ignored", fields=fields)
    assert url is not None and url.startswith("https://github.com/nginx/nginx/issues/new?")
    q = parse_qs(urlsplit(url).query)
    assert q.pop("template") == ["bug_report.yml"] and q.pop("title") == ["T"]
    assert q == {k: [v] for k, v in fields.items()}
