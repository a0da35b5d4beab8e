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


def start_gdb(options: Options) -> tuple[GdbSession | None, str | None]:
    """gdb for this analysis (the pre-started one when it fits); (session, None)
    or (None, why not)."""
    from crashkit.gdb.spawn import drop_early

    if not options.use_gdb:
        drop_early()
        return None, None
    from crashkit.gdb.session import GdbOptions, GdbSession
    from crashkit.gdb.spawn import SafetyFlags

    try:
        return GdbSession(GdbOptions(gdb=options.gdb, timeout=options.gdb_timeout,
                                     safety=SafetyFlags(debuginfod=options.debuginfod))), None
    except GdbError as exc:
        return None, str(exc)
