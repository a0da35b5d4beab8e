"""The import-layer contract (DESIGN: data flows one way), checked on the
source: every import of a crashkit module, at the top of a file or inside a
function, but not under ``if TYPE_CHECKING:`` (types only, never run).

- analysis, render and model import no reader, writer or command: only
  model, analysis, render (render only), errors, crashkit itself, and
  formats (pure parsers of a file format, no I/O), which every layer may use;
- readers (elf, gdb, nginx, host) import no analysis, render, command or writer;
- only commands (and cli) import writers; nothing imports commands but cli,
  launch and other commands; nothing imports cli.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "crashkit"
READERS = ("elf", "gdb", "nginx", "host", "store")
COMMON = ("crashkit", "crashkit.errors", "crashkit.model", "crashkit.formats")


def layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "crashkit"


def imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), str(path))
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip.update(id(n) for b in node.body for n in ast.walk(b))
    out = []
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "crashkit":  # from crashkit import x
                out += [(node.lineno, f"crashkit.{a.name}") for a in node.names
                        if a.name != "__version__"]
            elif node.module.startswith("crashkit."):
                out.append((node.lineno, node.module))
        elif isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names if a.name.startswith("crashkit.")]
    return out


def allowed(importer: str, imported: str) -> bool:
    src, dst = layer(importer), layer(imported)
    if imported.startswith(COMMON[1:]) or imported == "crashkit":
        return True
    if dst == "cli":
        return src in ("launch", "__main__")
    if src in ("analysis", "model", "formats"):
        return dst in ("analysis", "model") and src != "formats"
    if src == "render":
        return dst in ("analysis", "model", "render")
    if src in READERS:
        return dst in READERS
    if src == "writers":
        return dst in (*READERS, "writers")
    if dst == "commands":
        return src in ("commands", "cli", "launch")
    if dst == "writers":
        return src in ("commands", "cli")
    return True


SOURCES = sorted(p for p in PACKAGE.rglob("*.py"))


def module_of(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_layer_contract(path: Path) -> None:
    me = module_of(path)
    bad = [f"{path.relative_to(PACKAGE.parent)}:{line} imports {mod}"
           for line, mod in imports(path) if not allowed(me, mod)]
    assert not bad, "\n".join(bad)


def test_the_contract_catches_a_violation(tmp_path: Path) -> None:
    """The checker itself: an analysis importing a reader, a writer imported by
    a render, a lazy import inside a function are caught; a TYPE_CHECKING one is not."""
    f = tmp_path / "x.py"
    f.write_text("from typing import TYPE_CHECKING\nfrom crashkit.host import proc\n"
                 "def f():\n    from crashkit.writers import bundle\n"
                 "if TYPE_CHECKING:\n    from crashkit.commands import setup\n")
    found = [m for _, m in imports(f)]
    assert found == ["crashkit.host", "crashkit.writers"]
    assert not allowed("crashkit.analysis.x", "crashkit.host.proc")
    assert not allowed("crashkit.render.x", "crashkit.writers.bundle")
    assert not allowed("crashkit.elf.core", "crashkit.analysis.meaning")
    assert not allowed("crashkit.host.proc", "crashkit.cli")
    assert allowed("crashkit.analysis.setup", "crashkit.formats.nginx_config")
    assert allowed("crashkit.commands.report", "crashkit.writers.bundle")


def test_format_modules_do_no_io() -> None:
    for path in sorted((PACKAGE / "formats").glob("*.py")):
        name = str(path)
        tree = ast.parse(path.read_text())
        names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
        mods = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        mods |= {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
        assert "open" not in names and not mods & {"os", "subprocess", "socket", "shutil"}, name
