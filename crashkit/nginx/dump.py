"""What nginx says about itself: ``nginx -V`` and ``nginx -T``, for a bug report."""

from __future__ import annotations

import functools
import os
import re
from dataclasses import dataclass

from crashkit.errors import InputError
from crashkit.host import proc
from crashkit.host.run import run_text
from crashkit.nginx.files import read_text

_FILE_MARK = re.compile(r"^# configuration file (.+):\r?$", re.M)


@functools.cache
def version_text(nginx: str) -> str | None:
    """``nginx -V`` (the one place it runs, once per binary): version, compiler,
    configure arguments; None when it cannot be run."""
    status, text = run_text([nginx, "-V"])
    return text if status == 0 and text.strip() else None


@dataclass(frozen=True)
class MasterOptions:
    """How a running nginx master was started (its title keeps its options)."""

    pid: int
    binary: str
    conf: str | None  # -c
    prefix: str | None  # -p


def running_master(pid: int, started_before: float, nginx: str) -> MasterOptions | None:
    """The options of nginx master ``pid`` if it still runs, started before
    ``started_before`` (a crashed worker's parent, not a reused pid), and can
    be trusted: the pid comes from the core, and its config is about to be
    given to ``nginx -T`` as root, which loads the modules it names. So the
    process must run as root, from the same binary as ``nginx``, and its
    config must be root's alone (owned by root, writable by nobody else)."""
    from crashkit.host.run import resolve

    title, started, exe = proc.title(pid), proc.started_at(pid), proc.exe(pid)
    head = "nginx: master process "
    binary = resolve(nginx)
    if title is None or started is None or exe is None or not title.startswith(head) or \
            proc.uids(pid) != (0, 0) or binary is None or exe != os.path.realpath(binary):
        return None
    if started > started_before:
        return None
    # nginx joins its arguments with spaces: a path with a space is lost.
    words = title[len(head):].split(" ")
    opts = {flag: words[i + 1] for i, flag in enumerate(words[:-1])
            if flag in ("-c", "-p")}
    conf, prefix = opts.get("-c"), opts.get("-p")
    if conf is not None:
        path = conf if os.path.isabs(conf) or not prefix else os.path.join(prefix, conf)
        try:
            st = os.stat(path)
        except OSError:
            return None
        if st.st_uid != 0 or st.st_mode & 0o022:
            return None
    return MasterOptions(pid, words[0], conf, prefix)


def running_prefix(conf: str, nginx: str) -> str | None:
    """The -p of a running, trusted master (see running_master) of ``conf``."""
    import time

    want = os.path.realpath(conf)
    for pid in proc.pids():
        if not (proc.title(pid, 64) or "").startswith("nginx: master process"):
            continue
        master = running_master(pid, time.time(), nginx)
        if master is None or master.conf is None or master.prefix is None:
            continue
        path = master.conf if os.path.isabs(master.conf) else os.path.join(master.prefix,
                                                                             master.conf)
        if os.path.realpath(path) == want:
            return master.prefix
    return None


def config_dump(nginx: str, conf: str, files: tuple[str, ...], prefix: str | None = None,
                ) -> tuple[list[tuple[str, str]], str]:
    """Every file of the configuration as (path, text), and how it was read:
    ``nginx -T`` (nginx's own view, includes expanded), or, when nginx
    refuses (a config that fails -t, no permission), the files crashkit's
    reader found."""
    status, out = run_text([nginx, "-T", "-q", *(["-p", prefix] if prefix else []), "-c", conf])
    if status == 0:
        parts = _FILE_MARK.split(out)
        # ["", path1, text1, path2, text2, ...]; nginx ends each file with a newline.
        pairs = [(parts[i], parts[i + 1].removeprefix("\n").removeprefix("\r\n"))
                 for i in range(1, len(parts) - 1, 2)]
        if pairs:
            return pairs, f"nginx -T -c {conf}"
    why = out.strip().splitlines()[-1] if out.strip() else f"exit status {status}"
    pairs = []
    for path in files:
        try:
            pairs.append((path, read_text(path)))
        except InputError:
            continue  # an unreadable file is left out, and the others still help
    return pairs, f"the files of {conf} (nginx -T failed: {why})"
