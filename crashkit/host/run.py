"""The one way crashkit runs another program.

Every host command goes through :func:`run`: the tool is looked up to an
absolute path first, from a fixed system path (:mod:`crashkit.host.toolpath`,
never the caller's PATH or working directory); it runs in the C locale
(messages parse the same everywhere) with an environment built from an
allow-list, stdin closed (unless input is given), in a process group of its
own, under an address-space and a CPU-time limit, and with a deadline. A
tool that is missing, cannot start, overruns its deadline or is stopped by
its limits is a :class:`~crashkit.errors.CommandError`; on a timeout or any
exception (a signal turned into SystemExit) its whole process group is
killed and reaped before the error goes on.
"""

from __future__ import annotations

import contextlib
import os
import resource
import signal
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from crashkit.errors import CommandError
from crashkit.host.toolpath import find

DEFAULT_TIMEOUT = 30.0
# A child's address space: far more than nginx -t, dpkg-query or openssl
# need, far less than a host in trouble can give away.
MEMORY_LIMIT = 4 << 30

# What a child inherits from crashkit's environment; everything else (LD_*,
# PYTHON*, GDB*, DEBUGINFOD*, IFS, ...) is left out.
ENV_ALLOW = ("HOME", "TMPDIR", "TZ", "TERM", "USER", "LOGNAME")
SAFE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


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
    """The absolute path of ``tool`` (a bare name from the system path, or a path)."""
    return find(tool)


def child_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k in ENV_ALLOW}
    env.update(extra or {})
    env["PATH"] = SAFE_PATH
    env["LC_ALL"] = "C"
    return env


def limits(cpu_seconds: float, memory: int = MEMORY_LIMIT) -> None:
    """Run in the child before exec: its resource limits (never raised)."""
    for which, want in ((resource.RLIMIT_AS, memory),
                        (resource.RLIMIT_CPU, max(1, int(cpu_seconds) + 1))):
        _soft, hard = resource.getrlimit(which)
        if hard != resource.RLIM_INFINITY:
            want = min(want, hard)
        resource.setrlimit(which, (want, want if hard == resource.RLIM_INFINITY else hard))


def _kill_group(proc: subprocess.Popen[str]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)  # the leader is not reaped yet: still its group
    proc.kill()


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
        proc = subprocess.Popen([path, *argv[1:]], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, errors="replace",
                                stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
                                env=child_env(env), start_new_session=True,
                                preexec_fn=lambda: limits(timeout))
    except OSError as exc:
        raise CommandError(f"{argv[0]}: {exc.strerror or exc}", command=shown) from None
    try:
        stdout, stderr = proc.communicate(input, timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        proc.communicate()
        raise CommandError(f"{argv[0]} did not finish within {timeout:g} s; it was stopped",
                           command=shown) from None
    except BaseException:
        _kill_group(proc)
        proc.communicate()
        raise
    status = proc.returncode
    if status in (-signal.SIGXCPU, -signal.SIGKILL):
        raise CommandError(f"{argv[0]} was stopped by crashkit's limits ({timeout:g} s of CPU, "
                           f"{MEMORY_LIMIT >> 30} GiB of memory; signal {-status})",
                           command=shown, status=status, output=stdout + stderr)
    done = Completed(tuple(argv), status, stdout, stderr)
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
