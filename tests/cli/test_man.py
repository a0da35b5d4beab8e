"""The man pages (scripts/make-man, click-man over the click commands) render
with man(1), one page per verb, each with every option its --help lists."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import click

from crashkit.cli import cli
from tests.conftest import ROOT, unavailable

VERBS = sorted(n for n, c in cli.commands.items() if not c.hidden)


def render(page: Path) -> str:
    """``man -l`` as a reader sees it (plain ASCII, wide: no word is split),
    with groff's warnings on: any one of them fails the test."""
    proc = subprocess.run(["man", "--warnings", "-l", str(page)], capture_output=True,
                          text=True, timeout=60,
                          env={**os.environ, "LC_ALL": "C", "MANWIDTH": "250",
                               "MAN_KEEP_FORMATTING": "", "MANPAGER": "cat", "PAGER": "cat"})
    assert proc.returncode == 0 and proc.stderr == "", (page.name, proc.stderr)
    return proc.stdout


def sections(text: str) -> list[str]:
    return re.findall(r"^([A-Z][A-Z ]+)$", text, re.M)


def test_every_verb_has_a_page_that_renders(tmp_path: Path) -> None:
    if shutil.which("man") is None or shutil.which("groff") is None:
        unavailable("man and groff are not installed (apt-get install man-db groff-base)")
    out = tmp_path / "man1"
    proc = subprocess.run([str(ROOT / "scripts" / "make-man"), str(out)], capture_output=True,
                          text=True, timeout=120,
                          env={**os.environ, "SOURCE_DATE_EPOCH": "0", "PYTHON": sys.executable})
    assert proc.returncode == 0, proc.stderr
    pages = ["crashkit.1", *(f"crashkit-{v}.1" for v in VERBS)]
    assert proc.stdout.splitlines() == [str(out / p) for p in pages]
    assert sorted(p.name for p in out.iterdir()) == sorted(pages)

    top = render(out / "crashkit.1")
    assert sections(top) == ["NAME", "SYNOPSIS", "DESCRIPTION", "OPTIONS", "COMMANDS"]
    commands = top.split("\nCOMMANDS\n", 1)[1]
    for verb in VERBS:  # each verb listed, pointing to its own page
        assert re.search(rf"^ +{verb}\n", commands, re.M), verb
        assert f"See crashkit-{verb}(1) for full documentation on the {verb} command." \
            in commands
    assert "1970-01-01" in top.splitlines()[-1]  # SOURCE_DATE_EPOCH is the date

    for verb in VERBS:
        command = cli.commands[verb]
        text = render(out / f"crashkit-{verb}.1")
        assert text.startswith(f"CRASHKIT {verb.upper()}(1)"), text[:80]
        assert sections(text)[:3] == ["NAME", "SYNOPSIS", "DESCRIPTION"], verb
        assert re.search(rf"^ +crashkit-{verb} - \S", text, re.M), verb
        ctx = click.Context(command, info_name=verb, parent=click.Context(cli,
                                                                           info_name="crashkit"))
        assert " ".join(command.collect_usage_pieces(ctx)) in text
        # Every option --help shows, by each of its names, as an entry of OPTIONS.
        options = text.split("\nOPTIONS\n", 1)[1]
        for param in command.params:
            if isinstance(param, click.Option) and not param.hidden:
                for flag in [*param.opts, *param.secondary_opts]:
                    assert re.search(rf"^ +(\S+, )*{re.escape(flag)}\b", options, re.M), \
                        (verb, flag)
