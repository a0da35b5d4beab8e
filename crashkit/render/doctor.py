"""``crashkit doctor`` output: text, and ``--json`` (schema crashkit/doctor/1)."""

from __future__ import annotations

import textwrap
from typing import Any

from crashkit import __version__
from crashkit.model.doctor import Doctor
from crashkit.model.words import plural

SCHEMA = "crashkit/doctor/1"

def to_json(d: Doctor) -> dict[str, Any]:
    return {
        "schema": SCHEMA,
        "crashkit_version": __version__,
        "conf": d.conf,
        "needs_attention": d.needs_attention,
        "checks": [{"name": c.name, "status": c.status, "summary": c.summary, "fix": c.fix,
                    "details": c.details} for c in d.checks],
    }


_MARK = {"ok": "ok  ", "warn": "WARN", "fail": "FAIL", "skip": "skip"}
_ORDER = {"fail": 0, "warn": 1, "ok": 2, "skip": 3}


def text(d: Doctor) -> str:
    out = [f"nginx config {d.conf}"]
    width = min(max((len(c.name) for c in d.checks), default=10), 24)
    for c in sorted(d.checks, key=lambda c: _ORDER[c.status]):
        out.append(f"{_MARK[c.status]}  {c.name:<{width}}  {c.summary}")
        if c.fix and c.status in ("warn", "fail"):
            out += textwrap.wrap(f"fix: {c.fix}", 100, initial_indent=" " * 6,
                                 subsequent_indent=" " * 11)
    bad = sum(c.status in ("warn", "fail") for c in d.checks)
    out.append("")
    out.append(plural(bad, "check needs attention", "checks need attention") if bad
               else "all checks passed")
    return "\n".join(out)


def messages(_d: Doctor) -> list[str]:
    return []
