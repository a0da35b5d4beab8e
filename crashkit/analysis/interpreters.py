"""When the crashing thread was running a script: which interpreter, which
module embeds it, and which handler ran the script.

An interpreter that crashes the process is most often obeying its script: a
LuaJIT FFI call with a bad pointer, Perl's ``unpack "p"`` of an integer,
Python's ``ctypes.string_at(0)``. Blaming the interpreter's library (the
first frame past libc) points the user at the wrong project. Each entry of
``INTERPRETERS`` recognises one interpreter from the frames' function names
and modules (never from a file name of one site), and names the frame of the
embedding code (nginx's Lua or Perl module, the interpreter's own program) so
the verdict and the signature can name the handler that ran the script.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace

from crashkit.model.analyze import CoreFacts, Frame, ScriptPlace


@dataclass(frozen=True)
class Interpreter:
    name: str  # "LuaJIT"
    language: str  # "Lua"
    code: re.Pattern[str]  # the interpreter's own functions (VM, FFI, opcodes)
    library: re.Pattern[str]  # the basename of the module that holds the interpreter
    embedder: re.Pattern[str]  # functions of the code that runs the scripts
    programs: frozenset[str] = frozenset()  # executables that are the interpreter itself
    anonymous_code: bool = False  # JIT traces live in anonymous executable memory
    tracker: str = ""  # the upstream tracker when package metadata names none
    example: str = ""  # how a script most often crashes this interpreter
    # The names the interpreter gives the chunks of code it loads, as they
    # lie in its memory: groups (name, file, line).
    chunk_names: re.Pattern[bytes] | None = None
    # Whether py-spy can read the script's stack from the core (the frame
    # objects of CPython), and which of its files are the interpreter's own.
    vm_stack: bool = False
    own_files: re.Pattern[str] | None = None
    # The nginx directives that run this language's scripts (where the site's
    # code is named in the config).
    directives: re.Pattern[str] | None = None


INTERPRETERS: tuple[Interpreter, ...] = (
    Interpreter(
        name="LuaJIT", language="Lua",
        code=re.compile(r"^(lj_vm_|lj_BC_|lj_ffi_|lj_ccall|lj_cconv|lj_trace|lj_dispatch|"
                        r"lj_meta_|lj_err_|lua_pcall|lua_call|lua_resume)"),
        library=re.compile(r"^libluajit"),
        embedder=re.compile(r"^ngx_(http|stream)_lua_\w+"),
        programs=frozenset({"luajit", "openresty"}), anonymous_code=True,
        tracker="https://github.com/LuaJIT/LuaJIT/issues",
        example="an FFI call or cdata store with a bad pointer",
        # lua-nginx-module names an inline block's chunk "=PHASE_by_lua(FILE:LINE)"
        # (content_by_lua, access_by_lua, init_worker_by_lua, …).
        chunk_names=re.compile(rb"=((?:[a-z]+_)*by_lua(?:_block)?)\(([^()\x00-\x1f]{1,200}):"
                               rb"([0-9]{1,7})\)"),
        directives=re.compile(r"^\w+_by_lua(_block|_file)?$")),
    Interpreter(
        name="Perl", language="Perl",
        code=re.compile(r"^(Perl_runops_\w+|Perl_pp_\w+|Perl_call_sv|Perl_eval_\w+|S_\w+)"),
        library=re.compile(r"^libperl\.so"),
        embedder=re.compile(r"^ngx_http_perl_\w+"),
        programs=frozenset({"perl"}),
        tracker="https://github.com/Perl/perl5/issues",
        example="unpack \"p\" of an integer, or an XS call with a bad pointer",
        directives=re.compile(r"^(perl|perl_set|perl_require)$")),
    Interpreter(
        name="CPython", language="Python",
        code=re.compile(r"^(_PyEval_EvalFrameDefault|_PyEval_\w+|PyEval_\w+|_PyObject_\w*Call\w*|"
                        r"PyObject_\w*Call\w*|_PyFunction_Vectorcall|ffi_call\w*|PyCFuncPtr_call|"
                        r"_ctypes_callproc)"),
        library=re.compile(r"^(libpython3|python3)"),
        embedder=re.compile(r"^(_ctypes_callproc|PyCFuncPtr_call)$"),
        programs=frozenset({"python3", "python"}),
        tracker="https://github.com/python/cpython/issues",
        example="a ctypes call with a bad pointer (ctypes.string_at(0), a wrong argtypes)",
        vm_stack=True,
        own_files=re.compile(r"^<frozen |/lib(?:64)?/python3\.\d+/"
                             r"(?!site-packages/|dist-packages/)")),
)


@dataclass(frozen=True)
class ScriptRun:
    """The crashing thread was running a script."""

    interpreter: Interpreter
    interpreter_module: str | None  # the file of the interpreter's code on the stack
    embedder: Frame | None  # the innermost frame of the embedding code (the handler)
    embedded_by: str  # "ngx_http_lua_module.so", "python3.11"
    handler: Frame | None = None  # the outermost frame of the embedding code (the phase handler)


def _program_name(facts: CoreFacts) -> str:
    exe = os.path.basename(facts.exe or "")
    return exe or (facts.process.fname if facts.process else "")


def _is_program(interp: Interpreter, facts: CoreFacts) -> bool:
    name = _program_name(facts)
    return any(name == p or re.fullmatch(re.escape(p) + r"[0-9.]*", name) for p in
               interp.programs)


def _in_anonymous_exec(frame: Frame, facts: CoreFacts) -> bool:
    return frame.module is None and any(lo <= frame.pc < hi for lo, hi in facts.exec_ranges)


def recognise(frames: Sequence[Frame], facts: CoreFacts) -> ScriptRun | None:
    """The interpreter the crashing thread was running a script in, if any.

    An interpreter counts only when its code is on the stack *and* something
    that runs scripts is there too (an embedding module's handler below it,
    or the process being the interpreter's own program): a Lua library linked
    into a program for other reasons is just a library."""
    for interp in INTERPRETERS:
        module: str | None = None
        seen = False
        for frame in frames:
            name = frame.function or frame.elf_symbol or ""
            base = os.path.basename(frame.module or "")
            if (name and interp.code.match(name)) or (base and interp.library.match(base)) or (
                    interp.anonymous_code and frame.index <= 1
                    and _in_anonymous_exec(frame, facts)):
                seen = True
                library = bool(frame.module and interp.library.match(base))
                better = library and (module is None
                                      or not interp.library.match(os.path.basename(module)))
                first = module is None and frame.module and name and interp.code.match(name)
                if better or first:
                    module = frame.module
        if not seen:
            continue
        if module is None:  # JIT code only: the interpreter's library is still mapped
            module = next((m.path for m in facts.mappings
                           if interp.library.match(os.path.basename(m.path))), None)
        embedding = [f for f in frames if (f.function or f.elf_symbol or "")
                     and interp.embedder.match(f.function or f.elf_symbol or "")]
        embedder = embedding[0] if embedding else None
        handler = embedding[-1] if embedding else None
        if embedder is not None and embedder.module and not _is_program(interp, facts):
            return ScriptRun(interp, module, embedder, os.path.basename(embedder.module),
                             handler)
        if _is_program(interp, facts):
            return ScriptRun(interp, module, embedder, _program_name(facts), handler)
    return None


def handler_token(run: ScriptRun) -> str:
    """The signature's entry for the script: the interpreter and the handler
    that ran it (content vs access vs log phase, a Perl handler, ctypes)."""
    handler = "?"
    if run.handler is not None:
        handler = run.handler.function or run.handler.elf_symbol or "?"
        handler = handler.split("(")[0]
    return f"script:{run.interpreter.name}!{handler}"


MAX_CONFIG_PLACES = 20


def script_places(run: ScriptRun, facts: CoreFacts, memory: Sequence[bytes] = (),
                  vm: Sequence[ScriptPlace] = (),
                  config: Sequence[tuple[str, str, int]] = ()) -> tuple[ScriptPlace, ...]:
    """Where the script may be: its stack read from the interpreter's own
    state (``vm``: py-spy's frames, innermost first, each marked when it is
    the interpreter's library), else the chunk names found in the process's
    memory (``memory``: the strings that matched the interpreter's
    ``chunk_names``; every chunk the process loaded, not only the one that
    ran), else the script named on the interpreter's own command line; and
    (``config``: (directive, file, line) of the crashed nginx's config) the
    directives that run the interpreter's scripts."""
    own = run.interpreter.own_files
    if vm:
        return tuple(replace(p, library=bool(own and p.file and own.search(p.file))) for p in vm)
    out: list[ScriptPlace] = []
    pattern = run.interpreter.chunk_names
    for raw in sorted(set(memory)):
        m = pattern.fullmatch(raw) if pattern is not None else None
        if m is None:
            continue
        text = raw[1:].decode("utf-8", "replace")
        out.append(ScriptPlace(text, m.group(2).decode("utf-8", "replace"), int(m.group(3)),
                               "memory-scan"))
    if not out and _is_program(run.interpreter, facts) and facts.process is not None:
        script = _script_argument(facts.process.args)
        if script and facts.process.args_truncated and facts.process.args.endswith(script):
            script = None  # the kernel kept 80 bytes: the name may be cut short
        if script:
            out.append(ScriptPlace(script, script, None, "cmdline"))
    wanted = run.interpreter.directives
    if wanted is not None:
        conf = [c for c in config if wanted.match(c[0])]
        out += [ScriptPlace(f"{name} at {os.path.basename(file)}:{line}", file, line, "config")
                for name, file, line in conf[:MAX_CONFIG_PLACES]]
    return tuple(out)


def _script_argument(args: str) -> str | None:
    """The script an interpreter was started with: its first argument that is
    not an option (``python3 -I job.py``, ``perl -w tool.pl``, the module of
    ``python3 -m``); None for code given on the command line (``-c``, ``-e``)."""
    words = args.split()
    i = 1
    while i < len(words):
        word = words[i]
        if word in ("-c", "-e", "-E"):
            return None
        if word == "-m":
            return words[i + 1] if i + 1 < len(words) else None
        i += 2 if word in ("-X", "-W") else 1
        if not word.startswith("-"):
            return word
    return None


def script_frame(places: Sequence[ScriptPlace]) -> ScriptPlace | None:
    """The frame of the script's own code nearest the crash: the first
    frame of a read stack that is not the interpreter's library (the site's
    code that called ``ctypes.string_at``, not ctypes itself)."""
    return next((p for p in places if p.source == "vm-state" and not p.library), None)
