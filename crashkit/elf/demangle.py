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
    import shutil
    import subprocess

    tool = shutil.which("c++filt")
    if tool is None:
        return {}
    try:
        proc = subprocess.run([tool], input="\n".join(mangled) + "\n", capture_output=True,
                              text=True, timeout=timeout, check=True)
    except (OSError, subprocess.SubprocessError):
        return {}
    out = proc.stdout.splitlines()
    if len(out) != len(mangled):
        return {}
    return {m: d for m, d in zip(mangled, out, strict=True) if d != m}
