"""Structure-aware mutations of nginx error logs and configs (issue 18's
fuzz suite, beside the cores' in mutations.py), and the checks that run
them through crashkit's own readers, in process (no child, no host lookup):

- an error log goes through the scanner triage uses (the line grammar, the
  --since cut, the conditions' registry, the tally and the findings) and
  its text and JSON renderers;
- a config goes through the parser setup and doctor use (crossplane, the
  include expansion), setup's plan of its two directives, and the redactor
  report and setup's diffs use.

A case ends in a result or a CrashkitError (the one-line error); anything
else is a finding.
"""

from __future__ import annotations

import os
import random
from datetime import UTC, datetime

from crashkit.errors import CrashkitError

LOG_KINDS = ("flip", "cut", "insert", "duplicate", "long", "stamp", "nul", "crlf", "splice")
CONFIG_KINDS = ("flip", "cut", "insert", "braces", "quotes", "include", "long", "nul", "splice")

_JUNK = (b"\x00", b"\x1b[2J", b"\xff\xfe", b"\\", b"\"", b"'", b"{", b"}", b";", b"#", b"$",
         b"\n", b"\r", b"\t", b" " * 200, b"\xe2\x80\xae", b"%s%n", b"(111: ", b"[crit] ",
         b"worker process 1 exited on signal 11 (core dumped)", b"upstream: \"http://",
         b"client: 256.1.1.1, server: ", b"9999/99/99 99:99:99 ")


def _rng(a: int, b: int) -> random.Random:
    return random.Random((a << 32) ^ b)


def mutate_log(seed: bytes, kind: str, a: int, b: int) -> bytes:
    r = _rng(a, b)
    lines = seed.split(b"\n")
    if kind == "flip":
        d = bytearray(seed)
        for _ in range(1 + a % 16):
            if d:
                d[r.randrange(len(d))] ^= 1 << r.randrange(8)
        return bytes(d)
    if kind == "cut":
        return seed[:r.randrange(len(seed) + 1)]
    if kind == "insert":
        i = r.randrange(len(seed) + 1)
        return seed[:i] + r.choice(_JUNK) * (1 + b % 4) + seed[i:]
    if kind == "duplicate":
        line = r.choice(lines)
        return b"\n".join(lines + [line] * (1 + a % 500))
    if kind == "long":
        i = r.randrange(len(lines))
        lines[i] = lines[i] + b"x" * (1 << (10 + a % 11))  # up to 1 MiB in one line
        return b"\n".join(lines)
    if kind == "stamp":
        i = r.randrange(len(lines))
        stamp = f"{a % 10000:04d}/{b % 100:02d}/{a % 100:02d} {b % 100:02d}:{a % 100:02d}:" \
                f"{b % 100:02d} "
        lines[i] = stamp.encode() + lines[i][20:]
        return b"\n".join(lines)
    if kind == "nul":
        return seed.replace(b" ", b"\x00", 1 + a % 50)
    if kind == "crlf":
        return seed.replace(b"\n", b"\r\n")
    # splice: two pieces of the log swapped
    i, j = sorted((r.randrange(len(seed) + 1), r.randrange(len(seed) + 1)))
    return seed[j:] + seed[i:j] + seed[:i]


def mutate_config(seed: str, kind: str, a: int, b: int) -> str:
    r = _rng(a, b)
    if kind == "flip":
        d = list(seed)
        for _ in range(1 + a % 8):
            if d:
                d[r.randrange(len(d))] = r.choice("{};\"'\\$#\n x")
        return "".join(d)
    if kind == "cut":
        return seed[:r.randrange(len(seed) + 1)]
    if kind == "insert":
        i = r.randrange(len(seed) + 1)
        return seed[:i] + r.choice(_JUNK).decode("latin-1") * (1 + b % 3) + seed[i:]
    if kind == "braces":
        return seed + "{" * (1 + a % 300) if a % 2 else seed + "}" * (1 + a % 5)
    if kind == "quotes":
        return seed.replace(";", "\";", 1 + a % 5)
    if kind == "include":
        targets = ("/dev/zero", "/proc/self/fd/0", "*", "/nonexistent/*.conf", "../" * 40,
                   "nginx.conf")  # the file itself: a loop
        return f"include {targets[a % len(targets)]};\n" + seed
    if kind == "long":
        return seed + "\nworker_processes " + "9" * (1 << (8 + a % 12)) + ";\n"
    if kind == "nul":
        return seed.replace(" ", "\x00", 1 + a % 20)
    i, j = sorted((r.randrange(len(seed) + 1), r.randrange(len(seed) + 1)))
    return seed[j:] + seed[i:j] + seed[:i]


def check_log(path: str) -> str:
    """Scan one log as triage does, in this process; 'ok' or 'error: …'."""
    from crashkit.analysis import triage as T
    from crashkit.model.triage import LogSource, Triage
    from crashkit.nginx import errorlog
    from crashkit.render import triage as R

    try:
        key = errorlog.since_key(datetime(2000, 1, 1, tzinfo=UTC))
        for since in (None, key):
            tasks = errorlog.plan([path], 1)
            tallies, stats = errorlog.reduce_tasks(tasks, T.PATTERN, since, T.tally, 1)
            tally = T.merge(tallies)
            found = T.findings(tally)
            result = Triage(
                findings=found,
                sources=tuple(LogSource(s.path, s.compressed, s.bytes_read, s.truncated)
                              for s in stats.files),
                since=None, garbage_lines=stats.garbage_lines,
                skipped_bytes=stats.skipped_bytes, seconds=stats.seconds,
                kernel_log="not read (fuzz)", approximate_tops=tally.approximate)
            R.text(result)
            R.to_json(result)
    except CrashkitError as exc:
        return f"error: {exc}"
    return "ok"


def check_config(path: str) -> str:
    """Parse one config as setup does, plan its directives and redact it."""
    from crashkit.analysis.redact import redacted_config
    from crashkit.analysis.setup import plan_core_directives
    from crashkit.nginx.config import load_config

    try:
        cfg = load_config(path)
        texts = {}
        for f in cfg.files:
            with open(f, encoding="utf-8", errors="surrogateescape") as fh:
                texts[f] = fh.read(4 << 20)
        plan_core_directives(cfg, texts, "/var/lib/crashkit/cores", "1G")
        for text in texts.values():
            redacted_config(text)
    except CrashkitError as exc:
        return f"error: {exc}"
    except ValueError as exc:  # plan_core_directives: a value it cannot place
        return f"error: {exc}"
    return "ok"


def log_seed() -> bytes:
    here = os.path.join(os.path.dirname(__file__), "..", "data", "nginx-error-real.log")
    with open(here, "rb") as f:
        return f.read(256 << 10)


CONFIG_SEED = """user www-data;
worker_processes auto;
pid /run/nginx.pid;
error_log /var/log/nginx/error.log;
events { worker_connections 768; }
http {
    sendfile on;
    map $http_upgrade $connection_upgrade { default upgrade; '' close; }
    upstream app { server 127.0.0.1:8080 max_fails=3; keepalive 16; }
    server {
        listen 80 default_server;
        server_name example.org "*.example.org";
        location / { proxy_pass http://app; proxy_set_header Authorization "Bearer s3cr3t"; }
        location ~ ^/(a|b)$ { return 200 'x;y'; }
        # comment with { braces }
    }
}
"""
