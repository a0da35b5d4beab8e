"""C++ names from ELF symbol tables, demangled by binutils' c++filt.

A separate process rather than a demangler in ours: symbol names come from
untrusted files, and demanglers have had crashes on crafted input.
"""

from __future__ import annotations

from collections.abc import Iterable


def demangle(names: Iterable[str], timeout: float = 10.0) -> dict[str, str]:
    """Demangled form of each Itanium-ABI name (``_Z…``); names c++filt cannot
    demangle, or all of them when c++filt is missing, are left out."""
    mangled = sorted({n for n in names if n.startswith("_Z") and "\n" not in n})
    if not mangled:
        return {}
    from crashkit.errors import CommandError
    from crashkit.host.run import run

    try:
        proc = run(["c++filt"], input="\n".join(mangled) + "\n", timeout=timeout, check=True)
    except CommandError:
        return {}
    out = proc.stdout.splitlines()
    if len(out) != len(mangled):
        return {}
    return {m: d for m, d in zip(mangled, out, strict=True) if d != m}
