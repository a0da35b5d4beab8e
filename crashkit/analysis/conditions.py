"""The registry of error.log conditions triage knows: one record each.

A :class:`Condition` is one alternative of the pattern triage selects lines
with (its regex, with named groups for its detail), the finding kinds it
produces (:class:`Kind`: severity, title, fix, the detail keys it fills, the
host facts it needs), how a line's detail picks one of its kinds, what it
adds to the finding's details, and an example line nginx writes for each of
its kinds. Everything else is derived from :data:`CONDITIONS`: the compiled
:data:`PATTERN` (byte for byte the hand-written one it replaced), the kinds
(:data:`KINDS`: ``crashkit triage --help`` lists them, the JSON schema's
enum is checked against them in tests/unit), the per-group tables
:mod:`crashkit.analysis.triage` counts with, which finding gets which host
fact, and the text output's per-kind note.

Adding a condition is one entry here (its regex, kinds, examples) plus its
kind in schema/triage-1.json's enum and the README's table; the generic test
(tests/unit/test_triage_registry.py) runs every example through the scanner.

The regex is matched after the level and "pid#tid: *conn ". It starts with a
literal (or a digit) so that the regex engine rejects the other lines at
their first byte, and never scans back and forth over a line. Errors are
recognised by errno number, as nginx prints it ("(111: "), not by the
English text that follows. The order of :data:`CONDITIONS` is the order of
the alternatives: the catch-alls (``emerg``, ``other``) come last.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from crashkit.formats.nginx_log import head
from crashkit.model.triage import Severity

# What a finding may need from the host triage runs on, beyond the log:
# the kernel log (OOM-killer lines), who listens on an address, a unix
# socket's owner and mode as the worker user sees it, the SELinux mode, the
# nginx config (worker user, working_directory for cores).
HostFact = Literal["kernel-log", "port-holders", "socket-state", "selinux", "config"]

# Adds one detail value: (detail name, value, count) -> None (an _Acc's .detail).
Add = Callable[[str, bytes, int], None]
# (add, detail, message before the context, upstream peer or None, count)
Extract = Callable[[Add, object, bytes, bytes | None, int], None]


@dataclass(frozen=True)
class Kind:
    """One finding kind, as the JSON's ``kind`` names it."""

    name: str
    severity: Severity
    title: str
    fix: str
    details: tuple[str, ...] = ()  # the detail keys it fills from the log lines
    facts: tuple[HostFact, ...] = ()  # what add_host_facts/commands look up for it
    # The text after "N ×  first → last" in the text output: (count, details) -> str.
    count_note: Callable[[int, dict[str, object]], str] | None = None


@dataclass(frozen=True)
class Condition:
    """One alternative of :data:`PATTERN` and what its lines mean."""

    name: str  # the pattern ends this alternative with an empty group k_<name>
    regex: bytes
    groups: tuple[str, ...]  # its named groups (or head's lv_*) that are the detail
    kinds: tuple[Kind, ...]
    examples: tuple[tuple[str, bytes], ...]  # (kind, a whole line nginx writes)
    # The kind of a line from its detail (m.group(*groups)); None: kinds[0].
    kind_of: Callable[[object], str] | None = None
    # What a line adds to its finding's details; None: nothing.
    extract: Extract | None = None
    # Counted apart under this name, reported with kinds[0] (findings() merges).
    tally_as: str | None = None
    # A start of the regex shared with the neighbouring conditions that have
    # the same one: the pattern tests it once for them all, not once each.
    shared: bytes = b""

    @property
    def group(self) -> str:
        return "k_" + self.name


def _one(name: str) -> Extract:
    """The detail itself (one group), counted under ``name``."""
    def extract(add: Add, det: object, _msg: bytes, _peer: bytes | None, n: int) -> None:
        assert isinstance(det, bytes)
        add(name, det, n)
    return extract


# ---------------------------------------------------------------- extractors

def _connect_detail(add: Add, det: object, _msg: bytes, _peer: bytes | None, n: int) -> None:
    assert isinstance(det, tuple)
    peer_name, errno = det
    if errno != b"111" and peer_name is not None:
        if peer_name.startswith(b"unix:"):
            add("sockets", peer_name.removeprefix(b"unix:"), n)
        else:
            add("addresses", peer_name, n)


def _signal_kind(det: object) -> str:
    assert isinstance(det, tuple)
    _, _, signo, core = det
    if core:
        return "worker-crash-core"
    return "worker-killed" if signo == b"9" else "worker-crash"


def _signal_detail(add: Add, det: object, _msg: bytes, _peer: bytes | None, n: int) -> None:
    assert isinstance(det, tuple)
    proc, pid, signo, _ = det
    add("signals", signo, n)
    add("pids", pid, n)
    add("processes", proc + b" process", n)


# The *_timeout family a timed-out upstream obeys, by URL scheme and phase.
_TIMEOUT_MODULE = {b"http": b"proxy", b"https": b"proxy", b"fastcgi": b"fastcgi",
                   b"uwsgi": b"uwsgi", b"suwsgi": b"uwsgi", b"scgi": b"scgi", b"grpc": b"grpc",
                   b"grpcs": b"grpc", b"memcached": b"memcached"}
_TIMEOUT_PHASE = {b"connecting": b"connect_timeout", b"reading": b"read_timeout",
                  b"sending": b"send_timeout"}
# stream {} proxying (an upstream without a scheme): one timeout after connecting
_STREAM_PHASE = {b"connecting": b"stream proxy_connect_timeout",
                 b"reading": b"stream proxy_timeout", b"sending": b"stream proxy_timeout"}


def _timeout_detail(add: Add, det: object, _msg: bytes, peer: bytes | None, n: int) -> None:
    assert isinstance(det, bytes)
    if peer is not None and b"://" not in peer:
        add("directives", _STREAM_PHASE[det], n)
    else:
        scheme = peer.split(b"://", 1)[0] if peer else b"http"
        add("directives", _TIMEOUT_MODULE.get(scheme, b"proxy") + b"_" + _TIMEOUT_PHASE[det], n)


def _emerg_detail(add: Add, _det: object, msg: bytes, _peer: bytes | None, n: int) -> None:
    add("messages", msg.strip()[:CLIP_BYTES], n)


# Numbers in a message (pids, connection ids, addresses, sizes, temp-file
# names, hex codes like OpenSSL's 0A000086), except the errno in "(28: ":
# "other" lines are grouped without them.
_NUMBERS = re.compile(rb"\(\d+: |0x[0-9a-fA-F]+|[0-9][0-9A-Fa-f]*")
CLIP_BYTES = 1024  # bytes of a value kept for counting


def _number_out(m: re.Match[bytes]) -> bytes:
    return m.group() if m.group().startswith(b"(") else b"N"


def normalize(message: bytes) -> bytes:
    """A message without its varying numbers: "pwrite() "/x/N" failed (28: …)"."""
    return _NUMBERS.sub(_number_out, message)


def _other_detail(add: Add, det: object, msg: bytes, _peer: bytes | None, n: int) -> None:
    assert isinstance(det, bytes)
    add("messages", normalize(msg.strip())[:CLIP_BYTES], n)
    add("levels", det, n)


def _bind_note(count: int, details: dict[str, object]) -> str:
    # nginx tries bind() five times before it gives up: the starts and the attempts.
    attempts = details.get("attempts")
    return (" bind() attempts (nginx makes up to 5 per start)" if attempts == count
            else f" failed starts or reloads, after {attempts} bind() attempts")


# ---------------------------------------------------------------- the kinds

_UPSTREAM_REFUSED = Kind(
    "upstream-refused", "high", "upstream refused the connection (111) → 502",
    "Nothing listens at the upstream address: the backend is down, restarting, or on "
    "another port. Check the service (`systemctl status …`) and what it listens on "
    "(`ss -ltnp`) against the proxy_pass/fastcgi_pass target.")
_UPSTREAM_SOCKET_MISSING = Kind(
    "upstream-socket-missing", "high", "upstream unix socket does not exist (2) → 502",
    "The backend's socket file is missing: the service is stopped or creates its socket "
    "elsewhere. Start it, or point the *_pass directive at the path it really uses.",
    details=("sockets", "addresses"))
_UPSTREAM_PERMISSION = Kind(
    "upstream-permission", "high",
    "permission denied on the upstream unix socket (13) → 502",
    "nginx's worker user cannot open the backend's socket. Make the socket owned by or "
    "writable for that user (PHP-FPM: listen.owner/listen.group/listen.mode), and check "
    "the directories above it; under SELinux allow it (httpd_can_network_connect).",
    details=("sockets", "addresses"), facts=("socket-state", "selinux", "config"))
_CONNECT_KIND = {b"111": _UPSTREAM_REFUSED.name, b"2": _UPSTREAM_SOCKET_MISSING.name,
                 b"13": _UPSTREAM_PERMISSION.name}

_UPSTREAM_CONNECT_TIMEOUT = Kind(
    "upstream-connect-timeout", "high", "upstream connect timed out (110) → 504",
    "The backend did not accept the connection in time: overloaded (full listen "
    "backlog), firewalled, or the host is down. The directive is listed under "
    "directives; in http it cannot usefully exceed 75s, in stream it has no such cap.",
    details=("directives",))
_UPSTREAM_TIMEOUT = Kind(
    "upstream-timeout", "medium", "upstream timed out (110) → 504",
    "The backend accepted the request but answered too slowly. Find the slow requests "
    "in the backend (APM, slow-query logs); raising the *_read_timeout listed under "
    "directives only hides the delay and ties up connections.",
    details=("directives",))

_BIND_IN_USE = Kind(
    "bind-in-use", "critical", "nginx could not bind its listen address: in use (98)",
    "Another process holds the listen address, so nginx could not start or reload. "
    "Find it with `ss -ltnp` (an old nginx master, Apache, another proxy), stop it "
    "or change the `listen` port.",
    details=("addresses", "attempts"), facts=("port-holders",), count_note=_bind_note)

_WORKER_CRASH_CORE = Kind(
    "worker-crash-core", "critical", "worker processes crashed and dumped core",
    "A worker died of a signal and the kernel wrote a core. Find the core (nginx's "
    "working_directory, or where kernel.core_pattern sends it) and run "
    "`crashkit analyze CORE` to see which module crashed.",
    details=("signals", "pids", "processes", "cores", "core_missing"), facts=("config",))
_WORKER_CRASH = Kind(
    "worker-crash", "critical", "worker processes crashed without a core",
    "A worker died of a signal but no core was written, so the crash cannot be "
    "examined. Run `crashkit setup` (worker_rlimit_core, working_directory, "
    "core_pattern) so the next crash leaves a core for `crashkit analyze`.",
    details=("signals", "pids", "processes"))
_WORKER_KILLED = Kind(
    "worker-killed", "critical", "worker processes killed by signal 9 (OOM killer suspected)",
    "SIGKILL without a core is usually the kernel's OOM killer: check `dmesg -T | grep "
    "-i oom`. Give the host more memory, or shrink nginx's footprint (proxy_buffers, "
    "client_max_body_size, a leaking third-party module).",
    details=("signals", "pids", "processes"), facts=("kernel-log",))
# worker-killed once the kernel log was read: (title, fix) with an OOM-killer
# line for one of its pids, and without one.
KILLED_BY_OOM = (
    "worker processes killed by the OOM killer",
    "The kernel's OOM killer chose nginx (the kernel lines are shown). Give the host more "
    "memory, or shrink nginx's footprint (proxy_buffers, client_max_body_size, a leaking "
    "third-party module), or protect it with OOMScoreAdjust= in its systemd unit.")
KILLED_FROM_OUTSIDE = (
    "worker processes killed by SIGKILL from outside nginx (no OOM-killer record)",
    "The kernel log has no OOM-killer line for these pids, so something sent SIGKILL: a "
    "person or script (kill -9, pkill -9), a watchdog, systemd stopping the unit past "
    "TimeoutStopSec=, or a container runtime. Look at what ran at that time (journalctl "
    "--since, auth.log, cron, monitoring); stop or recycle workers with nginx -s quit or "
    "nginx -s reload instead.")

_OTHER_CRITICAL = Kind(
    "other-critical", "high", "other [crit]/[alert]/[emerg] lines",
    "nginx logged serious errors that triage has no finding for. Read the messages "
    "listed (numbers are shown as N) and the full lines in the log.",
    details=("messages", "levels"))
_OTHER_ERRORS = Kind(
    "other-errors", "medium", "other [error] lines",
    "nginx logged errors that triage has no finding for: a full disk (28), an "
    "unresolvable name, an oversized or invalid upstream header, a TLS handshake with "
    "the upstream, a temp file it may not write. Read the messages listed (numbers "
    "are shown as N) and the full lines in the log.",
    details=("messages", "levels"))

_CTX = (b', client: 10.0.0.5, server: shop.example, request: "GET /cart?id=7 HTTP/1.1", '
        b'upstream: "http://10.0.0.7:8080/cart?id=7", host: "shop.example"')


def _connect_kind(det: object) -> str:
    assert isinstance(det, tuple)
    return _CONNECT_KIND[det[1]]


def _timeout_kind(det: object) -> str:
    return _UPSTREAM_CONNECT_TIMEOUT.name if det == b"connecting" else _UPSTREAM_TIMEOUT.name


def _other_kind(det: object) -> str:
    return _OTHER_ERRORS.name if det == b"error" else _OTHER_CRITICAL.name


# "accept4() failed (", "open() "/x" failed (", "socketpair() failed while
# spawning "worker process" (": the start of a failed system call's line.
# Possessive (++): a first word not followed by "()" fails at once.
_CALL_FAILED = rb"(?P<call>\w++)\(\)(?: \"[^\"\n]*\"| to \S+)? failed(?: while [^(\n]*)? \("

CONDITIONS: tuple[Condition, ...] = (
    # connect() refused (111), socket file missing (2), permission denied (13:
    # a unix socket's mode, or SELinux on TCP). nginx 1.22 names the peer of
    # unix sockets only ("connect() to unix:/x failed").
    Condition(
        "connect", rb"connect\(\)(?: to (?P<peer>\S+))? failed \((?P<cerr>111|2|13): ",
        ("peer", "cerr"), (_UPSTREAM_REFUSED, _UPSTREAM_SOCKET_MISSING, _UPSTREAM_PERMISSION),
        (("upstream-refused", b"2026/11/24 04:23:39 [error] 2038#2038: *1 connect() failed "
          b"(111: Connection refused) while connecting to upstream" + _CTX),
         ("upstream-socket-missing", b"2026/11/24 04:23:39 [error] 2038#2038: *2 connect() to "
          b"unix:/run/php/fpm.sock failed (2: No such file or directory) while connecting to "
          b"upstream" + _CTX),
         ("upstream-permission", b"2026/11/24 04:23:40 [crit] 2038#2038: *5 connect() to "
          b"unix:/run/app.sock failed (13: Permission denied) while connecting to upstream"
          + _CTX)),
        kind_of=_connect_kind, extract=_connect_detail),
    Condition(
        "timeout", rb"timed out \(110: [^)\n]*\) while (?P<phase>connecting|reading|sending)",
        ("phase",), (_UPSTREAM_CONNECT_TIMEOUT, _UPSTREAM_TIMEOUT),
        (("upstream-connect-timeout", b"2026/11/24 04:23:40 [error] 2038#2038: *3 upstream "
          b"timed out (110: Connection timed out) while connecting to upstream" + _CTX),
         ("upstream-timeout", b"2026/11/24 04:23:40 [error] 2038#2038: *3 upstream timed out "
          b"(110: Connection timed out) while reading response header from upstream" + _CTX)),
        kind_of=_timeout_kind, extract=_timeout_detail, shared=b"upstream "),
    Condition(
        "closed", rb"prematurely closed connection", (),
        (Kind("upstream-closed", "medium", "upstream closed the connection early → 502",
              "The backend closed the connection before sending a full response: its worker "
              "died or timed out (PHP max_execution_time, gunicorn timeout). Check its logs."),),
        (("upstream-closed", b"2026/11/24 04:23:40 [error] 2038#2038: *11 upstream prematurely "
          b"closed connection while reading response header from upstream" + _CTX),),
        shared=b"upstream "),
    Condition(
        "nolive", rb"no live upstreams", (),
        (Kind("no-live-upstreams", "high", "no live upstreams → 502",
              "Every server of an upstream block is marked failed (max_fails/fail_timeout), so "
              "nginx did not even try. Fix the failures reported with it; the servers come "
              "back after fail_timeout."),),
        (("no-live-upstreams", b"2026/11/24 06:00:02 [error] 900#900: *2 no live upstreams "
          b"while connecting to upstream" + _CTX),)),
    Condition(
        "conns", rb"(?P<wc>\d++) worker_connections are not enough", ("wc",),
        (Kind("worker-connections", "high", "worker_connections are not enough",
              "Each worker ran out of connection slots. Raise `worker_connections` in the "
              "events block, and the open-file limit with it (worker_rlimit_nofile, or "
              "LimitNOFILE for the systemd unit): every connection is a descriptor, two when "
              "proxied.", details=("limits",)),),
        (("worker-connections", b"2026/11/24 04:35:55 [warn] 19157#19157: 4 worker_connections "
          b"are not enough, reusing connections"),),
        extract=_one("limits")),
    Condition(
        "bind", rb"bind\(\) to (?P<addr>\S+) failed \(98: ", ("addr",), (_BIND_IN_USE,),
        (("bind-in-use", b"2026/11/24 04:35:56 [emerg] 19173#19173: bind() to 127.0.0.1:45925 "
          b"failed (98: Address already in use)"),),
        extract=_one("addresses")),
    Condition(
        "signal", rb"(?P<proc>worker|cache manager|cache loader|helper) process (?P<spid>\d+) "
                  rb"exited on signal (?P<signo>\d+)(?P<core> \(core dumped\))?",
        ("proc", "spid", "signo", "core"), (_WORKER_CRASH_CORE, _WORKER_CRASH, _WORKER_KILLED),
        (("worker-crash-core", b"2026/11/24 04:35:59 [alert] 19242#19242: worker process 19244 "
          b"exited on signal 11 (core dumped)"),
         ("worker-crash", b"2026/11/24 04:35:59 [alert] 19253#19253: worker process 19255 "
          b"exited on signal 11"),
         ("worker-killed", b"2026/11/24 04:35:59 [alert] 19271#19271: worker process 19273 "
          b"exited on signal 9")),
        kind_of=_signal_kind, extract=_signal_detail),
    # accept4(), open() "…", socket() … failed (24), socketpair() failed while
    # spawning "worker process" (24).
    Condition(
        "nofile", rb"24: ", ("call",),
        (Kind("too-many-open-files", "high", "too many open files (24)",
              "Workers hit their open-file limit. Raise `worker_rlimit_nofile` (or LimitNOFILE "
              "/ /etc/security/limits.conf for the nginx user) above twice worker_connections. "
              "A reload (nginx -s reload) applies worker_rlimit_nofile to the new workers; a "
              "changed LimitNOFILE needs a restart of the service.", details=("calls",)),),
        (("too-many-open-files", b"2026/11/24 06:00:06 [crit] 900#900: accept4() failed "
          b"(24: Too many open files)"),),
        extract=_one("calls"), shared=_CALL_FAILED),
    # recv()/readv() … failed (104) on an upstream connection (client resets
    # are logged at [info]).
    Condition(
        "reset", rb"104: [^)\n]*\) while [^,\n]*upstream", (),
        (Kind("upstream-reset", "medium", "upstream reset the connection (104) → 502",
              "The backend closed the connection abruptly: it crashed, hit a worker limit or "
              "was restarted mid-request. Check the backend's own logs at these times."),),
        (("upstream-reset", b"2026/11/24 04:23:40 [error] 2038#2038: *9 recv() failed (104: "
          b"Connection reset by peer) while reading response header from upstream" + _CTX),),
        shared=_CALL_FAILED),
    # nginx gave up binding after its five bind() attempts: one failed start.
    Condition(
        "bindstart", rb"still could not bind\(\)", (), (_BIND_IN_USE,),
        (("bind-in-use", b"2026/11/24 06:00:08 [emerg] 950#950: still could not bind()"),),
        tally_as="bind-failed-start"),
    # Any other [emerg]: nginx refused its configuration (start, reload, -t).
    Condition(
        "emerg", rb"(?(lv_emerg)|(?!))", (),
        (Kind("config-error", "critical", "nginx rejected its configuration ([emerg])",
              "A start, reload or `nginx -t` failed on the configuration; the running nginx "
              "may still be on the old one. Fix the file and line named in the message and "
              "check with `nginx -t` before reloading.", details=("messages",)),),
        (("config-error", b'2026/11/24 04:35:59 [emerg] 19233#19233: unknown directive '
          b'"no_such_thing" in /etc/nginx/nginx.conf:13'),),
        extract=_emerg_detail),
    # Any other [error], [crit] or [alert], except a file that is not there,
    # which is a routine 404: open() "/var/www/favicon.ico" failed (2: …) or
    # (20: Not a directory), and the index module's "…/index.html" is not found (2: …);
    # and the site's own policy at work, logged at [error] by design: limit_req
    # and limit_conn rejections, deny rules, client_max_body_size, autoindex off.
    Condition(
        "other", rb"(?(lv_high)|(?!))"
                 rb"(?!open\(\) \"[^\"\n]*\" failed \((?:2|20): |\"[^\"\n]*\" is not found \(2: "
                 rb"|limiting (?:requests|connections)|access forbidden by rule"
                 rb"|client intended to send too large body"
                 rb"|directory index of \"[^\"\n]*\" is forbidden)",
        ("lv_high",), (_OTHER_CRITICAL, _OTHER_ERRORS),
        (("other-critical", b'2026/11/24 05:00:04 [crit] 812#812: *44 pwrite() '
          b'"/var/lib/nginx/body/0000000012" failed (28: No space left on device)' + _CTX),
         ("other-errors", b"2026/11/24 05:00:01 [error] 812#812: *41 upstream sent too big "
          b"header while reading response header from upstream" + _CTX)),
        kind_of=_other_kind, extract=_other_detail),
)

# ---------------------------------------------------------------- derived

def _alternatives(cs: tuple[Condition, ...]) -> bytes:
    """The conditions' regexes as one alternation, each ending with its empty
    group k_<name> (the last group it closes: m.lastgroup names it), the
    neighbours with a shared start under it once."""
    alts: list[bytes] = []
    for shared, run in itertools.groupby(cs, key=lambda c: c.shared):
        each = [c.regex + b"(?P<" + c.group.encode() + b">)" for c in run]
        alts += [shared + b"(?:" + b"|".join(each) + b")"] if shared else each
    return b"|".join(alts)


# The levels selected: [warn] and up; [emerg] flagged (lv_emerg) and
# [error]/[crit]/[alert] as one set (lv_high) for the catch-alls' conditionals.
HEAD = head(("warn",), flagged=("emerg",), sets={"high": ("error", "crit", "alert")})
PATTERN = re.compile(HEAD + b"(?:" + _alternatives(CONDITIONS) + b")")

# Every kind a finding may have, once, in the order of CONDITIONS.
KINDS: dict[str, Kind] = {k.name: k for c in CONDITIONS for k in c.kinds}


def kinds_needing(fact: HostFact) -> frozenset[str]:
    """The kinds whose findings get this host fact."""
    return frozenset(k.name for k in KINDS.values() if fact in k.facts)
