"""The Sentry event of a crash (analysis/sentry_event), from synthetic
analyses: ids, debug ids, frame order, in_app, fingerprint, and what is
left out."""

from __future__ import annotations

import dataclasses
import json
import uuid

from crashkit.analysis import redact as R
from crashkit.analysis.sentry_event import build_event, debug_id, event_id
from crashkit.model.analyze import Analysis, ProcessInfo
from tests.unit.test_report_render import CASES, LIBC, MOD, NGINX

OS = {"name": "Debian GNU/Linux 12 (bookworm)", "kernel_version": "6.1.0-27-amd64"}


def echo() -> Analysis:
    a = CASES["report-echo-module.md"]()
    assert isinstance(a, Analysis)
    return a


def event(a: Analysis, **kw: object) -> dict[str, object]:
    return build_event(a, event_id="0" * 32, host="web-1", timestamp=1764000000.0,
                       os_context=OS, **kw)  # type: ignore[arg-type]


def test_debug_id_is_sentrys_little_endian_guid_of_the_build_id() -> None:
    # The example of Sentry's "Debug Information Files" page (identifiers).
    assert debug_id("f1c3bcc0279865fe3058404b2831d9e64135386c") == \
        "c0bcc3f1-9827-fe65-3058-404b2831d9e6"
    # A build-id shorter than 16 bytes is padded with zeros; junk is None.
    assert debug_id("0102030405") == "04030201-0005-0000-0000-000000000000"
    assert debug_id("not hex") is None and debug_id(None) is None


def test_event_id_is_stable_per_core_and_server() -> None:
    a = event_id("ab" * 32, "https://sentry.example/1")
    assert a == event_id("ab" * 32, "https://sentry.example/1")
    assert a != event_id("ab" * 32, "https://sentry.example/2")
    assert a != event_id("cd" * 32, "https://sentry.example/1")
    assert uuid.UUID(hex=a).hex == a and len(a) == 32


def test_native_event_shape() -> None:
    a = echo()
    e = event(a, nginx_version="1.22.1", nginx_configure="nginx version: nginx/1.22.1")
    assert e["platform"] == "native" and e["level"] == "fatal"
    exc = e["exception"]["values"][0]  # type: ignore[index]
    assert exc["type"] == "SIGSEGV"
    assert exc["value"] == a.verdict.summary  # type: ignore[union-attr]
    assert exc["mechanism"]["synthetic"] is True and exc["mechanism"]["handled"] is False
    assert exc["mechanism"]["meta"]["signal"] == {"number": 11, "name": "SIGSEGV", "code": 1,
                                                  "code_name": "SEGV_MAPERR"}
    frames = exc["stacktrace"]["frames"]
    # Oldest first: the crashing frame (libc's strlen) is last.
    assert [f["function"] for f in frames] == ["ngx_http_core_content_phase",
                                               "ngx_http_echo_exec_echo", "__strlen_avx2"]
    assert [f["package"] for f in frames] == [NGINX, MOD, LIBC]
    assert [f["in_app"] for f in frames] == [True, True, False]
    assert frames[-1]["filename"] == "strlen-avx2.S" and frames[-1]["lineno"] == 74
    assert frames[-1]["instruction_addr"] == "0x7f0000001000"
    assert e["fingerprint"] == ["crashkit", a.signature.hash]  # type: ignore[union-attr]
    tags = e["tags"]
    assert tags["blamed_module"] == "ngx_http_echo_module.so"  # type: ignore[index]
    assert tags["module_build_id"] == "1f95d5498d283b79505861523e20b3db2afdf518"  # type: ignore[index]
    assert tags["origin"] == a.verdict.origin and tags["host"] == "web-1"  # type: ignore[index, union-attr]
    assert tags["nginx_version"] == "1.22.1"  # type: ignore[index]
    images = e["debug_meta"]["images"]  # type: ignore[index]
    assert [i["code_file"] for i in images] == [NGINX, LIBC, MOD]
    assert all(i["type"] == "elf" and i["image_addr"] == "0x1000" and i["image_size"] == 0x1000
               for i in images)
    assert images[2]["debug_id"] == debug_id(images[2]["code_id"])
    assert e["contexts"]["os"]["name"] == OS["name"]  # type: ignore[index]
    assert e["contexts"]["nginx"]["version"] == "1.22.1"  # type: ignore[index]
    threads = e["threads"]["values"]  # type: ignore[index]
    assert threads == [{"id": 4242, "crashed": True, "current": True}]


def test_same_bug_other_addresses_same_fingerprint() -> None:
    """ASLR moves every pc, and another pid: the fingerprint stays; the
    frames carry the new addresses."""
    a = echo()
    t = a.threads[0]
    moved = tuple(dataclasses.replace(f, pc=f.pc + 0x5000_0000) for f in t.frames)
    b = dataclasses.replace(a, threads=(dataclasses.replace(t, frames=moved),))
    ea, eb = event(a), event(b)
    assert ea["fingerprint"] == eb["fingerprint"]
    fa = ea["exception"]["values"][0]["stacktrace"]["frames"]  # type: ignore[index]
    fb = eb["exception"]["values"][0]["stacktrace"]["frames"]  # type: ignore[index]
    assert [f["instruction_addr"] for f in fa] != [f["instruction_addr"] for f in fb]


def test_no_arguments_locals_or_registers_leave_and_the_command_line_is_redacted() -> None:
    a = echo()
    p = a.core.process
    assert p is not None
    secret = "hunter2-SECRET"
    a = dataclasses.replace(a, core=dataclasses.replace(a.core, process=ProcessInfo(
        **{**dataclasses.asdict(p), "args": f"worker --password {secret} token={secret}"})))
    text = json.dumps(event(R.analysis(a)))
    assert secret not in text
    # Frame 1's arguments (a pointer and a redacted string) are not sent at all.
    assert "0x55d0c0de1000" not in text and "redacted:31" not in text
    assert "rsp" not in text and "registers" not in text
