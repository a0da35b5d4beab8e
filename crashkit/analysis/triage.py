"""What an nginx error log says is wrong: findings with counts, times and fixes.

:data:`PATTERN` is what triage asks the error-log reader to select: one
regex, one alternative per kind of trouble, matched inside the regex engine
so that ordinary lines cost next to nothing. :func:`tally` counts the
selected lines by (kind, detail, rest of line) — distinct lines are far
fewer than lines — and :func:`findings` turns the tally into
:class:`~crashkit.model.triage.Finding` records. Host facts (OOM kills from the
kernel log, who holds a port, a socket's owner) are given to
:func:`add_host_facts` by the caller; nothing here reads the host.

Errors are recognised by errno number, as nginx prints it ("(111: "), not by
the English text that follows.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from crashkit.model.host import OomKill, PortHolder
from crashkit.model.triage import SEVERITY_ORDER, Count, Finding, Severity
from crashkit.nginx.logformat import context_keys, head, parse_time

# What triage selects, after the level and "pid#tid: *conn ": one alternative
# per family of messages, each starting with a literal (or a digit) so that
# the regex engine rejects the other lines at their first byte, none
# scanning back and forth over a line. Each kind ends with an empty named
# group k_<name>, the last group it closes, so that m.lastgroup names it;
# the groups inside a kind are its detail (_INNER).
_BODY = (
    # connect() refused (111), socket file missing (2), permission denied (13:
    # a unix socket's mode, or SELinux on TCP). nginx 1.22 names the peer of
    # unix sockets only ("connect() to unix:/x failed").
    rb"connect\(\)(?: to (?P<peer>\S+))? failed \((?P<cerr>111|2|13): (?P<k_connect>)"
    rb"|upstream (?:timed out \(110: [^)\n]*\) while (?P<phase>connecting|reading|sending)"
    rb"(?P<k_timeout>)|prematurely closed connection(?P<k_closed>))"
    rb"|no live upstreams(?P<k_nolive>)"
    rb"|(?P<wc>\d++) worker_connections are not enough(?P<k_conns>)"
    rb"|bind\(\) to (?P<addr>\S+) failed \(98: (?P<k_bind>)"
    rb"|(?P<proc>worker|cache manager|cache loader|helper) process (?P<spid>\d+) "
    rb"exited on signal (?P<signo>\d+)(?P<core> \(core dumped\))?(?P<k_signal>)"
    # accept4(), open() "…", socket() … failed (24), socketpair() failed while
    # spawning "worker process" (24); recv()/readv() … failed (104) on an
    # upstream connection (client resets are logged at [info]).
    # Possessive (++): a first word not followed by "()" fails at once.
    rb"|(?P<call>\w++)\(\)(?: \"[^\"\n]*\"| to \S+)? failed(?: while [^(\n]*)? \("
    rb"(?:24: (?P<k_nofile>)|104: [^)\n]*\) while [^,\n]*upstream(?P<k_reset>))"
    # nginx gave up binding after its five bind() attempts: one failed start.
    rb"|still could not bind\(\)(?P<k_bindstart>)"
    # Any other [emerg]: nginx refused its configuration (start, reload, -t).
    rb"|(?(lv_emerg)|(?!))(?P<k_emerg>)"
    # Any other [error], [crit] or [alert], except a file that is not there,
    # which is a routine 404: open() "/var/www/favicon.ico" failed (2: …) or
    # (20: Not a directory), and the index module's "…/index.html" is not found (2: …);
    # and the site's own policy at work, logged at [error] by design: limit_req
    # and limit_conn rejections, deny rules, client_max_body_size, autoindex off.
    rb"|(?(lv_high)|(?!))"
    rb"(?!open\(\) \"[^\"\n]*\" failed \((?:2|20): |\"[^\"\n]*\" is not found \(2: "
    rb"|limiting (?:requests|connections)|access forbidden by rule"
    rb"|client intended to send too large body|directory index of \"[^\"\n]*\" is forbidden)"
    rb"(?P<k_other>)"
)
_INNER: dict[str, tuple[str, ...]] = {
    "k_connect": ("peer", "cerr"), "k_timeout": ("phase",), "k_closed": (), "k_nolive": (),
    "k_conns": ("wc",), "k_bind": ("addr",), "k_signal": ("proc", "spid", "signo", "core"),
    "k_nofile": ("call",), "k_reset": (), "k_bindstart": (), "k_emerg": (),
    "k_other": ("lv_high",)}
PATTERN = re.compile(head(("warn",), flagged=("emerg",),
                          sets={"high": ("error", "crit", "alert")}) + b"(?:" + _BODY + b")")
CLIP = 200  # characters of a value (a request, a message) shown; longer ones end in "…"
_CLIP_BYTES = 1024  # bytes of a value kept for counting

_FOLD_AT = 200_000  # distinct lines kept before they are folded into the counters
_TOP_KEEP = 20_000  # entries a top-N counter keeps when it is pruned
TOP = 5

Key = tuple[str, object, bytes]


@dataclass
class _Acc:
    """One finding kind being accumulated (values as bytes until the end)."""

    count: int = 0
    first: bytes | None = None
    last: bytes | None = None
    upstreams: Counter[bytes] = field(default_factory=Counter)
    clients: Counter[bytes] = field(default_factory=Counter)
    requests: Counter[bytes] = field(default_factory=Counter)
    details: dict[str, Counter[bytes]] = field(default_factory=dict)

    def detail(self, name: str, value: bytes, n: int) -> None:
        self.details.setdefault(name, Counter())[value] += n


@dataclass
class Tally:
    accs: dict[str, _Acc] = field(default_factory=dict)
    approximate: bool = False


def _kind(group: str, det: object) -> str:
    """The finding kind of a selected line (group name + its detail)."""
    if group == "k_connect":
        assert isinstance(det, tuple)
        return _CONNECT_KIND[det[1]]
    if group == "k_signal":
        assert isinstance(det, tuple)
        _, _, signo, core = det
        if core:
            return "worker-crash-core"
        return "worker-killed" if signo == b"9" else "worker-crash"
    if group == "k_timeout":
        return "upstream-connect-timeout" if det == b"connecting" else "upstream-timeout"
    if group == "k_other":
        return "other-errors" if det == b"error" else "other-critical"
    return _GROUP_KIND[group]


_CONNECT_KIND = {b"111": "upstream-refused", b"2": "upstream-socket-missing",
                 b"13": "upstream-permission"}
_GROUP_KIND = {"k_reset": "upstream-reset",
               "k_closed": "upstream-closed", "k_nolive": "no-live-upstreams",
               "k_conns": "worker-connections", "k_nofile": "too-many-open-files",
               "k_bind": "bind-in-use", "k_bindstart": "bind-failed-start",
               "k_emerg": "config-error"}
_DETAIL_NAME = {"k_conns": "limits", "k_nofile": "calls", "k_bind": "addresses"}

# The *_timeout family a timed-out upstream obeys, by URL scheme and phase.
_TIMEOUT_MODULE = {b"http": b"proxy", b"https": b"proxy", b"fastcgi": b"fastcgi",
                   b"uwsgi": b"uwsgi", b"suwsgi": b"uwsgi", b"scgi": b"scgi", b"grpc": b"grpc",
                   b"grpcs": b"grpc", b"memcached": b"memcached"}
_TIMEOUT_PHASE = {b"connecting": b"connect_timeout", b"reading": b"read_timeout",
                  b"sending": b"send_timeout"}
# stream {} proxying (an upstream without a scheme): one timeout after connecting
_STREAM_PHASE = {b"connecting": b"stream proxy_connect_timeout",
                 b"reading": b"stream proxy_timeout", b"sending": b"stream proxy_timeout"}

# Numbers in a message (pids, connection ids, addresses, sizes, temp-file
# names, hex codes like OpenSSL's 0A000086), except the errno in "(28: ":
# "other" lines are grouped without them.
_NUMBERS = re.compile(rb"\(\d+: |0x[0-9a-fA-F]+|[0-9][0-9A-Fa-f]*")


def _number_out(m: re.Match[bytes]) -> bytes:
    return m.group() if m.group().startswith(b"(") else b"N"


def normalize(message: bytes) -> bytes:
    """A message without its varying numbers: "pwrite() "/x/N" failed (28: …)"."""
    return _NUMBERS.sub(_number_out, message)


def _clip(value: bytes) -> bytes:
    return value[:_CLIP_BYTES]


def _prune(c: Counter[bytes]) -> bool:
    if len(c) <= 2 * _TOP_KEEP:
        return False
    keep = c.most_common(_TOP_KEEP)
    c.clear()
    c.update(dict(keep))
    return True


def _fold(lines: dict[Key, list[Any]], t: Tally) -> None:
    accs = t.accs
    for (group, det, rest), (n, first, last) in lines.items():
        kind = _kind(group, det)
        acc = accs.get(kind)
        if acc is None:
            acc = accs[kind] = _Acc()
        acc.count += n
        acc.first = first if acc.first is None or first < acc.first else acc.first
        acc.last = last if acc.last is None or last > acc.last else acc.last
        client, request, peer, ctx_start = context_keys(rest)
        if peer is not None:
            acc.upstreams[_clip(peer)] += n
        if client is not None:
            acc.clients[_clip(client)] += n
        if request is not None:
            acc.requests[_clip(request)] += n
        if group == "k_other":
            assert isinstance(det, bytes)
            acc.detail("messages", _clip(normalize(rest[:ctx_start].strip())), n)
            acc.detail("levels", det, n)
        elif det is None:
            if group == "k_emerg":
                acc.detail("messages", _clip(rest[:ctx_start].strip()), n)
        elif group == "k_connect":
            assert isinstance(det, tuple)
            peer_name, errno = det
            if errno != b"111" and peer_name is not None:
                if peer_name.startswith(b"unix:"):
                    acc.detail("sockets", peer_name.removeprefix(b"unix:"), n)
                else:
                    acc.detail("addresses", peer_name, n)
        elif group == "k_signal":
            assert isinstance(det, tuple)
            proc, pid, signo, _ = det
            acc.detail("signals", signo, n)
            acc.detail("pids", pid, n)
            acc.detail("processes", proc + b" process", n)
        elif group == "k_timeout":
            assert isinstance(det, bytes)
            if peer is not None and b"://" not in peer:
                acc.detail("directives", _STREAM_PHASE[det], n)
            else:
                scheme = peer.split(b"://", 1)[0] if peer else b"http"
                acc.detail("directives", _TIMEOUT_MODULE.get(scheme, b"proxy") + b"_" +
                           _TIMEOUT_PHASE[det], n)
        else:
            assert isinstance(det, bytes)
            acc.detail(_DETAIL_NAME[group], det, n)
    lines.clear()
    for acc in accs.values():
        for c in (acc.upstreams, acc.clients, acc.requests, *acc.details.values()):
            t.approximate |= _prune(c)


def tally(hits: Iterable[tuple[bytes, re.Match[bytes], bytes]]) -> Tally:
    """Count the lines :data:`PATTERN` selected (from errorlog.select)."""
    t = Tally()
    # (group, detail, rest of line) -> [count, first time, last time]
    lines: dict[Key, list[Any]] = {}
    inner = _INNER
    for ts, m, rest in hits:
        group = m.lastgroup
        assert group is not None
        names = inner[group]
        key = (group, m.group(*names) if names else None, rest)
        seen = lines.get(key)
        if seen is None:
            lines[key] = [1, ts, ts]
            if len(lines) > _FOLD_AT:
                _fold(lines, t)
        else:
            seen[0] += 1
            if ts > seen[2]:
                seen[2] = ts
            elif ts < seen[1]:
                seen[1] = ts
    _fold(lines, t)
    return t


def merge(tallies: Iterable[Tally]) -> Tally:
    """One tally from the tallies of several parts of the logs."""
    out = Tally()
    for t in tallies:
        out.approximate |= t.approximate
        for kind, acc in t.accs.items():
            into = out.accs.get(kind)
            if into is None:
                out.accs[kind] = acc
                continue
            into.count += acc.count
            if acc.first is not None:
                into.first = acc.first if into.first is None else min(into.first, acc.first)
            if acc.last is not None:
                into.last = acc.last if into.last is None else max(into.last, acc.last)
            into.upstreams.update(acc.upstreams)
            into.clients.update(acc.clients)
            into.requests.update(acc.requests)
            for name, c in acc.details.items():
                into.details.setdefault(name, Counter()).update(c)
    return out


# ---------------------------------------------------------------- findings

@dataclass(frozen=True)
class _Kind:
    severity: Severity
    title: str
    fix: str


_KINDS: dict[str, _Kind] = {
    "worker-crash-core": _Kind(
        "critical", "worker processes crashed and dumped core",
        "A worker died of a signal and the kernel wrote a core. Find the core (nginx's "
        "working_directory, or where kernel.core_pattern sends it) and run "
        "`crashkit analyze CORE` to see which module crashed."),
    "worker-crash": _Kind(
        "critical", "worker processes crashed without a core",
        "A worker died of a signal but no core was written, so the crash cannot be "
        "examined. Run `crashkit setup` (worker_rlimit_core, working_directory, "
        "core_pattern) so the next crash leaves a core for `crashkit analyze`."),
    "worker-killed": _Kind(
        "critical", "worker processes killed by signal 9 (OOM killer suspected)",
        "SIGKILL without a core is usually the kernel's OOM killer: check `dmesg -T | grep "
        "-i oom`. Give the host more memory, or shrink nginx's footprint (proxy_buffers, "
        "client_max_body_size, a leaking third-party module)."),
    "bind-in-use": _Kind(
        "critical", "nginx could not bind its listen address: in use (98)",
        "Another process holds the listen address, so nginx could not start or reload. "
        "Find it with `ss -ltnp` (an old nginx master, Apache, another proxy), stop it "
        "or change the `listen` port."),
    "config-error": _Kind(
        "critical", "nginx rejected its configuration ([emerg])",
        "A start, reload or `nginx -t` failed on the configuration; the running nginx may "
        "still be on the old one. Fix the file and line named in the message and check "
        "with `nginx -t` before reloading."),
    "worker-connections": _Kind(
        "high", "worker_connections are not enough",
        "Each worker ran out of connection slots. Raise `worker_connections` in the events "
        "block, and the open-file limit with it (worker_rlimit_nofile, or LimitNOFILE for "
        "the systemd unit): every connection is a descriptor, two when proxied."),
    "too-many-open-files": _Kind(
        "high", "too many open files (24)",
        "Workers hit their open-file limit. Raise `worker_rlimit_nofile` (or LimitNOFILE / "
        "/etc/security/limits.conf for the nginx user) above twice worker_connections. A "
        "reload (nginx -s reload) applies worker_rlimit_nofile to the new workers; a "
        "changed LimitNOFILE needs a restart of the service."),
    "upstream-refused": _Kind(
        "high", "upstream refused the connection (111) → 502",
        "Nothing listens at the upstream address: the backend is down, restarting, or on "
        "another port. Check the service (`systemctl status …`) and what it listens on "
        "(`ss -ltnp`) against the proxy_pass/fastcgi_pass target."),
    "upstream-socket-missing": _Kind(
        "high", "upstream unix socket does not exist (2) → 502",
        "The backend's socket file is missing: the service is stopped or creates its socket "
        "elsewhere. Start it, or point the *_pass directive at the path it really uses."),
    "upstream-permission": _Kind(
        "high", "permission denied on the upstream unix socket (13) → 502",
        "nginx's worker user cannot open the backend's socket. Make the socket owned by or "
        "writable for that user (PHP-FPM: listen.owner/listen.group/listen.mode), and check "
        "the directories above it; under SELinux allow it (httpd_can_network_connect)."),
    "no-live-upstreams": _Kind(
        "high", "no live upstreams → 502",
        "Every server of an upstream block is marked failed (max_fails/fail_timeout), so "
        "nginx did not even try. Fix the failures reported with it; the servers come back "
        "after fail_timeout."),
    "upstream-connect-timeout": _Kind(
        "high", "upstream connect timed out (110) → 504",
        "The backend did not accept the connection in time: overloaded (full listen "
        "backlog), firewalled, or the host is down. The directive is listed under "
        "directives; in http it cannot usefully exceed 75s, in stream it has no such cap."),
    "upstream-timeout": _Kind(
        "medium", "upstream timed out (110) → 504",
        "The backend accepted the request but answered too slowly. Find the slow requests "
        "in the backend (APM, slow-query logs); raising the *_read_timeout listed under "
        "directives only hides the delay and ties up connections."),
    "upstream-reset": _Kind(
        "medium", "upstream reset the connection (104) → 502",
        "The backend closed the connection abruptly: it crashed, hit a worker limit or was "
        "restarted mid-request. Check the backend's own logs at these times."),
    "other-critical": _Kind(
        "high", "other [crit]/[alert]/[emerg] lines",
        "nginx logged serious errors that triage has no finding for. Read the messages "
        "listed (numbers are shown as N) and the full lines in the log."),
    "other-errors": _Kind(
        "medium", "other [error] lines",
        "nginx logged errors that triage has no finding for: a full disk (28), an "
        "unresolvable name, an oversized or invalid upstream header, a TLS handshake with "
        "the upstream, a temp file it may not write. Read the messages listed (numbers "
        "are shown as N) and the full lines in the log."),
    "upstream-closed": _Kind(
        "medium", "upstream closed the connection early → 502",
        "The backend closed the connection before sending a full response: its worker died "
        "or timed out (PHP max_execution_time, gunicorn timeout). Check its logs."),
}


def _text(b: bytes) -> str:
    text = b.decode("utf-8", "backslashreplace")
    return text if len(text) <= CLIP else text[:CLIP] + "…"


def _tops(c: Counter[bytes], n: int = TOP) -> tuple[Count, ...]:
    return tuple(Count(_text(v), k) for v, k in c.most_common(n))


def _iso(ts: bytes | None) -> str | None:
    return None if ts is None else parse_time(ts).isoformat()


def findings(t: Tally) -> tuple[Finding, ...]:
    """Most severe first, then the most frequent."""
    out = []
    starts = t.accs.get("bind-failed-start")
    for kind, acc in t.accs.items():
        if kind == "bind-failed-start" and "bind-in-use" in t.accs:
            continue  # counted as the starts of bind-in-use
        k = _KINDS["bind-in-use" if kind == "bind-failed-start" else kind]
        details: dict[str, object] = {
            name: [{"value": c.value, "count": c.count}
                   for c in _tops(counter, 50 if name == "pids" else 10)]
            for name, counter in sorted(acc.details.items())}
        count = acc.count
        if kind in ("bind-in-use", "bind-failed-start"):
            # nginx tries bind() five times before it gives up: count the
            # starts (and reloads) that failed, and the attempts apart.
            details["attempts"] = acc.count if kind == "bind-in-use" else 0
            count = starts.count if starts is not None else acc.count
            kind = "bind-in-use"
        out.append(Finding(kind, k.severity, k.title, count, _iso(acc.first),
                           _iso(acc.last), k.fix, _tops(acc.upstreams), _tops(acc.clients),
                           _tops(acc.requests), details))
    out.sort(key=lambda f: (SEVERITY_ORDER[f.severity], -f.count, f.kind))
    return tuple(out)


def killed_pids(fs: Iterable[Finding]) -> set[int]:
    """Pids of workers that died of SIGKILL without a core."""
    pids: set[int] = set()
    for f in fs:
        if f.kind == "worker-killed":
            for entry in f.details.get("pids", ()):  # type: ignore[attr-defined]
                pids.add(int(entry["value"]))
    return pids


def bind_addresses(fs: Iterable[Finding]) -> list[str]:
    for f in fs:
        if f.kind == "bind-in-use":
            return [e["value"] for e in f.details.get("addresses", ())]  # type: ignore[attr-defined]
    return []


def add_host_facts(fs: tuple[Finding, ...], *, oom: Iterable[OomKill] = (),
                   kernel_log: str | None = None, holders: Iterable[PortHolder] = (),
                   sockets: dict[str, dict[str, object]] | None = None,
                   selinux: str | None = None) -> tuple[Finding, ...]:
    """Attach what the host says: OOM-killer lines for killed workers, the
    processes holding addresses nginx could not bind, the owner and mode of
    sockets nginx could not open, and the SELinux mode where it may refuse."""
    oom = list(oom)
    holders = list(holders)
    out = []
    for f in fs:
        details = dict(f.details)
        if f.kind == "worker-killed":
            pids = killed_pids([f])
            matched = [k for k in oom if k.pid in pids]
            details["oom_kills"] = [{"pid": k.pid, "comm": k.comm, "line": k.line}
                                    for k in matched]
            details["oom_confirmed"] = bool(matched)
            details["kernel_log"] = kernel_log
        elif f.kind == "bind-in-use":
            details["holders"] = [{"address": h.address, "pid": h.pid, "comm": h.comm,
                                   "cmdline": h.cmdline} for h in holders]
        elif f.kind == "upstream-permission":
            if sockets:
                details["socket_state"] = [
                    dict(sockets[e["value"]], path=e["value"])
                    for e in details.get("sockets", ())  # type: ignore[attr-defined]
                    if e["value"] in sockets]
            if selinux is not None:
                details["selinux"] = selinux
        out.append(replace(f, details=details))
    return tuple(out)
