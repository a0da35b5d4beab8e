"""How crashkit writes a size and a count for a person: one way, in every
verb's text (render) and in the sentences analyses make (doctor's and
setup's checks, a finding's reason).

- :func:`size`: binary units, one decimal (``1.5 MiB``, ``126.7 MiB``,
  ``76.6 GiB``), bytes below 1 KiB (``512 B``). The JSON gives the integer.
- :func:`plural`: a count with its noun, or noun phrase, in agreement
  (``1 worker``, ``2 workers``, ``1 check needs attention``, ``2 checks need
  attention``), never a noun with a parenthesised s.
"""

from __future__ import annotations

_UNITS = ("KiB", "MiB", "GiB", "TiB", "PiB", "EiB")


def size(n: int) -> str:
    """``n`` bytes in binary units: ``512 B``, ``1.5 MiB``, ``76.6 GiB``."""
    if n < 0:
        return "-" + size(-n)
    if n < 1024:
        return f"{n} B"
    value = float(n)
    for unit in _UNITS:
        value /= 1024
        # 1023.96 KiB would print as "1024.0 KiB": that is 1.0 MiB.
        if round(value, 1) < 1024 or unit == _UNITS[-1]:
            return f"{value:.1f} {unit}"
    raise AssertionError("unreachable")


def plural(n: int, one: str, many: str | None = None) -> str:
    """``n`` and the word for it: ``many`` when n is not 1 (default ``one`` + s)."""
    return f"{n} {one if n == 1 else (many if many is not None else one + 's')}"
