"""Host readers on real files: the crashed worker's last error-log lines."""

from __future__ import annotations

from pathlib import Path

from crashkit.nginx.logtail import last_log_lines, log_excerpt

LOG = """\
2026/11/24 10:00:00 [notice] 100#100: start worker process 200
2026/11/24 10:00:01 [notice] 200#200: *1 module: about to check, client: 127.0.0.1
2026/11/24 10:00:01 [info] 300#300: *2 client closed keepalive connection
nginx: src/mod.c:42: mod_check: Assertion `st->magic == 0x1234' failed.
2026/11/24 10:00:01 [alert] 100#100: worker process 200 exited on signal 6 (core dumped)
2026/11/24 10:00:02 [notice] 100#100: start worker process 201
"""


def test_the_workers_own_lines_and_its_stderr_up_to_its_exit(tmp_path: Path) -> None:
    log = tmp_path / "error.log"
    log.write_text(LOG)
    assert last_log_lines(str(log), 200) == (
        "2026/11/24 10:00:01 [notice] 200#200: *1 module: about to check, client: 127.0.0.1",
        "nginx: src/mod.c:42: mod_check: Assertion `st->magic == 0x1234' failed.",
        "2026/11/24 10:00:01 [alert] 100#100: worker process 200 exited on signal 6 "
        "(core dumped)")
    lines, how = log_excerpt(str(log), 200, before=2, after=1)
    assert how == "exit line" and lines == tuple(LOG.splitlines()[2:6])


def test_a_file_that_does_not_mention_the_pid_gives_nothing(tmp_path: Path) -> None:
    """Not another process's lines, and not a config file's given by mistake."""
    conf = tmp_path / "nginx.conf"
    conf.write_text("user www-data;\nproxy_set_header X-Api-Key k-123;\n")
    assert last_log_lines(str(conf), 200) == ()
    log = tmp_path / "error.log"
    log.write_text(LOG)
    assert last_log_lines(str(log), 999) == ()
    assert log_excerpt(str(log), 999) == ((), None)
    # Around a time instead (the core's mtime): the lines logged from two
    # minutes before it to 30 s after.
    import time

    t = time.mktime(time.strptime("2026/11/24 10:00:01", "%Y/%m/%d %H:%M:%S"))
    lines, how = log_excerpt(str(log), 999, around=t)
    assert how == "time" and lines == tuple(
        x for x in LOG.splitlines() if x.startswith("2026/11/24 10:00:0"))
    assert log_excerpt(str(log), 999, around=t + 3600) == ((), None)
