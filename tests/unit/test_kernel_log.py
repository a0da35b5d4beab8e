"""Kernel log lines placed in time (crashkit.formats.kernel_log), OOM kills
read from a saved log (host.kernlog.oom_events on a KernelLog made here), and
the linking of nginx's exit lines to them (analysis.collect)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from crashkit.analysis.collect import LogExit, link_log_crashes, log_signature
from crashkit.formats.kernel_log import line_time
from crashkit.host.kernlog import KernelLog, oom_events
from crashkit.model.host import OomEvent

MSG = "Out of memory: Killed process 4242 (nginx) total-vm:1183952kB, anon-rss:1048576kB"
T = datetime(2026, 12, 4, 1, 2, 3, tzinfo=UTC).timestamp()


@pytest.mark.parametrize(("line", "when"), [
    (f"[ 7422.617411] {MSG}", 1000.0 + 7422.617411),  # dmesg, /dev/kmsg as kernlog writes it
    (f"2026-12-04T01:02:03.000000+00:00 web1 kernel: {MSG}", T),  # rsyslog (Debian 12)
    (f"2026-12-04T01:02:03+0000 web1 kernel: {MSG}", T),  # journalctl -o short-iso
    (f"2026-12-04T01:02:03Z web1 kernel: [ 7422.617411] {MSG}", T),  # wall time wins
    (f"Dec  4 01:02:03 web1 kernel: {MSG}", None),  # classic syslog: local time, checked below
    (MSG, None),  # no stamp at all
])
def test_line_time(line: str, when: float | None) -> None:
    got, rest = line_time(line, boot=1000.0, year=2026)
    assert rest == MSG
    if line.startswith("Dec"):
        assert got == datetime(2026, 12, 4, 1, 2, 3).timestamp()
    else:
        assert got == (pytest.approx(when) if when is not None else None)


def test_oom_events_one_per_kill() -> None:
    log = KernelLog((
        "[ 100.000001] oom-kill:constraint=CONSTRAINT_NONE,task=nginx,pid=4242,uid=33",
        f"[ 100.000050] {MSG}",
        "[ 100.2] oom_reaper: reaped process 4242 (nginx), now anon-rss:0kB",
        "[ 9000.0] Out of memory: Killed process 4242 (nginx) total-vm:1kB",  # pid reused
        "[ 9001.0] nginx[4243]: segfault at 10 ip 00007f sp 00007f error 4",
    ), "dmesg")
    got = oom_events(log, boot=0.0)
    assert [(e.pid, e.comm, round(e.time or 0)) for e in got] == [(4242, "nginx", 100),
                                                                  (4242, "nginx", 9000)]
    assert got[0].line == MSG  # the clearest of the kill's lines


def test_linking_by_pid_and_time() -> None:
    exits = [LogExit(10, 9, 5000, "e.log", "worker process 10 exited on signal 9"),
             LogExit(11, 9, 5000, "e.log", "worker process 11 exited on signal 9"),
             LogExit(12, 11, 5000, "e.log", "worker process 12 exited on signal 11")]
    kills = [OomEvent(10, "nginx", 4999.5, "Killed process 10 (nginx)"),
             OomEvent(11, "nginx", 5000 - 7200, "Killed process 11 (nginx)"),  # long before
             OomEvent(13, "python3", 5000, "Killed process 13 (python3)")]
    got = [(c.pid, c.cause, c.exit is not None, c.kill is not None)
           for c in link_log_crashes(exits, kills)]
    assert got == [(10, "oom-kill", True, True), (11, "sigkill", True, False),
                   (12, "signal", True, False), (11, "oom-kill", False, True)]
    # Without a kernel log, a SIGKILL's cause is unknown.
    assert link_log_crashes(exits[1:2], [], kernel_read=False)[0].cause == "signal"
    assert log_signature(9, "nginx", "oom-kill")[1] == \
        "SIGKILL | program:nginx | OOM killer | no core"
    assert log_signature(9, "nginx")[0] != log_signature(9, "nginx", "oom-kill")[0]
