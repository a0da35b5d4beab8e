"""Reading an nginx config file's text, byte-exact on write-back
(crashkit.formats.nginx_config.to_bytes gives the same bytes back)."""

from __future__ import annotations

from crashkit.errors import InputError


def read_text(path: str) -> str:
    """A config file's text, byte-exact on write-back (see write_bytes)."""
    from crashkit.nginx.safeparse import open_regular

    try:
        with open(open_regular(path), "rb") as f:  # no FIFO, device or huge file
            return f.read().decode("utf-8", errors="surrogateescape")
    except OSError as exc:
        raise InputError(f"cannot read: {(exc.strerror or str(exc)).lower()}", path=path) from exc
