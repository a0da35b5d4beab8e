"""This host's kernel, distribution and core library versions, for a bug report."""

from __future__ import annotations

import os

from crashkit.host.run import resolve


def os_release(path: str = "/etc/os-release") -> str | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            fields = dict(line.rstrip("\n").split("=", 1) for line in f if "=" in line)
    except OSError:
        return None
    name = fields.get("PRETTY_NAME") or fields.get("NAME")
    return name.strip().strip('"') if name else None


def system_facts() -> list[tuple[str, str]]:
    """(what, version) pairs: kernel, distribution, glibc, OpenSSL."""
    u = os.uname()
    out = [("kernel", f"{u.sysname} {u.release} {u.version} ({u.machine})")]
    distro = os_release()
    if distro:
        out.append(("distribution", distro))
    try:
        glibc = os.confstr("CS_GNU_LIBC_VERSION")
    except (ValueError, OSError):
        glibc = None
    if glibc:
        out.append(("C library", glibc))
    if resolve("openssl"):
        from crashkit.host.run import run_text

        status, text = run_text(["openssl", "version"], timeout=10)
        if status == 0 and text.strip():
            out.append(("OpenSSL", text.strip().splitlines()[0]))
    return out
