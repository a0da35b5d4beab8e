"""crashkit's own settings file (TOML; /etc/crashkit/crashkit.toml by default).

It may hold a fleet server's DSN, which decides where crash data goes: as
root, a file that another user owns or may write is refused (whoever can
change it could send this host's crashes to their own server)."""

from __future__ import annotations

import os
import stat
import tomllib
from typing import Any

from crashkit.errors import InputError

MAX_SIZE = 1 << 20


def read_settings(path: str) -> dict[str, Any]:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise InputError("no such settings file", path=path) from None
    except OSError as exc:
        raise InputError(f"cannot open the settings file ({exc.strerror})", path=path) from None
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise InputError("the settings file is not a regular file", path=path)
        if os.geteuid() == 0 and (st.st_uid != 0 or st.st_mode & 0o022):
            raise InputError("the settings file must be owned by root and writable by root "
                             "alone (it says where crash data is sent)", path=path)
        data = f.read(MAX_SIZE + 1)
    if len(data) > MAX_SIZE:
        raise InputError("the settings file is larger than 1 MiB", path=path)
    try:
        return tomllib.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise InputError(f"not valid TOML ({exc})", path=path) from None
