"""Small programs compiled and crashed here, for frame kinds and options the
nginx fixtures do not exercise: inlined frames, a crash inside a signal
handler, and a core analyzed against a --sysroot copy of its files."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import analyze_json, crash_for_core, unavailable

pytestmark = pytest.mark.integration

INLINE = r"""
#include <stdio.h>
struct conf { int pad[5]; int level; };
static inline __attribute__((always_inline)) int conf_level(struct conf *c, int k) {
    if (k > 3) printf("k=%d\n", k);
    return c->level + k;
}
__attribute__((noinline)) int check(struct conf *c, int k) { return conf_level(c, k) * 3; }
int main(int argc, char **argv) {
    struct conf *volatile c = 0;
    (void)argv;
    printf("%d\n", check(c, argc + 4));
    return 0;
}
"""

HANDLER = r"""
#include <signal.h>
#include <stdio.h>
struct ctx { long a; long hits; };
struct ctx *volatile current;
__attribute__((noinline)) void on_usr1(int sig) { current->hits += sig; }
int main(void) {
    signal(SIGUSR1, on_usr1);
    raise(SIGUSR1);
    puts("survived");
    return 0;
}
"""

LIB = r"""
__attribute__((noinline)) int lib_depth(int *p) { return *p + 1; }
int lib_entry(int *p) { return lib_depth(p) * 2; }
"""
MAIN = r"""
#include <stdio.h>
int lib_entry(int *p);
int main(void) { int *volatile p = (int *)0x40; printf("%d\n", lib_entry(p)); return 0; }
"""


def build(d: Path, name: str, source: str, *flags: str) -> Path:
    if shutil.which("gcc") is None:
        unavailable("gcc is not installed")
    src = d / f"{name}.c"
    src.write_text(source)
    out = d / name
    subprocess.run(["gcc", "-g", "-O2", "-o", str(out), str(src), *flags], check=True)
    return out


def frames(data: dict[str, Any]) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = data["threads"][0]["frames"]
    return result


def test_inlined_frame(tmp_path: Path) -> None:
    exe = build(tmp_path, "inline", INLINE)
    data = analyze_json(str(crash_for_core([str(exe)], tmp_path)))
    fr = frames(data)
    assert [f["function"] for f in fr[:3]] == ["conf_level", "check", "main"]
    assert [f["inlined"] for f in fr[:3]] == [True, False, False]
    assert fr[0]["pc"] == fr[1]["pc"]  # an inlined frame has no pc of its own
    assert data["signal"]["fault_address"] == 20  # offsetof(struct conf, level)


def test_crash_inside_signal_handler(tmp_path: Path) -> None:
    exe = build(tmp_path, "handler", HANDLER)
    data = analyze_json(str(crash_for_core([str(exe)], tmp_path)))
    fr = frames(data)
    names = [f["function"] for f in fr]
    assert names[0] == "on_usr1"
    sig = names.index("<signal handler called>")
    assert fr[sig]["signal_frame"] is True and sig == 1
    assert "main" in names[sig + 1:]
    assert not any(f["signal_frame"] for i, f in enumerate(fr) if i != sig)
    assert data["signal"]["fault_address"] == 8  # offsetof(struct ctx, hits)


def test_sysroot(tmp_path: Path) -> None:
    """The crashed host's files live under --sysroot here: without it nothing
    is found; with it build-ids match and gdb names every frame."""
    host = tmp_path / "host"
    host.mkdir()
    build(host, "libdepth.so", LIB, "-shared", "-fPIC")
    exe = build(host, "prog", MAIN, f"-L{host}", "-ldepth", f"-Wl,-rpath,{host}")
    core = crash_for_core([str(exe)], host)
    sysroot = tmp_path / "sysroot"
    target = sysroot / str(host).lstrip("/")
    target.parent.mkdir(parents=True)
    shutil.move(str(host), str(target))
    moved_core = str(target / core.name)

    without = analyze_json(moved_core)
    mods = {m["path"]: m for m in without["modules"]}
    assert mods[str(exe)]["file_status"] == "missing"
    assert mods[str(host / "libdepth.so")]["file_status"] == "missing"

    data = analyze_json(moved_core, "--sysroot", str(sysroot))
    mods = {m["path"]: m for m in data["modules"]}
    for path in (str(exe), str(host / "libdepth.so")):
        assert mods[path]["file_status"] == "ok" and mods[path]["build_id_match"] is True
    fr = frames(data)
    assert [f["function"] for f in fr[:3]] == ["lib_depth", "lib_entry", "main"]
    assert fr[0]["source"] == "gdb" and fr[0]["module"] == str(host / "libdepth.so")
    assert data["signal"]["fault_address"] == 0x40
