"""Crash signatures: one string (and a short hash of it) per bug, so that ten
thousand cores of one bug count as one problem.

The algorithm (README, "Crash signatures", says why):

1. Start at the crashing thread's innermost frame.
2. Skip the signal and abort machinery (raise, abort, __assert_fail,
   __stack_chk_fail, std::terminate, the signal trampoline): it is the same
   for every abort. Skip unnamed frames of the C and C++ runtimes too (the
   exception internals of a stripped libstdc++): their offsets change with
   every update of the library.
3. Name each frame ``module!function``, normalized: glibc's CPU-specific
   variants become the function they implement (``__strlen_evex`` and
   ``__strlen_avx2`` are both ``strlen``), compiler clone suffixes go
   (``.constprop.0``, ``.isra.0``, ``.part.0``, ``.cold``), C++ argument lists
   go, library versions go (``libssl.so.3`` is ``libssl.so``). A frame with
   no name is ``module+0xOFFSET``: the offset in the file, which ASLR does not
   move. A frame in no file is ``[anon]``. Raw addresses never appear.
4. Collapse runs of one frame (recursion): its depth must not matter.
5. Keep the first ``DEPTH`` frames, prefix the signal name. Without an
   unwound stack (only the crashing pc), the program's name comes first, so
   that crashes of different programs in one libc function stay apart.
6. The hash is the first 16 hex digits of the text's SHA-256.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Sequence

from crashkit.analysis.attribution import MACHINERY, is_system_library
from crashkit.model.analyze import Frame, Signature

DEPTH = 3

# glibc picks string and memory functions at load time by CPU (IFUNC):
# __strlen_evex, __memmove_avx_unaligned_erms, __strchr_sse2, … The variant
# depends on the machine, not on the bug.
_IFUNC_VARIANT = re.compile(
    r"^__([a-z0-9_]+?)_(?:sse2|sse3|ssse3|sse4_[12]|avx2?|avx512\w*|evex\w*|erms|unaligned\w*|"
    r"aligned\w*|generic|rtm|fma4?|nonascii|no_vzeroupper|asimd|sve\w*|mops|nosimd|"
    r"zva\w*|kunpeng|thunderx\w*|falkor|emag|a64fx|oryon\w*)(?:_\w+)?$")
_CLONE = re.compile(r"(\.(?:constprop|isra|part|cold|lto_priv|clone|llvm|localalias)"
                    r"(?:\.\d+)*)+$| \[clone [^\]]*\]")
_GLIBC_ALIAS = re.compile(r"^(?:__GI_|__libc_(?=(?:malloc|free|calloc|realloc|memalign)\b))")
_QUALIFIERS = re.compile(r"(?<=\))(\s*(const|volatile|&&|&|noexcept))+$")
_LIB_VERSION = re.compile(r"(\.so)(?:\.[0-9]+)+$")


def normalize_function(name: str) -> str:
    name = _CLONE.sub("", name)
    name = _GLIBC_ALIAS.sub("", name)
    m = _IFUNC_VARIANT.match(name)
    if m:
        name = m.group(1)
    # C++: drop the argument list (gdb and the demangler differ in spelling
    # it) and its qualifiers, keeping template arguments and the qualified name.
    name = _QUALIFIERS.sub("", name)
    if name.endswith(")") and "(" in name and not name.startswith("("):
        depth = 0
        for i in range(len(name) - 1, -1, -1):
            depth += {")": 1, "(": -1}.get(name[i], 0)
            if depth == 0:
                name = name[:i]
                break
    return name.strip() or "?"


def normalize_module(path: str) -> str:
    return _LIB_VERSION.sub(r"\1", os.path.basename(path))


def frame_token(frame: Frame) -> str:
    if frame.module is None:
        return "[anon]"
    module = normalize_module(frame.module)
    if frame.function and frame.trusted:
        return f"{module}!{normalize_function(frame.function)}"
    if frame.module_offset is not None:
        return f"{module}+{frame.module_offset:#x}"
    return f"{module}!?"


def signature_frames(frames: Sequence[Frame], depth: int = DEPTH) -> list[str]:
    tokens: list[str] = []
    for frame in frames:
        if frame.signal_frame or (frame.function and MACHINERY.match(frame.function)):
            continue
        if not (frame.function and frame.trusted) and is_system_library(frame.module):
            # An unnamed frame of the C or C++ runtime (libstdc++'s exception
            # internals): its offset changes with every update of the library.
            continue
        token = frame_token(frame)
        if tokens and tokens[-1] == token:
            continue  # recursion: one entry, whatever the depth
        tokens.append(token)
        if len(tokens) == depth:
            break
    return tokens


def make_signature(signal_name: str, frames: Sequence[Frame], *, unwound: bool,
                   killed: bool = False, program: str | None = None,
                   script: str | None = None, exception: str | None = None) -> Signature:
    """``script``: the crashing thread ran a script (interpreters.handler_token);
    the signature is then the crashing frame and the handler that ran the
    script, not the interpreter's frames (the same for every script bug)."""
    if killed:
        # Whatever the process was doing is not the problem; every kill by
        # another process is one "bug" for grouping.
        tokens: list[str] = ["sent by another process"]
        basis = "none"
    elif script is not None:
        tokens = [*signature_frames(frames, depth=1), script]
        basis = "backtrace" if unwound else "pc"
    else:
        tokens = signature_frames(frames)
        basis = ("backtrace" if unwound else "pc") if tokens else "none"
        if basis != "backtrace" and program:
            # One frame or none says little: at least crashes of different
            # programs stay apart.
            tokens.insert(0, f"program:{normalize_module(program)}")
    if exception and not killed:
        tokens.insert(0, f"exception:{exception}")  # what was thrown, before where
    text = " | ".join([signal_name, *tokens])
    digest = hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()[:16]
    return Signature(text=text, hash=digest, frames=tuple(tokens), basis=basis)
