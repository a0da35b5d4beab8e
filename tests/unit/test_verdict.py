"""The verdict over synthetic models: what each signal means, whose code is at
fault, and crash signatures. No gdb, no cores: the pure analysis layer."""

from __future__ import annotations

import dataclasses

import pytest

from crashkit.analysis.attribution import blame, origin, report_to
from crashkit.analysis.meaning import signal_meaning
from crashkit.analysis.signature import (
    make_signature,
    normalize_function,
    normalize_module,
    signature_frames,
)
from crashkit.analysis.verdict import build_analysis
from crashkit.model import signals as S
from crashkit.model.analyze import (
    CoreFacts,
    Frame,
    HostFacts,
    Mapping,
    Package,
    ProcessInfo,
    SignalInfo,
    Thread,
)

LIBC = "/usr/lib/x86_64-linux-gnu/libc.so.6"
NGINX = "/usr/sbin/nginx"
MOD = "/usr/lib/nginx/modules/ngx_http_foo_module.so"
SSL = "/usr/lib/x86_64-linux-gnu/libssl.so.3"
PID = 4242
SP = 0x7FFC_0000_8000


def siginfo(number: int, code: int | None, addr: int | None = None,
            sender: int | None = None, uid: int | None = None) -> SignalInfo:
    return SignalInfo(number=number, name=S.signal_name(number), code=code,
                      code_name=S.code_name(number, code) if code is not None else None,
                      errno=0, fault_address=addr, sender_pid=sender, sender_uid=uid,
                      description=S.describe(number, code, addr, sender, uid))


def frame(i: int, module: str | None, function: str | None, *, off: int = 0x100,
          source: str = "gdb", **kw: object) -> Frame:
    return Frame(index=i, pc=0x1000 + i, function=function, module=module, module_offset=off,
                 source=source, **kw)  # type: ignore[arg-type]


def crash(sig: SignalInfo, frames: list[Frame] | None = None, *, pc: int = 0x7F00_0000_1000,
          sp: int = SP, segments: tuple[tuple[int, int, str], ...] = (),
          mappings: tuple[Mapping, ...] = (), exe: str = NGINX) -> tuple[CoreFacts, Thread]:
    thread = Thread(tid=PID, crashed=True, registers={}, pc=pc, sp=sp, fp=None,
                    cursig=sig.number, frames=tuple(frames or ()))
    facts = CoreFacts(path="/tmp/core", size=1, expected_size=1, truncated=False,
                      arch="x86-64",
                      process=ProcessInfo(pid=PID, ppid=1, uid=33, gid=33,
                                          fname=exe.rsplit("/", 1)[-1][:15],
                                          args="nginx: worker process", state="R"),
                      signal=sig, threads=(thread,), mappings=mappings, auxv={},
                      exe=exe, execfn=exe, page_size=4096, segments=segments)
    return facts, thread


def meaning_of(sig: SignalInfo, frames: list[Frame] | None = None, **kw: object) -> str:
    facts, thread = crash(sig, frames, **kw)  # type: ignore[arg-type]
    return signal_meaning(facts, thread).kind


# -- what the signal means --------------------------------------------------------------

def test_null_pointer_and_near_null() -> None:
    assert meaning_of(siginfo(S.SIGSEGV, 1, 0)) == "null-pointer"
    facts, thread = crash(siginfo(S.SIGSEGV, 1, 0x10))
    m = signal_meaning(facts, thread)
    assert m.kind == "near-null" and "0x10" in m.text


def test_wild_pointer_unmapped_and_non_canonical() -> None:
    assert meaning_of(siginfo(S.SIGSEGV, 1, 0x5555_dead_beef)) == "wild-pointer"
    # A non-canonical pointer: the CPU raises #GP, the kernel sends SI_KERNEL
    # with no address. Not a NULL dereference, although si_addr reads 0.
    assert meaning_of(siginfo(S.SIGSEGV, S.SI_KERNEL)) == "wild-pointer"


def test_write_to_read_only_memory_and_guard_pages() -> None:
    ro = ((0x5000_0000, 0x5000_4000, "r--"),)
    assert meaning_of(siginfo(S.SIGSEGV, 2, 0x5000_0010), segments=ro) == "write-read-only"
    guard = ((0x6000_0000, 0x6000_1000, "---"),)
    assert meaning_of(siginfo(S.SIGSEGV, 2, 0x6000_0800), segments=guard) == "guard-page"
    # ACCERR where the segment is unknown says only that rights were missing.
    assert meaning_of(siginfo(S.SIGSEGV, 2, 0x7000_0000)) == "access-denied"


def test_stack_overflow_is_a_fault_just_below_sp() -> None:
    assert meaning_of(siginfo(S.SIGSEGV, 1, SP - 8), sp=SP) == "stack-overflow"
    assert meaning_of(siginfo(S.SIGSEGV, 2, SP - 4096), sp=SP) == "stack-overflow"
    # Far below the stack pointer is another matter.
    assert meaning_of(siginfo(S.SIGSEGV, 1, SP - 10 * 1024 * 1024), sp=SP) == "wild-pointer"


def test_jumps_to_bad_addresses() -> None:
    assert meaning_of(siginfo(S.SIGSEGV, 1, 0), pc=0) == "null-function-pointer"
    assert meaning_of(siginfo(S.SIGSEGV, 2, 0x5000_0000), pc=0x5000_0000) == "bad-jump"


def test_abort_and_the_runtime_checks_behind_it() -> None:
    def abort_via(fn: str) -> str:
        return meaning_of(siginfo(S.SIGABRT, S.SI_TKILL, sender=PID, uid=33),
                          [frame(0, LIBC, "__pthread_kill_implementation"),
                           frame(1, LIBC, "raise"), frame(2, LIBC, "abort"),
                           frame(3, LIBC, fn), frame(4, MOD, "foo_handler")])

    assert abort_via("__assert_fail") == "assertion"
    assert abort_via("__stack_chk_fail") == "stack-protector"
    assert abort_via("malloc_printerr") == "heap-corruption"
    assert abort_via("std::terminate()") == "uncaught-exception"
    assert abort_via("__fortify_fail") == "fortify"
    assert abort_via("foo_check") == "abort"


def test_signal_sent_by_another_process_by_itself_or_by_the_kernel() -> None:
    assert meaning_of(siginfo(S.SIGSEGV, S.SI_USER, sender=999, uid=0)) == "sent-by-process"
    assert meaning_of(siginfo(S.SIGSEGV, S.SI_TKILL, sender=PID, uid=33)) == "self-signal"
    assert meaning_of(siginfo(25, S.SI_USER, sender=0, uid=0)) == "sent-by-kernel"  # SIGXFSZ


def test_bus_error_in_a_mapped_file() -> None:
    data = (Mapping(0x7000_0000, 0x7000_2000, 0x3000, "/var/cache/nginx/blob"),)
    facts, thread = crash(siginfo(S.SIGBUS, 2, 0x7000_1010), mappings=data)
    m = signal_meaning(facts, thread)
    assert m.kind == "bus-mapped-file"
    assert "/var/cache/nginx/blob at offset 0x4010" in m.text  # 0x3000 + 0x1010


def test_misaligned_access_and_seccomp() -> None:
    assert meaning_of(siginfo(S.SIGBUS, 1, 0x7000_0001)) == "misaligned-access"
    assert meaning_of(siginfo(S.SIGBUS, 3, 0x7000_0001)) == "bus-error"
    assert meaning_of(siginfo(S.SIGSYS, 1)) == "seccomp"


def test_illegal_instruction_divide_by_zero_breakpoint() -> None:
    assert meaning_of(siginfo(S.SIGILL, 2, 0x1000)) == "illegal-instruction"
    assert meaning_of(siginfo(S.SIGFPE, 1, 0x1000)) == "divide-by-zero"
    assert meaning_of(siginfo(S.SIGFPE, 6, 0x1000)) == "arithmetic"
    assert meaning_of(siginfo(S.SIGTRAP, S.SI_KERNEL)) == "breakpoint"


# -- whose code is at fault -----------------------------------------------------------

def test_blame_skips_the_c_runtime_to_the_caller() -> None:
    facts, _ = crash(siginfo(S.SIGSEGV, 1, 0))
    frames = [frame(0, LIBC, "__strlen_avx2"), frame(1, MOD, "foo_copy"),
              frame(2, NGINX, "ngx_http_core_content_phase")]
    found = blame(frames, facts, unwound=True)
    assert found.frame is frames[1] and found.confidence == "high"
    assert found.reason.startswith("first frame past the system libraries, 1 frame below")


def test_blame_passes_through_nginx_to_the_module_that_called_it() -> None:
    """ngx_vslprintf() crashing on a module's bad format string: the module
    is at fault; a crash in nginx with no module on the stack is nginx's."""
    facts, _ = crash(siginfo(S.SIGSEGV, 1, 0))
    frames = [frame(0, NGINX, "ngx_vslprintf"), frame(1, NGINX, "ngx_log_error_core"),
              frame(2, MOD, "foo_handler"), frame(3, NGINX, "ngx_http_core_content_phase")]
    found = blame(frames, facts, unwound=True)
    assert found.frame is frames[2] and found.confidence == "medium"
    alone = [frame(0, NGINX, "ngx_vslprintf"), frame(1, NGINX, "main")]
    assert blame(alone, facts, unwound=True).frame is alone[0]


def test_a_library_calling_back_into_nginx_is_not_charged() -> None:
    """zlib calling nginx's allocator, OpenSSL an SNI callback: nginx's own
    code ran on nginx's behalf; it is nginx's crash."""
    facts, _ = crash(siginfo(S.SIGSEGV, 1, 0))
    zlib = "/usr/lib/x86_64-linux-gnu/libz.so.1"
    frames = [frame(0, NGINX, "ngx_http_gzip_filter_alloc"), frame(1, zlib, "deflateInit2_"),
              frame(2, NGINX, "ngx_http_gzip_filter_deflate_start")]
    found = blame(frames, facts, unwound=True)
    assert (found.frame, found.confidence) == (frames[0], "high")
    # A plug-in library of another program, called back the same way, is.
    prog = "/opt/app/bin/app"
    facts, _ = crash(siginfo(S.SIGSEGV, 1, 0), exe=prog)
    frames = [frame(0, prog, "app_log"), frame(1, "/opt/app/plugins/libfoo.so", "foo_run")]
    assert blame(frames, facts, unwound=True).frame is frames[1]


def test_blame_without_a_backtrace_uses_the_pc() -> None:
    facts, _ = crash(siginfo(S.SIGSEGV, 1, 0))
    in_module = [frame(0, MOD, "foo_parse", source="notes")]
    found = blame(in_module, facts, unwound=False)
    assert (found.frame, found.confidence) == (in_module[0], "medium")
    in_libc = [frame(0, LIBC, "__strlen_avx2", source="notes")]
    found = blame(in_libc, facts, unwound=False)
    assert found.confidence == "low" and "code that called it is unknown" in found.reason


def test_blame_skips_abort_machinery_linked_into_the_program() -> None:
    """A static program carries raise() and abort() itself."""
    prog = "/opt/app/bin/static-app"
    facts, _ = crash(siginfo(S.SIGABRT, S.SI_TKILL, sender=PID), exe=prog)
    frames = [frame(0, prog, "raise"), frame(1, prog, "abort"), frame(2, prog, "check_it")]
    assert blame(frames, facts, unwound=True).frame is frames[2]


@pytest.mark.parametrize(("path", "package", "expected"), [
    (NGINX, None, "nginx"),
    (MOD, None, "third-party-module"),
    ("/usr/lib/nginx/modules/ngx_stream_module.so", None, "nginx-module"),
    ("/opt/mods/weird.so", Package("libnginx-mod-weird", "1"), "third-party-module"),
    (SSL, None, "library"),
    (LIBC, None, "system"),
])
def test_origins(path: str, package: Package | None, expected: str) -> None:
    facts, _ = crash(siginfo(S.SIGSEGV, 1, 0))
    assert origin(path, facts, package) == expected


def test_report_to_names_the_package_and_the_project() -> None:
    pkg = Package("libnginx-mod-http-lua", "1:0.10.23-1")
    assert report_to(MOD, "third-party-module", pkg) == (
        "the Debian package libnginx-mod-http-lua (1:0.10.23-1): reportbug "
        "libnginx-mod-http-lua, or the module's author (the project that publishes it)")
    assert report_to(SSL, "library", None) == "OpenSSL (https://github.com/openssl/openssl/issues)"
    assert report_to(LIBC, "system", None) is None


def test_verdict_for_a_kill_names_the_sender_and_no_module() -> None:
    facts, thread = crash(siginfo(S.SIGSEGV, S.SI_USER, sender=999, uid=0),
                          [frame(0, LIBC, "epoll_wait")])
    a = build_analysis(facts, (thread,), gdb_used=True,
                       host=HostFacts(sender_command="/usr/bin/python3 chaos.py",
                                      sender_user="root"))
    assert a.verdict is not None and a.signature is not None
    assert (a.verdict.module, a.verdict.confidence, a.kind) == (None, "none", "killed")
    assert a.verdict.summary == (
        "Not a bug in the code that was running: SIGSEGV was sent by another process (pid 999 "
        "of user root, uid 0; that pid now runs '/usr/bin/python3 chaos.py').")
    assert a.signature.text == "SIGSEGV | sent by another process"


def test_verdict_sentence_for_a_crash_in_libc_called_by_a_module() -> None:
    facts, thread = crash(siginfo(S.SIGSEGV, 1, 0),
                          [frame(0, LIBC, "__strlen_evex"), frame(1, MOD, "foo_copy"),
                           frame(2, NGINX, "ngx_http_core_content_phase")])
    pkg = Package("libnginx-mod-http-foo", "1.0-1")
    a = build_analysis(facts, (thread,), gdb_used=True, host=HostFacts(packages={MOD: pkg}))
    assert a.verdict is not None
    assert a.verdict.summary == (
        "NULL pointer dereference in strlen() [libc.so.6], called from foo_copy(): the "
        "third-party nginx module ngx_http_foo_module.so is at fault (high confidence).")
    assert (a.verdict.function, a.verdict.frame, a.verdict.package) == ("foo_copy", 1, pkg)


# -- signatures -----------------------------------------------------------------------

@pytest.mark.parametrize(("raw", "clean"), [
    ("__strlen_evex", "strlen"),
    ("__strlen_avx2", "strlen"),
    ("__memmove_avx_unaligned_erms", "memmove"),
    ("__memcpy_sse2_unaligned", "memcpy"),
    ("__strncasecmp_l_avx2", "strncasecmp_l"),
    ("__memset_avx2_unaligned_erms_rtm", "memset"),
    ("foo_parse.constprop.0", "foo_parse"),
    ("foo_parse.isra.0.cold", "foo_parse"),
    ("__GI_raise", "raise"),
    ("ns::Parser::run(std::string const&) const", "ns::Parser::run"),
    ("std::vector<int, std::allocator<int> >::at(unsigned long)",
     "std::vector<int, std::allocator<int> >::at"),
    ("ngx_http_foo_handler", "ngx_http_foo_handler"),
    ("__libc_start_main", "__libc_start_main"),
])
def test_function_names_are_normalized(raw: str, clean: str) -> None:
    assert normalize_function(raw) == clean


def test_library_versions_do_not_split_signatures() -> None:
    assert normalize_module("/usr/lib/x86_64-linux-gnu/libssl.so.3") == "libssl.so"
    assert normalize_module("/lib/libz.so.1.2.13") == "libz.so"
    assert normalize_module(MOD) == "ngx_http_foo_module.so"


def test_signature_ignores_addresses_aslr_and_cpu_variants() -> None:
    a = [frame(0, LIBC, "__strlen_evex"), frame(1, MOD, "foo_copy"),
         frame(2, MOD, "foo_handler"), frame(3, NGINX, "ngx_http_core_content_phase")]
    # The same bug on another machine: other load addresses, another strlen.
    b = [dataclasses.replace(f, pc=f.pc + 0x7F00_0000) for f in a]
    b[0] = dataclasses.replace(b[0], function="__strlen_avx2")
    sa = make_signature("SIGSEGV", a, unwound=True)
    sb = make_signature("SIGSEGV", b, unwound=True)
    assert sa == sb
    assert sa.text == ("SIGSEGV | libc.so!strlen | ngx_http_foo_module.so!foo_copy | "
                       "ngx_http_foo_module.so!foo_handler")
    assert len(sa.hash) == 16 and sa.basis == "backtrace"
    # Another bug in the same module differs.
    c = [frame(0, MOD, "foo_parse"), *a[2:]]
    assert make_signature("SIGSEGV", c, unwound=True).hash != sa.hash


def test_signature_skips_abort_machinery_and_collapses_recursion() -> None:
    frames = [frame(0, LIBC, "__pthread_kill_implementation"), frame(1, LIBC, "raise"),
              frame(2, LIBC, "abort"), frame(3, MOD, "foo_check"),
              frame(4, MOD, "foo_walk"), frame(5, MOD, "foo_walk"), frame(6, MOD, "foo_walk"),
              frame(7, MOD, "foo_handler")]
    assert signature_frames(frames) == ["ngx_http_foo_module.so!foo_check",
                                        "ngx_http_foo_module.so!foo_walk",
                                        "ngx_http_foo_module.so!foo_handler"]


def test_signature_of_unnamed_frames_uses_module_offsets() -> None:
    frames = [frame(0, MOD, None, off=0x1449), frame(1, None, None)]
    assert signature_frames(frames) == ["ngx_http_foo_module.so+0x1449", "[anon]"]
    untrusted = [frame(0, MOD, "wrong_name", off=0x20, trusted=False)]
    assert signature_frames(untrusted) == ["ngx_http_foo_module.so+0x20"]
