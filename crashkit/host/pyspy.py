"""A CPython process's Python stack, read from its core by py-spy (installed
with crashkit from PyPI), through the one runner (deadline, limits, fixed
environment). py-spy opens the core's mapped files (the python binary) by
the paths the core names: the caller only asks when those files are this
host's own (no --sysroot, the executable's build-id matching)."""

from __future__ import annotations

import json

from crashkit.errors import CommandError
from crashkit.host.run import run
from crashkit.host.toolpath import installed_with_crashkit
from crashkit.model.analyze import ScriptPlace

PYSPY_TIMEOUT = 10.0
MAX_FRAMES = 64


def python_stack(core: str, tid: int | None) -> tuple[ScriptPlace, ...]:
    """The Python frames of thread ``tid`` (else of the thread holding the
    GIL), innermost first; () when py-spy is missing or cannot read the core."""
    tool = installed_with_crashkit("py-spy")
    if tool is None:
        return ()
    try:
        done = run([tool, "dump", "--core", core, "--json", "--full-filenames"],
                   timeout=PYSPY_TIMEOUT)
        threads = json.loads(done.stdout) if done.status == 0 else []
    except (CommandError, ValueError):
        return ()
    if not isinstance(threads, list):
        return ()
    chosen = next((t for t in threads if isinstance(t, dict) and t.get("os_thread_id") == tid),
                  None) or next((t for t in threads if isinstance(t, dict)
                                 and t.get("owns_gil")), None)
    if chosen is None or not isinstance(chosen.get("frames"), list):
        return ()
    out = []
    for f in chosen["frames"][:MAX_FRAMES]:
        if not isinstance(f, dict):
            continue
        name, file, line = f.get("name"), f.get("filename"), f.get("line")
        if not isinstance(file, str) or not isinstance(name, str):
            continue
        line = line if isinstance(line, int) and line > 0 else None
        text = f"{name} ({file}{f':{line}' if line else ''})"
        out.append(ScriptPlace(text, file, line, "vm-state", function=name))
    return tuple(out)
