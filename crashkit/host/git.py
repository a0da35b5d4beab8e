"""The upstream a module's source tree names: its git remote, read with
``git`` through the one runner (a tree that is not a repository, or a host
without git, names none)."""

from __future__ import annotations

import os

from crashkit.host.run import resolve, run_text

GIT_TIMEOUT = 5.0


def remote_url(directory: str) -> str | None:
    """The URL of ``directory``'s ``origin`` remote (else its first remote)."""
    git = resolve("git")
    if git is None or not os.path.isdir(directory):
        return None
    # safe.directory: a tree another user owns is read, never trusted to run
    # hooks or config helpers (git config is not executed by remote get-url).
    base = [git, "-c", f"safe.directory={directory}", "-C", directory]
    status, out = run_text([*base, "remote"], GIT_TIMEOUT, stderr=False)
    names = out.split() if status == 0 else []
    if not names:
        return None
    name = "origin" if "origin" in names else names[0]
    status, out = run_text([*base, "remote", "get-url", name], GIT_TIMEOUT, stderr=False)
    url = out.strip()
    return url if status == 0 and url and url.isprintable() else None


def module_source_dirs(configure_args: tuple[str, ...], module: str) -> list[str]:
    """The --add-dynamic-module=/--add-module= directories of nginx -V whose
    ``config`` names ``module`` (the module's file name without .so)."""
    out = []
    for arg in configure_args:
        for opt in ("--add-dynamic-module=", "--add-module="):
            if arg.startswith(opt):
                path = arg[len(opt):]
                try:
                    with open(os.path.join(path, "config"), encoding="utf-8",
                              errors="replace") as f:
                        text = f.read(65536)
                except OSError:
                    continue
                if module in text:
                    out.append(path)
    return out
