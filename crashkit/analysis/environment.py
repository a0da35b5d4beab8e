"""The environment a report describes: the crashed host's, from the core.

A core analysed where it was made describes this host (its kernel,
distribution, C library). A core from elsewhere (its files found under
--sysroot, by build-id, or missing here) must not be described by the
analysing host's facts: the architecture comes from the core's header, the
kernel from the vDSO's note, the C library's version from its file name or
its own file; this host is named as the one that analysed it."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence

from crashkit.model.analyze import Analysis, Module

_LIBC = re.compile(r"^libc(?:-(\d+\.\d+(?:\.\d+)?))?\.so")


def libc_module(a: Analysis) -> Module | None:
    return next((m for m in a.core.modules if _LIBC.match(os.path.basename(m.path))), None)


def from_this_host(a: Analysis) -> bool:
    """Whether the core's files are this host's own: every module found at
    its own path here, with the crashed build-id."""
    mods = [m for m in a.core.modules if m.found_by != "core"]
    return bool(mods) and all(m.found_by == "path" and m.build_id_match is not False
                              for m in mods) and any(m.build_id_match for m in mods)


def crashed_environment(a: Analysis, this_host: Sequence[tuple[str, str]],
                        libc_release: str | None = None) -> list[tuple[str, str]]:
    """(what, value) pairs for the report's Environment and system.txt.
    ``libc_release``: the version string read from the crashed build's own
    libc file, when one was found."""
    arch = ("architecture", a.core.arch)
    if from_this_host(a):
        return [arch, *this_host]
    out = [arch]
    out.append(("kernel", f"Linux {a.core.kernel} (from the core's vDSO)" if a.core.kernel
                else "unknown (the core holds no vDSO note)"))
    libc = libc_module(a)
    if libc is not None:
        m = _LIBC.match(os.path.basename(libc.path))
        version = libc_release or (m.group(1) if m and m.group(1) else None)
        package = a.host.packages.get(libc.path)
        if version is None and package is not None and libc.build_id_match:
            version = f"{package.name} {package.version}"
        out.append(("C library", f"glibc {version}" if version and version[0].isdigit()
                    else version or f"{libc.path} (version unknown here)"))
    here = "; ".join(v for k, v in this_host if k in ("distribution", "kernel"))
    out.append(("analysed on", f"another host ({here}): its own versions do not describe "
                               "the crash" if here else "another host"))
    return out
