"""Crashes that a script caused, made here with Debian's interpreters: the
verdict blames the script run by the interpreter, not the interpreter."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import analyze_json, crash_for_core, unavailable
from tests.live_nginx import LiveNginx, basic_conf, crash_worker, free_port

pytestmark = pytest.mark.integration


def test_python_ctypes_null_is_blamed_on_the_script(tmp_path: Path) -> None:
    script = tmp_path / "bad.py"
    script.write_text("import ctypes\n\ndef handler(n):\n    return ctypes.string_at(n)\n"
                      "handler(0)\n")
    core = crash_for_core([sys.base_prefix + "/bin/python3", "-I", "bad.py"], tmp_path)
    data = analyze_json(str(core))
    verdict = data["verdict"]
    assert verdict["confidence"] == "medium"
    assert "Python script code running in CPython (embedded by python3" in verdict["summary"]
    assert "less likely a bug in CPython" in verdict["summary"]
    assert verdict["report_to"].startswith("the site's Python code")
    sig = data["signature"]["frames"]
    # The script's own stack, read from the interpreter's state by py-spy:
    # the site's function and line, and ctypes marked as the library it is.
    places = data["verdict"]["script"]["places"]
    here = str(tmp_path / "bad.py")
    assert [(p["function"], p["file"], p["line"], p["library"], p["source"])
            for p in places] == [
        ("string_at", places[0]["file"], places[0]["line"], True, "vm-state"),
        ("handler", here, 4, False, "vm-state"),
        ("<module>", here, 5, False, "vm-state")], places
    assert places[0]["file"].endswith("/ctypes/__init__.py")
    assert f"handler ({here}:4)" in data["verdict"]["report_to"]
    assert sig == ["libc.so!strlen", "script:CPython!PyCFuncPtr_call @ bad.py!handler"], sig
    # Another bug in another script function: another group.
    (tmp_path / "other").mkdir()
    other = tmp_path / "other" / "bad.py"
    other.write_text("import ctypes\n\n\ndef reader(n):\n    return ctypes.string_at(n)\n\n\n"
                     "reader(0)\n")
    again = analyze_json(str(crash_for_core([sys.base_prefix + "/bin/python3", "-I", "bad.py"],
                                            tmp_path / "other")))
    assert again["signature"]["hash"] != data["signature"]["hash"]
    assert again["signature"]["frames"][-1].endswith("@ bad.py!reader")


MODULES = "/usr/lib/nginx/modules"


def _nginx_script_crash(tmp_path: Path, core_dir: Path, modules: list[str], location: str,
                        name: str, *, live: bool = False, conf_option: bool = False,
                        ) -> dict[str, Any]:
    """The analysis of a worker's crash; ``live``: while its master still runs
    (crashkit finds the config from the master), ``conf_option``: afterwards,
    with --conf."""
    for m in modules:
        if not os.path.exists(f"{MODULES}/{m}"):
            unavailable(f"{MODULES}/{m} is not installed (scripts/bootstrap installs it)")
    port = free_port()
    loads = "".join(f"load_module {MODULES}/{m};\n" for m in modules[1:])
    conf = basic_conf(port, load_module=f"{MODULES}/{modules[0]}",
                      main=f"{loads}worker_rlimit_core 500M;\nworking_directory {core_dir};",
                      server=location)
    with LiveNginx(tmp_path / name, conf) as ngx:
        core = crash_worker(ngx, f"http://127.0.0.1:{port}/crash", core_dir)
        if live:
            return analyze_json(str(core))
    return analyze_json(str(core), *(["--conf", str(ngx.conf)] if conf_option else []))


LUA = ["ndk_http_module.so", "ngx_http_lua_module.so"]


def test_lua_ffi_crashes_are_blamed_on_the_script(tmp_path: Path, core_dir: Path) -> None:
    write = _nginx_script_crash(tmp_path, core_dir, LUA, """location /crash {
        content_by_lua_block {
            local ffi = require "ffi"
            local p = ffi.cast("int *", 0)
            p[0] = 1
        }
    }""", "write", conf_option=True)
    # The script's place: its chunk name in memory, and its directive in the config.
    places = {(p["source"], p["text"]) for p in write["verdict"]["script"]["places"]}
    conf_line = next(i for i, line in enumerate((tmp_path / "write" / "nginx.conf")
                                                .read_text().splitlines(), 1)
                     if "content_by_lua_block" in line)
    assert ("config", f"content_by_lua_block at nginx.conf:{conf_line}") in places, places
    assert ("memory-scan", f"content_by_lua(nginx.conf:{conf_line})") in places, places
    strlen_block = """location /crash {
        content_by_lua_block {
            local ffi = require "ffi"
            ffi.cdef "size_t strlen(const char *s);"
            ffi.C.strlen(nil)
        }
    }"""
    strlen = _nginx_script_crash(tmp_path, core_dir, LUA, strlen_block, "strlen")
    for p in core_dir.iterdir():
        p.unlink()
    # The same bug in another worker (another process, other addresses): one group.
    again = _nginx_script_crash(tmp_path, core_dir, LUA, strlen_block, "strlen-again")
    assert again["core"]["pid"] != strlen["core"]["pid"]
    assert again["signature"]["hash"] == strlen["signature"]["hash"]
    for data in (write, strlen):
        summary = data["verdict"]["summary"]
        assert ("Lua script code running in LuaJIT (embedded by ngx_http_lua_module.so) "
                "crashed the process") in summary, summary
        assert data["verdict"]["confidence"] == "medium"
        assert data["verdict"]["module"] == f"{MODULES}/ngx_http_lua_module.so"
        assert data["verdict"]["report_to"].startswith("the site's Lua code")
        assert "libluajit2-5.1-2" in data["verdict"]["report_to"]
        assert data["signature"]["frames"][-1] == \
            "script:LuaJIT!ngx_http_lua_content_by_chunk", data["signature"]
    assert write["signature"]["hash"] != strlen["signature"]["hash"]
    assert strlen["signature"]["frames"][0] == "libc.so!strlen"


def test_perl_unpack_p_is_blamed_on_the_script(tmp_path: Path, core_dir: Path) -> None:
    data = _nginx_script_crash(tmp_path, core_dir, ["ngx_http_perl_module.so"], """
    location /crash {
        perl 'sub { my $r = shift; my $s = unpack "p", pack "J", 8; $r->print(length $s);
                    return 0; }';
    }""", "perl", live=True)
    # Found from the config of the crashed worker's master, still running.
    perl_line = next(i for i, line in enumerate((tmp_path / "perl" / "nginx.conf").read_text()
                                                .splitlines(), 1) if "perl 'sub" in line)
    [place] = data["verdict"]["script"]["places"]
    assert (place["source"], place["text"], place["line"]) == \
        ("config", f"perl at nginx.conf:{perl_line}", perl_line), place
    assert f"perl at nginx.conf:{perl_line}" in data["verdict"]["report_to"]
    summary = data["verdict"]["summary"]
    assert ("Perl script code running in Perl (embedded by ngx_http_perl_module.so) "
            "crashed the process") in summary, summary
    assert data["verdict"]["module"] == f"{MODULES}/ngx_http_perl_module.so"
    assert data["signature"]["frames"][-1].startswith("script:Perl!ngx_http_perl_")
    # The faulting instruction's addressing: the pointer itself was 8, not NULL + 8.
    access = data["crash"]["access"]
    assert (access["base_value"], access["displacement"], access["address"]) == (8, 0, 8)
    assert f"dereferenced the pointer value 0x8 in {access['base']}" in data["crash"]["cause"]


def test_lua_crash_in_a_jit_trace_is_unwound_by_a_validated_scan(tmp_path: Path,
                                                                 core_dir: Path) -> None:
    """The bad store runs often enough for LuaJIT to compile the loop: the
    crash is in a trace (anonymous executable memory), which gdb cannot
    unwind; the caller is found on the stack and unwound from there."""
    data = _nginx_script_crash(tmp_path, core_dir, LUA, """location /crash {
        content_by_lua_block {
            local ffi = require "ffi"
            local buf = ffi.new("int[1]")
            local ptrs = ffi.new("int *[300]")
            for i = 0, 299 do ptrs[i] = buf end
            ptrs[250] = nil
            for i = 0, 299 do ptrs[i][0] = i end
        }
    }""", "jit")
    frames = data["threads"][0]["frames"]
    assert frames[0]["module"] is None  # the trace: no file
    first = frames[1]
    assert (first["function"], first["source"]) == ("ngx_http_lua_run_thread", "scan"), first
    assert first["module"] == f"{MODULES}/ngx_http_lua_module.so"
    # Unwound by CFI from there: the callers nginx really had, no stale return
    # addresses of finished calls (LuaJIT's luaL_ref, lua_rawseti).
    names = [f["function"] for f in frames[1:]]
    assert names[:2] == ["ngx_http_lua_run_thread", "ngx_http_lua_content_by_chunk"], names
    assert not any(n.startswith(("lua_", "luaL_")) for n in names), names
    summary = data["verdict"]["summary"]
    assert ("Lua script code running in LuaJIT (embedded by ngx_http_lua_module.so) "
            "crashed the process") in summary, summary
    assert "libluajit" in summary
    assert data["signature"]["frames"] == [
        "[anon]", "script:LuaJIT!ngx_http_lua_content_by_chunk"], data["signature"]
    assert any("return address" in w and "call frame information" in w
               for w in data["warnings"]), data["warnings"]
    # Where the script is: its chunk name, found in the worker's memory, names
    # the config line of the content_by_lua_block.
    script = data["verdict"]["script"]
    assert (script["interpreter"], script["embedded_by"], script["handler"]) == (
        "LuaJIT", "ngx_http_lua_module.so", "ngx_http_lua_content_by_chunk")
    [place] = script["places"]
    assert (place["file"], place["source"]) == ("nginx.conf", "memory-scan"), place
    conf = (tmp_path / "jit" / "nginx.conf").read_text().splitlines()
    assert "content_by_lua_block" in conf[place["line"] - 1], (place, conf)
    assert place["text"] == f"content_by_lua(nginx.conf:{place['line']})"
    assert place["text"] in data["verdict"]["report_to"]
