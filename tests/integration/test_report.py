"""crashkit report: bundles from real crashes of Debian's nginx, secrets kept
out byte for byte, templates, bad input, and a non-editable install."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import stat
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from tests.conftest import ROOT, fixture, run_cli, small_tmpfs, unavailable
from tests.live_nginx import LiveNginx, basic_conf, crash_worker, free_port

pytestmark = pytest.mark.integration

REPORT_SCHEMA = json.loads((ROOT / "crashkit" / "schema" / "report-1.json").read_text())


def make_bundle(core: str, out: Path, *args: str) -> tuple[dict[str, Any], dict[str, bytes]]:
    """Run crashkit report; (its --json answer, the bundle's files by name)."""
    out.mkdir(exist_ok=True)
    proc = run_cli("report", core, "--out", str(out), "--json", *args, check=True)
    answer: dict[str, Any] = json.loads(proc.stdout)
    jsonschema.validate(answer, REPORT_SCHEMA)
    bundle = Path(answer["bundle"])
    assert bundle.parent == out.resolve()
    assert stat.S_IMODE(bundle.stat().st_mode) == 0o600
    files = {}
    with tarfile.open(bundle) as tar:
        for member in tar.getmembers():
            assert member.isfile() and stat.S_IMODE(member.mode) == 0o600
            top, name = member.name.split("/", 1)
            assert bundle.name.startswith(top)
            data = tar.extractfile(member)
            assert data is not None
            files[name] = data.read()
    assert sorted(files) == sorted(answer["files"])
    return answer, files


@pytest.fixture(scope="module")
def secret_crash(manifest: dict[str, Any], tmp_path_factory: pytest.TempPathFactory,
                 ) -> Iterator[dict[str, Any]]:
    """Debian's nginx with the buggy module crashes while it handles a request
    that carries a bearer token, a session cookie and a token in the query;
    its config holds an API key in a proxy_set_header."""
    if os.geteuid() != 0:
        unavailable("a live nginx needs root")
    import pwd
    import tempfile

    fx = fixture(manifest, "nginx-null")
    tmp = tmp_path_factory.mktemp("secret")
    top = Path(tempfile.mkdtemp(prefix="crashkit-report-"))
    top.chmod(0o711)
    core_dir = top / "cores"
    core_dir.mkdir()
    www = pwd.getpwnam("www-data")
    os.chown(core_dir, www.pw_uid, www.pw_gid)
    case = {
        "token": secrets.token_urlsafe(24),
        "cookie": secrets.token_hex(16),
        "query": secrets.token_urlsafe(18),
        "config_secret": secrets.token_urlsafe(20),
    }
    port = free_port()
    conf = basic_conf(
        port, load_module=fx["module"],
        main=f"worker_rlimit_core 500M;\nworking_directory {core_dir};",
        server=f"""
        location /hdrs {{ crashkit_crash headers; }}
        location /api {{
            # the backend wants its key
            proxy_set_header X-Api-Key "{case['config_secret']}";
            proxy_pass http://127.0.0.1:9;
        }}""")
    try:
        with LiveNginx(tmp / "ngx", conf) as ngx:
            core = crash_worker(
                ngx, f"http://127.0.0.1:{port}/hdrs?access_token={case['query']}&page=2",
                core_dir, headers={"Authorization": f"Bearer {case['token']}",
                                   "Cookie": f"session={case['cookie']}"})
            case.update(core=str(core), conf=str(ngx.conf), log=str(ngx.error_log), tmp=tmp)
            yield case
    finally:
        shutil.rmtree(top, ignore_errors=True)


def secrets_in(case: dict[str, Any]) -> list[bytes]:
    return [case[k].encode() for k in ("token", "cookie", "query", "config_secret")]


def test_no_file_in_the_bundle_holds_a_secret(secret_crash: dict[str, Any]) -> None:
    answer, files = make_bundle(secret_crash["core"], secret_crash["tmp"] / "out",
                                "--conf", secret_crash["conf"], "--error-log",
                                secret_crash["log"])
    assert answer["redacted"] is True and answer["include_core"] is False
    assert {"report.md", "report.html", "analysis.json", "backtrace-full.txt",
            "crash-site.txt", "modules.txt", "nginx-V.txt", "nginx-T.txt", "error-log.txt",
            "system.txt"} == set(files)
    for name, data in files.items():
        for secret in secrets_in(secret_crash):
            assert secret not in data, f"{name} holds a secret"
    # They were there to be found, and the markers keep their lengths.
    bt = files["backtrace-full.txt"].decode()
    auth = len(f"Bearer {secret_crash['token']}")
    assert 'authorization = 0x' in bt and f'"<redacted:{auth}>"' in bt
    assert f'"<redacted:{len("session=" + secret_crash["cookie"])}>"' in bt
    conf = files["nginx-T.txt"].decode()
    assert f'proxy_set_header X-Api-Key <redacted:{len(secret_crash["config_secret"])}>;' \
        in conf
    assert "# the backend wants its key" in conf  # comments and layout stay
    log = files["error-log.txt"].decode()
    assert f"access_token=<redacted:{len(secret_crash['query'])}>&page=<redacted:1>" in log
    assert "crashkit: crashing mode=headers" in log
    # --error-log's lines also reach analysis.json (verdict.log), redacted too.
    lines = json.loads(files["analysis.json"])["verdict"]["log"]["lines"]
    assert any(f"access_token=<redacted:{len(secret_crash['query'])}>" in x for x in lines)


@pytest.mark.parametrize("flag", ["--no-redact", "--show-secrets"])
def test_without_redaction_the_secrets_are_there(secret_crash: dict[str, Any],
                                                 flag: str) -> None:
    """The control: the same bundle with --no-redact does carry them, so the
    test above can fail. --show-secrets (analyze's old name for the same
    flag) does the same."""
    proc = run_cli("report", secret_crash["core"], "--out", str(secret_crash["tmp"]),
                   "--conf", secret_crash["conf"], flag, "--json")
    assert proc.returncode == 0
    assert "--no-redact: the bundle may hold passwords" in proc.stderr
    with tarfile.open(json.loads(proc.stdout)["bundle"]) as tar:
        text = b"".join(tar.extractfile(m).read() for m in tar.getmembers())  # type: ignore[union-attr]
    for secret in secrets_in(secret_crash):
        assert secret in text


def test_the_report_names_the_module_and_has_the_backtrace(
        secret_crash: dict[str, Any]) -> None:
    _, files = make_bundle(secret_crash["core"], secret_crash["tmp"] / "out2",
                           "--conf", secret_crash["conf"], "--format", "md")
    md = files["report.md"].decode()
    lines = md.splitlines()
    assert lines[0] == ("# nginx worker crash: NULL pointer dereference in "
                        "crashkit_session_lookup() (ngx_http_crashkit_test_module.so)")
    assert lines[2].startswith("**Verdict:** NULL pointer dereference in "
                               "crashkit_session_lookup(): the third-party nginx module")
    assert "  #0  0x" in md and "crashkit_session_lookup+0x" in md
    assert "ngx_http_core_content_phase" in md
    assert "report.html" not in files and "analysis.json" not in files
    # The report looks up every module's package, system libraries too.
    libc = next(line for line in files["modules.txt"].decode().splitlines()
                if "/libc.so.6 " in line)
    assert " libc6 2." in libc and "[same build]" in libc


def test_without_conf_the_running_masters_config_is_used(secret_crash: dict[str, Any]) -> None:
    """The crashed worker's master still runs: its -c, not the config nginx -V
    names, is the one in the bundle, and its error log is found from it."""
    answer, files = make_bundle(secret_crash["core"], secret_crash["tmp"] / "out3",
                                "--format", "md")
    assert any(n.startswith("nginx-T.txt: the config of the crashed worker's master")
               and n.endswith(secret_crash["conf"]) for n in answer["notes"])
    conf = files["nginx-T.txt"].decode()
    assert conf.startswith(f"# crashkit: nginx -T -c {secret_crash['conf']}\n")
    assert "location /hdrs { crashkit_crash headers; }" in conf
    assert "crashkit: crashing mode=headers" in files["error-log.txt"].decode()
    assert "> **Note:**" not in files["report.md"].decode()  # the config is the crashed one's


def test_a_config_not_from_the_crashed_master_says_so_at_the_top(
        manifest: dict[str, Any], tmp_path: Path) -> None:
    """The fixture's master is gone: the bundle holds the config nginx -V
    names, and report.md's first lines say it may not be the one that crashed."""
    fx = fixture(manifest, "nginx-null")
    answer, files = make_bundle(fx["core"], tmp_path / "out", "--format", "md,html")
    conf = files["nginx-T.txt"].decode()
    assert conf.startswith("# crashkit: nginx -T -c /etc/nginx/nginx.conf\n")
    assert "analysis.json" not in files and "nginx-T.txt" in answer["files"]
    ppid = fx["ppid"]
    note = ("nginx-T.txt holds /etc/nginx/nginx.conf (from nginx -V), not the config of the "
            f"crashed worker's master (pid {ppid}), which no longer runs here or could not be "
            "trusted: it may not be the configuration that crashed.")
    md = files["report.md"].decode().splitlines()
    assert md[1:4] == ["", f"> **Note:** {note}", ""]
    html = files["report.html"].decode()
    shown = note.replace("'", "&#39;")  # as Jinja's autoescape writes it
    assert f'<p class="caveat"><strong>Note:</strong> {shown}</p>' in html


def test_prefix_places_the_configs_relative_paths(manifest: dict[str, Any],
                                                  tmp_path: Path) -> None:
    """report --prefix, as doctor's and setup's (issue 15 item 18): a config
    whose error_log is relative (logs/error.log) is read with nginx -T -p
    PREFIX, and its error log is found under PREFIX. Without --prefix, the
    compiled-in prefix holds no such log: nginx -T fails and the log is left
    out, so the option is what finds them."""
    fx = fixture(manifest, "nginx-null")
    prefix = tmp_path / "ngx"
    (prefix / "conf").mkdir(parents=True)
    (prefix / "logs").mkdir()
    conf = prefix / "conf" / "nginx.conf"
    conf.write_text("error_log logs/error.log;\npid logs/nginx.pid;\nevents {}\n")
    exit_line = (f"2026/12/04 00:48:27 [alert] {fx['ppid']}#{fx['ppid']}: worker process "
                 f"{fx['pid']} exited on signal 11 (core dumped)")
    (prefix / "logs" / "error.log").write_text(f"{exit_line}\n")
    answer, files = make_bundle(fx["core"], tmp_path / "with", "--conf", str(conf),
                                "--prefix", str(prefix))
    assert files["nginx-T.txt"].decode().startswith(f"# crashkit: nginx -T -c {conf}\n")
    assert files["error-log.txt"].decode() == (
        f"# {prefix}/logs/error.log: lines around the exit of pid {fx['pid']}\n{exit_line}\n")
    assert answer["notes"] == []
    answer, files = make_bundle(fx["core"], tmp_path / "without", "--conf", str(conf))
    assert "error-log.txt" not in files
    assert files["nginx-T.txt"].decode().startswith(
        f"# crashkit: the files of {conf} (nginx -T failed: ")
    assert any(n.startswith("error-log.txt: none of the config's error logs is readable")
               for n in answer["notes"])


def test_include_core(manifest: dict[str, Any], tmp_path: Path) -> None:
    fx = fixture(manifest, "nginx-kill")
    link = tmp_path / "core"  # a symlink to the core: the bundle gets the core itself
    link.symlink_to(fx["core"])
    proc = run_cli("report", str(link), "--out", str(tmp_path), "--include-core",
                   "--format", "json", "--json")
    assert proc.returncode == 0 and "--include-core: the bundle holds" in proc.stderr
    bundle = json.loads(proc.stdout)["bundle"]
    with tarfile.open(bundle) as tar:
        member = next(m for m in tar.getmembers() if m.name.endswith("/core"))
        assert member.isfile() and stat.S_IMODE(member.mode) == 0o600
        assert member.size == Path(fx["core"]).stat().st_size
        analysis = json.loads(tar.extractfile(  # type: ignore[union-attr]
            next(m for m in tar.getmembers() if m.name.endswith("/analysis.json"))).read())
    assert analysis["verdict"]["kind"] == "sent-by-process"



def test_bundles_never_replace_each_other_and_say_what_they_hold(
        manifest: dict[str, Any], tmp_path: Path) -> None:
    core = fixture(manifest, "nginx-kill")["core"]
    names = []
    for extra in ([], [], ["--no-redact"], ["--include-core"]):
        proc = run_cli("report", core, "--out", str(tmp_path), "--format", "md", "--json",
                       *extra, check=True)
        names.append(Path(json.loads(proc.stdout)["bundle"]).name)
    base = names[0].removesuffix(".tar.gz")
    assert names == [f"{base}.tar.gz", f"{base}-2.tar.gz", f"{base}-UNREDACTED.tar.gz",
                     f"{base}-with-core.tar.gz"]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(names)  # no temporary files


def test_template_dir_overrides_one_template(manifest: dict[str, Any], tmp_path: Path) -> None:
    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / "report.md.j2").write_text("CUSTOM {{ r.title }}\n{{ r.verdict }}\n")
    _, files = make_bundle(fixture(manifest, "nginx-null")["core"], tmp_path / "out",
                           "--template-dir", str(templates), "--format", "md,html")
    md = files["report.md"].decode().splitlines()
    assert md[0] == ("CUSTOM nginx worker crash: NULL pointer dereference in "
                     "crashkit_faulty_tag_length() (ngx_http_crashkit_test_module.so)")
    assert files["report.html"].startswith(b"<!DOCTYPE html>")  # the shipped one


@pytest.mark.parametrize(("args", "message"), [
    (["--format", "md,pdf"], "crashkit: error: --format: pdf is not one of md, html, json"),
    (["--out", "/nonexistent/dir"], "crashkit: error: /nonexistent/dir: --out: no such directory"),
    (["--conf", "/nonexistent.conf"],
     "crashkit: error: /nonexistent.conf: --conf: no such file"),
    (["--out", "/etc/hostname"], "crashkit: error: /etc/hostname: --out: not a directory"),
    (["--prefix", "/nonexistent/dir"],
     "crashkit: error: /nonexistent/dir: --prefix: no such directory"),
])
def test_bad_options_are_one_line_and_write_nothing(manifest: dict[str, Any], tmp_path: Path,
                                                    args: list[str], message: str) -> None:
    proc = run_cli("report", fixture(manifest, "nginx-null")["core"], "--out", str(tmp_path),
                   *args)
    assert (proc.returncode, proc.stderr, proc.stdout) == (2, message + "\n", "")
    assert list(tmp_path.iterdir()) == []


def test_a_broken_template_names_itself(manifest: dict[str, Any], tmp_path: Path) -> None:
    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / "report.md.j2").write_text("{{ r.title }\n")
    out = tmp_path / "out"
    out.mkdir()
    proc = run_cli("report", fixture(manifest, "nginx-null")["core"], "--out", str(out),
                   "--template-dir", str(templates))
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1
    assert proc.stderr.startswith(f"crashkit: error: {templates / 'report.md.j2'}: template "
                                  "error at line 1")
    assert list(out.iterdir()) == []  # no bundle, no temporary file


def test_a_non_editable_install_renders_reports(manifest: dict[str, Any],
                                                tmp_path: Path) -> None:
    """pip install . (a real wheel, no source tree on the path) ships the
    templates and every package."""
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    for name in ("crashkit", "reports"):
        shutil.copytree(ROOT / name, src / name,
                        ignore=shutil.ignore_patterns("__pycache__"))
    target = tmp_path / "site"
    pip = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps",
                          "--disable-pip-version-check", "--target", str(target), str(src)],
                         capture_output=True, text=True, timeout=300)
    if pip.returncode != 0:
        unavailable(f"pip install . failed: {pip.stderr[-1500:]}")
    wanted = {str(p.parent.relative_to(ROOT)) for p in (ROOT / "crashkit").rglob("__init__.py")}
    got = {str(p.parent.relative_to(target)) for p in (target / "crashkit").rglob("__init__.py")}
    assert got == wanted
    out = tmp_path / "out"
    out.mkdir()
    env = {**os.environ, "PYTHONPATH": str(target)}
    proc = subprocess.run([sys.executable, "-c", "import crashkit, sys; print(crashkit.__file__)"],
                          capture_output=True, text=True, cwd=tmp_path, env=env, check=True)
    assert proc.stdout.strip() == str(target / "crashkit" / "__init__.py")
    proc = subprocess.run([sys.executable, "-m", "crashkit", "report",
                           fixture(manifest, "nginx-null")["core"], "--out", str(out), "--json"],
                          capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    with tarfile.open(json.loads(proc.stdout)["bundle"]) as tar:
        names = [m.name.split("/", 1)[1] for m in tar.getmembers()]
        html = tar.extractfile(  # type: ignore[union-attr]
            next(m for m in tar.getmembers() if m.name.endswith("report.html"))).read()
    assert "report.md" in names and b"crashkit_faulty_tag_length" in html


def test_a_log_that_does_not_mention_the_crash_is_left_out(manifest: dict[str, Any],
                                                           tmp_path: Path) -> None:
    """A log found from a config that does not mention the worker's exit may
    be another instance's: it is named in a note, not copied. A log the user
    names is theirs: without the exit line, the lines around the core's time."""
    fx, other = fixture(manifest, "nginx-null"), fixture(manifest, "nginx-libc")
    answer, files = make_bundle(fx["core"], tmp_path / "out", "--conf", other["nginx_conf"],
                                "--format", "md")
    assert "error-log.txt" not in files
    assert answer["notes"][0].startswith(f"error-log.txt left out: {other['error_log']} does "
                                         f"not mention the exit of pid {fx['pid']}")
    # With its own log, the excerpt ends a few lines after the master's line.
    _, files = make_bundle(fx["core"], tmp_path / "own", "--error-log", fx["error_log"],
                           "--format", "md")
    log = files["error-log.txt"].decode().splitlines()
    exit_line = next(i for i, line in enumerate(log)
                     if f"worker process {fx['pid']} exited on signal 11" in line)
    assert exit_line > 0 and len(log) - exit_line - 1 <= 5
    # Named by the user but without the exit line: by time, and it says so.
    _, files = make_bundle(fx["core"], tmp_path / "named", "--error-log", other["error_log"],
                           "--format", "md")
    head = files["error-log.txt"].decode().splitlines()[0]
    assert head == (f"# {other['error_log']}: no line about the exit of pid {fx['pid']}; the "
                    "lines logged from 2 minutes before the core was written to 30 s after")


def test_a_process_posing_as_the_master_is_not_trusted(tmp_path: Path) -> None:
    """The parent pid comes from the core: whoever runs there must not get a
    config of its choice run through nginx -T as root (load_module is
    dlopen). A look-alike title on another binary, or a config that others
    may write, is refused."""
    import time

    from crashkit.nginx.dump import running_master

    evil = tmp_path / "evil.conf"
    evil.write_text("load_module /tmp/evil.so;\n")
    fake = subprocess.Popen(["bash", "-c", f'exec -a "nginx: master process /usr/sbin/nginx '
                             f'-c {evil}" sleep 30'])
    try:
        time.sleep(0.3)
        title = Path(f"/proc/{fake.pid}/cmdline").read_bytes()
        assert title.startswith(b"nginx: master process ")  # it does look like one
        assert running_master(fake.pid, time.time(), "nginx") is None
    finally:
        fake.kill()
        fake.wait()


def test_a_master_whose_config_others_may_write_is_not_trusted(
        secret_crash: dict[str, Any]) -> None:
    import time

    from crashkit.nginx.dump import running_master

    conf = Path(secret_crash["conf"])
    pid = int((conf.parent / "nginx.pid").read_text())
    assert running_master(pid, time.time(), "nginx") is not None
    mode = conf.stat().st_mode
    try:
        conf.chmod(0o666)
        assert running_master(pid, time.time(), "nginx") is None
    finally:
        conf.chmod(mode)


def test_the_senders_command_line_stays_out_of_bundles(tmp_path: Path) -> None:
    """analyze says what a killer's pid runs now; a bundle must not carry
    another process's command line (it may hold its secrets)."""
    import resource
    import time

    from tests.conftest import compile_program

    victim = compile_program(tmp_path, "victim", "#include <unistd.h>\n"
                             "int main(void) { pause(); return 0; }\n")

    def limits() -> None:
        resource.setrlimit(resource.RLIMIT_CORE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))

    proc = subprocess.Popen([str(victim)], cwd=tmp_path, preexec_fn=limits)
    secret = secrets.token_hex(8)
    time.sleep(0.2)
    # The sender kills, then stays alive under a command line with a secret.
    sender = subprocess.Popen(["bash", "-c", f'kill -SEGV {proc.pid}; exec -a "probe '
                               f'--password {secret}" sleep 30'])
    try:
        assert proc.wait(timeout=30) == -11
        core = next(p for p in tmp_path.iterdir() if p.name.startswith("core"))
        shown = run_cli("analyze", str(core), "--json", "--no-gdb", check=True)
        assert secret in json.loads(shown.stdout)["verdict"]["sender"]["command_now"]
        _, files = make_bundle(str(core), tmp_path / "out", "--no-gdb")
        for name, data in files.items():
            assert secret.encode() not in data, name
        analysis = json.loads(files["analysis.json"])
        assert analysis["verdict"]["sender"]["pid"] == sender.pid
        assert analysis["verdict"]["sender"]["command_now"] is None
    finally:
        sender.kill()
        sender.wait()


@pytest.mark.parametrize("include_core", [False, True])
def test_a_full_filesystem_is_one_line_and_leaves_nothing(manifest: dict[str, Any],
                                                          tmp_path: Path,
                                                          include_core: bool) -> None:
    """--out on a real 64 KiB tmpfs (root mounts it), nearly full: one line
    naming the bundle, exit 2, and no bundle or temporary file left there."""
    with small_tmpfs(tmp_path / "tiny", "64k", "0755") as out:
        (out / "fill").write_bytes(b"\0" * (56 << 10))
        args = ["report", fixture(manifest, "nginx-null")["core"], "--out", str(out)]
        proc = run_cli(*args, *(["--include-core"] if include_core else []))
        assert proc.returncode == 2, proc.stdout + proc.stderr
        errors = [line for line in proc.stderr.splitlines() if "error" in line]
        assert len(errors) == 1 and errors[0].startswith(f"crashkit: error: {out}: --out: the "
                                                         "filesystem is full: crashkit-report-")
        assert "(nothing of it is left behind)" in errors[0]
        assert sorted(p.name for p in out.iterdir()) == ["fill"]
