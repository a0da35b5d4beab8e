"""``crashkit doctor``'s judgments: host facts in, :class:`~crashkit.model.triage.Check` out.

Pure functions over :class:`DoctorFacts`, which crashkit.commands.doctor gathers from
the live host (nginx -t, /proc, the kernel log, connects to upstreams).
"""

from __future__ import annotations

from crashkit.model.doctor import Check, DoctorFacts
from crashkit.model.words import plural


def check_nginx_t(f: DoctorFacts) -> Check:
    if f.nginx_t_ok:
        return Check("nginx-t", "ok", "nginx -t: the configuration is valid")
    lines = [ln for ln in f.nginx_t_output.splitlines() if ln.strip()]
    # nginx's reason is its [emerg] line; "syntax is ok" may come before it.
    reason = next((ln for ln in lines if "[emerg]" in ln or "[crit]" in ln or "[alert]" in ln),
                  lines[-1] if lines else "no output")
    reason = reason.split("] ", 1)[-1].split(": ", 1)[-1] if "] " in reason else reason
    return Check("nginx-t", "fail", "nginx -t fails: " + reason,
                 fix="fix the file and line nginx names, then run nginx -t again",
                 details={"output": f.nginx_t_output})


def check_master(f: DoctorFacts) -> Check:
    if f.master_pid is None and f.pid_file_other_conf is not None:
        return Check("master", "fail", f"no nginx master runs {f.conf}: the master in "
                     f"{f.pid_file} runs {f.pid_file_other_conf}",
                     fix=f"start nginx with this config (nginx -c {f.conf}), with a pid "
                         f"directive of its own so that it does not share {f.pid_file}",
                     details={"pid_file": f.pid_file, "pid": None,
                              "pid_file_runs": f.pid_file_other_conf})
    if f.master_pid is None:
        return Check("master", "fail", f"nginx is not running (no live master in {f.pid_file})",
                     fix="start nginx (systemctl start nginx) and read the error log if it "
                         "fails (crashkit triage)",
                     details={"pid_file": f.pid_file, "pid": None})
    return Check("master", "ok", f"master process {f.master_pid} (pid file {f.pid_file})",
                 details={"pid_file": f.pid_file, "pid": f.master_pid})


def check_workers(f: DoctorFacts) -> Check:
    details: dict[str, object] = {"pids": list(f.worker_pids), "expected": f.expected_workers}
    if f.master_pid is None:
        return Check("workers", "skip", "nginx is not running", details=details)
    n = len(f.worker_pids)
    if n == 0:
        return Check("workers", "fail", f"the master {f.master_pid} has no worker processes",
                     fix="read the error log (crashkit triage): workers that die at start "
                         "say why there", details=details)
    if n < f.expected_workers:
        return Check("workers", "warn", f"{plural(n, 'worker process', 'worker processes')}, "
                     "the config asks for "
                     f"{f.expected_workers}", fix="read the error log (crashkit triage) for "
                     "workers exiting on a signal", details=details)
    return Check("workers", "ok", f"{plural(n, 'worker process', 'worker processes')} "
                 f"({', '.join(map(str, f.worker_pids))})", details=details)


def check_listen(f: DoctorFacts) -> Check:
    nginx_pids = ({f.master_pid} if f.master_pid else set()) | set(f.worker_pids)
    rows = []
    bad = []
    for ls in f.listens:
        others = [h for h in ls.holders if h.pid not in nginx_pids]
        mine = [h for h in ls.holders if h.pid in nginx_pids]
        if others:
            state = "held by another process"
            bad.append(f"{ls.address} is held by pid {others[0].pid} ({others[0].comm})")
        elif f.master_pid is None:
            state = "free"
        elif mine:
            state = "nginx"
        else:
            state = "not listening"
            bad.append(f"nobody listens on {ls.address} ({ls.where})")
        rows.append({"address": ls.address, "where": ls.where, "state": state,
                     "holders": [{"pid": h.pid, "comm": h.comm, "address": h.address}
                                 for h in ls.holders]})
    details: dict[str, object] = {"listens": rows}
    if not f.listens:
        return Check("listen", "skip", "no TCP listen directives in the config",
                     details=details)
    if bad:
        held = any(r["state"] == "held by another process" for r in rows)
        unbound = any(r["state"] == "not listening" for r in rows)
        fixes = []
        if held:
            fixes.append("stop the other process or move one of them to another port "
                         "(ss -ltnp shows who listens where)")
        if unbound:
            fixes.append("the running master has not loaded these listen directives: "
                         "nginx -t, then reload nginx (nginx -s reload), and read the error "
                         "log (crashkit triage) if the reload fails")
        return Check("listen", "fail", "; ".join(bad), fix="; ".join(fixes), details=details)
    what = "free for nginx to bind" if f.master_pid is None else "listened on by nginx"
    return Check("listen", "ok", f"{plural(len(f.listens), 'address', 'addresses')} {what}: "
                 + ", ".join(ls.address for ls in f.listens), details=details)


def check_nofile(f: DoctorFacts) -> Check:
    wc = f.worker_connections
    proxies = bool(f.upstreams)
    need = 2 * wc if proxies else wc
    details: dict[str, object] = {
        "worker_connections": wc, "worker_rlimit_nofile": f.worker_rlimit_nofile,
        "needed": need,
        "workers": [{"pid": w.pid, "soft": w.nofile_soft, "hard": w.nofile_hard}
                    for w in f.limits]}
    if not f.limits:
        return Check("nofile", "skip", "no running workers to read limits from",
                     details=details)
    low = [w for w in f.limits if w.nofile_soft is not None and w.nofile_soft < wc]
    tight = [w for w in f.limits if w.nofile_soft is not None and w.nofile_soft < need]
    fix = (f"set worker_rlimit_nofile {max(need, 1024)}; in the main context (or LimitNOFILE "
           "for the systemd unit) and restart nginx")
    if low:
        return Check("nofile", "fail", f"worker {low[0].pid} may open {low[0].nofile_soft} "
                     f"files but worker_connections is {wc}", fix=fix, details=details)
    if tight:
        return Check("nofile", "warn", f"worker {tight[0].pid} may open "
                     f"{tight[0].nofile_soft} files; with upstreams each of the "
                     f"{wc} connections can take two", fix=fix, details=details)
    soft = min((w.nofile_soft for w in f.limits if w.nofile_soft is not None), default=None)
    return Check("nofile", "ok", f"workers may open {soft if soft else 'unlimited'} files "
                 f"(worker_connections {wc})", details=details)


_ERRNO_TEXT = {0: "reachable", 2: "no such socket", 13: "permission denied",
               110: "timed out", 111: "connection refused", 113: "no route to host"}


def check_upstreams(f: DoctorFacts) -> Check:
    rows = [{"target": u.target, "where": u.where, "kind": u.kind, "address": u.address,
             "errno": u.errno, "result": (_ERRNO_TEXT.get(u.errno, f"errno {u.errno}")
                                          if u.errno is not None else "not probed"),
             "note": u.note} for u in f.upstreams]
    details: dict[str, object] = {"upstreams": rows, "worker_user": f.worker_user}
    probed = [u for u in f.upstreams if u.errno is not None]
    if not probed:
        return Check("upstreams", "skip", "no upstream addresses to probe" if not f.upstreams
                     else "no upstream address could be probed (names, variables)",
                     details=details)
    bad = [u for u in probed if u.errno != 0]
    if bad:
        parts = [f"{u.address}: {_ERRNO_TEXT.get(u.errno or 0, f'errno {u.errno}')}"
                 + (f" for {f.worker_user}" if u.errno == 13 else "") for u in bad]
        return Check("upstreams", "fail", "; ".join(parts),
                     fix="start the backend or fix the address (ss -ltnp); for a unix socket "
                         f"let {f.worker_user} write it (owner/group/mode, e.g. PHP-FPM "
                         "listen.owner)", details=details)
    return Check("upstreams", "ok",
                 f"{plural(len(probed), 'upstream address', 'upstream addresses')} reachable",
                 details=details)


def check_oom(f: DoctorFacts) -> Check:
    details: dict[str, object] = {"kernel_log": f.kernel_log, "kills": [
        {"pid": k.pid, "comm": k.comm, "line": k.line} for k in f.oom_kills]}
    if not f.kernel_log_read:
        return Check("oom", "skip", f"kernel log {f.kernel_log}", details=details)
    if f.oom_kills:
        return Check("oom", "warn", f"the OOM killer killed nginx "
                     f"{plural(len(f.oom_kills), 'time')} since boot "
                     f"({'pid' if len(f.oom_kills) == 1 else 'pids'} "
                     + ", ".join(str(k.pid) for k in f.oom_kills[:5]) + ")",
                     fix="add memory, or reduce nginx's (proxy_buffers, client_max_body_size, "
                         "a leaking module)", details=details)
    return Check("oom", "ok", "no nginx process killed by the OOM killer since boot",
                 details=details)


def judge(f: DoctorFacts) -> tuple[Check, ...]:
    return (check_nginx_t(f), check_master(f), check_workers(f), check_listen(f),
            check_nofile(f), check_upstreams(f), check_oom(f), *f.core_checks)
