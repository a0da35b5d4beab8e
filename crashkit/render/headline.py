"""The first line of a verb that judges (triage, doctor): the answer, before
the details. "2 problems: <the most severe>; <the next>" or "all clear: …"."""

from __future__ import annotations

from collections.abc import Sequence

from crashkit.model.words import plural

SHOWN = 2  # problems named on the line; the rest are counted
CLIP = 64  # characters of each one (the details below have it whole)


def _clip(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= CLIP else text[:CLIP - 1].rstrip() + "…"


def problems(titles: Sequence[str]) -> str:
    """``titles`` most severe first: the count and the first ones by name."""
    named = [_clip(t) for t in titles[:SHOWN]]
    more = len(titles) - len(named)
    return (f"{plural(len(titles), 'problem')}: " + "; ".join(named)
            + (f"; and {more} more below" if more else ""))


def all_clear(what: str) -> str:
    return f"all clear: {what}"
