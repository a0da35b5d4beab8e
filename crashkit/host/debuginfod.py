"""Files by build-id from debuginfod servers (``--debuginfod``), through
elfutils' own client library, libdebuginfod (the one gdb uses; Debian's gdb
depends on it), called with ctypes: its cache, its protocol, its
DEBUGINFOD_URLS.

What it fetches lands in crashkit's debuginfod cache (the one gdb is given,
see gdb/spawn.debuginfod_cache), so crashkit and gdb share each download.
Time is bounded by libdebuginfod's own limits, which crashkit sets when the
user did not: DEBUGINFOD_TIMEOUT (seconds without progress) and
DEBUGINFOD_MAXTIME (seconds per file)."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal

DEFAULT_TIMEOUT = "10"
DEFAULT_MAXTIME = "60"
Kind = Literal["executable", "debuginfo"]


class Debuginfod:
    """One client for a run; ``find`` returns the cached file's path or None."""

    def __init__(self, cache: str | None) -> None:
        name = ctypes.util.find_library("debuginfod") or "libdebuginfod.so.1"
        try:
            self._lib = ctypes.CDLL(name)
        except OSError as exc:
            raise OSError(f"libdebuginfod is not installed ({exc}); apt-get install "
                          "libdebuginfod1") from None
        self._lib.debuginfod_begin.restype = ctypes.c_void_p
        self._lib.debuginfod_end.argtypes = [ctypes.c_void_p]
        for fn in (self._lib.debuginfod_find_executable, self._lib.debuginfod_find_debuginfo):
            fn.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int,
                           ctypes.POINTER(ctypes.c_char_p)]
            fn.restype = ctypes.c_int
        self._libc = ctypes.CDLL(None)
        self._libc.free.argtypes = [ctypes.c_void_p]
        self._cache = cache
        self.failures: list[str] = []

    @contextmanager
    def _env(self) -> Iterator[None]:
        wanted = {"DEBUGINFOD_TIMEOUT": DEFAULT_TIMEOUT, "DEBUGINFOD_MAXTIME": DEFAULT_MAXTIME}
        if self._cache:
            wanted["DEBUGINFOD_CACHE_PATH"] = self._cache
        saved = {k: os.environ.get(k) for k in wanted}
        for k, v in wanted.items():
            if k == "DEBUGINFOD_CACHE_PATH" or not os.environ.get(k):
                os.environ[k] = v
        try:
            yield
        finally:
            for k, old in saved.items():
                if old is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = old

    def find(self, build_id: str, kind: Kind = "executable") -> str | None:
        if not os.environ.get("DEBUGINFOD_URLS") or not build_id or \
                any(c not in "0123456789abcdef" for c in build_id):
            return None
        with self._env():
            client = self._lib.debuginfod_begin()
            if not client:
                self.failures.append("libdebuginfod could not start a client")
                return None
            path = ctypes.c_char_p()
            try:
                fn = (self._lib.debuginfod_find_executable if kind == "executable"
                      else self._lib.debuginfod_find_debuginfo)
                fd = fn(client, build_id.encode(), 0, ctypes.byref(path))
            finally:
                self._lib.debuginfod_end(client)
        if fd < 0:
            if -fd != 2:  # ENOENT: the servers do not have it
                self.failures.append(f"{build_id}: {os.strerror(-fd)}")
            return None
        os.close(fd)
        found = path.value.decode("utf-8", "surrogateescape") if path.value else None
        if path.value:
            self._libc.free(ctypes.cast(path, ctypes.c_void_p))
        return found
