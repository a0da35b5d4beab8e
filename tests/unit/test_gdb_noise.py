"""gdb's warnings that say nothing about the crash are dropped; the others stay."""

from __future__ import annotations

import pytest

from crashkit.gdb.backtrace import _NOISE


@pytest.mark.parametrize(("line", "noise"), [
    ("warning: Unexpected size of section `.reg-xstate/31337' in core file.", True),
    ("warning: Can't open file /dev/zero (deleted) during file-backed mapping note processing",
     True),
    ("warning: Can't open file /memfd:jit (deleted) during file-backed mapping note processing",
     True),
    ("warning: Can't open file /usr/lib/libfoo.so during file-backed mapping note processing",
     False),
    ("warning: core file may not match specified executable file.", False),
    ("warning: Unexpected size of section `.reg2/31337' in core file.", False),
])
def test_noise(line: str, noise: bool) -> None:
    assert bool(_NOISE.search(line)) is noise
