"""Whose code is at fault: pure functions over the crashing thread's frames,
the core's facts and the packages that own its files.

The walk goes from the innermost frame outwards, past the C runtime and its
abort machinery (a crash inside strlen() is almost always a bad pointer passed
by the caller), and names the first frame in code that is not part of the
base system: a dynamic nginx module, a library such as OpenSSL or PCRE, or
the program itself. When that frame is the program (nginx's own API), a
plug-in further out that called into it is named instead, at lower
confidence: modules misuse the host's API far more often than the host breaks.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass

from crashkit.model.analyze import Confidence, CoreFacts, Frame, Origin, Package
from crashkit.model.words import plural

# The base system: the C and C++ runtimes, the dynamic loader, the sanitizer
# runtimes (their report is about the caller).
_SYSTEM_LIBS = re.compile(
    r"/(ld-linux[^/]*|ld-musl[^/]*|libc|libpthread|libm|libdl|librt|libgcc_s|libstdc\+\+|"
    r"libc\+\+|libc\+\+abi|libasan|libubsan|libtsan|liblsan|libhwasan)"
    r"(\.so|-[0-9.]+\.so)[^/]*$")

# The machinery that turns a failed check into a signal, wherever it is
# linked (statically linked programs carry it in the executable).
MACHINERY = re.compile(
    r"^(__GI_)?(raise|abort|gsignal|__pthread_kill\w*|pthread_kill|__assert_fail\w*|"
    r"__assert_perror_fail|__stack_chk_fail\w*|__fortify_fail\w*|__chk_fail|__libc_message\w*|"
    r"__libc_fatal|malloc_printerr|std::terminate|std::__terminate|__cxa_\w+|__cxxabiv1::\w+|"
    r"__gxx_personality_v0|"
    r"__gnu_cxx::__verbose_terminate_handler|_Unwind_\w+|__restore_rt|__kernel_rt_sigreturn)"
    r"(\(.*\))?$")

# Dynamic modules whose code is part of nginx's own source tree.
NGINX_SHIPPED = frozenset({
    "ngx_http_geoip_module", "ngx_http_image_filter_module", "ngx_http_xslt_filter_module",
    "ngx_http_perl_module", "ngx_mail_module", "ngx_stream_module", "ngx_stream_geoip_module",
})

NGINX_TRACKER = "https://github.com/nginx/nginx/issues"

# Well-known libraries that nginx and its modules link, with their projects'
# trackers (from each project's own site).
KNOWN_LIBRARIES: tuple[tuple[re.Pattern[str], str, str], ...] = (
    (re.compile(r"^lib(ssl|crypto)\.so"), "OpenSSL", "https://github.com/openssl/openssl/issues"),
    (re.compile(r"^libpcre2?-"), "PCRE2", "https://github.com/PCRE2Project/pcre2/issues"),
    (re.compile(r"^libpcre\.so"), "PCRE (version 1, end of life)",
     "https://github.com/PCRE2Project/pcre2/issues"),
    (re.compile(r"^libluajit"), "LuaJIT", "https://github.com/LuaJIT/LuaJIT/issues"),
    (re.compile(r"^libz\.so"), "zlib", "https://github.com/madler/zlib/issues"),
    (re.compile(r"^libxml2\.so"), "libxml2", "https://gitlab.gnome.org/GNOME/libxml2/-/issues"),
    (re.compile(r"^libxslt\.so|^libexslt\.so"), "libxslt",
     "https://gitlab.gnome.org/GNOME/libxslt/-/issues"),
    (re.compile(r"^libgd\.so"), "libgd", "https://github.com/libgd/libgd/issues"),
    (re.compile(r"^libmaxminddb\.so"), "libmaxminddb",
     "https://github.com/maxmind/libmaxminddb/issues"),
    (re.compile(r"^libbrotli"), "Brotli", "https://github.com/google/brotli/issues"),
)

ORIGIN_WORDS = {
    "nginx": "nginx's own code",
    "nginx-module": "a dynamic module shipped with nginx",
    "third-party-module": "a third-party nginx module",
    "library": "a library",
    "program": "the program itself",
    "system": "a system library",
}


def is_system_library(path: str | None) -> bool:
    return bool(path and _SYSTEM_LIBS.search(path))


def is_nginx(facts: CoreFacts) -> bool:
    names = {os.path.basename(facts.exe or ""), facts.process.fname if facts.process else ""}
    return "nginx" in names


def module_stem(path: str) -> str:
    return os.path.basename(path).split(".so")[0]


def origin(path: str | None, facts: CoreFacts, package: Package | None = None,
           ) -> Origin | None:
    """What kind of code lives at ``path`` in the crashed process."""
    if path is None:
        return None
    if facts.exe and path == facts.exe:
        return "nginx" if is_nginx(facts) else "program"
    if is_system_library(path):
        return "system"
    base = os.path.basename(path)
    if is_nginx(facts) and ".so" in base and (
            base.startswith("ngx_") or "/nginx/modules/" in path
            or (package is not None and package.name.startswith("libnginx-mod-"))):
        return "nginx-module" if module_stem(path) in NGINX_SHIPPED else "third-party-module"
    return "library"


def library_project(path: str) -> tuple[str, str] | None:
    base = os.path.basename(path)
    for pattern, project, tracker in KNOWN_LIBRARIES:
        if pattern.search(base):
            return project, tracker
    return None


def describe_module(path: str, kind: str | None) -> str:
    """'the third-party nginx module ngx_foo.so', 'the library libssl.so.3 (OpenSSL)'."""
    base = os.path.basename(path)
    if kind == "nginx":
        return f"nginx itself ({base})"
    if kind == "nginx-module":
        return f"{base}, a dynamic module shipped with nginx"
    if kind == "third-party-module":
        return f"the third-party nginx module {base}"
    if kind == "program":
        return f"the program {base}"
    if kind == "system":
        return f"the system library {base}"
    project = library_project(path)
    return f"the library {base}" + (f" ({project[0]})" if project else "")


def report_to(path: str | None, kind: str | None, package: Package | None) -> str | None:
    """Who should get the bug report, in a sentence."""
    if path is None or kind == "system":
        return None
    pkg = ""
    if package is not None:
        pkg = (f"the Debian package {package.name} ({package.version}): "
               f"reportbug {package.name}" if package.version else
               f"the package {package.name}")
    if kind in ("nginx", "nginx-module"):
        upstream = f"nginx ({NGINX_TRACKER})"
        return f"{pkg}, or upstream {upstream}" if pkg else upstream
    if kind == "third-party-module":
        where = package.homepage if package and package.homepage else None
        upstream = "the module's author" + (f" ({where})" if where else
                                            " (the project that publishes it)")
        return f"{pkg}, or {upstream}" if pkg else upstream
    project = library_project(path) if kind == "library" else None
    if project is not None:
        return f"{pkg}, or {project[0]} ({project[1]})" if pkg else f"{project[0]} ({project[1]})"
    return pkg or f"the maintainers of {os.path.basename(path)}"


@dataclass(frozen=True)
class Blame:
    frame: Frame | None
    confidence: Confidence
    reason: str


def _skippable(frame: Frame) -> bool:
    return (frame.inlined or frame.signal_frame or is_system_library(frame.module)
            or bool(frame.function and MACHINERY.match(frame.function)))


def _is_plugin(path: str | None, facts: CoreFacts) -> bool:
    kind = origin(path, facts)
    if kind in ("nginx-module", "third-party-module"):
        return True
    return kind == "library" and not is_nginx(facts) and library_project(path or "") is None


def frame_label(frame: Frame) -> str:
    if frame.function and frame.trusted:
        name = frame.function
        return name if "(" in name or name.startswith("<") else f"{name}()"
    if frame.module and frame.module_offset is not None:
        return f"{os.path.basename(frame.module)}+{frame.module_offset:#x}"
    return f"{frame.pc:#x}"


def _frames_word(n: int) -> str:
    return plural(n, "frame")


def blame(frames: Sequence[Frame], facts: CoreFacts, *, unwound: bool,
          why_not_unwound: str = "the stack could not be unwound") -> Blame:
    """The frame whose code is most likely at fault, how sure, and why.

    ``unwound``: the frames come from a real unwinding (gdb), not only the
    crashing pc from the core's notes; ``why_not_unwound`` says why not."""
    if not frames:
        return Blame(None, "none", "the core holds no registers for the crashing thread")
    top = frames[0]
    exe = facts.exe
    for i, frame in enumerate(frames):
        if _skippable(frame) or not frame.module:
            continue
        if exe is not None and frame.module == exe:
            caller = next((f for f in frames[i + 1:] if f.module and f.module != exe
                           and not _skippable(f)), None)
            # Only a plug-in is charged for the host's crash: a library such
            # as zlib or OpenSSL calling back into nginx (its allocator, an
            # SNI callback) is running nginx's code on nginx's behalf.
            if caller is not None and _is_plugin(caller.module, facts):
                host = "nginx" if is_nginx(facts) else os.path.basename(exe)
                return Blame(caller, "medium",
                             f"{host}'s own code crashed ({frame_label(frame)}, frame "
                             f"#{frame.index}), called by this module "
                             f"{_frames_word(caller.index - frame.index)} further out: "
                             f"modules misuse {host}'s API far more often than {host} breaks")
        confidence: Confidence = "high" if frame.trusted else "medium"
        trust = "" if frame.trusted else (" (names from another build of the module: the "
                                          "module is right, the function may not be)")
        if any(f.source == "scan" for f in frames[:i + 1]):
            confidence = "medium"
            trust += (" (the frames come from a scan of the stack for return addresses, "
                      "not from unwinding it: a stale return address could mislead)")
        elif frame.trusted and not frame.function:
            confidence = "medium"
            trust += (" (its frames have no names: the module's symbols are not here, so "
                      "the module is known but not its function)")
        if not unwound:
            return Blame(frame, "medium" if frame.trusted else "low",
                         f"no backtrace ({why_not_unwound}); the crashing pc is "
                         f"in this module's code{trust}")
        if i == 0 or all(f.inlined for f in frames[:i]):
            return Blame(frame, confidence, f"the crash is in this module's own code (frame "
                                            f"#{frame.index}){trust}")
        past = ("the abort machinery" if any(
            f.function and MACHINERY.match(f.function) for f in frames[:i])
            else "the system libraries")
        return Blame(frame, confidence,
                     f"first frame past {past}, {_frames_word(frame.index)} below the "
                     f"crash in {frame_label(top)} [{os.path.basename(top.module or '?')}]"
                     f"{trust}")
    if top.module is None:
        return Blame(None, "low", f"the crashing pc {top.pc:#x} is in no mapped file "
                                  "(JIT code, or a jump to a bad address), and no frame "
                                  "further out is in a module")
    if not unwound:
        return Blame(top, "low",
                     f"only the crashing pc is known (no backtrace), and it is in the "
                     f"system library {os.path.basename(top.module)}: the code that called "
                     "it is unknown")
    return Blame(top, "low", "every frame is in the system libraries (the backtrace may "
                             "be cut short)")
