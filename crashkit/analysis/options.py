"""What ``analyze`` is asked to do, and starting gdb before anything heavy is imported."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from crashkit.errors import GdbError

if TYPE_CHECKING:
    from crashkit.gdb.session import GdbSession


@dataclass(frozen=True)
class Options:
    exe: str | None = None
    sysroot: str | None = None
    debug_dirs: Sequence[str] = ()
    use_gdb: bool = False
    gdb: str = "gdb"
    gdb_timeout: float = 60.0
    debuginfod: bool = False
    full_frames: int = 0  # arguments and locals for this many innermost frames
    max_frames: int = 256
    redact: bool = True


_early: GdbSession | None = None


def prestart(argv: Sequence[str]) -> None:
    """Start gdb for ``crashkit analyze`` before the rest of crashkit (click,
    pyelftools) is imported, so gdb's own start-up overlaps Python's. Only the
    plain case is started early; any option that changes how gdb starts, and
    anything that is not an analysis, leaves it to :func:`start_gdb`."""
    global _early
    if not argv or argv[0] != "analyze":
        return
    if any(a in ("-h", "--help", "--no-gdb", "--debuginfod") or (a.startswith("--gdb")
           and not a.startswith("--gdb-timeout")) for a in argv[1:]):
        return
    import atexit

    from crashkit.gdb.session import GdbOptions, GdbSession

    try:
        _early = GdbSession(GdbOptions())
    except GdbError:
        return  # start_gdb will say so
    atexit.register(_drop_early)


def _drop_early() -> None:
    global _early
    if _early is not None:
        _early.close()
        _early = None


def start_gdb(options: Options) -> tuple[GdbSession | None, str | None]:
    """Start gdb early (its start-up overlaps ours); (session, None) or (None, why not)."""
    global _early
    if not options.use_gdb:
        _drop_early()
        return None, None
    from crashkit.gdb.session import GdbOptions, GdbSession, SafetyFlags

    wanted = GdbOptions(gdb=options.gdb, timeout=options.gdb_timeout,
                        safety=SafetyFlags(debuginfod=options.debuginfod))
    if _early is not None and wanted == GdbOptions(timeout=wanted.timeout):
        session, _early = _early, None
        session.timeout = options.gdb_timeout
        return session, None
    _drop_early()
    try:
        return GdbSession(wanted), None
    except GdbError as exc:
        return None, str(exc)
