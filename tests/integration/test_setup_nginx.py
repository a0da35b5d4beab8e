"""crashkit setup on real configs with the real nginx binary (nginx -t), through the CLI.

Debian's packaged /etc/nginx is copied to a temp dir (never touched itself);
core directories live under /tmp/crashkit-tests so that www-data can reach
them. Every apply is checked on the bytes of the files, on nginx -t, and on
the --json facts.
"""

from __future__ import annotations

import json
import os
import pwd
import re
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from crashkit.errors import InputError
from crashkit.model.nginx import ConfigLocation
from crashkit.nginx.config import build_info, find_config, load_config, parse_build_info
from crashkit.writers.config import ValidationError, candidate_path, validate_copies
from tests.conftest import ROOT, run_cli, unavailable
from tests.live_nginx import NGINX, WORKER_USER, debian_tree, reachable_dir

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def _needs_root_and_nginx() -> None:
    if os.geteuid() != 0:
        unavailable("crashkit setup tests need root (core directory owner, nginx -t)")
    if not os.access(NGINX, os.X_OK):
        unavailable(f"{NGINX} is not installed")


@pytest.fixture
def cores() -> Iterator[Path]:
    d = reachable_dir("setup")
    yield d / "cores"
    shutil.rmtree(d, ignore_errors=True)


SCHEMA = json.loads((ROOT / "crashkit" / "schema" / "setup-1.json").read_text())


def setup(*args: str) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    proc = run_cli("setup", "--json", *args)
    assert proc.returncode in (0, 1), proc.stderr
    data: dict[str, Any] = json.loads(proc.stdout)
    jsonschema.validate(data, SCHEMA)
    assert proc.returncode == (1 if data["needs_attention"] else 0)
    return proc, data


def nginx_t(conf: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([NGINX, "-t", "-c", str(conf)], capture_output=True, text=True)


def hidden_crashkit_files(d: Path) -> list[str]:
    return sorted(p.name for p in d.rglob(".*crashkit*"))


def one_line_error(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("crashkit: error: "), proc.stderr
    return lines[0]


def simple_conf(d: Path, main: str = "", user: str = WORKER_USER) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    conf = d / "nginx.conf"
    conf.write_text(f"user {user};\nworker_processes 2;\npid {d}/nginx.pid;\n"
                    f"error_log {d}/error.log;\n{main}events {{\n    worker_connections 16;\n}}\n")
    return conf


DROPIN_HEAD = ("# Written by crashkit setup --apply: where nginx's workers leave their cores\n"
               "# (crashkit setup --undo removes this file).\n")


def test_debian_tree_dry_run_apply_again_undo(tmp_path: Path, cores: Path) -> None:
    # Debian's nginx.conf is a dpkg conffile: crashkit writes a drop-in of its
    # own into modules-enabled/ (included in the main context) instead.
    conf = debian_tree(tmp_path)
    enabled = conf.parent / "modules-enabled"
    dropin = enabled / "90-crashkit-cores.conf"
    original = conf.read_bytes()
    modules_before = sorted(p.name for p in enabled.iterdir())
    assert nginx_t(conf).returncode == 0

    proc, dry = setup("--conf", str(conf), "--core-dir", str(cores))
    assert proc.returncode == 1  # changes to make
    assert dry["mode"] == "dry-run" and dry["changed"] is True
    assert dry["config"]["found_by"] == "option"
    assert dry["worker"]["user"] == "www-data" and dry["worker"]["processes"] == os.cpu_count()
    assert [(c["directive"], c["old"], c["new"], c["file"], c["line"])
            for c in dry["changes"]] == [
        ("worker_rlimit_core", None, "2G", str(dropin), 2),
        ("working_directory", None, str(cores), str(dropin), 2)]
    assert dry["dropin"] == {"path": str(dropin), "pattern": str(enabled / "*.conf"),
                             "included_at": f"{conf}:5"}
    assert [(f["path"], f["created"], f["backup"]) for f in dry["files"]] == [
        (str(dropin), True, None)]
    assert dry["files"][0]["diff"].startswith("--- /dev/null\n")
    text = run_cli("setup", "--conf", str(conf), "--core-dir", str(cores)).stdout
    assert (f"would write {dropin} (a new file of crashkit's own, loaded by the include at "
            f"{conf}:5; the main file stays as it is)\n") in text
    assert dry["core_dir"]["exists"] is False and not cores.exists()
    assert not dropin.exists() and hidden_crashkit_files(tmp_path) == []

    _, applied = setup("--conf", str(conf), "--core-dir", str(cores), "--apply")
    assert applied["changed"] is True
    assert conf.read_bytes() == original  # the conffile as the package left it
    assert dropin.read_text() == (DROPIN_HEAD + "worker_rlimit_core 2G;\n"
                                  f"working_directory {cores};\n")
    assert stat.S_IMODE(dropin.stat().st_mode) == stat.S_IMODE(conf.stat().st_mode)
    assert sorted(p.name for p in enabled.iterdir()) == sorted([*modules_before, dropin.name])
    assert [(f["path"], f["created"], f["backup"]) for f in applied["files"]] == [
        (str(dropin), True, None)]
    assert nginx_t(conf).returncode == 0
    # nginx itself reads the drop-in: a duplicate of its directive is refused.
    conf.write_bytes(original.replace(b"pid ", b"worker_rlimit_core 1G;\npid ", 1))
    assert "is duplicate" in nginx_t(conf).stderr
    conf.write_bytes(original)
    st = cores.stat()
    assert stat.S_IMODE(st.st_mode) == 0o700
    assert (st.st_uid, st.st_gid) == (applied["worker"]["uid"], applied["worker"]["gid"])
    assert applied["core_dir"]["worker_can_write"] is True

    # Second run: nothing to change, nothing written.
    _, again = setup("--conf", str(conf), "--core-dir", str(cores), "--apply")
    assert again["changed"] is False and again["files"] == [] and again["changes"] == []
    assert again["dropin"] is None
    assert any("nothing to change" in n for n in again["notes"])
    # The record of the drop-in and of the directory setup created (for --undo).
    records = hidden_crashkit_files(tmp_path)
    assert len(records) == 1 and records[0].startswith(".nginx.conf.crashkit-setup-")

    _, undone = setup("--conf", str(conf), "--undo")
    assert undone["mode"] == "undo" and undone["changed"] is True and undone["files"] == []
    assert [(u["what"], u["action"]) for u in undone["undone"]] == [
        (str(dropin), "removed"), (str(cores), "removed")]
    assert "nginx is not running: the restored config applies when it starts" in undone["notes"]
    assert conf.read_bytes() == original and not dropin.exists() and not cores.exists()
    assert sorted(p.name for p in enabled.iterdir()) == modules_before
    assert hidden_crashkit_files(tmp_path) == []
    assert nginx_t(conf).returncode == 0
    _, nothing = setup("--conf", str(conf), "--undo")
    assert nothing["changed"] is False and "nothing to undo" in nothing["notes"][0]


def test_debian_dropin_edited_by_a_later_apply_then_undone_twice(tmp_path: Path,
                                                                 cores: Path) -> None:
    conf = debian_tree(tmp_path)
    dropin = conf.parent / "modules-enabled" / "90-crashkit-cores.conf"
    original = conf.read_bytes()
    setup("--conf", str(conf), "--core-dir", str(cores), "--apply")
    first = dropin.read_text()
    _, second = setup("--conf", str(conf), "--core-dir", str(cores), "--apply",
                      "--core-limit", "3G")
    # The drop-in is one of the config's files now: edited in place, backed up
    # hidden beside it (the glob *.conf never loads a leading dot).
    assert [(f["path"], f["created"]) for f in second["files"]] == [(str(dropin), False)]
    assert dropin.read_text() == first.replace("2G", "3G")
    assert Path(second["files"][0]["backup"]).read_text() == first
    assert nginx_t(conf).returncode == 0
    _, undo1 = setup("--conf", str(conf), "--undo")
    assert dropin.read_text() == first and undo1["undone"] == []
    # A drop-in the user changed since is theirs: undo leaves it, and says so.
    dropin.write_text(first + "# mine\n")
    _, undo2 = setup("--conf", str(conf), "--undo")
    assert [(u["what"], u["action"]) for u in undo2["undone"]] == [
        (str(dropin), "left"), (str(cores), "removed")]
    assert "changed since crashkit wrote it" in undo2["undone"][0]["detail"]
    assert dropin.exists() and conf.read_bytes() == original


def test_debian_dropin_nginx_rejects_is_never_written(tmp_path: Path, cores: Path) -> None:
    conf = debian_tree(tmp_path)
    dropin = conf.parent / "modules-enabled" / "90-crashkit-cores.conf"
    # A size crashkit reads but nginx rejects (it overflows off_t): nginx -t saw
    # the candidate at the drop-in's own path (the overlay on its directory).
    line = one_line_error(run_cli("setup", "--conf", str(conf), "--core-dir", str(cores),
                                  "--core-limit", "99999999999999999999g", "--apply"))
    assert "changed config fails nginx -t, nothing replaced" in line
    assert f"invalid value in {dropin}:3" in line
    assert not dropin.exists() and not cores.exists() and hidden_crashkit_files(tmp_path) == []
    recent = time.time() - 60  # the private directory of the candidate is gone too
    assert [p for p in Path("/tmp").glob("crashkit-new-*") if p.stat().st_mtime > recent] == []


def test_without_a_main_context_glob_the_main_file_is_edited(tmp_path: Path,
                                                             cores: Path) -> None:
    # The fallback: an include glob only inside http {} (or none) is no place
    # for main-context directives.
    conf = simple_conf(tmp_path, main="")
    (tmp_path / "conf.d").mkdir()
    conf.write_text(conf.read_text() + "http {\n    include conf.d/*.conf;\n}\n")
    _, data = setup("--conf", str(conf), "--core-dir", str(cores), "--apply")
    assert data["dropin"] is None
    assert [(f["path"], f["created"]) for f in data["files"]] == [(str(conf), False)]
    assert list((tmp_path / "conf.d").iterdir()) == []
    assert nginx_t(conf).returncode == 0


def test_undo_refuses_to_lose_edits_made_after_apply(tmp_path: Path, cores: Path) -> None:
    conf = simple_conf(tmp_path)
    original = conf.read_text()
    setup("--conf", str(conf), "--core-dir", str(cores), "--apply")
    applied = conf.read_text()
    conf.write_text(applied + "# my later edit\n")
    proc = run_cli("setup", "--conf", str(conf), "--undo")
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1
    assert proc.stderr.startswith(f"crashkit: error: {conf}: changed since crashkit setup "
                                  "--apply (the line '# my later edit' is not crashkit's)")
    assert conf.read_text() == applied + "# my later edit\n"  # nothing restored
    conf.write_text(applied)  # without the foreign edit, undo goes ahead
    _, undone = setup("--conf", str(conf), "--undo")
    assert undone["changed"] is True and conf.read_text() == original


def test_directives_in_an_included_file_are_updated_there(tmp_path: Path, cores: Path) -> None:
    conf = simple_conf(tmp_path, main="include main.d/*.conf;\n")
    (tmp_path / "main.d").mkdir()
    (tmp_path / "available").mkdir()
    real = tmp_path / "available" / "core.conf"
    real.write_text("# cores\nworking_directory /var/tmp;  # old place\n"
                    "worker_rlimit_core 64m;\n")
    link = tmp_path / "main.d" / "core.conf"
    link.symlink_to(real)
    main_before = conf.read_bytes()

    _, data = setup("--conf", str(conf), "--core-dir", str(cores), "--core-limit", "3g",
                    "--apply")
    assert [f["path"] for f in data["files"]] == [str(real)]
    assert real.read_text() == (f"# cores\nworking_directory {cores};  # old place\n"
                                "worker_rlimit_core 3g;\n")
    assert link.is_symlink() and os.readlink(link) == str(real)
    assert conf.read_bytes() == main_before
    assert nginx_t(conf).returncode == 0
    # The backup is hidden beside the real file: include main.d/*.conf never loads it.
    assert [p.name.split("-backup-")[0] for p in (tmp_path / "available").glob(".*")] == [
        ".core.conf.crashkit"]


def test_included_candidate_is_what_nginx_validates(tmp_path: Path, cores: Path) -> None:
    # The candidate of an included file is seen by nginx -t in its place (a
    # private mount namespace): a value nginx rejects there replaces nothing.
    conf = simple_conf(tmp_path, main="include core.d/*.conf;\n")
    (tmp_path / "core.d").mkdir()
    inc = tmp_path / "core.d" / "core.conf"
    inc.write_text("worker_rlimit_core 64m;\n")
    before = inc.read_bytes()
    line = one_line_error(run_cli("setup", "--conf", str(conf), "--core-dir", str(cores),
                                  "--core-limit", "99999999999999999999g", "--apply"))
    assert "changed config fails nginx -t, nothing replaced" in line
    assert f'invalid value in {inc}:1' in line  # the candidate, seen at the original's path
    assert inc.read_bytes() == before and hidden_crashkit_files(tmp_path) == []


def test_nginx_skips_hidden_files_in_include_globs(tmp_path: Path) -> None:
    # The ground truth behind the candidate and backup names: a broken hidden
    # file in an included directory does not break nginx -t.
    conf = simple_conf(tmp_path, main="include conf.d/*;\n")
    (tmp_path / "conf.d").mkdir()
    (tmp_path / "conf.d" / "ok.conf").write_text("worker_priority 0;\n")
    (tmp_path / "conf.d" / ".nginx.conf.crashkit-new").write_text("this is { broken\n")
    assert nginx_t(conf).returncode == 0
    (tmp_path / "conf.d" / "broken.conf").write_text("this is { broken\n")
    assert nginx_t(conf).returncode != 0


def test_crlf_config_apply_keeps_crlf(tmp_path: Path, cores: Path) -> None:
    conf = simple_conf(tmp_path)
    conf.write_bytes(conf.read_bytes().replace(b"\n", b"\r\n"))
    setup("--conf", str(conf), "--core-dir", str(cores), "--apply")
    data = conf.read_bytes()
    assert b"worker_rlimit_core 2G;\r\n" in data
    assert data.count(b"\n") == data.count(b"\r\n") == 9
    assert nginx_t(conf).returncode == 0


def test_several_directives_on_a_line_with_comments_applies_and_validates(
        tmp_path: Path, cores: Path) -> None:
    tmp_path.mkdir(exist_ok=True)
    conf = tmp_path / "nginx.conf"
    text = (f"# main  # file\nuser {WORKER_USER}; worker_processes 1; # comment {{ ; }}\n"
            f"pid {tmp_path}/nginx.pid; error_log {tmp_path}/e.log; events {{ # e\n"
            "worker_connections 8; } # done\n")
    conf.write_text(text)
    original = conf.read_bytes()
    setup("--conf", str(conf), "--core-dir", str(cores), "--apply")
    # Lines of their own, before the compact line that holds the anchor.
    assert conf.read_text() == text.replace(
        "pid ", f"worker_rlimit_core 2G;\nworking_directory {cores};\npid ", 1)
    assert nginx_t(conf).returncode == 0
    _, undone = setup("--conf", str(conf), "--undo")
    assert undone["changed"] is True and conf.read_bytes() == original
    assert hidden_crashkit_files(tmp_path) == []


COMPACT = {  # a compact config, and what apply makes of it
    # Everything on one line, no final newline: the new lines go first.
    "one-line": (
        "user {user}; worker_processes 1; pid {d}/nginx.pid; error_log {d}/e.log; "
        "events {{ worker_connections 64; }} http {{ access_log off; "
        "server {{ listen 127.0.0.1:1; }} }}",
        "worker_rlimit_core 2G;\nworking_directory {cores};\n{text}"),
    # The simple directives after the first block, on its closing line.
    "after-a-block": (
        "events {{ worker_connections 64; }} user {user}; worker_processes 1;"
        " pid {d}/nginx.pid; error_log {d}/e.log;\nhttp {{ access_log off; }}\n",
        "worker_rlimit_core 2G;\nworking_directory {cores};\n{text}"),
    # CRLF and indented; worker_rlimit_core there already (updated in place).
    "crlf-update": (
        "\tuser {user}; worker_processes 1; worker_rlimit_core 1G; "
        "pid {d}/nginx.pid;\r\n\terror_log {d}/e.log; events {{ }}\r\n"
        "\thttp {{ access_log off; }}\r\n",
        "\tworking_directory {cores};\r\n{text_2G}"),
    # working_directory on a line with a block and a comment; the new line
    # after the first one (only a comment follows its last directive).
    "shared-line": (
        "  user {user}; pid {d}/nginx.pid;   error_log {d}/e.log; # c ;\n"
        "  events {{ worker_connections 64; }} working_directory /tmp; http {{ }} # end\n",
        "{line1}  worker_rlimit_core 2G;\n{rest_cores}"),
}


@pytest.mark.parametrize("shape", sorted(COMPACT))
def test_compact_config_applies_and_undoes_byte_exact(tmp_path: Path, cores: Path,
                                                      shape: str) -> None:
    template, expected = COMPACT[shape]
    text = template.format(user=WORKER_USER, d=tmp_path)
    conf = tmp_path / "nginx.conf"
    conf.write_bytes(text.encode())
    original = conf.read_bytes()
    _, data = setup("--conf", str(conf), "--core-dir", str(cores), "--apply")
    # The new directives on lines of their own, with the file's line ending
    # and its lines' indentation; an existing one changed in its place.
    line1, _, rest = text.partition("\n")
    assert conf.read_bytes().decode() == expected.format(
        cores=cores, text=text, text_2G=text.replace("core 1G;", "core 2G;"),
        line1=line1 + "\n", rest_cores=rest.replace("/tmp;", f"{cores};"))
    assert data["changed"] is True and nginx_t(conf).returncode == 0
    _, undone = setup("--conf", str(conf), "--undo")
    assert undone["changed"] is True and conf.read_bytes() == original
    assert hidden_crashkit_files(tmp_path) == []


def test_undo_refuses_an_edit_on_a_line_crashkit_shares(tmp_path: Path, cores: Path) -> None:
    # working_directory is updated in place on a line that holds other
    # directives too: an edit of those, after apply, is the user's.
    conf = tmp_path / "nginx.conf"
    conf.write_text(COMPACT["shared-line"][0].format(user=WORKER_USER, d=tmp_path))
    original = conf.read_text()
    setup("--conf", str(conf), "--core-dir", str(cores), "--apply")
    applied = conf.read_text()
    conf.write_text(applied.replace("worker_connections 64;", "worker_connections 128;"))
    line = one_line_error(run_cli("setup", "--conf", str(conf), "--undo"))
    assert line.startswith(f"crashkit: error: {conf}: changed since crashkit setup --apply "
                           "(the line 'events { worker_connections 128; } working_directory "
                           f"{cores}; http {{ }} # end' is not crashkit's)")
    conf.write_text(applied)
    setup("--conf", str(conf), "--undo")
    assert conf.read_text() == original


def test_config_failing_nginx_t_is_refused(tmp_path: Path, cores: Path) -> None:
    conf = simple_conf(tmp_path, main="no_such_directive on;\n")
    before = conf.read_bytes()
    line = one_line_error(run_cli("setup", "--conf", str(conf), "--core-dir", str(cores),
                                  "--apply"))
    assert "fails nginx -t; fix it first, nothing changed" in line
    assert 'unknown directive "no_such_directive" in ' + f"{conf}:5" in line
    assert conf.read_bytes() == before and hidden_crashkit_files(tmp_path) == []
    assert not cores.exists()


def test_candidate_failing_validation_replaces_nothing(tmp_path: Path, cores: Path) -> None:
    conf = simple_conf(tmp_path)
    before = conf.read_bytes()
    # A size crashkit reads but nginx rejects (it overflows off_t).
    proc = run_cli("setup", "--conf", str(conf), "--core-dir", str(cores),
                   "--core-limit", "99999999999999999999g", "--apply")
    line = one_line_error(proc)
    assert "changed config fails nginx -t, nothing replaced" in line
    assert '"worker_rlimit_core" directive invalid value' in line
    assert not cores.exists()
    assert conf.read_bytes() == before and hidden_crashkit_files(tmp_path) == []


def test_bad_inputs_are_one_line_exit_2(tmp_path: Path, cores: Path) -> None:
    missing = tmp_path / "none.conf"
    assert str(missing) in one_line_error(run_cli("setup", "--conf", str(missing)))

    conf = simple_conf(tmp_path / "a", main="include sub;\n")
    (tmp_path / "a" / "sub").mkdir()
    line = one_line_error(run_cli("setup", "--conf", str(conf)))
    assert f"{tmp_path}/a/sub: cannot read included file" in line and f"{conf}:5" in line

    conf = simple_conf(tmp_path / "b")
    afile = tmp_path / "b" / "file"
    afile.write_text("x")
    line = one_line_error(run_cli("setup", "--conf", str(conf), "--core-dir", str(afile)))
    assert f"{afile}: the core directory exists but is not a directory" in line

    conf = simple_conf(tmp_path / "c", user="crashkit-no-such-user")
    line = one_line_error(run_cli("setup", "--conf", str(conf), "--core-dir", str(cores)))
    assert "'crashkit-no-such-user'" in line and "does not exist" in line

    line = one_line_error(run_cli("setup", "--conf", str(conf), "--core-limit", "lots"))
    assert "--core-limit" in line

    # pytest's tmp_path lies under a 0700 directory: www-data could not chdir there.
    conf = simple_conf(tmp_path / "d")
    before = conf.read_bytes()
    hidden = tmp_path / "d" / "cores"
    proc = run_cli("setup", "--conf", str(conf), "--core-dir", str(hidden), "--json")
    assert proc.returncode == 1 and json.loads(proc.stdout)["core_dir"]["worker_can_reach"] is False
    line = one_line_error(run_cli("setup", "--conf", str(conf), "--core-dir", str(hidden),
                                  "--apply"))
    assert f"{hidden}: www-data cannot reach this directory" in line
    assert conf.read_bytes() == before and not hidden.exists()
    assert not cores.exists()


def test_killed_half_way_leaves_old_or_new(tmp_path: Path, cores: Path) -> None:
    conf = simple_conf(tmp_path)
    old = conf.read_bytes()
    setup("--conf", str(conf), "--core-dir", str(cores), "--apply")
    new = conf.read_bytes()
    conf.write_bytes(old)
    seen = set()
    for i in range(12):
        p = subprocess.Popen([sys.executable, "-m", "crashkit", "setup", "--conf", str(conf),
                              "--core-dir", str(cores), "--apply"], cwd=ROOT,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.04 * i)
        p.send_signal(signal.SIGKILL)
        p.wait()
        now = conf.read_bytes()
        assert now in (old, new), f"partial file after a kill at {0.04 * i:.2f} s"
        seen.add(now == new)
        conf.write_bytes(old)
    # Candidates left by kills are removed by the next run (under its lock), never loaded.
    _, data = setup("--conf", str(conf), "--core-dir", str(cores), "--apply")
    assert data["changed"] is True and conf.read_bytes() == new
    assert list(tmp_path.glob(".nginx.conf.crashkit-new*")) == []
    assert False in seen  # the early kills landed before the replace


def test_a_second_setup_waits_while_one_holds_the_lock(tmp_path: Path, cores: Path) -> None:
    import fcntl

    conf = simple_conf(tmp_path)
    old = conf.read_bytes()
    fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # as a running setup --apply holds it
        # --lock-wait 0: refused at once, one line, nothing changed.
        for args in (["--core-dir", str(cores), "--apply", "--core-limit", "1G"], ["--undo"]):
            line = one_line_error(run_cli("setup", "--conf", str(conf), "--lock-wait", "0",
                                          *args))
            assert line == (f"crashkit: error: {conf}: another crashkit setup is changing this "
                            "config now (it holds the lock on its directory; waited 0 s); "
                            "nothing changed, run again when it is done")
        assert conf.read_bytes() == old and hidden_crashkit_files(tmp_path) == []
        _, dry = setup("--conf", str(conf), "--core-dir", str(cores))  # a dry run needs none
        assert dry["mode"] == "dry-run"
        # By default it waits: nothing written while the lock is held...
        waiting = subprocess.Popen(
            [sys.executable, "-m", "crashkit", "setup", "--json", "--conf", str(conf),
             "--core-dir", str(cores), "--apply", "--core-limit", "1G"], cwd=ROOT,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(2)
        assert waiting.poll() is None and conf.read_bytes() == old
        assert hidden_crashkit_files(tmp_path) == [] and not cores.exists()
        # ...while the holder changes the config, as another setup would.
        conf.write_bytes(old.replace(b"events {", b"worker_rlimit_core 7G;\nevents {"))
    finally:
        os.close(fd)
    out, err = waiting.communicate(timeout=60)
    assert waiting.returncode in (0, 1), err
    data = json.loads(out)
    # It planned from the config the holder left: 7G becomes 1G in its place.
    assert [(c["directive"], c["old"], c["new"]) for c in data["changes"]] == [
        ("worker_rlimit_core", "7G", "1G"), ("working_directory", None, str(cores))]
    assert data["core_limit"]["value"] == "1G"
    assert len(data["notes"]) == 1 and re.fullmatch(
        r"waited \d+\.\d s for another crashkit setup on this config to finish \(the lock on "
        r"its directory\), then planned from the config it left", data["notes"][0])
    assert float(data["notes"][0].split()[1]) >= 1.0
    assert conf.read_bytes().count(b"worker_rlimit_core") == 1
    assert b"worker_rlimit_core 1G;" in conf.read_bytes() and nginx_t(conf).returncode == 0


def test_two_setups_at_once_run_one_after_the_other(tmp_path: Path, cores: Path) -> None:
    conf = simple_conf(tmp_path)
    original = conf.read_bytes()
    waits = 0
    for _ in range(10):
        conf.write_bytes(original)
        procs = {limit: subprocess.Popen(
            [sys.executable, "-m", "crashkit", "setup", "--json", "--conf", str(conf),
             "--core-dir", str(cores), "--apply", "--core-limit", limit], cwd=ROOT,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for limit in ("3G", "5G")}
        runs = {}
        for limit, p in procs.items():
            out, err = p.communicate(timeout=120)
            assert p.returncode in (0, 1) and err == "", err  # both succeed
            data = json.loads(out)
            assert data["core_limit"]["value"] == limit and data["changed"] is True
            runs[limit] = data
            waits += any(n.startswith("waited ") for n in data["notes"])
        # The backups' stamps order the runs; each backup is what the run
        # before it wrote, and the file is what the last one wrote.
        first, last = sorted(runs, key=lambda k: runs[k]["files"][0]["backup"])
        assert Path(runs[first]["files"][0]["backup"]).read_bytes() == original
        assert f"worker_rlimit_core {first};".encode() in Path(
            runs[last]["files"][0]["backup"]).read_bytes()
        live = re.findall(r"worker_rlimit_core (\w+);", conf.read_text())
        assert live == [last]
        assert [(c["old"], c["new"]) for c in runs[last]["changes"]
                if c["directive"] == "worker_rlimit_core"] == [(first, last)]
        assert list(tmp_path.glob(".nginx.conf.crashkit-new*")) == []
    assert len(list(tmp_path.glob(".nginx.conf.crashkit-backup-*"))) == 20  # none extra
    assert waits >= 1  # they did overlap, and the second waited


def test_an_apply_and_an_undo_at_once_take_turns(tmp_path: Path, cores: Path) -> None:
    conf = simple_conf(tmp_path)
    original = conf.read_bytes()
    for _ in range(6):
        conf.write_bytes(original)
        for b in tmp_path.glob(".nginx.conf.crashkit-*"):
            b.unlink()
        args = {"apply": ["--core-dir", str(cores), "--apply", "--core-limit", "3G"],
                "undo": ["--undo"]}
        procs = {k: subprocess.Popen([sys.executable, "-m", "crashkit", "setup", "--json",
                                      "--conf", str(conf), *a], cwd=ROOT, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
                 for k, a in args.items()}
        runs = {}
        for k, p in procs.items():
            out, err = p.communicate(timeout=120)
            assert p.returncode in (0, 1) and err == "", err
            runs[k] = json.loads(out)
        applied = runs["apply"]["changed"] is True
        if runs["undo"]["changed"]:  # the apply, then its undo
            assert conf.read_bytes() == original
            assert list(tmp_path.glob(".nginx.conf.crashkit-*")) == []
        else:  # nothing to undo yet, then the apply
            assert runs["undo"]["notes"][-1] == ("nothing to undo: no crashkit backup beside "
                                                 "the config's files")
            assert b"worker_rlimit_core 3G;" in conf.read_bytes()
        assert applied and nginx_t(conf).returncode == 0


def test_existing_working_directory_kept_only_when_fit(tmp_path: Path, cores: Path) -> None:
    # Fit: outside scratch areas, nothing for others, writable by www-data. It
    # is kept as it is, never chowned (it may serve other purposes).
    fit = Path(tempfile.mkdtemp(prefix="crashkit-test-", dir="/var/lib"))
    try:
        shutil.chown(fit, WORKER_USER, WORKER_USER)
        fit.chmod(0o770)
        conf = simple_conf(tmp_path / "a", main=f"working_directory {fit};\n")
        _, data = setup("--conf", str(conf), "--apply")
        assert data["core_dir"]["path"] == str(fit) and data["core_dir"]["actions"] == []
        assert [(c["directive"], c["old"]) for c in data["changes"]] == [
            ("worker_rlimit_core", None)]
        assert stat.S_IMODE(fit.stat().st_mode) == 0o770  # untouched
    finally:
        shutil.rmtree(fit)
    # Under /tmp (cleaned; PrivateTmp): replaced by the default, in a dry run here.
    conf = simple_conf(tmp_path / "b", main=f"working_directory {cores.parent};\n")
    _, data = setup("--conf", str(conf))
    assert [(c["directive"], c["old"], c["new"]) for c in data["changes"]] == [
        ("working_directory", str(cores.parent), "/var/lib/crashkit/cores"),
        ("worker_rlimit_core", None, "2G")]


def test_a_busy_directory_is_never_taken_over(tmp_path: Path, cores: Path) -> None:
    busy = cores.parent / "www"
    busy.mkdir()
    (busy / "index.html").write_text("hello")
    conf = simple_conf(tmp_path)
    line = one_line_error(run_cli("setup", "--conf", str(conf), "--core-dir", str(busy),
                                  "--apply"))
    assert f"{busy}: the core directory holds other files ('index.html', ...)" in line
    assert busy.stat().st_uid == 0


def test_symlinked_main_file_validated_where_it_is_named(tmp_path: Path, cores: Path) -> None:
    # nginx resolves relative includes against the directory of -c: the link's.
    real = simple_conf(tmp_path / "real", main="include extra.conf;\n")
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "extra.conf").write_text("worker_priority 0;\n")
    link = tmp_path / "etc" / "nginx.conf"
    link.symlink_to(real)
    assert nginx_t(link).returncode == 0 and nginx_t(real).returncode != 0
    _, data = setup("--conf", str(link), "--core-dir", str(cores), "--apply")
    assert [f["path"] for f in data["files"]] == [str(real)]
    assert link.is_symlink() and "worker_rlimit_core 2G;" in real.read_text()
    assert nginx_t(link).returncode == 0


def test_config_found_from_nginx_v() -> None:
    build = build_info(NGINX)
    assert build is not None and build.conf_path == "/etc/nginx/nginx.conf"
    assert build.prefix == "/usr/share/nginx" and build.pid_path == "/run/nginx.pid"
    assert "--with-compat" in build.configure_args
    assert find_config(None, build) == ConfigLocation("/etc/nginx/nginx.conf", "nginx -V")
    other = parse_build_info("nginx version: nginx/1.25.0\nconfigure arguments: "
                             "--prefix=/opt/ngx --with-cc-opt='-O2 -g'\n")
    assert (other.version, other.prefix, other.conf_path) == ("1.25.0", "/opt/ngx", None)
    assert other.configure_args == ("--prefix=/opt/ngx", "--with-cc-opt=-O2 -g")
    assert find_config(None, other).source == "default"
    assert find_config("/x.conf", build) == ConfigLocation("/x.conf", "option")


def test_validation_on_copies_where_no_mount_namespace(tmp_path: Path) -> None:
    """The fallback for hosts without CAP_SYS_ADMIN, on Debian's tree: the
    candidate of a symlinked site file, seen through include globs."""
    conf = debian_tree(tmp_path)
    cfg = load_config(str(conf))
    site = os.path.realpath(tmp_path / "etc-nginx" / "sites-enabled" / "default")
    candidate = Path(candidate_path(site))
    good = Path(site).read_text().replace("listen 80 default_server;",
                                          "listen 127.0.0.1:1 default_server;")
    candidate.write_text(good)
    output = validate_copies(NGINX, cfg, {site: str(candidate)})
    assert f"the configuration file {conf} syntax is ok" in output
    candidate.write_text(good.replace("root /var/www/html;", "root /var/www/html"))
    with pytest.raises(ValidationError) as err:
        validate_copies(NGINX, cfg, {site: str(candidate)})
    assert "changed config fails nginx -t, nothing replaced" in str(err.value)
    assert f"in {site}:" in str(err.value)  # the real file named, not its copy
    candidate.unlink()
    assert hidden_crashkit_files(tmp_path) == []


def test_new_dropin_validated_on_copies_where_no_mount_namespace(tmp_path: Path) -> None:
    """The same fallback for a new file: the copy of the include that would
    load it names its candidate too."""
    conf = debian_tree(tmp_path)
    cfg = load_config(str(conf))
    dropin = str(conf.parent / "modules-enabled" / "90-crashkit-cores.conf")
    private = tmp_path / "private"
    private.mkdir()
    candidate = private / "90-crashkit-cores.conf"
    candidate.write_text("worker_rlimit_core 2G;\n")
    output = validate_copies(NGINX, cfg, {}, {dropin: str(candidate)})
    assert f"the configuration file {conf} syntax is ok" in output
    # nginx reads the candidate where the drop-in will be: a duplicate of the
    # main file's user, refused, is named at the drop-in's own path.
    candidate.write_text("user www-data;\n")
    with pytest.raises(ValidationError) as err:
        validate_copies(NGINX, cfg, {}, {dropin: str(candidate)})
    assert f'"user" directive is duplicate in {dropin}:1' in str(err.value)
    assert not Path(dropin).exists() and hidden_crashkit_files(tmp_path) == []


def test_unreadable_include_for_a_user_without_rights() -> None:
    # The reader, in a child that became "nobody" (this venv's python lives
    # under /root, which nobody cannot run, so not through the CLI).
    base = reachable_dir("setup-perm")
    try:
        conf = simple_conf(base / "c", main="include secret.conf;\n")
        (base / "c").chmod(0o755)
        secret = base / "c" / "secret.conf"
        secret.write_text("worker_priority 0;\n")
        secret.chmod(0o600)
        nobody = pwd.getpwnam("nobody")
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(r)
            message = "no error"
            try:
                os.setgroups([])
                os.setgid(nobody.pw_gid)
                os.setuid(nobody.pw_uid)
                load_config(str(conf))
            except InputError as exc:
                message = str(exc)
            finally:
                os.write(w, message.encode())
                os._exit(0)
        os.close(w)
        with os.fdopen(r) as f:
            message = f.read()
        os.waitpid(pid, 0)
        assert message == (f"{secret}: cannot read included file: permission denied "
                           f"(include at {conf}:5)")
    finally:
        shutil.rmtree(base, ignore_errors=True)
