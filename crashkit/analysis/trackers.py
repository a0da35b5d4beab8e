"""Where a crash's report goes: the tracker of the blamed code, with the reason
it was chosen, and the prefilled new-issue URL of that tracker (pure: the
command gathers the host's facts and passes them in).

Registries: LIBRARIES (libraries with a tracker of their own, by soname) and
MODULES (well-known third-party nginx modules, by file name). One entry a case.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from urllib.parse import quote, urlencode, urlsplit

from crashkit.errors import InputError
from crashkit.model.analyze import Analysis
from crashkit.model.report import Tracker

NGINX_REPO = "https://github.com/nginx/nginx"
# nginx takes bugs through an issue form (blank issues are disabled); its
# fields are prefilled by their ids. Ids from nginx/nginx
# .github/ISSUE_TEMPLATE/bug_report.yml (commit 06ce1d0e1327). "environment"
# is left out: the form may reuse that id, and a prefill would be ambiguous.
NGINX_FORM = "bug_report.yml"
NGINX_FORM_FIELDS = ("overview", "behavior", "steps", "configuration", "logs", "context")
NO_THIRD_PARTY = ("nginx's tracker asks that a bug reproduce without third-party modules: "
                  "report this one to the module's tracker instead")
DEFAULT_BUDGET = 6000  # characters of URL; GitHub answers 414 at about 8 KB


@dataclass(frozen=True)
class Known:
    project: str
    kind: str  # a TrackerKind
    url: str  # tracker base (github/gitlab: the repository; bugzilla: enter_bug.cgi?product=)


# Libraries with a tracker of their own, by the start of their file name.
LIBRARIES: dict[str, Known] = {
    "libssl.so": Known("OpenSSL", "github", "https://github.com/openssl/openssl"),
    "libcrypto.so": Known("OpenSSL", "github", "https://github.com/openssl/openssl"),
    "libpcre2-8.so": Known("PCRE2", "github", "https://github.com/PCRE2Project/pcre2"),
    "libz.so": Known("zlib", "github", "https://github.com/madler/zlib"),
    "libluajit-5.1.so": Known("LuaJIT", "github", "https://github.com/LuaJIT/LuaJIT"),
    "libluajit2": Known("OpenResty's LuaJIT 2", "github", "https://github.com/openresty/luajit2"),
    "libc.so": Known("glibc", "bugzilla", "https://sourceware.org/bugzilla/enter_bug.cgi?"
                                          "product=glibc"),
    "libm.so": Known("glibc", "bugzilla", "https://sourceware.org/bugzilla/enter_bug.cgi?"
                                          "product=glibc"),
    "libxml2.so": Known("libxml2", "gitlab", "https://gitlab.gnome.org/GNOME/libxml2"),
    "libxslt.so": Known("libxslt", "gitlab", "https://gitlab.gnome.org/GNOME/libxslt"),
    "libmaxminddb.so": Known("libmaxminddb", "github", "https://github.com/maxmind/libmaxminddb"),
    "libbrotlienc.so": Known("Brotli", "github", "https://github.com/google/brotli"),
}

# Well-known third-party nginx modules, by file name (without .so).
MODULES: dict[str, str] = {
    "ngx_http_lua_module": "https://github.com/openresty/lua-nginx-module",
    "ngx_stream_lua_module": "https://github.com/openresty/stream-lua-nginx-module",
    "ngx_http_echo_module": "https://github.com/openresty/echo-nginx-module",
    "ngx_http_headers_more_filter_module": "https://github.com/openresty/headers-more-nginx-module",
    "ngx_http_set_misc_module": "https://github.com/openresty/set-misc-nginx-module",
    "ngx_http_srcache_filter_module": "https://github.com/openresty/srcache-nginx-module",
    "ngx_http_memc_module": "https://github.com/openresty/memc-nginx-module",
    "ndk_http_module": "https://github.com/vision5/ngx_devel_kit",
    "ngx_http_js_module": "https://github.com/nginx/njs",
    "ngx_stream_js_module": "https://github.com/nginx/njs",
    "ngx_http_brotli_filter_module": "https://github.com/google/ngx_brotli",
    "ngx_http_brotli_static_module": "https://github.com/google/ngx_brotli",
    "ngx_http_geoip2_module": "https://github.com/leev/ngx_http_geoip2_module",
    "ngx_stream_geoip2_module": "https://github.com/leev/ngx_http_geoip2_module",
    "ngx_http_vhost_traffic_status_module": "https://github.com/vozlt/nginx-module-vts",
    "ngx_http_fancyindex_module": "https://github.com/aperezdc/ngx-fancyindex",
    "ngx_http_cache_purge_module": "https://github.com/nginx-modules/ngx_cache_purge",
    "ngx_http_dav_ext_module": "https://github.com/arut/nginx-dav-ext-module",
    "ngx_rtmp_module": "https://github.com/arut/nginx-rtmp-module",
    "ngx_nchan_module": "https://github.com/slact/nchan",
    "ngx_http_auth_pam_module": "https://github.com/sto/ngx_http_auth_pam_module",
    "ngx_http_subs_filter_module":
        "https://github.com/yaoweibin/ngx_http_substitutions_filter_module",
    "ngx_http_uploadprogress_module": "https://github.com/masterzen/nginx-upload-progress-module",
    "ngx_http_modsecurity_module": "https://github.com/owasp-modsecurity/ModSecurity-nginx",
}

_FORGES = {"github.com": "github", "gitlab.com": "gitlab", "salsa.debian.org": "gitlab"}
_SLUG = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")


def repository(text: str) -> tuple[str, str] | None:
    """(kind, base URL) of a repository or tracker named by OWNER/REPO (GitHub),
    an https URL (GitHub, GitLab, Trac, bugs.debian.org) or a git remote
    (git@host:owner/repo.git); None when it is none of these."""
    text = text.strip().split(" ", 1)[0]  # Vcs-Git: "URL -b BRANCH"
    if _SLUG.match(text) and not text.startswith("."):
        return "github", f"https://github.com/{text.removesuffix('.git')}"
    m = re.match(r"^(?:ssh://)?git@([^:/]+)[:/](.+)$", text)
    if m:
        text = f"https://{m.group(1)}/{m.group(2)}"
    parts = urlsplit(text.replace("git://", "https://", 1).replace("git+https://", "https://"))
    if parts.scheme not in ("https", "http") or not parts.hostname:
        return None
    host = parts.hostname.lower()
    path = parts.path.rstrip("/").removesuffix(".git")
    if host == "bugs.debian.org":
        name = path.strip("/").split("/")[-1] if path.strip("/") else ""
        return ("debian", f"https://bugs.debian.org/{name}") if name else None
    segs = [s for s in path.split("/") if s]
    if "trac" in host or "trac" in segs:
        cut = segs.index("newticket") if "newticket" in segs else len(segs)
        return "trac", f"https://{host}" + "".join(f"/{s}" for s in segs[:cut])
    kind = _FORGES.get(host) or ("gitlab" if host.startswith("gitlab.") else None)
    if kind == "github" and len(segs) >= 2:
        return "github", f"https://github.com/{segs[0]}/{segs[1]}"
    if kind == "gitlab" and len(segs) >= 2:
        segs = segs[:segs.index("-")] if "-" in segs else segs
        return "gitlab", f"https://{host}/" + "/".join(segs)
    return None


def from_repo_option(text: str) -> Tracker:
    found = repository(text)
    if found is None:
        raise InputError(f"--repo: {text!r} is not OWNER/REPO or a GitHub, GitLab, Trac or "
                         "bugs.debian.org URL")
    kind, url = found
    name = url.rstrip("/").rsplit("/", 1)[-1]
    return Tracker(kind=kind, project=name, url=url,  # type: ignore[arg-type]
                   reason=f"--repo {text}", package=name if kind == "debian" else None,
                   form=NGINX_FORM if url.lower() == NGINX_REPO else None)


def _library(path: str) -> Known | None:
    base = os.path.basename(path)
    return next((k for prefix, k in LIBRARIES.items() if base.startswith(prefix)), None)


def _upstream(fields: dict[str, str]) -> tuple[str, str, str] | None:
    """(kind, URL, field) of the upstream a package's Vcs-*/Homepage name, when
    a forge we can prefill."""
    for field in ("Upstream-Vcs", "Homepage", "Vcs-Browser", "Vcs-Git"):
        value = fields.get(field)
        found = repository(value) if value else None
        # Vcs-* of a Debian package usually name Debian's packaging on
        # salsa, not upstream: only Homepage (or an explicit upstream) counts
        # for a project's own tracker unless it is not salsa.
        if found is not None and found[0] in ("github", "gitlab", "trac") and \
                "salsa.debian.org" not in found[1]:
            return found[0], found[1], field
    return None


def choose(a: Analysis, *, repo: str | None = None, fields: dict[str, str] | None = None,
           git_remote: tuple[str, str] | None = None) -> Tracker:
    """The tracker for the code the verdict blames.

    ``fields``: the deb822 fields (Package, Homepage, Vcs-*) of the package that
    owns the blamed file, when one does; ``git_remote``: (source dir, remote
    URL) of the tree the blamed module was built from, when it is on the host.
    """
    v = a.verdict
    third_party = v is not None and v.origin == "third-party-module"
    note = _joined(NO_THIRD_PARTY if third_party else None, _script_note(a))
    if repo is not None:
        t = from_repo_option(repo)
        return Tracker(**{**t.__dict__, "note": note})
    if v is None or v.module is None:
        if a.kind in ("killed", "snapshot"):
            why = ("another process sent the signal" if a.kind == "killed"
                   else "the core is a snapshot, not a crash")
            return Tracker("unknown", "nobody", None, f"no upstream bug: {why}")
        return Tracker("unknown", "unknown", None,
                       "the code at fault could not be named: pass --repo")
    base = os.path.basename(v.module)
    if v.origin in ("nginx", "nginx-module") and not (
            fields and fields.get("Package", "").startswith("libnginx-mod-")
            and v.origin != "nginx"):
        loaded = _third_party_loaded(a)
        return Tracker("github", "nginx", NGINX_REPO,
                       f"the crash is in nginx's own code ({base})", form=NGINX_FORM,
                       note=_joined(
                           f"third-party modules are loaded ({', '.join(loaded[:5])}"
                           f"{', …' if len(loaded) > 5 else ''}): nginx's tracker asks that a "
                           "bug reproduce without them, and a module can break nginx's state "
                           "without being on the crashing stack: try without them first"
                           if loaded else None, _script_note(a)))
    lib = _library(v.module) if v.origin in ("library", "system") else None
    if lib is not None:
        return Tracker(lib.kind, lib.project, lib.url,  # type: ignore[arg-type]
                       f"the crash is in {base}, part of {lib.project}, which has its own "
                       "tracker")
    package = fields.get("Package") if fields else None
    if package and fields is not None:
        up = _upstream(fields)
        return Tracker("debian", package, f"https://bugs.debian.org/{package}",
                       f"{base} is installed by the Debian package {package}"
                       + (f" (its {up[2]} names upstream: {up[1]})" if up else ""),
                       package=package, upstream=up[1] if up else None, note=note)
    if git_remote is not None:
        found = repository(git_remote[1])
        if found is not None:
            return Tracker(found[0], found[1].rsplit("/", 1)[-1], found[1],  # type: ignore[arg-type]
                           f"{base} was built from {git_remote[0]}, whose git remote is "
                           f"{git_remote[1]}", note=note)
    known = MODULES.get(base.split(".so")[0])
    if known is not None:
        return Tracker("github", known.rsplit("/", 1)[-1], known,
                       f"{base} is a well-known nginx module published at {known}", note=note)
    what = "the third-party module" if third_party else "the library"
    return Tracker("unknown", base, None,
                   f"unknown: no package, source tree or known project names {what} "
                   f"{base}; pass --repo", note=note)



def _joined(*notes: str | None) -> str | None:
    return "; ".join(n for n in notes if n) or None


def _script_note(a: Analysis) -> str | None:
    v = a.verdict
    if v is None or v.script is None:
        return None
    return (f"the verdict says the site's {v.script.language} code most likely crashed the "
            f"process ({v.script.interpreter} ran it): check that script first, and file "
            "this only if it is innocent")


def _third_party_loaded(a: Analysis) -> list[str]:
    """The third-party nginx modules the crashed process had loaded."""
    from crashkit.analysis.attribution import origin

    return [os.path.basename(m.path) for m in a.core.modules if m.path.startswith("/")
            and origin(m.path, a.core, a.host.packages.get(m.path)) == "third-party-module"]


# ---------------------------------------------------------------- URLs

def issue_url(t: Tracker, title: str, body: str, *, fields: dict[str, str] | None = None,
              labels: str | None = None) -> str | None:
    """The prefilled new-issue URL; None when the tracker takes none (Debian:
    reportbug; unknown)."""
    if t.url is None or t.kind in ("debian", "unknown"):
        return None
    if t.kind == "github":
        q: dict[str, str] = {"title": title}
        if t.form is not None and fields is not None:
            q["template"] = t.form
            q.update(fields)
        else:
            q["body"] = body
        if labels:
            q["labels"] = labels
        return f"{t.url}/issues/new?" + urlencode(q, quote_via=quote)
    if t.kind == "gitlab":
        return f"{t.url}/-/issues/new?" + urlencode(
            {"issue[title]": title, "issue[description]": body}, quote_via=quote)
    if t.kind == "trac":
        return f"{t.url}/newticket?" + urlencode({"summary": title, "description": body},
                                                 quote_via=quote)
    if t.kind == "bugzilla":
        return f"{t.url}&" + urlencode({"short_desc": title, "comment": body}, quote_via=quote)
    return None


def search_url(t: Tracker, needle: str) -> str | None:
    if t.url is None:
        return None
    if t.kind == "github":
        return f"{t.url}/issues?" + urlencode({"q": f"is:issue {needle}"}, quote_via=quote)
    if t.kind == "gitlab":
        return f"{t.url}/-/issues?" + urlencode({"search": needle, "state": "all"},
                                                quote_via=quote)
    if t.kind == "trac":
        return f"{t.url}/search?" + urlencode({"q": needle, "ticket": "on"}, quote_via=quote)
    if t.kind == "bugzilla":
        return "https://sourceware.org/bugzilla/buglist.cgi?" + urlencode(
            {"quicksearch": needle}, quote_via=quote) if "sourceware" in t.url else None
    if t.kind == "debian" and t.package:
        return "https://bugs.debian.org/cgi-bin/pkgreport.cgi?" + urlencode(
            {"package": t.package}, quote_via=quote)
    return None


def github_slug(t: Tracker) -> str | None:
    if t.kind != "github" or t.url is None:
        return None
    return "/".join(t.url.rstrip("/").split("/")[-2:])
