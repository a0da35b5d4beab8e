"""The README's example outputs come from real runs (issue 15 item 22).

Each block that follows a marker ``<!-- example: NAME ... -->`` in README.md
is the output of the command it shows, run here on the real fixture cores,
cut to the excerpt defined below (the same cut every time). It is compared
after normalising what changes from one run or one host to the next (pids,
addresses, times, the checkout's path, the nginx build's own offsets and
version); CRASHKIT_UPDATE_GOLDEN=1 writes the fresh output into README.md
(review the diff)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT, fixture

pytestmark = pytest.mark.integration

README = ROOT / "README.md"


def run_cli(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """The command as the README's reader runs it, piped: no COLUMNS from
    this environment (it would fit rows to it), and piped, so no colour."""
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "NO_COLOR")}
    proc = subprocess.run([sys.executable, "-m", "crashkit", *args], capture_output=True,
                          text=True, timeout=120, env=env, stdin=subprocess.DEVNULL)
    if check:
        assert proc.returncode == 0, f"crashkit {' '.join(args)}: {proc.stderr}"
    return proc


MARKER = re.compile(r"^<!-- example: (?P<name>[^()>\n]+?)(?: \([^\n]*\))? -->\n"
                    r"(?P<fence>```+)text\n(?P<body>.*?)\n(?P=fence)\n", re.M | re.S)


def shown_paths(text: str) -> str:
    """The checkout's own directory is written …/ (it differs on every
    machine): …/build/cores/nginx-null/…, …/sample_cores/…"""
    return re.sub(r"(?<![\w.…])/[^\s\[\]()]*?/(?=(?:build/cores|sample_cores)/)", "…/", text)


def normalised(text: str) -> str:
    """What may differ between two honest runs, replaced by its kind."""
    subs = [
        (r"\b(pid|ppid|thread) \d+", r"\1 N"),
        (r"\(\d+, \d+(?:, \d+)*\)", "(TIDS)"),
        (r"\d{4}-\d\d-\d\d \d\d:\d\d(?::\d\d)?(?: [+-]\d\d:\d\d)?", "TIME"),
        (r"\d+ (?:s|min|h|days?)(?: \d+ (?:min|h))? ago", "AGE"),
        (r"last 24 hours: \|[^|\n]*\|", "last 24 hours: |TIMELINE|"),
        (r"0x[0-9a-f]{8,}", "0xADDR"),
        (r"build-id [0-9a-f]+…", "build-id BUILDID…"),
        # Debian's nginx build: its offsets and its package version.
        (r"\+0x[0-9a-f]+ \[nginx\]", "+0xOFF [nginx]"),
        (r"\bnginx\+0x[0-9a-f]+", "nginx+0xOFF"),
        (r"\bnginx \d+\.\d+\.\d+-\S+", "nginx VERSION"),
        # The worker's memory differs a little from host to host.
        (r"^  core      [\d.]+ [KMG]iB,", "  core      SIZE,"),
    ]
    for pattern, repl in subs:
        text = re.sub(pattern, repl, text, flags=re.M)
    return text


def _sections(text: str) -> list[list[str]]:
    out: list[list[str]] = [[]]
    for line in text.split("\n"):
        if line == "" and out[-1]:
            out.append([])
        elif line != "":
            out[-1].append(line)
    return [s for s in out if s]


def analyze_excerpt(text: str) -> str:
    """The first lines and facts whole; the crashing thread's first 6 frames;
    the first row of registers; the instruction before the pc, the pc's and
    the one after; then the other sections (threads, log lines, warnings)."""
    kept = []
    for section in _sections(text):
        head = section[0]
        if head.startswith(("Crashing thread", "Thread ")) and len(section) > 7:
            section = [*section[:7], "  …"]
        elif head == "Registers:" and len(section) > 2:
            section = [*section[:2], "  …"]
        elif head.startswith("Instructions"):
            at = next(i for i, line in enumerate(section) if line.startswith("  => "))
            section = [head, *section[max(1, at - 1):at + 2]]
        kept.append("\n".join(section))
    return "\n\n".join(kept)


def example_analyze(manifest: dict[str, Any], tmp_path: Path) -> tuple[str, str]:
    core = fixture(manifest, "nginx-null")["core"]
    out = run_cli("analyze", core, check=True).stdout
    # Run from the checkout, as the README's reader does.
    relative = shown_paths(core).removeprefix("…/")
    return f"$ crashkit analyze {relative}", analyze_excerpt(out.rstrip("\n"))


def collected_store(manifest: dict[str, Any], tmp_path: Path) -> Path:
    """Three real crashes collected into a new store (as collect takes them
    from a directory)."""
    cores = tmp_path / "cores"
    cores.mkdir()
    for name in ("nginx-null", "nginx-libc", "nginx-abort"):
        fx = fixture(manifest, name)
        shutil.copy2(fx["core"], cores / f"core.{fx['pid']}")
    empty_log = tmp_path / "error.log"  # crashes without a core: none (not this host's log)
    empty_log.write_text("")
    store = tmp_path / "store"
    run_cli("collect", "--from", str(cores), "--only-from", "--store", str(store),
            "--error-log", str(empty_log), check=True)
    return store


def example_list(manifest: dict[str, Any], tmp_path: Path) -> tuple[str, str]:
    store = collected_store(manifest, tmp_path)
    out = run_cli("list", "--store", str(store), check=True).stdout
    # The command shown uses the default store.
    return "$ crashkit list", out.rstrip("\n").replace(str(store), "/var/lib/crashkit")


EXAMPLES: dict[str, Callable[[dict[str, Any], Path], tuple[str, str]]] = {
    "analyze nginx-null": example_analyze,
    "list": example_list,
}


def test_every_marked_block_has_an_example() -> None:
    names = [m["name"] for m in MARKER.finditer(README.read_text())]
    assert sorted(names) == sorted(EXAMPLES), "README example markers and EXAMPLES differ"


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_readme_example_is_a_real_run(manifest: dict[str, Any], tmp_path: Path,
                                      name: str) -> None:
    command, output = EXAMPLES[name](manifest, tmp_path)
    fresh = f"{command}\n{shown_paths(output)}"
    readme = README.read_text()
    match = next((m for m in MARKER.finditer(readme) if m["name"] == name), None)
    assert match is not None, f"README.md has no <!-- example: {name} --> block"
    if os.environ.get("CRASHKIT_UPDATE_GOLDEN"):
        fence = "`" * max([3, *(len(r) + 1 for r in re.findall(r"`+", fresh))])
        start, end = match.span("fence")[0], match.end()
        README.write_text(f"{readme[:start]}{fence}text\n{fresh}\n{fence}\n{readme[end:]}")
        return
    assert normalised(match["body"]) == normalised(fresh), (
        f"README.md's example {name!r} differs from a real run (CRASHKIT_UPDATE_GOLDEN=1 "
        "rewrites it; review the diff)")


@pytest.mark.parametrize(("before", "after"), [
    ("  process   pid 26937, ppid 26932, uid 33", "  process   pid N, ppid N, uid 33"),
    ("  when      2026-11-24 04:35:59 +00:00 (2 h 5 min ago; from the core file time)",
     "  when      TIME (AGE; from the core file time)"),
    ("  #3  0x0000564f314fca10 ngx_http_core_content_phase+0x30 [nginx]",
     "  #3  0xADDR ngx_http_core_content_phase+0xOFF [nginx]"),
    # The crashed module's own offsets and line numbers are what must not drift.
    ("  #1  0x00007f9457e61449 crashkit_parse_tag+0x39 [x.so]  …/sample_cores/m/x.c:188",
     "  #1  0xADDR crashkit_parse_tag+0x39 [x.so]  …/sample_cores/m/x.c:188"),
    ("  at fault  /work/main/build/cores/nginx-null/module/x.so",
     "  at fault  /work/main/build/cores/nginx-null/module/x.so"),
])
def test_normalised_keeps_what_must_not_drift(before: str, after: str) -> None:
    assert normalised(before) == after
    assert shown_paths("  at fault  /work/main/build/cores/nginx-null/module/x.so") == \
        "  at fault  …/build/cores/nginx-null/module/x.so"
