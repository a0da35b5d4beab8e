"""``crashkit triage``: the error logs read, the findings made, the host asked.

Glue only: the reading is in crashkit.nginx.errorlog, the judging in
crashkit.analysis.triage, the host facts in crashkit.host.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from crashkit.analysis import triage as analysis
from crashkit.errors import InputError
from crashkit.model.triage import Finding, LogSource, Triage
from crashkit.nginx import errorlog


@dataclass(frozen=True)
class NginxFacts:
    """What the nginx config says that triage uses; all optional."""

    conf: str | None = None
    error_logs: tuple[str, ...] = ()
    worker_user: str | None = None
    working_directory: str | None = None


def nginx_facts(conf: str | None, prefix: str | None = None) -> NginxFacts:
    """Read the config (``--conf``, else nginx -V's, else Debian's) when it can
    be read; an explicit ``--conf`` that cannot be read is an error."""
    from crashkit.nginx import config

    try:
        _where, cfg = config.open_config(conf, prefix=prefix)
    except InputError:
        if conf is not None:
            raise
        return NginxFacts()
    logs = tuple(t.path for t in config.error_logs(cfg)
                 if t.path != "stderr" and not t.path.startswith(("syslog:", "memory:")))
    wd = cfg.find("working_directory", ())
    return NginxFacts(cfg.root, logs, config.worker_user(cfg).user,
                      config.resolve(cfg, wd[-1].args[0]) if wd and wd[-1].args else None)


def default_logs(facts: NginxFacts) -> list[str]:
    """The config's error logs that exist (each once), else Debian's default."""
    seen = []
    for p in facts.error_logs:
        if os.path.exists(p) and p not in seen:
            seen.append(p)
    return seen or [errorlog.DEFAULT_ERROR_LOG]


def missing_logs(facts: NginxFacts | None, paths: Sequence[str]) -> tuple[str, ...]:
    """Notes on the config's error logs that do not exist (a relative
    "logs/error.log" is under the prefix nginx -V names), and on the log read
    in their place."""
    if facts is None:
        return ()
    notes = [f"error_log {p} of {facts.conf} does not exist" for p in
             dict.fromkeys(facts.error_logs) if not os.path.exists(p)]
    if notes and errorlog.DEFAULT_ERROR_LOG in paths and \
            errorlog.DEFAULT_ERROR_LOG not in facts.error_logs:
        notes.append(f"none of the config's error logs exists: read "
                     f"{errorlog.DEFAULT_ERROR_LOG} instead")
    return tuple(notes)


def jobs_default() -> int:
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    return max(1, min(cpus, 4))


def _cores_for(finding: Finding, facts: NginxFacts) -> list[str]:
    """Core files on this host that may be those of the crashed workers."""
    from crashkit.host.proc import read_sysctl

    pattern = read_sysctl("kernel.core_pattern") or "core"
    pids = [str(e["value"]) for e in finding.details.get("pids", ())]  # type: ignore[attr-defined]
    return core_files(pattern, pids, facts.working_directory)


def _with_cores(f: Finding, facts: NginxFacts) -> Finding:
    cores = _cores_for(f, facts)
    details: dict[str, object] = {**f.details, "cores": cores}
    if not cores:
        details["core_missing"] = missing_core(facts)
    return replace(f, details=details)


def missing_core(facts: NginxFacts) -> str:
    """Where the kernel should have put the cores error.log says were dumped,
    and why none is there, from the host's core settings."""
    import pwd

    from crashkit.host import proc
    from crashkit.host.cores import pipe_handler
    from crashkit.model.readiness import COREDUMP_SOCKET, core_target

    pattern = proc.read_sysctl("kernel.core_pattern")
    if pattern is None:
        return "no core found, and kernel.core_pattern cannot be read here"
    if pattern.startswith("|"):
        found, runnable, socket = pipe_handler(pattern)
        program = found or "?"
        if not runnable:
            return (f"kernel.core_pattern pipes cores to {program}, which does not exist or "
                    "is not executable: the kernel dropped them")
        if socket is not None:
            if not socket:
                return (f"cores are piped to systemd-coredump, whose service socket "
                        f"{COREDUMP_SOCKET} does not exist: they were lost")
            return ("cores are piped to systemd-coredump: they are in "
                    "/var/lib/systemd/coredump (coredumpctl list nginx)")
        where = core_target(pattern, "")
        return f"cores are piped to {program} ({pattern!r}): look where it stores them" + (
            f" ({where})" if "apport" in program else "")
    directory = core_target(pattern, facts.working_directory or "")
    if not directory:
        return (f"cores go to the crashing worker's working directory as {pattern!r}, and "
                "the config sets no working_directory: workers keep the master's (/ when "
                "systemd starts it), where the worker user cannot write; set "
                "working_directory (crashkit setup)")
    if not os.path.isdir(directory):
        return f"cores go to {directory}, which does not exist"
    try:
        pw = pwd.getpwnam(facts.worker_user) if facts.worker_user else None
    except KeyError:
        pw = None
    if pw is not None and proc.user_can_write(directory, pw.pw_uid, pw.pw_gid) is False:
        return (f"cores go to {directory}, where the worker user {facts.worker_user} cannot "
                "write")
    return (f"cores go to {directory} as {pattern!r}, and none for these pids is there: "
            "removed or overwritten since (kernel.core_uses_pid 0 names every core alike), "
            "or cut to nothing by worker_rlimit_core")


def core_files(pattern: str, pids: Sequence[str], working_directory: str | None) -> list[str]:
    """The files kernel.core_pattern ``pattern`` gives for these pids, that exist."""
    candidates: list[str] = []
    if pattern.startswith("|"):
        return []
    for pid in pids:
        name = pattern.replace("%p", pid).replace("%%", "%")
        if "%" in name:  # other specifiers (%e, %t): look for the pid in a name
            directory = os.path.dirname(name) if name.startswith("/") else working_directory
            if directory and os.path.isdir(directory):
                own = re.compile(rf"(?<![0-9]){pid}(?![0-9])")  # pid 12: not core.1234
                candidates += [os.path.join(directory, f) for f in sorted(os.listdir(directory))
                               if f.startswith("core") and own.search(f)]
            continue
        if name.startswith("/"):
            candidates.append(name)
        elif working_directory:
            candidates += [os.path.join(working_directory, name),
                           os.path.join(working_directory, f"{name}.{pid}")]
    out = []
    for c in candidates:
        if os.path.isfile(c) and c not in out:
            out.append(c)
    return out


@dataclass(frozen=True)
class Options:
    error_logs: tuple[str, ...] = ()  # empty: the config's error logs, else Debian's
    since: datetime | None = None
    conf: str | None = None
    prefix: str | None = None
    jobs: int | None = None  # None: the CPUs, at most 4


def run(options: Options) -> Triage:
    if options.prefix is not None and not os.path.isdir(options.prefix):
        raise InputError("--prefix: no such directory", path=options.prefix)
    facts = nginx_facts(options.conf, options.prefix) \
        if options.conf or not options.error_logs else None
    paths = list(options.error_logs) or default_logs(facts or NginxFacts())
    return scan(paths, since=options.since, facts=facts, jobs=options.jobs or jobs_default())


def scan(paths: Sequence[str], *, since: datetime | None, facts: NginxFacts | None,
         jobs: int) -> Triage:
    """``facts`` None: read the default config only if a finding needs it."""
    notes = missing_logs(facts, paths)
    unique = list(dict.fromkeys(os.path.abspath(p) for p in paths))
    key = errorlog.since_key(since) if since is not None else None
    try:
        tasks = errorlog.plan(unique, jobs)
    except InputError as exc:
        # The log read in place of the config's missing ones is missing too.
        if notes and exc.path not in (facts.error_logs if facts else ()):
            raise InputError(f"{exc.message}; {notes[0]}", path=exc.path) from None
        raise
    tallies, stats = errorlog.reduce_tasks(tasks, analysis.PATTERN, key, analysis.tally, jobs)
    tally = analysis.merge(tallies)
    found = analysis.findings(tally)

    kernel_source = "not needed (no worker killed by signal 9)"
    oom = []
    if analysis.killed_pids(found):
        from crashkit.host.kernlog import oom_kills, read_kernel_log

        klog = read_kernel_log()
        kernel_source = klog.source
        oom = oom_kills(klog.lines)
    holders = []
    addresses = analysis.bind_addresses(found)
    if addresses:
        from crashkit.host.sockets import holders as port_holders

        holders = port_holders(addresses)
    if facts is None and any(f.kind in ("upstream-permission", "worker-crash-core")
                             for f in found):
        facts = nginx_facts(None)
    facts = facts or NginxFacts()
    sockets: dict[str, dict[str, object]] = {}
    selinux = None
    for f in found:
        if f.kind == "upstream-permission":
            from crashkit.host.sockets import selinux_mode

            selinux = selinux_mode()
            sockets = {str(e["value"]): socket_state(str(e["value"]), facts.worker_user)
                       for e in f.details.get("sockets", ())}  # type: ignore[attr-defined]
    found = analysis.add_host_facts(found, oom=oom, kernel_log=kernel_source,
                                    holders=holders, sockets=sockets, selinux=selinux)
    found = tuple(_with_cores(f, facts) if f.kind == "worker-crash-core" else f
                  for f in found)
    return Triage(
        findings=found,
        sources=tuple(LogSource(s.path, s.compressed, s.bytes_read, s.truncated)
                      for s in stats.files),
        since=analysis.local_iso(since.replace(microsecond=0)) if since else None,
        garbage_lines=stats.garbage_lines, skipped_bytes=stats.skipped_bytes,
        seconds=stats.seconds, kernel_log=kernel_source,
        approximate_tops=tally.approximate, notes=notes)


def socket_state(path: str, user: str | None) -> dict[str, object]:
    """Owner, group and mode of a unix socket, and whether ``user`` can connect."""
    import grp
    import pwd
    import stat

    from crashkit.host.sockets import connect_as

    try:
        st = os.stat(path)
    except OSError as exc:
        return {"exists": False, "error": exc.strerror}

    try:
        owner = pwd.getpwuid(st.st_uid).pw_name
    except KeyError:
        owner = str(st.st_uid)
    try:
        group = grp.getgrgid(st.st_gid).gr_name
    except KeyError:
        group = str(st.st_gid)
    state: dict[str, object] = {
        "exists": True, "owner": owner, "group": group,
        "mode": f"{stat.S_IMODE(st.st_mode):04o}",
        "is_socket": stat.S_ISSOCK(st.st_mode), "user": user}
    if user:
        err = connect_as(path, user)
        state["user_connect_errno"] = err
    return state
