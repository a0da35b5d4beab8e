"""One form for a place in code (issue 15 item 14): frames and instructions
write ``name+0x39`` in the text output, report.md, report.html and
crash-site.txt (``name()`` only in sentences), and the register dumps hold
every general register the core has, as the JSON gives them."""

from __future__ import annotations

import html
import lzma
import re
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT, analyze_json, fixture, run_cli
from tests.integration.test_report import make_bundle

pytestmark = pytest.mark.integration

X86_SHOWN = {"rip", "rsp", "rbp", "rax", "rbx", "rcx", "rdx", "rsi", "rdi", "r8", "r9", "r10",
             "r11", "r12", "r13", "r14", "r15", "eflags"}
AARCH64_SHOWN = {*(f"x{i}" for i in range(31)), "sp", "pc", "pstate"}
FRAME = re.compile(r"^  #(\d+) +(0x[0-9a-f]{16}) (.+?) \[([^\]]+)\]")


def dumped_registers(text: str) -> dict[str, int]:
    """The registers of the "Registers:" block, by name (each once)."""
    block = text.split("Registers:\n", 1)[1].split("\n\n", 1)[0]
    pairs = re.findall(r"(\w+) (0x[0-9a-f]+)", block)
    regs = {name: int(value, 16) for name, value in pairs}
    assert len(regs) == len(pairs) == len(block.split()) // 2, block
    return regs


def frame_lines(text: str) -> list[re.Match[str]]:
    part = text.split("\nRegisters:", 1)[0]
    return [m for line in part.splitlines() if (m := FRAME.match(line))]


def instruction_labels(text: str) -> list[str]:
    return re.findall(r"^  (?:=>|  ) 0x[0-9a-f]{16} <([^>]+)>", text, re.M)


def test_frames_and_instructions_one_form(manifest: dict[str, Any]) -> None:
    core = fixture(manifest, "nginx-null")["core"]
    data = analyze_json(core)
    out = run_cli("analyze", core, check=True).stdout
    frames = data["threads"][0]["frames"]
    lines = frame_lines(out)
    assert [int(m[1]) for m in lines] == [f["index"] for f in frames]
    for m, f in zip(lines, frames, strict=True):
        assert int(m[2], 16) == f["pc"]
        if f["function"] and f["function_offset"] is not None:
            assert m[3] == f"{f['function']}+{f['function_offset']:#x}"
        elif f["function"] is None:
            assert m[3] == f"{Path(f['module']).name}+{f['module_offset']:#x}"
        assert "()" not in m[3]
    assert lines[0][3] == "crashkit_faulty_tag_length+0x0"
    assert lines[1][3] == f"crashkit_parse_tag+{frames[1]['function_offset']:#x}"
    # The sentence names the function the way prose does.
    assert out.startswith("NULL pointer dereference in crashkit_faulty_tag_length(): ")
    # Instructions: gdb's <name+207> is written <name+0xcf>, the pc's label
    # is frame #0's, and each label is the function and its offset in hex.
    labels = instruction_labels(out)
    by_address = {i["address"]: i for i in data["context"]["instructions"]}
    assert len(labels) == sum(1 for i in by_address.values() if i["function"])
    for line in re.findall(r"^  (?:=>|  ) (0x[0-9a-f]{16}) <([^>]+)>", out, re.M):
        ins = by_address[int(line[0], 16)]
        assert line[1] == f"{ins['function']}+{ins['offset']:#x}"
    pc_line = next(x for x in out.splitlines() if x.startswith("  => "))
    assert f"<{lines[0][3]}>" in pc_line
    assert not re.search(r"<[\w.@]+\+\d+>", out.split("Instructions:", 1)[1])


def test_registers_in_text_report_and_crash_site(manifest: dict[str, Any],
                                                 tmp_path: Path) -> None:
    core = fixture(manifest, "nginx-null")["core"]
    regs = analyze_json(core, "--no-gdb")["threads"][0]["registers"]
    want = {name: regs[name] for name in X86_SHOWN}
    out = run_cli("analyze", core, check=True).stdout
    assert dumped_registers(out) == want
    _answer, files = make_bundle(core, tmp_path / "out", "--no-redact")
    site = files["crash-site.txt"].decode()
    assert dumped_registers("Registers:\n" + site) == want
    md = files["report.md"].decode()
    assert dumped_registers(md.split("## Registers and instructions at the crash", 1)[1]) == want
    # report.md and report.html list the frames as the text output does.
    text_frames = [m[0] for m in frame_lines(out)]
    md_block = md.split("## Backtrace of the crashing thread\n\n```text\n", 1)[1]
    assert [m[0] for m in frame_lines(md_block.split("\n```", 1)[0] + "\n")] == text_frames
    page = html.unescape(re.search(r'<pre id="backtrace">(.*?)</pre>',
                                   files["report.html"].decode(), re.S)[1])  # type: ignore[index]
    assert [m[0] for m in frame_lines(page + "\n")] == text_frames


def test_aarch64_registers_all_the_core_has(tmp_path: Path) -> None:
    core = tmp_path / "core"
    core.write_bytes(lzma.decompress(
        (ROOT / "sample_cores" / "aarch64" / "qemu-threads.core.xz").read_bytes()))
    regs = analyze_json(str(core), "--no-gdb")["threads"][0]["registers"]
    out = run_cli("analyze", "--no-gdb", str(core), check=True).stdout
    assert dumped_registers(out) == {name: regs[name] for name in AARCH64_SHOWN}
