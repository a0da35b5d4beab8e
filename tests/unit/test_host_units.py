"""Pure parts of triage's and doctor's host readers and judgments."""

from __future__ import annotations

from crashkit.analysis import doctor
from crashkit.analysis.conditions import KILLED_BY_OOM, KILLED_FROM_OUTSIDE
from crashkit.analysis.triage import add_host_facts, findings, tally
from crashkit.host.kernlog import oom_kills
from crashkit.host.sockets import _hex_ip, split_address
from crashkit.model.doctor import DoctorFacts, ListenState, UpstreamProbe, WorkerLimits
from crashkit.model.host import OomKill, PortHolder

# The shapes the kernel prints (mm/oom_kill.c, 4.x to 6.x)
KERNEL = [
    "oom-kill:constraint=CONSTRAINT_NONE,nodemask=(null),cpuset=/,mems_allowed=0,global_oom,"
    "task_memcg=/system.slice/nginx.service,task=nginx,pid=4242,uid=33",
    "Out of memory: Killed process 4242 (nginx) total-vm:1843236kB, anon-rss:1702344kB, "
    "file-rss:0kB, shmem-rss:0kB, UID:33 pgtables:3456kB oom_score_adj:0",
    "Memory cgroup out of memory: Killed process 777 (php-fpm8.2) total-vm:1kB",
    "Out of memory: Kill process 31337 (nginx) score 911 or sacrifice child",
    "oom_reaper: reaped process 4242 (nginx), now anon-rss:0kB, file-rss:0kB",
    "Killed process 5 (bash) total-vm:1kB",  # not said to be the OOM killer's
    "usb 1-1: new high-speed USB device number 2",
]


def test_oom_kills_from_kernel_lines() -> None:
    kills = {k.pid: k for k in oom_kills(KERNEL)}
    assert sorted(kills) == [777, 4242, 31337]
    assert kills[4242].comm == "nginx" and kills[4242].line.startswith("Out of memory: Killed")
    assert kills[777].comm == "php-fpm8.2"


def test_killed_worker_matched_to_the_oom_line() -> None:
    import re

    from crashkit.analysis.triage import PATTERN

    line = (b"\n2026/11/24 04:35:59 [alert] 4240#4240: worker process 4242 exited on signal 9"
            b"\n2026/11/24 04:36:01 [alert] 4240#4240: worker process 4243 exited on signal 9\n")
    hits = []
    for m in PATTERN.finditer(line):
        p, e = m.span()
        hits.append((line[p - 20:p - 1], m, line[e:line.find(b"\n", e)]))
    assert isinstance(hits[0][1], re.Match)
    (f,) = add_host_facts(findings(tally(hits)), oom=oom_kills(KERNEL))
    assert f.kind == "worker-killed" and f.count == 2
    assert f.details["oom_confirmed"] is True
    assert [k["pid"] for k in f.details["oom_kills"]] == [4242]  # type: ignore[union-attr]
    assert (f.title, f.fix) == KILLED_BY_OOM
    # No OOM-killer line for these pids in a kernel log that was read: killed
    # from outside, and the fix is not "more memory".
    (out,) = add_host_facts(findings(tally(hits)), oom=(), kernel_log="/dev/kmsg")
    assert out.title == ("worker processes killed by SIGKILL from outside nginx "
                         "(no OOM-killer record)")
    assert (out.title, out.fix) == KILLED_FROM_OUTSIDE and "memory" not in out.fix
    # The kernel log unreadable: the OOM killer is not ruled out.
    (unknown,) = add_host_facts(findings(tally(hits)), oom=(),
                                kernel_log="unreadable (dmesg: Operation not permitted)")
    assert unknown.title == "worker processes killed by signal 9 (OOM killer suspected)"


def test_proc_net_addresses() -> None:
    assert _hex_ip("0100007F") == "127.0.0.1"
    assert _hex_ip("00000000000000000000000000000000") == "::"
    assert _hex_ip("00000000000000000000000001000000") == "::1"
    assert split_address("127.0.0.1:8080") == ("127.0.0.1", 8080)
    assert split_address("[::]:443") == ("::", 443)
    assert split_address("80") == (None, 80)
    assert split_address("*:80") == (None, 80)
    assert split_address("unix:/run/x.sock") is None


def facts(**kw: object) -> DoctorFacts:
    base: dict[str, object] = dict(
        conf="/etc/nginx/nginx.conf", nginx_t_ok=True, nginx_t_output="", pid_file="/run/n.pid",
        master_pid=10, worker_pids=(11, 12), expected_workers=2, worker_user="www-data",
        worker_connections=1024, worker_rlimit_nofile=None,
        limits=(WorkerLimits(11, 4096, 4096), WorkerLimits(12, 4096, 4096)),
        listens=(), upstreams=(), kernel_log="/dev/kmsg", kernel_log_read=True, oom_kills=())
    base.update(kw)
    return DoctorFacts(**base)  # type: ignore[arg-type]


def test_nofile_against_worker_connections() -> None:
    assert doctor.check_nofile(facts()).status == "ok"
    low = doctor.check_nofile(facts(limits=(WorkerLimits(11, 512, 4096),)))
    assert low.status == "fail" and "512" in low.summary
    up = UpstreamProbe("127.0.0.1:9000", "x:1", "fastcgi_pass", "127.0.0.1:9000", 0)
    tight = doctor.check_nofile(facts(upstreams=(up,),
                                      limits=(WorkerLimits(11, 1500, 4096),)))
    assert tight.status == "warn" and tight.details["needed"] == 2048


def test_listen_states() -> None:
    mine = ListenState("0.0.0.0:80", "n.conf:9", (PortHolder("0.0.0.0:80", 10, "nginx",
                                                                      "nginx: master"),))
    theirs = ListenState("0.0.0.0:443", "n.conf:10",
                                (PortHolder("0.0.0.0:443", 99, "apache2", "apache2"),))
    nobody = ListenState("127.0.0.1:81", "n.conf:11", ())
    assert doctor.check_listen(facts(listens=(mine,))).status == "ok"
    c = doctor.check_listen(facts(listens=(mine, theirs, nobody)))
    assert c.status == "fail"
    assert [r["state"] for r in c.details["listens"]] == [  # type: ignore[union-attr]
        "nginx", "held by another process", "not listening"]
    stopped = doctor.check_listen(facts(master_pid=None, worker_pids=(), listens=(nobody,)))
    assert stopped.status == "ok" and "free" in stopped.summary


def test_oom_check() -> None:
    assert doctor.check_oom(facts()).status == "ok"
    k = OomKill(11, "nginx", "Out of memory: Killed process 11 (nginx)")
    assert doctor.check_oom(facts(oom_kills=(k,))).status == "warn"
    assert doctor.check_oom(facts(kernel_log_read=False,
                                  kernel_log="unreadable (dmesg: Operation not permitted)")
                            ).status == "skip"
