"""An nginx config and build as crashkit reads them (crashkit.nginx.config is
the reader): directives with their file and line, the build's compiled-in
paths, and what the verbs look up in them."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class BuildInfo:
    """What ``nginx -V`` says about the binary's compiled-in paths and user."""

    version: str | None
    prefix: str | None
    conf_path: str | None
    pid_path: str | None
    error_log_path: str | None
    user: str | None
    group: str | None
    configure_args: tuple[str, ...]
    # The -p nginx runs with, when not its compiled-in prefix (crashkit's
    # --prefix, or the running master's own -p): nginx -t must be given it.
    prefix_option: str | None = None


@dataclass(frozen=True)
class ConfigLocation:
    path: str
    source: Literal["option", "nginx -V", "default"]


@dataclass(frozen=True)
class Directive:
    name: str
    args: tuple[str, ...]
    file: str
    line: int
    context: tuple[str, ...]  # names of the enclosing blocks; () is the main context
    block: tuple[Directive, ...] | None = None  # None: a simple directive
    includes: tuple[str, ...] = ()  # for ``include``: the files it pulled in

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass(frozen=True)
class NginxConfig:
    root: str
    files: tuple[str, ...]  # every file read, the root first
    directives: tuple[Directive, ...]  # the main context, includes expanded
    build: BuildInfo | None = None
    # For each file (as in ``files``): its include statements in file order,
    # each as the files it pulled in (a glob's matches, sorted as nginx does).
    includes: tuple[tuple[str, tuple[tuple[str, ...], ...]], ...] = ()

    def walk(self) -> Iterator[Directive]:
        """Every directive, depth first, in file order."""
        def _walk(items: tuple[Directive, ...]) -> Iterator[Directive]:
            for d in items:
                yield d
                if d.block:
                    yield from _walk(d.block)
        return _walk(self.directives)

    def find(self, name: str, context: tuple[str, ...] | None = None) -> tuple[Directive, ...]:
        """Directives named ``name`` (in exactly ``context`` when given)."""
        return tuple(d for d in self.walk()
                     if d.name == name and (context is None or d.context == context))

    @property
    def prefix(self) -> str:
        if self.build is not None and self.build.prefix:
            return self.build.prefix
        return os.path.dirname(self.root)


@dataclass(frozen=True)
class WorkerUser:
    user: str
    group: str
    directive: Directive | None  # None: nginx's default applies


@dataclass(frozen=True)
class LogTarget:
    path: str  # a file path, or "stderr", "syslog:...", "memory:..."
    level: str | None
    directive: Directive | None


@dataclass(frozen=True)
class Listen:
    address: str  # as written: "80", "127.0.0.1:8080", "[::]:443", "unix:/run/x.sock"
    options: tuple[str, ...]
    directive: Directive


@dataclass(frozen=True)
class UpstreamTarget:
    kind: str  # proxy_pass, fastcgi_pass, uwsgi_pass, grpc_pass, scgi_pass, server
    target: str  # as written
    unix_socket: str | None  # the socket path for unix: targets
    upstream: str | None  # the enclosing ``upstream`` block's name, for ``server``
    directive: Directive
