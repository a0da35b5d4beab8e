"""The one way crashkit does something as another user: fork, drop to that
user's uid, gid and supplementary groups (initgroups, as nginx's workers get
them), run a small function, and report its result as the child's exit code."""

from __future__ import annotations

import os
from collections.abc import Callable

# Exit codes the child keeps for itself: it could not become the user.
_FAILED = 255


def as_user(uid: int, gid: int, name: str | None, work: Callable[[], int]) -> int | None:
    """``work()`` run as uid:gid with ``name``'s groups (none when the uid has no
    name); its value (0..253), or None when we are not root or the switch failed."""
    if os.geteuid() != 0:
        return None
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child only exits
        code = _FAILED
        try:
            if name is not None:
                os.initgroups(name, gid)
            else:
                os.setgroups([])
            os.setgid(gid)
            os.setuid(uid)
            code = max(0, min(work(), 253))
        except BaseException:  # noqa: BLE001 - a forked child must never return
            code = _FAILED
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    return None if code == _FAILED or code < 0 else code
