"""``crashkit doctor`` output: text, and ``--json`` (schema crashkit/doctor/1)."""

from __future__ import annotations

import re
from typing import Any

from crashkit import __version__
from crashkit.model.doctor import Doctor
from crashkit.model.words import plural
from crashkit.render.headline import all_clear, problems
from crashkit.render.terminal import wrap

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
# The status that opens each check's line, coloured on a terminal.
STATUS_WORDS = re.compile(r"^(?P<w>ok|WARN|FAIL|skip) ")
_ORDER = {"fail": 0, "warn": 1, "ok": 2, "skip": 3}


def text(d: Doctor) -> str:
    ordered = sorted(d.checks, key=lambda c: _ORDER[c.status])
    bad = [c for c in ordered if c.status in ("warn", "fail")]
    skipped = sum(c.status == "skip" for c in d.checks)
    # The answer first: what needs attention, failures first, or all clear.
    out = [problems([f"{c.name}: {c.summary}" for c in bad]) if bad else all_clear(
        f"{plural(len(d.checks) - skipped, 'check')} passed"
        + (f", {skipped} skipped" if skipped else "")), f"nginx config {d.conf}"]
    width = min(max((len(c.name) for c in d.checks), default=10), 24)
    for c in ordered:
        out.append(f"{_MARK[c.status]}  {c.name:<{width}}  {c.summary}")
        if c.fix and c.status in ("warn", "fail"):
            out += wrap(f"fix: {c.fix}", 6, 11)
    out.append("")
    out.append(plural(len(bad), "check needs attention", "checks need attention") if bad
               else "all checks passed")
    return "\n".join(out)


def messages(_d: Doctor) -> list[str]:
    return []
