"""Small programs compiled and crashed here, for frame kinds and options the
nginx fixtures do not exercise: inlined frames, a crash inside a signal
handler, and a core analyzed against a --sysroot copy of its files."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import analyze_json, compile_program, crash_for_core, run_cli

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
    return compile_program(d, name, source, *flags)


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


RECURSION = r"""
int rec(int n) { volatile char b[256]; b[0] = (char)n; return rec(n + 1) + b[0]; }
int main(void) { return rec(0); }
"""

NULL_CALL = r"""
#include <stdio.h>
typedef int (*handler_fn)(int);
struct route { const char *name; handler_fn handler; };
__attribute__((noinline)) int dispatch(struct route *r, int v) { return r->handler(v) + 1; }
int main(void) { struct route r = {"x", 0}; printf("%d\n", dispatch(&r, 1)); return 0; }
"""

ASSERT = r"""
#include <assert.h>
__attribute__((noinline)) void check_limits(int n) { assert(n < 10 && "limit exceeded"); }
int main(int argc, char **argv) { (void)argv; check_limits(argc + 20); return 0; }
"""

THROW = r"""
#include <stdexcept>
#include <map>
#include <string>
namespace plug {
__attribute__((noinline)) int run(std::map<std::string, int> &m) {
    if (m.empty()) throw std::runtime_error("empty config");
    return m.begin()->second;
}
}
int main() { std::map<std::string, int> m; return plug::run(m); }
"""

PLUGIN_LIB = r"""
#include <map>
#include <string>
namespace plug {
struct rec { long pad; long value; };
__attribute__((noinline)) long parse(std::map<std::string, int> &m, rec *r) {
    return r->value + (long)m.size();
}
extern "C" long plugin_entry(void) { std::map<std::string, int> m; return parse(m, nullptr); }
}
"""
PLUGIN_MAIN = r"""
#include <dlfcn.h>
#include <stdio.h>
int main(void) {
    void *h = dlopen("./libplug.so", RTLD_NOW);
    if (!h) { puts(dlerror()); return 1; }
    long (*entry)(void) = (long (*)(void))dlsym(h, "plugin_entry");
    printf("%ld\n", entry());
    return 0;
}
"""


def build_cxx(d: Path, name: str, source: str, *flags: str) -> Path:
    return compile_program(d, name, source, *flags, cxx=True, opt="-O1")


def test_stack_overflow(tmp_path: Path) -> None:
    exe = build(tmp_path, "rec", RECURSION, "-O0")
    core = str(crash_for_core([str(exe)], tmp_path))
    data = analyze_json(core, "--max-frames", "100")
    assert "a stack overflow" in data["what_happened"]
    fr = frames(data)
    # The innermost 100 frames, then the outermost ones: where recursion began.
    assert [f["index"] for f in fr[:100]] == list(range(100))
    assert {f["function"] for f in fr[:100]} == {"rec"}
    outer = fr[100:]
    assert outer and outer[0]["index"] > 1000 and outer[-1]["function"] in ("main", "_start")
    assert "main" in [f["function"] for f in outer]
    assert [f["index"] for f in outer] == list(range(outer[0]["index"],
                                                     outer[0]["index"] + len(outer)))
    assert not any(f["inlined"] for f in fr)
    depth = outer[-1]["index"] + 1
    assert f"thread {data['threads'][0]['tid']}: the backtrace has {depth} frames; the " \
        "innermost 100 and the outermost are kept (--max-frames)" in data["warnings"]
    text = run_cli("analyze", core, "--max-frames", "100", check=True).stdout
    assert "the same frame 98 more times (#2 to #99): recursion" in text
    assert f"frames not shown (#100 to #{outer[0]['index'] - 1}; --max-frames)" in text


def test_call_through_null_function_pointer(tmp_path: Path) -> None:
    exe = build(tmp_path, "nullcall", NULL_CALL)
    data = analyze_json(str(crash_for_core([str(exe)], tmp_path)))
    assert "jumped to 0x0, which is not code — a call through a NULL function pointer" \
        in data["what_happened"]
    assert frames(data)[0]["pc"] == 0
    # gdb unwinds from pc 0 to the caller: the culprit is dispatch().
    assert "dispatch" in [f["function"] for f in frames(data)]
    assert data["crash"]["module"] == str(exe)


def test_failed_assert(tmp_path: Path) -> None:
    exe = build(tmp_path, "assert", ASSERT)
    data = analyze_json(str(crash_for_core([str(exe)], tmp_path)))
    assert "died of SIGABRT: a failed assertion (assert())" in data["what_happened"]
    assert "called from check_limits()" in data["what_happened"]
    assert data["crash"]["module"] == str(exe)


def test_uncaught_exception(tmp_path: Path) -> None:
    exe = build_cxx(tmp_path, "throw", THROW)
    data = analyze_json(str(crash_for_core([str(exe)], tmp_path)))
    assert "died of SIGABRT: an uncaught C++ exception (std::terminate)" in data["what_happened"]
    assert data["crash"]["module"] == str(exe)


JOIN = r"""
#include <thread>
int main() { std::thread t; t.join(); }
"""


def test_uncaught_exception_is_named_from_the_throw_frame(tmp_path: Path) -> None:
    """std::thread::join on a thread that never ran throws std::system_error
    through libstdc++'s std::__throw_system_error(int)."""
    exe = build_cxx(tmp_path, "join", JOIN)
    data = analyze_json(str(crash_for_core([str(exe)], tmp_path)))
    assert data["crash"]["exception"] == "std::system_error"
    assert ("died of SIGABRT: an uncaught C++ exception of type std::system_error "
            "(std::terminate)") in data["what_happened"]
    assert data["signature"]["frames"][0] == "exception:std::system_error"
    other = tmp_path / "direct"
    other.mkdir()
    plain = analyze_json(str(crash_for_core([str(build_cxx(other, "throw", THROW))], other)))
    assert plain["crash"]["exception"] is None  # thrown directly: no frame names the type
    assert not plain["signature"]["frames"][0].startswith("exception:")


def test_relative_dlopen_cxx_plugin(tmp_path: Path) -> None:
    """dlopen("./libplug.so"): gdb finds the library from the core's own
    mappings, wherever crashkit runs from."""
    build_cxx(tmp_path, "libplug.so", PLUGIN_LIB, "-shared", "-fPIC")
    exe = build_cxx(tmp_path, "host", PLUGIN_MAIN, "-ldl")
    core = crash_for_core([str(exe)], tmp_path)
    data = analyze_json(str(core))
    fr = frames(data)
    assert fr[0]["module"] == str(tmp_path / "libplug.so")
    names = [f["function"] for f in fr]
    assert names[0] == "plug::parse" and fr[0]["source"] == "gdb"  # gdb's own form
    assert any((f["file"] or "").endswith("libplug.so.cc") for f in fr)  # debug info found
    assert any(n and n.endswith("plugin_entry") for n in names) and "main" in names
    assert not any("Could not load shared library" in w for w in data["warnings"])
    # Without gdb the name comes from .symtab, demangled.
    notes = analyze_json(str(core), "--no-gdb")
    top = notes["threads"][0]["frames"][0]
    assert top["function"].startswith("plug::parse(") and top["source"] == "elf"


def test_unreadable_executable_still_gives_backtraces(tmp_path: Path) -> None:
    exe = build(tmp_path, "nullcall", NULL_CALL)
    core = crash_for_core([str(exe)], tmp_path)
    exe.write_text("#!/bin/sh\necho replaced by a script\n")
    data = analyze_json(str(core))
    assert data["gdb_used"] is True
    mods = {m["path"]: m for m in data["modules"]}
    assert mods[str(exe)]["file_status"] == "not-elf"
    # gdb unwound from the core and libc alone: past pc 0 to the caller.
    assert frames(data)[0]["pc"] == 0 and len(frames(data)) >= 2
    assert frames(data)[1]["module"] == str(exe)


def test_control_characters_in_argv_are_shown_not_obeyed(tmp_path: Path) -> None:
    build(tmp_path, "nullcall", NULL_CALL)
    evil = "a\x1b]0;TITLE\x07b\x1b[2J\nforged line"
    core = crash_for_core(["./nullcall", evil], tmp_path)  # short: psargs keeps 79 bytes
    text = run_cli("analyze", str(core), "--no-gdb", check=True).stdout
    assert "\x1b" not in text and "\x07" not in text
    assert "\\x1b]0;TITLE\\x07b\\x1b[2J\\x0aforged line" in text
    assert not any(line.startswith("forged line") for line in text.splitlines())


LIB_V1 = r"""
__attribute__((noinline)) int lib_depth(int *p) { return *p + 1; }
int lib_entry(int *p) { return lib_depth(p) * 2; }
"""
LIB_V2 = r"""
__attribute__((noinline)) int totally_new_helper(int x) { return x * 7 + 3; }
__attribute__((noinline)) int another_new_one(int x) { return totally_new_helper(x) - 1; }
__attribute__((noinline)) int lib_depth(int *p) { return another_new_one(*p) + 1; }
int lib_entry(int *p) { return lib_depth(p) * 2; }
"""


def test_debug_file_of_the_crashed_build_rescues_a_replaced_library(tmp_path: Path) -> None:
    """The library was rebuilt after the crash, but --debug-dir holds the debug
    file of the build that crashed: names come from it and are trusted."""
    from crashkit.elf.buildid import file_build_id

    build(tmp_path, "libdepth.so", LIB_V1, "-shared", "-fPIC", "-O1")
    lib = tmp_path / "libdepth.so"
    old_id = file_build_id(str(lib)).build_id
    assert old_id
    debug = tmp_path / "debug" / ".build-id" / old_id[:2] / f"{old_id[2:]}.debug"
    debug.parent.mkdir(parents=True)
    subprocess.run(["objcopy", "--only-keep-debug", str(lib), str(debug)], check=True)
    exe = build(tmp_path, "prog", MAIN, f"-L{tmp_path}", "-ldepth", f"-Wl,-rpath,{tmp_path}")
    core = str(crash_for_core([str(exe)], tmp_path))
    build(tmp_path, "libdepth.so", LIB_V2, "-shared", "-fPIC", "-O1")  # the upgrade

    plain = analyze_json(core)
    top = frames(plain)[0]
    assert top["trusted"] is False and top["function"] is None

    data = analyze_json(core, "--debug-dir", str(tmp_path / "debug"))
    top = frames(data)[0]
    assert (top["function"], top["source"], top["trusted"]) == ("lib_depth", "elf", True)
    assert top["file"] is None  # gdb's lines came from the other build
    assert "in lib_depth() [libdepth.so]" in data["what_happened"]
    assert any(w.startswith(f"build-id mismatch: {lib} on disk is another build, but a debug "
                            f"file of the crashed build ({old_id})") for w in data["warnings"])


SMASH = r"""
#include <string.h>
__attribute__((noinline)) void copy_name(const char *src) {
    char buf[8];
    memcpy(buf, src, strlen(src));  /* no bounds check */
    __asm__ volatile("" : : "r"(buf) : "memory");
}
int main(void) { copy_name("a name far longer than eight bytes"); return 0; }
"""

HEAP_JUMP = r"""
#include <stdlib.h>
#include <string.h>
int main(void) {
    unsigned char *code = malloc(64);
    memset(code, 0xc3, 64);           /* ret, but the heap is not executable */
    ((void (*)(void))code)();
    return 0;
}
"""

BUS = r"""
#include <fcntl.h>
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>
int main(void) {
    int fd = open("data.bin", O_RDWR | O_CREAT | O_TRUNC, 0600);
    ftruncate(fd, 8192);
    volatile char *p = mmap(0, 8192, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    ftruncate(fd, 0);                 /* the file shrinks under its mapping */
    printf("%d\n", p[4096 + 16]);
    return 0;
}
"""

TRAP_UD2 = r"""
__attribute__((noinline)) int unreachable_state(int s) { if (s > 1) __builtin_trap(); return s; }
int main(int argc, char **argv) { (void)argv; return unreachable_state(argc + 1); }
"""


def test_stack_protector_is_not_called_fortify(tmp_path: Path) -> None:
    exe = build(tmp_path, "smash", SMASH, "-fstack-protector-all", "-U_FORTIFY_SOURCE",
                "-D_FORTIFY_SOURCE=0", "-O0")
    data = analyze_json(str(crash_for_core([str(exe)], tmp_path)))
    assert ("died of SIGABRT: stack smashing detected by the stack protector"
            in data["what_happened"])
    assert data["crash"]["module"] == str(exe)


def test_jump_into_the_heap(tmp_path: Path) -> None:
    exe = build(tmp_path, "heapjump", HEAP_JUMP, "-O0")
    data = analyze_json(str(crash_for_core([str(exe)], tmp_path)))
    assert "jumped to" in data["what_happened"] and "which is not code" in data["what_happened"]
    assert "[non-executable memory: heap, stack or data]" in data["what_happened"]


def test_sigbus_names_the_file(tmp_path: Path) -> None:
    exe = build(tmp_path, "bus", BUS, "-O0")
    data = analyze_json(str(crash_for_core([str(exe)], tmp_path)))
    assert data["signal"]["name"] == "SIGBUS"
    assert f"in the mapped file {tmp_path / 'data.bin'} at offset 0x1010" in data["what_happened"]


def test_trap_instruction(tmp_path: Path) -> None:
    exe = build(tmp_path, "ud2", TRAP_UD2)
    data = analyze_json(str(crash_for_core([str(exe)], tmp_path)))
    assert data["signal"]["name"] == "SIGILL"
    assert "a trap instruction (ud2, __builtin_trap()" in data["what_happened"]
    assert "in unreachable_state()" in data["what_happened"]
    assert data["context"]["faulting_instruction"] == "ud2"


def test_portable_bundle_is_analysed_elsewhere_alike(tmp_path: Path) -> None:
    """report --portable, then the program and its library moved away: the
    bundle alone gives the same frames and signature."""
    src = tmp_path / "prog"
    src.mkdir()
    lib = compile_program(src, "libdemo.so", LIB, "-fPIC", "-shared")
    exe = compile_program(src, "demo", MAIN, f"-L{src}", "-ldemo", f"-Wl,-rpath,{src}")
    assert lib.exists()
    core = crash_for_core([str(exe)], src)
    before = analyze_json(str(core))
    out = tmp_path / "out"
    out.mkdir()
    made = run_cli("report", str(core), "--portable", "--out", str(out), check=True)
    assert "--portable: the bundle holds the process's memory" in made.stderr
    [bundle] = list(out.iterdir())
    assert bundle.name.endswith("-with-core.tar.gz")
    away = tmp_path / "away"
    src.rename(away)  # the original files are gone from their paths
    after = analyze_json(str(bundle))
    assert after["signature"]["hash"] == before["signature"]["hash"]
    key = [(f["function"], f["module"], f["line"]) for f in frames(before)]
    assert [(f["function"], f["module"], f["line"]) for f in frames(after)] == key
    assert [f["function"] for f in frames(after)][:3] == ["lib_depth", "lib_entry", "main"]
