"""``crashkit doctor``: the live host's facts gathered, then judged.

The facts come from readers (the nginx config, ``nginx -t``, /proc, the
kernel log, a connect to each upstream); crashkit.analysis.doctor judges
them. Core-dump readiness is ``crashkit setup``'s own dry run.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass

from crashkit.analysis.doctor import judge
from crashkit.errors import CrashkitError, InputError
from crashkit.model.doctor import (
    Check,
    Doctor,
    DoctorFacts,
    ListenState,
    UpstreamProbe,
    WorkerLimits,
)
from crashkit.model.nginx import NginxConfig
from crashkit.nginx import config

_CONNECT_TIMEOUT = 1.0
_DEFAULT_PORT = {"http": 80, "https": 443, "grpc": 80, "grpcs": 443, "uwsgi": 80, "suwsgi": 80}


def _nginx_t(nginx: str, cfg: NginxConfig) -> tuple[bool, str, str | None]:
    """(passed, nginx's output, the error when it failed)."""
    from crashkit.writers.config import ValidationError, nginx_test

    try:
        return True, nginx_test(nginx, cfg.root, cfg=cfg), None
    except ValidationError as exc:
        return False, exc.output or str(exc), str(exc)
    except CrashkitError as exc:
        return False, str(exc), str(exc)


def _probe_tcp(host: str, port: int) -> int:
    try:
        with socket.create_connection((host, port), timeout=_CONNECT_TIMEOUT):
            return 0
    except TimeoutError:
        return 110
    except OSError as exc:
        return exc.errno or 111


def _address(target: str, kind: str, upstream_names: set[str]) -> tuple[str | None, str]:
    """(host:port or unix:path, note) of an upstream target; None when it is
    not a fixed address."""
    if "$" in target:
        return None, "uses variables: resolved per request"
    scheme, sep, rest = target.partition("://")
    if not sep:
        scheme, rest = "", target
    if rest.startswith("unix:"):
        path = config.unix_socket(target) or rest[5:]
        return f"unix:{path}", ""
    hostport = rest.split("/", 1)[0]
    if kind != "server" and scheme and hostport in upstream_names:
        return None, f"the upstream block {hostport!r}: its servers are probed"
    if hostport.startswith("["):  # [::1]:8080
        inside, _, port = hostport[1:].partition("]")
        host, port = f"[{inside}]", port.lstrip(":")
    else:
        host, _, port = hostport.partition(":")
    if not port:
        default = _DEFAULT_PORT.get(scheme, 80 if kind == "server" else None)
        if default is None:
            return None, "no port"
        port = str(default)
    if not port.isdigit():
        return None, f"not an address: {hostport!r}"
    return f"{host}:{port}", ""


def probe_upstreams(cfg: NginxConfig, user: str) -> tuple[UpstreamProbe, ...]:
    from crashkit.host.sockets import connect_as

    names = {u.args[0] for u in cfg.find("upstream") if u.args}
    seen: dict[str, int | None] = {}
    out = []
    for t in config.upstream_targets(cfg):
        address, note = _address(t.target, t.kind, names)
        errno = None
        if address is not None:
            if address not in seen:
                if address.startswith("unix:"):
                    seen[address] = connect_as(address[5:], user)
                else:
                    host, _, port = address.rpartition(":")
                    seen[address] = _probe_tcp(host.strip("[]"), int(port))
            errno = seen[address]
            if errno is None:
                note = "cannot connect as the worker user (not root?)"
        out.append(UpstreamProbe(t.target, t.directive.where, t.kind, address, errno, note))
    return tuple(out)


def _core_checks(cfg: NginxConfig, failed: str | None) -> tuple[Check, ...]:
    """Core-dump readiness (what setup's dry run judges): would setup change
    the config, and the OS checks. ``failed``: why nginx -t failed."""
    from crashkit.commands.setup import readiness
    from crashkit.writers.coredir import resolve_worker

    try:
        if failed is not None:
            raise CrashkitError(failed)
        r = readiness(cfg, resolve_worker(config.worker_user(cfg)),
                      config.worker_process_count(cfg))
    except CrashkitError as exc:
        return (Check("cores", "skip", f"core-dump readiness not checked: {exc}"),)
    changes = [e.path for e in r.plan.edits]
    d = r.core_dir
    nginx_ready = not changes and d.worker_can_write is not False
    first = Check(
        "cores", "ok" if nginx_ready else "warn",
        f"worker_rlimit_core and working_directory {d.path if d else '?'} serve for cores"
        if nginx_ready else "nginx is not set up to leave usable cores"
        + (f" (crashkit setup would change {', '.join(changes)})" if changes else ""),
        fix=None if nginx_ready else "crashkit setup (dry run: shows the diff), then --apply",
        details={"core_dir": d.path if d else None, "would_change": changes})
    return (first, *(Check(f"cores:{c.name}", c.status, c.detail, c.fix) for c in r.checks))


def _master_conf(pid: int, cfg: NginxConfig) -> str | None:
    """The config file master ``pid`` runs (its title keeps -c and -p; no -c:
    the build's --conf-path), resolved; None when its title cannot be read."""
    from crashkit.host.proc import title

    text = title(pid)
    head = "nginx: master process "
    if text is None or not text.startswith(head):
        return None
    # nginx joins its arguments with spaces: a path with a space is lost.
    words = text[len(head):].split(" ")
    opts = {flag: words[i + 1] for i, flag in enumerate(words[:-1]) if flag in ("-c", "-p")}
    build = cfg.build
    conf = opts.get("-c") or (build.conf_path if build is not None else None)
    if conf is None:
        return None
    if not os.path.isabs(conf):
        prefix = opts.get("-p") or (build.prefix if build is not None else None) or "/"
        conf = os.path.join(prefix, conf)
    return os.path.realpath(conf)


def find_master(cfg: NginxConfig, pid_file: str) -> tuple[int | None, str | None]:
    """(the live master running this config, the other config run by the
    master in ``pid_file`` when that one is not it). A pid file names the
    master of this config only if that master runs this file: a config
    without ``pid`` shares the build's pid file with the system's nginx, and
    a copy of a config shares its original's."""
    from crashkit.host.proc import nginx_master, pids

    want = os.path.realpath(cfg.root)
    master = nginx_master(pid_file)
    if master is None:
        return None, None
    runs = _master_conf(master, cfg)
    if runs is None or runs == want:
        return master, None
    for pid in pids():
        if pid != master and _master_conf(pid, cfg) == want:
            return pid, runs
    return None, runs


@dataclass(frozen=True)
class Options:
    conf: str | None = None  # None: nginx -V's --conf-path
    nginx: str = "nginx"
    prefix: str | None = None


def run(options: Options) -> Doctor:
    conf, nginx, prefix = options.conf, options.nginx, options.prefix
    if prefix is not None and not os.path.isdir(prefix):
        raise InputError("--prefix: no such directory", path=prefix)
    from crashkit.host.kernlog import oom_kills, read_kernel_log
    from crashkit.host.proc import children, proc_limits
    from crashkit.host.sockets import holders_by_address

    _where, cfg = config.open_config(conf, nginx, prefix)
    ok, output, failed = _nginx_t(nginx, cfg)
    pid_file = config.pid_path(cfg)
    master, other_conf = find_master(cfg, pid_file)
    user = config.worker_user(cfg).user
    workers: list[int] = []
    if master is not None:
        from crashkit.host.proc import process_name

        workers = [pid for pid in children(master)
                   if "worker process" in process_name(pid)[1]]
    limits = []
    for pid in workers:
        lim = proc_limits(pid, "Max open files")
        if lim is not None:
            limits.append(WorkerLimits(pid, *lim))
    tcp = [ls for ls in config.listens(cfg) if not ls.address.startswith("unix:")]
    held = holders_by_address([ls.address for ls in tcp])
    listens = tuple(ListenState(ls.address, ls.directive.where, tuple(held[ls.address]))
                    for ls in tcp)
    klog = read_kernel_log()
    kills = tuple(k for k in oom_kills(klog.lines) if "nginx" in k.comm)
    facts = DoctorFacts(
        conf=cfg.root, nginx_t_ok=ok, nginx_t_output=output, pid_file=pid_file,
        master_pid=master, pid_file_other_conf=other_conf, worker_pids=tuple(sorted(workers)),
        expected_workers=config.worker_process_count(cfg), worker_user=user,
        worker_connections=config.worker_connections(cfg),
        worker_rlimit_nofile=config.worker_rlimit_nofile(cfg), limits=tuple(limits),
        listens=listens, upstreams=probe_upstreams(cfg, user), kernel_log=klog.source,
        kernel_log_read=bool(klog.lines) or not klog.source.startswith("unreadable"),
        oom_kills=kills, core_checks=_core_checks(cfg, failed))
    return Doctor(cfg.root, judge(facts))
