"""The one way crashkit runs another program.

Every host command goes through :func:`run`: the tool is looked up to an
absolute path first, it runs in the C locale (messages parse the same
everywhere) with stdin closed (unless input is given) and a deadline, and a
tool that is missing, cannot start or overruns its deadline is a
:class:`~crashkit.errors.CommandError`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from crashkit.errors import CommandError

DEFAULT_TIMEOUT = 30.0


@dataclass(frozen=True)
class Completed:
    argv: tuple[str, ...]
    status: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def resolve(tool: str) -> str | None:
    """The absolute path of ``tool`` (a name on PATH, or a path)."""
    if os.sep in tool:
        return os.path.abspath(tool) if os.access(tool, os.X_OK) else None
    return shutil.which(tool)


def run(argv: Sequence[str], *, timeout: float = DEFAULT_TIMEOUT, input: str | None = None,
        env: Mapping[str, str] | None = None, check: bool = False) -> Completed:
    """Run ``argv``; with ``check``, a non-zero status is a CommandError too."""
    if not argv:
        raise ValueError("empty command")
    path = resolve(argv[0])
    shown = " ".join(argv)
    if path is None:
        raise CommandError(f"{argv[0]}: command not found", command=shown)
    try:
        proc = subprocess.run([path, *argv[1:]], capture_output=True, text=True,
                              errors="replace", timeout=timeout, input=input,
                              stdin=None if input is not None else subprocess.DEVNULL,
                              env={**os.environ, **(env or {}), "LC_ALL": "C"})
    except subprocess.TimeoutExpired:
        raise CommandError(f"{argv[0]} did not finish within {timeout:g} s",
                           command=shown) from None
    except OSError as exc:
        raise CommandError(f"{argv[0]}: {exc.strerror or exc}", command=shown) from None
    done = Completed(tuple(argv), proc.returncode, proc.stdout, proc.stderr)
    if check and done.status != 0:
        raise CommandError(f"{argv[0]} exited with status {done.status}", command=shown,
                           status=done.status, output=done.output)
    return done


def run_text(argv: Sequence[str], timeout: float = DEFAULT_TIMEOUT, stderr: bool = True,
             ) -> tuple[int | None, str]:
    """(exit status, stdout and, with ``stderr``, stderr); (None, why) when it
    could not run."""
    try:
        done = run(argv, timeout=timeout)
    except CommandError as exc:
        return None, exc.message
    return done.status, done.stdout + (done.stderr if stderr else "")
