"""What nginx says about itself: ``nginx -V`` and ``nginx -T``, for a bug report."""

from __future__ import annotations

import re

from crashkit.errors import InputError
from crashkit.host.system import run_text
from crashkit.nginx.text import read_text

_FILE_MARK = re.compile(r"^# configuration file (.+):\r?$", re.M)


def version_text(nginx: str) -> str | None:
    """``nginx -V``: version, compiler, configure arguments."""
    status, text = run_text([nginx, "-V"])
    return text if status == 0 and text.strip() else None


def config_dump(nginx: str, conf: str, files: tuple[str, ...]) -> tuple[list[tuple[str, str]],
                                                                        str]:
    """Every file of the configuration as (path, text), and how it was read:
    ``nginx -T`` (nginx's own view, includes expanded), or, when nginx
    refuses (a config that fails -t, no permission), the files crashkit's
    reader found."""
    status, out = run_text([nginx, "-T", "-q", "-c", conf])
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
