"""``crashkit triage`` output: text, and ``--json`` (schema crashkit/triage/1)."""

from __future__ import annotations

import re
from typing import Any

from crashkit import __version__
from crashkit.analysis.conditions import KINDS
from crashkit.model.triage import SEVERITY_ORDER, Count, Finding, Triage
from crashkit.model.words import plural, size
from crashkit.render.escape import visible
from crashkit.render.headline import all_clear, problems
from crashkit.render.terminal import wrap

SCHEMA = "crashkit/triage/1"

# The severity that opens each finding, coloured on a terminal.
STATUS_WORDS = re.compile(r"^(?P<w>CRITICAL|HIGH|MEDIUM) ")

# The details shown as one line each in the text output, in this order, with
# their label (messages, and the host facts, have lines of their own below).
DETAIL_LABELS: tuple[tuple[str, str], ...] = (
    ("addresses", "addresses"), ("sockets", "sockets"), ("directives", "directive"),
    ("limits", "limit"), ("calls", "calls"), ("levels", "levels"), ("signals", "signals"),
    ("pids", "pids"), ("cores", "cores"), ("core_missing", "no core"))
# Details the text output leaves to --json.
JSON_ONLY_DETAILS = ("processes", "attempts")


def _counts(cs: tuple[Count, ...]) -> list[dict[str, Any]]:
    return [{"value": c.value, "count": c.count} for c in cs]


def finding_json(f: Finding) -> dict[str, Any]:
    return {"kind": f.kind, "severity": f.severity, "title": f.title, "count": f.count,
            "first": f.first, "last": f.last, "fix": f.fix,
            "top_upstreams": _counts(f.upstreams), "top_clients": _counts(f.clients),
            "top_requests": _counts(f.requests), "details": f.details}


def to_json(t: Triage) -> dict[str, Any]:
    return {
        "schema": SCHEMA,
        "crashkit_version": __version__,
        "needs_attention": bool(t.findings),
        "since": t.since,
        "sources": [{"path": s.path, "compressed": s.compressed, "bytes": s.bytes,
                     "truncated": s.truncated} for s in t.sources],
        "garbage_lines": t.garbage_lines,
        "skipped_bytes": t.skipped_bytes,
        "seconds": round(t.seconds, 3),
        "kernel_log": t.kernel_log,
        "approximate_tops": t.approximate_tops,
        "notes": list(t.notes),
        "findings": [finding_json(f) for f in t.findings],
    }


def _short(ts: str | None) -> str:
    """A time as the log wrote it (local, to the second; the JSON has the offset)."""
    return ts[:19].replace("T", " ") if ts else "?"


def _list(values: object, limit: int = 5) -> str:
    if not isinstance(values, list):
        return str(values)
    parts = []
    for v in values[:limit]:
        if isinstance(v, dict) and "value" in v and "count" in v:
            parts.append(f"{v['value']} ({v['count']})")
        else:
            parts.append(str(v))
    more = f", … {len(values) - limit} more" if len(values) > limit else ""
    return ", ".join(parts) + more


def _finding_lines(f: Finding) -> list[str]:
    when = _short(f.first) if f.first == f.last else f"{_short(f.first)} → {_short(f.last)}"
    lines = [f"{f.severity.upper():<9}{f.title}", f"         {f.count} × {when}"]
    for label, cs in (("upstreams", f.upstreams), ("clients", f.clients),
                      ("requests", f.requests)):
        if cs:
            lines.append(f"         {label:<10} " + _list(_counts(cs)))
    d = f.details
    messages = d.get("messages") or []
    for m in messages[:5]:  # type: ignore[index]
        lines.append(f"         {'message':<10} {m['value']} ({m['count']})")
    if len(messages) > 5:  # type: ignore[arg-type]
        lines.append(f"         {'':<10} … {len(messages) - 5} more in --json")  # type: ignore[arg-type]
    for key, label in DETAIL_LABELS:
        if d.get(key):
            lines.append(f"         {label:<10} " + _list(d[key]))
    kind = KINDS.get(f.kind)
    if kind is not None and kind.count_note is not None:  # bind-in-use: starts, attempts
        lines[1] += kind.count_note(f.count, d)
    cores = d.get("cores") or []
    if cores:
        lines.append(f"         analyze    crashkit analyze {cores[0]}")  # type: ignore[index]
    for h in d.get("holders", []) or []:  # type: ignore[attr-defined]
        lines.append(f"         held by    pid {h['pid']} ({h['comm']}) on {h['address']}: "
                     f"{h['cmdline'][:80]}")
    if "holders" in d and not d["holders"]:
        lines.append("         held by    nobody now: the address is free on this host")
    for s in d.get("socket_state", []) or []:  # type: ignore[attr-defined]
        if s.get("exists"):
            err = s.get("user_connect_errno")
            verdict = "" if err is None else (
                f"; {s['user']} can connect" if err == 0 else f"; {s['user']} gets errno {err}")
            lines.append(f"         socket     {s['path']}: {s['owner']}:{s['group']} "
                         f"mode {s['mode']}{verdict}")
    if d.get("selinux") == "enforcing":
        lines.append("         selinux    enforcing: it may be the one refusing "
                     "(getsebool httpd_can_network_connect; audit2allow)")
    if "oom_kills" in d:
        kills = d.get("oom_kills") or []
        if kills:
            for k in kills[:3]:  # type: ignore[index]
                lines.append(f"         kernel     {k['line']}")
        elif str(d.get("kernel_log", "")).startswith("unreadable"):
            lines.append(f"         kernel     log {d['kernel_log']}: run as root to check "
                         "for the OOM killer")
        else:
            lines.append("         kernel     no OOM-killer line for these pids in the kernel log "
                         f"({d.get('kernel_log')}): killed by something else, or before boot")
    lines += wrap(f"fix: {f.fix}", 9, 14)
    return lines


def text(t: Triage) -> str:
    files = ", ".join(s.path + (" (gz)" if s.compressed else "") +
                      (" [truncated]" if s.truncated else "") for s in t.sources)
    total = sum(s.bytes for s in t.sources)
    # The answer first: what needs attention, most severe first, or all clear.
    logs = t.sources[0].path if len(t.sources) == 1 else f"the {len(t.sources)} logs read"
    answer = problems([f.title for f in t.findings]) if t.findings else all_clear(
        f"nothing in {logs} needs attention" + ("; see the notes" if t.notes else ""))
    head = [answer, f"{files}: {size(total)} read in {t.seconds:.2f} s"
            + (f", since {_short(t.since)}" if t.since else "")
            + (f", {t.garbage_lines} lines that are not error-log lines"
               if t.garbage_lines else "")]
    head += [f"note: {n}" for n in t.notes]
    if not t.findings:
        return "\n".join(visible(line) for line in head)
    n = len(t.findings)
    head.append(f"{plural(n, 'finding')}, most severe first:")
    out = head
    for f in t.findings:
        out.append("")
        out += _finding_lines(f)
    if t.approximate_tops:
        out += ["", "(top lists are approximate: too many distinct values to keep them all)"]
    # A log line holds what clients sent: shown, never obeyed by the terminal.
    return "\n".join(visible(line) for line in out)


def kinds_help() -> str:
    """The finding kinds for ``crashkit triage --help``, from the registry."""
    kinds = sorted(KINDS.values(), key=lambda k: SEVERITY_ORDER[k.severity])
    width = max(len(k.name) for k in kinds)
    return "\b\nFinding kinds (--json: findings[].kind; README has the details):\n" + "\n".join(
        f"  {k.severity:<9}{k.name:<{width + 2}}{k.title}" for k in kinds)


def messages(_t: Triage) -> list[str]:
    return []
