"""Output follows the terminal (issue 15 item 20): colour for severity and
status words only on a terminal (a real pseudo-terminal here) and not with
NO_COLOR or TERM=dumb, plain text in a pipe, wrapped text cut at COLUMNS or
the terminal's width; and ``analyze --no-gdb`` never loads rich."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import struct
import subprocess
import sys
import termios
from pathlib import Path

import pytest

from crashkit.render import terminal
from tests.conftest import ROOT
from tests.elfwriter import SynthCore, SynthThread
from tests.golden import DATA, GOLDEN

LOG = str(DATA / "nginx-error-real.log")
ESC = re.compile(r"\x1b\[[0-9;]*m")
SEVERITY = {"critical": "\x1b[1;31mCRITICAL\x1b[0m", "high": "\x1b[31mHIGH\x1b[0m",
            "medium": "\x1b[33mMEDIUM\x1b[0m"}


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "COLUMNS", "TERM")}
    return {**env, "TERM": "xterm-256color", **extra}


def piped(*args: str, **env: str) -> str:
    proc = subprocess.run([sys.executable, "-m", "crashkit", *args], capture_output=True,
                          text=True, timeout=120, env=_env(**env), stdin=subprocess.DEVNULL)
    assert proc.returncode in (0, 1), proc.stderr
    return proc.stdout


def terminal_run(*args: str, stream: str = "stdout", columns: int = 100,
                 env: dict[str, str] | None = None) -> tuple[int, str, str]:
    """(status, stdout, stderr) of the CLI with ``stream`` (stdout or stderr)
    on a real pseudo-terminal ``columns`` wide, the other one a pipe."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
    on_tty = stream == "stdout"
    proc = subprocess.Popen([sys.executable, "-m", "crashkit", *args],
                            stdout=slave if on_tty else subprocess.PIPE,
                            stderr=subprocess.PIPE if on_tty else slave,
                            stdin=subprocess.DEVNULL, env=_env(**(env or {})))
    os.close(slave)
    chunks = []
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(master)
    piped_out, piped_err = proc.communicate(timeout=300)
    shown = b"".join(chunks).decode(errors="replace").replace("\r\n", "\n")
    if on_tty:
        return proc.returncode, shown, piped_err.decode()
    return proc.returncode, piped_out.decode(), shown


def on_a_terminal(*args: str, columns: int = 100, **env: str) -> str:
    """stdout on a real pseudo-terminal ``columns`` wide; what it received."""
    status, out, err = terminal_run(*args, columns=columns, env=env)
    assert status in (0, 1), err
    return out


def steady(text: str) -> str:
    """The text but the time the reading took (0.00 s, or 0.01 s on a busy host)."""
    return re.sub(r" read in \d+\.\d\d s", " read in T s", text)


def findings() -> list[dict[str, str]]:
    data = json.loads(piped("triage", "--error-log", LOG, "--json"))
    out: list[dict[str, str]] = data["findings"]
    return out


def test_colour_on_a_terminal_only_on_the_severity_words() -> None:
    shown = on_a_terminal("triage", "--error-log", LOG)
    plain = piped("triage", "--error-log", LOG)
    assert "\x1b" not in plain
    # Only the colour differs (the terminal is 100 columns, the pipe's width).
    assert steady(ESC.sub("", shown)) == steady(plain)
    coloured = [line for line in shown.splitlines() if "\x1b" in line]
    assert coloured == [SEVERITY[f["severity"]] + f"{'':<{8 - len(f['severity'])}} {f['title']}"
                        for f in findings()]


@pytest.mark.parametrize("env", [{"NO_COLOR": "1"}, {"NO_COLOR": "yes"}, {"TERM": "dumb"}])
def test_no_color_and_a_dumb_terminal_get_none(env: dict[str, str]) -> None:
    assert steady(on_a_terminal("triage", "--error-log", LOG, **env)) == \
        steady(piped("triage", "--error-log", LOG))


def test_an_empty_no_color_is_unset() -> None:
    """no-color.org: NO_COLOR counts when it is present and not empty."""
    assert "\x1b[1;31mCRITICAL\x1b[0m" in on_a_terminal("triage", "--error-log", LOG,
                                                      NO_COLOR="")


def _fix_paragraphs(text: str) -> list[tuple[list[str], str]]:
    """Each "fix:" paragraph: its lines, and its words joined again."""
    out = []
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.lstrip().startswith("fix: "):
            para = [line]
            for nxt in lines[i + 1:]:
                if not nxt.startswith(" " * (len(line) - len(line.lstrip()) + 5)) or \
                        nxt.lstrip().startswith("fix: "):
                    break
                para.append(nxt)
            out.append((para, " ".join(x.strip() for x in para).removeprefix("fix: ")))
    return out


@pytest.mark.parametrize(("how", "width"), [("COLUMNS", 80), ("COLUMNS", 60),
                                             ("terminal", 72)])
def test_wrapped_text_follows_the_width(how: str, width: int) -> None:
    if how == "COLUMNS":
        text = piped("triage", "--error-log", LOG, COLUMNS=str(width))
    else:
        text = ESC.sub("", on_a_terminal("triage", "--error-log", LOG, columns=width))
    paragraphs = _fix_paragraphs(text)
    assert [joined for _, joined in paragraphs] == [f["fix"] for f in findings()]
    assert all(len(line) <= width for para, _ in paragraphs for line in para)
    # And the width is used, not merely respected: lines fill it.
    assert max(len(line) for para, _ in paragraphs for line in para) > width - 8
    # Without a width the pipe keeps 100 columns, wider than these.
    wide = _fix_paragraphs(piped("triage", "--error-log", LOG))
    assert max(len(line) for para, _ in wide for line in para) > width


def test_doctor_and_setup_status_words() -> None:
    """The same words coloured wherever a verb prints them (the doctor golden's
    lines, as emit paints them)."""
    from crashkit.render import doctor, setup

    lines = (GOLDEN / "doctor-problems.txt").read_text().splitlines()
    painted = terminal.paint(lines, doctor.STATUS_WORDS)
    assert [ESC.sub("", x) for x in painted] == lines
    marks = {line.split()[0] for line, x in zip(lines, painted, strict=True) if x != line}
    assert marks == {"FAIL", "WARN", "ok", "skip"}
    assert painted[2].startswith("\x1b[1;31mFAIL\x1b[0m  listen ")
    assert terminal.paint(["  [fixed] kernel.core_uses_pid: 1", "  [WARN] x: y", "fix: ok "],
                          setup.STATUS_WORDS) == [
        "  [\x1b[32mfixed\x1b[0m] kernel.core_uses_pid: 1", "  [\x1b[33mWARN\x1b[0m] x: y",
        "fix: ok "]


def test_escapes_from_a_log_are_still_shown_not_obeyed(tmp_path: Path) -> None:
    """Colour is added after escaping: an escape sequence a client put in a
    logged request reaches the terminal as text."""
    log = tmp_path / "error.log"
    log.write_text('2026/11/24 04:23:39 [error] 1#1: *1 connect() failed (111: Connection '
                   'refused) while connecting to upstream, client: 127.0.0.1, server: _, '
                   'request: "GET /\x1b[31mred HTTP/1.1", upstream: "http://127.0.0.1:9/"\n')
    shown = on_a_terminal("triage", "--error-log", str(log))
    assert "\\x1b[31mred" in shown
    assert ESC.findall(shown) == ["\x1b[31m", "\x1b[0m"]  # HIGH, nothing else


def test_analyze_no_gdb_does_not_load_rich(tmp_path: Path) -> None:
    core = tmp_path / "core"
    core.write_bytes(SynthCore(threads=[SynthThread(7, {"rip": 0x7F0010, "rsp": 0x2000})]).build())
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "crashkit", "analyze",
                           "--no-gdb", str(core)], capture_output=True, text=True, timeout=120,
                          env=_env(), cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    modules = [line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines()
               if line.startswith("import time:")]
    assert "crashkit.commands.analyze" in modules  # the measure saw the command
    assert not [m for m in modules if m == "rich" or m.startswith("rich.")]
