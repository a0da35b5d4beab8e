"""crashkit report --issue on real crashes of Debian's nginx: the tracker and
its reason, prefilled URLs that parse back to the title and body within the
budget and without the secrets planted in the crash, and --submit through the
real gh (installed but not logged in, and not on PATH)."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import pytest

from crashkit.analysis.trackers import NO_THIRD_PARTY
from tests.conftest import check_schema, fixture, run_cli, unavailable
from tests.integration.test_report import secret_crash, secrets_in

pytestmark = pytest.mark.integration
__all__ = ["secret_crash"]  # the live crash with planted secrets, shared with test_report

MODULE = "ngx_http_crashkit_test_module.so"


def issue_of(*args: str, env: dict[str, str] | None = None,
             code: int = 0) -> tuple[dict[str, Any], subprocess.CompletedProcess[str]]:
    proc = run_cli("report", *args, "--json", env=env)
    assert proc.returncode == code, proc.stderr
    answer: dict[str, Any] = json.loads(proc.stdout)
    check_schema(answer)
    return answer["issue"], proc


def parsed(url: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(url).query, keep_blank_values=True)


@pytest.mark.parametrize("budget", [6000, 2500])
def test_url_parses_back_within_budget_and_holds_no_secret(
        secret_crash: dict[str, Any], budget: int) -> None:
    out = secret_crash["tmp"] / f"issue-{budget}"
    out.mkdir()
    issue, _ = issue_of(secret_crash["core"], "--out", str(out), "--conf", secret_crash["conf"],
                        "--error-log", secret_crash["log"], "--issue", "--repo",
                        "example/ngx-crashkit-test", "--budget", str(budget))
    t = issue["tracker"]
    assert (t["kind"], t["url"], t["reason"], t["note"]) == (
        "github", "https://github.com/example/ngx-crashkit-test",
        "--repo example/ngx-crashkit-test", NO_THIRD_PARTY)
    url = issue["url"]
    assert url.startswith("https://github.com/example/ngx-crashkit-test/issues/new?")
    assert len(url) <= budget and issue["budget"] == budget and issue["cut"] is True
    q = parsed(url)
    assert q["title"] == [issue["title"]] and q["body"] == [issue["body"]]
    assert issue["title"].startswith("nginx worker crash: NULL pointer dereference in "
                                     "crashkit_session_lookup() (" + MODULE + ") [crashkit ")
    sig = issue["title"].rsplit(" ", 1)[1].rstrip("]")
    assert len(sig) == 16 and issue["search_url"] == (
        "https://github.com/example/ngx-crashkit-test/issues?q=is%3Aissue%20" + sig)
    body = issue["body"]
    shown = issue["title"].replace("[", "\\[").replace("]", "\\]")
    assert body.startswith(f"# {shown}\n")
    assert "**Verdict:** NULL pointer dereference in crashkit_session_lookup()" in body
    assert "  #0  0x" in body and "crashkit_session_lookup+0x" in body
    assert "is attached separately." in body and "### nginx -V" in body
    build_id = next(line for line in body.splitlines() if line.startswith("- build-id: "))
    assert len(build_id.removeprefix("- build-id: ").strip("`")) == 40
    for secret in secrets_in(secret_crash):
        text = secret.decode()
        assert text not in url and text not in unquote(url) and text not in body
        assert text not in Path(issue["body_file"]).read_text()
    assert stat.S_IMODE(os.stat(issue["body_file"]).st_mode) == 0o600
    assert issue["command"] == ["gh", "issue", "create", "--repo", "example/ngx-crashkit-test",
                                "--title", issue["title"], "--body-file", issue["body_file"]]


def test_the_third_party_module_without_repo_is_unknown(manifest: dict[str, Any],
                                                        tmp_path: Path) -> None:
    issue, _ = issue_of(fixture(manifest, "nginx-null")["core"], "--out", str(tmp_path),
                        "--issue")
    t = issue["tracker"]
    # The module's DWARF names its source tree, this repository's
    # sample_cores/nginx-module: a checkout whose remote is a forge would
    # rightly name that remote.
    from crashkit.analysis.trackers import repository
    from crashkit.host import git

    tree = str(Path(__file__).resolve().parents[2] / "sample_cores" / "nginx-module")
    remote = git.remote_url(tree)
    if remote is not None and repository(remote) is not None:
        assert t["url"] == repository(remote)[1] and tree in t["reason"], t  # type: ignore[index]
        return
    assert t["kind"] == "unknown" and t["url"] is None and issue["url"] is None
    assert t["reason"] == (f"unknown: no package, source tree or known project names the "
                           f"third-party module {MODULE}; pass --repo")
    assert t["note"] == NO_THIRD_PARTY and issue["command"] is None


def test_a_library_called_from_the_module_blames_the_module(manifest: dict[str, Any],
                                                            tmp_path: Path) -> None:
    """nginx-libc dies in libc's strlen, called with NULL by the module: the
    module's tracker, not glibc's."""
    issue, _ = issue_of(fixture(manifest, "nginx-libc")["core"], "--out", str(tmp_path),
                        "--issue", "--repo", "https://gitlab.com/example/sub/ngx-test")
    t = issue["tracker"]
    assert (t["kind"], t["url"]) == ("gitlab", "https://gitlab.com/example/sub/ngx-test")
    q = parsed(issue["url"])
    assert q["issue[title]"] == [issue["title"]]
    assert q["issue[description]"] == [issue["body"]]
    assert "NULL pointer dereference in strlen() \\[libc.so.6\\], called from " \
           "crashkit_copy_header()" in issue["body"]
    assert len(issue["url"]) <= 6000


def test_git_remote_of_a_real_source_tree(tmp_path: Path) -> None:
    from crashkit.host import git

    if shutil.which("git") is None:
        unavailable("git is not installed")
    src = tmp_path / "ngx-mod"
    src.mkdir()
    (src / "config").write_text("ngx_addon_name=ngx_http_foo_module\n")
    subprocess.run(["git", "init", "-q", str(src)], check=True)
    assert git.remote_url(str(src)) is None
    subprocess.run(["git", "-C", str(src), "remote", "add", "upstream",
                    "https://github.com/example/foo.git"], check=True)
    assert git.remote_url(str(src)) == "https://github.com/example/foo.git"
    subprocess.run(["git", "-C", str(src), "remote", "add", "origin",
                    "git@github.com:me/foo.git"], check=True)
    assert git.remote_url(str(src)) == "git@github.com:me/foo.git"
    assert git.module_source_dirs((f"--add-dynamic-module={src}", "--with-debug",
                                   f"--add-module={tmp_path}"), "ngx_http_foo_module") == [
        str(src)]


def test_package_fields_of_debians_nginx() -> None:
    from crashkit.host import dpkg

    fields = dpkg.package_fields("nginx")
    if fields is None:
        unavailable("Debian's nginx is not installed")
    assert fields["Package"] == "nginx" and fields["Homepage"] == "https://nginx.org"
    assert dpkg.package_fields("no-such-package-crashkit") is None


def _private_gh_env(tmp_path: Path) -> dict[str, str]:
    home = tmp_path / "home"
    (home / "gh").mkdir(parents=True)
    return {"HOME": str(home), "GH_CONFIG_DIR": str(home / "gh"), "GH_TOKEN": "",
            "GITHUB_TOKEN": "", "XDG_CONFIG_HOME": str(home / ".config")}


def test_submit_with_gh_not_logged_in(manifest: dict[str, Any], tmp_path: Path) -> None:
    if shutil.which("gh") is None:
        unavailable("gh is not installed (scripts/bootstrap installs it)")
    env = _private_gh_env(tmp_path)
    env.pop("GH_TOKEN")
    env.pop("GITHUB_TOKEN")
    clean = {k: v for k, v in os.environ.items() if k not in ("GH_TOKEN", "GITHUB_TOKEN")}
    proc = subprocess.run(
        [os.sys.executable, "-m", "crashkit", "report",  # type: ignore[attr-defined]
         fixture(manifest, "nginx-null")["core"], "--out", str(tmp_path), "--submit",
         "--repo", "example/ngx-crashkit-test"],
        capture_output=True, text=True, timeout=120, env={**clean, **env})
    assert proc.returncode == 1, proc.stderr
    assert ("crashkit: not filed: gh is not logged in to github.com (gh auth login): run the "
            "command below once it is") in proc.stderr.splitlines()
    cmd = next(x for x in proc.stdout.splitlines() if x.startswith("to file it: "))
    assert cmd.startswith("to file it: gh issue create --repo example/ngx-crashkit-test "
                          "--title 'nginx worker crash: NULL pointer dereference in ")
    assert cmd.endswith("-issue.md") and "--body-file " + str(tmp_path) in cmd


def test_submit_without_gh_on_path(manifest: dict[str, Any], tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for d in ("/usr/local/bin", "/usr/bin", "/bin"):
        if os.path.isdir(d):
            for name in os.listdir(d):
                if name != "gh" and not (bin_dir / name).exists():
                    (bin_dir / name).symlink_to(os.path.join(d, name))
    # crashkit finds tools on a fixed system path, not PATH (crashkit.host.toolpath):
    # hide gh from both.
    env = {**_private_gh_env(tmp_path), "PATH": f"{bin_dir}:/usr/sbin:/sbin",
           "CRASHKIT_TOOL_PATH": f"{bin_dir}:/usr/sbin:/sbin"}
    issue, proc = issue_of(fixture(manifest, "nginx-null")["core"], "--out", str(tmp_path),
                           "--submit", "--repo", "example/ngx-crashkit-test", env=env, code=1)
    assert issue["problem"] == ("gh is not installed (Debian: apt install gh): run the "
                                "command below yourself")
    assert ("crashkit: not filed: gh is not installed (Debian: apt install gh): run the "
            "command below yourself") in proc.stderr.splitlines()
    assert issue["command"][:5] == ["gh", "issue", "create", "--repo",
                                    "example/ngx-crashkit-test"]
    assert issue["filed"] is None and issue["duplicates"] == []


def test_bad_repo_is_one_line_and_writes_nothing(manifest: dict[str, Any],
                                                 tmp_path: Path) -> None:
    proc = run_cli("report", fixture(manifest, "nginx-null")["core"], "--out", str(tmp_path),
                   "--issue", "--repo", "ftp://example.org/x")
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr == ("crashkit: error: --repo: 'ftp://example.org/x' is not "
                           "OWNER/REPO or a GitHub, GitLab, Trac or bugs.debian.org URL\n")
    assert list(tmp_path.iterdir()) == []


def test_nginx_form_fields_by_id_from_a_real_crash(manifest: dict[str, Any],
                                                   tmp_path: Path) -> None:
    """--repo nginx/nginx (as a user would send a crash of nginx's own code):
    the issue form's fields, each parsed back, the URL within the budget."""
    fx = fixture(manifest, "nginx-null")
    issue, _ = issue_of(fx["core"], "--out", str(tmp_path), "--issue", "--repo", "nginx/nginx",
                        "--error-log", fx["error_log"])
    assert issue["tracker"]["form"] == "bug_report.yml"
    q = parsed(issue["url"])
    assert q.pop("template") == ["bug_report.yml"] and q.pop("title") == [issue["title"]]
    assert sorted(q) == sorted(NGINX_FORM_IDS_USED)
    assert q["overview"][0].startswith("**Verdict:** NULL pointer dereference in "
                                       "crashkit_faulty_tag_length()")
    assert "  #0  0x" in q["context"][0] and "is attached separately." in q["context"][0]
    assert "crashkit: crashing mode=null" in q["logs"][0]
    assert len(issue["url"]) <= 6000


# The ids of nginx/nginx .github/ISSUE_TEMPLATE/bug_report.yml (commit 06ce1d0e1327)
# that crashkit fills; "environment" is left alone (see tests/unit/test_trackers.py).
NGINX_FORM_IDS_USED = ("overview", "behavior", "steps", "configuration", "logs", "context")


def test_module_source_tree_found_from_its_dwarf(tmp_path: Path) -> None:
    """A module built by nginx's build system is compiled in nginx's tree
    (DW_AT_comp_dir) from its own (DW_AT_name): the module's tree comes first,
    and its git remote names the upstream."""
    from crashkit.analysis.trackers import repository
    from crashkit.elf.dwarf import source_dirs
    from crashkit.host import git

    if shutil.which("git") is None or shutil.which("gcc") is None:
        unavailable("git and gcc are needed (scripts/bootstrap installs them)")
    src, build = tmp_path / "ngx-foo" / "src", tmp_path / "nginx-1.22"
    src.mkdir(parents=True)
    (build / "objs").mkdir(parents=True)
    (src / "ngx_http_foo_module.c").write_text("int foo_handler(int *p) { return *p; }\n")
    (build / "objs" / "ngx_http_foo_module_modules.c").write_text("int foo_modules = 1;\n")
    subprocess.run(["gcc", "-g", "-O1", "-fPIC", "-shared", "-o", "objs/ngx_http_foo_module.so",
                    str(src / "ngx_http_foo_module.c"), "objs/ngx_http_foo_module_modules.c"],
                   cwd=build, check=True)
    subprocess.run(["git", "init", "-q", str(tmp_path / "ngx-foo")], check=True)
    subprocess.run(["git", "-C", str(tmp_path / "ngx-foo"), "remote", "add", "origin",
                    "https://github.com/example/ngx-foo.git"], check=True)
    dirs = source_dirs(str(build / "objs" / "ngx_http_foo_module.so"))
    assert dirs == [str(src), str(build)], dirs
    url = git.remote_url(dirs[0])
    assert url == "https://github.com/example/ngx-foo.git"
    assert repository(url) == ("github", "https://github.com/example/ngx-foo")
    # No DWARF (stripped), not an ELF file, a FIFO: no directory, no hang.
    stripped = tmp_path / "stripped.so"
    subprocess.run(["strip", "-g", "-o", str(stripped),
                    str(build / "objs" / "ngx_http_foo_module.so")], check=True)
    assert source_dirs(str(stripped)) == []
    assert source_dirs(str(src / "ngx_http_foo_module.c")) == []
    os.mkfifo(tmp_path / "fifo")
    assert source_dirs(str(tmp_path / "fifo")) == []


def _live_crash(tmp: Path, conf_for: Any, headers: dict[str, str] | None = None,
                ) -> tuple[str, str, str]:
    """A real worker crash of Debian's nginx: (core, config, error log)."""
    import pwd
    import tempfile

    from tests.live_nginx import LiveNginx, crash_worker, free_port

    top = Path(tempfile.mkdtemp(prefix="crashkit-issue-"))
    top.chmod(0o711)
    core_dir = top / "cores"
    core_dir.mkdir()
    www = pwd.getpwnam("www-data")
    os.chown(core_dir, www.pw_uid, www.pw_gid)
    port = free_port()
    with LiveNginx(tmp / "ngx", conf_for(port, core_dir)) as ngx:
        core = crash_worker(ngx, f"http://127.0.0.1:{port}/crash", core_dir, headers)
    moved = tmp / "core"
    shutil.move(str(core), moved)
    shutil.rmtree(top)
    return str(moved), str(ngx.conf), str(ngx.error_log)


def test_nginx_own_code_goes_to_nginxs_form_with_the_module_caveat(
        manifest: dict[str, Any], tmp_path: Path) -> None:
    """The module corrupts a response header and returns; nginx's own header
    filter crashes on it later, with no module frame on the stack: nginx's
    GitHub form, and a note that third-party modules are loaded."""
    import secrets

    from tests.live_nginx import basic_conf

    if os.geteuid() != 0:
        unavailable("a live nginx needs root")
    fx = fixture(manifest, "nginx-null")
    token = secrets.token_urlsafe(24)
    core, conf, log = _live_crash(tmp_path, lambda port, core_dir: basic_conf(
        port, load_module=fx["module"],
        main=f"worker_rlimit_core 500M;\nworking_directory {core_dir};",
        server="location /crash { crashkit_crash corrupt; }\n"),
        {"Authorization": f"Bearer {token}"})
    assert token.encode() in Path(core).read_bytes()  # planted, to be kept out
    out = tmp_path / "out"
    out.mkdir()
    issue, _ = issue_of(core, "--out", str(out), "--conf", conf, "--error-log", log, "--issue")
    t = issue["tracker"]
    assert (t["kind"], t["url"], t["form"]) == ("github", "https://github.com/nginx/nginx",
                                                "bug_report.yml")
    assert t["reason"] == "the crash is in nginx's own code (nginx)"
    assert t["note"].startswith(f"third-party modules are loaded ({MODULE})")
    q = parsed(issue["url"])
    assert q["template"] == ["bug_report.yml"] and q["title"] == [issue["title"]]
    assert issue["title"].startswith("nginx worker crash: NULL pointer dereference in nginx+0x")
    assert "crashkit: crashing mode=corrupt" in q["logs"][0]
    assert len(issue["url"]) <= 6000
    url = unquote(issue["url"])
    assert token not in url and token not in Path(issue["body_file"]).read_text()


def test_debian_packaged_module_goes_to_debian_with_reportbug(tmp_path: Path) -> None:
    """A crash in Debian's libnginx-mod-http-lua (an FFI write from the site's
    Lua): Debian's BTS through reportbug, its upstream from the package's
    Homepage, and the verdict's word that the script is the likely cause."""
    from tests.live_nginx import basic_conf

    mods = "/usr/lib/nginx/modules"
    for m in ("ndk_http_module.so", "ngx_http_lua_module.so"):
        if not os.path.exists(f"{mods}/{m}"):
            unavailable(f"{mods}/{m} is not installed (scripts/bootstrap installs it)")
    core, conf, log = _live_crash(tmp_path, lambda port, core_dir: basic_conf(
        port, load_module=f"{mods}/ndk_http_module.so",
        main=f"load_module {mods}/ngx_http_lua_module.so;\nworker_rlimit_core 500M;\n"
             f"working_directory {core_dir};",
        server="""location /crash { content_by_lua_block {
            local ffi = require "ffi"
            ffi.cast("int *", 0)[0] = 1
        } }"""))
    out = tmp_path / "out"
    out.mkdir()
    issue, _ = issue_of(core, "--out", str(out), "--conf", conf, "--error-log", log, "--issue")
    t = issue["tracker"]
    assert (t["kind"], t["project"], t["package"]) == ("debian", "libnginx-mod-http-lua",
                                                       "libnginx-mod-http-lua")
    assert t["url"] == "https://bugs.debian.org/libnginx-mod-http-lua"
    assert t["upstream"] == "https://github.com/openresty/lua-nginx-module"
    assert "installed by the Debian package libnginx-mod-http-lua" in t["reason"]
    assert "the site's Lua code most likely crashed the process" in t["note"]
    assert issue["command"][0] == "reportbug" and issue["command"][-1] == "libnginx-mod-http-lua"
    assert f"--body-file={issue['body_file']}" in issue["command"]
    assert issue["search_url"] == \
        "https://bugs.debian.org/cgi-bin/pkgreport.cgi?package=libnginx-mod-http-lua"
