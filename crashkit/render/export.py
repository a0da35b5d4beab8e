"""``crashkit export`` output (schema ``crashkit/export/1``)."""

from __future__ import annotations

from typing import Any

from crashkit import __version__
from crashkit.model.export import ExportedCrash, ExportResult
from crashkit.model.words import plural

SCHEMA = "crashkit/export/1"
_OUTCOMES = ("sent", "already", "failed", "deferred", "would_send", "skipped")


def crash_json(c: ExportedCrash) -> dict[str, Any]:
    return {"id": c.crash_id, "outcome": c.outcome, "event_id": c.event_id,
            "signature": c.signature, "summary": c.summary, "detail": c.detail or None,
            "status": c.status, "attempts": c.attempts}


def to_json(r: ExportResult) -> dict[str, Any]:
    out: dict[str, Any] = {
        "schema": SCHEMA, "crashkit_version": __version__, "store": r.store,
        "target": r.target, "dsn_from": r.dsn_from, "dry_run": r.dry_run,
        "seconds": round(r.seconds, 3),
        "counts": {k: r.count(k) for k in _OUTCOMES},  # type: ignore[arg-type]
        "crashes": [crash_json(c) for c in r.crashes],
    }
    if r.dry_run:
        out["events"] = list(r.events)
    return out


def _headline(r: ExportResult) -> str:
    where = r.target or "no server"
    if r.dry_run:
        return (f"would send {plural(r.count('would_send'), 'crash', 'crashes')} to {where} "
                "(dry run: nothing sent; --json shows the events)")
    parts = [f"{plural(r.count('sent'), 'crash', 'crashes')} sent to {where}"]
    if r.count("already"):
        parts.append(f"{r.count('already')} sent before")
    if r.count("failed"):
        parts.append(f"{r.count('failed')} failed (retried by the next export)")
    if r.count("deferred"):
        parts.append(f"{r.count('deferred')} left for the next export")
    if r.count("skipped"):
        parts.append(f"{r.count('skipped')} without a core")
    return ", ".join(parts) + f" ({r.seconds:.1f} s)"


def text(r: ExportResult) -> str:
    lines = [_headline(r)]
    shown = [c for c in r.crashes if c.outcome != "already"]
    if shown:
        lines.append("")
    for c in shown:
        label = {"would_send": "would send"}.get(c.outcome, c.outcome)
        line = f"  {c.crash_id:>6}  {label:<10}  {(c.signature or '-')[:16]:<16}  " \
               f"{c.summary or ''}"
        lines.append(line.rstrip())
        if c.detail:
            lines.append(f"          {c.detail}")
    return "\n".join(lines)


def messages(r: ExportResult) -> list[str]:
    out = []
    for c in r.crashes:
        if c.outcome == "failed":
            out.append(f"crash {c.crash_id} was not sent: {c.detail}; the next "
                       "`crashkit export` retries it")
    return out
