"""Where a module was compiled: the source directories its DWARF names
(each compilation unit's DW_AT_name, joined to its DW_AT_comp_dir), read
with pyelftools from the module or its separate debug file."""

from __future__ import annotations

import os

from crashkit.elf.files import open_regular

# A compilation unit list this long says enough; a hostile file costs no more.
MAX_UNITS = 64
MAX_DEBUG_INFO = 64 * 1024 * 1024


def source_dirs(path: str) -> list[str]:
    """Directories of the module's own source files, those outside the build
    directory first (a module built by nginx's build system is compiled in
    nginx's tree, from its own tree: --add-dynamic-module=DIR), then the
    build directories. [] when the file has no DWARF or cannot be read."""
    try:
        fd = open_regular(path)
    except OSError:
        return []
    own: list[str] = []
    builds: list[str] = []
    with os.fdopen(fd, "rb") as fh:
        try:
            from elftools.elf.elffile import ELFFile

            elf = ELFFile(fh)
            info = elf.get_section_by_name(".debug_info")
            if info is None or info["sh_size"] > MAX_DEBUG_INFO:
                return []
            dwarf = elf.get_dwarf_info(relocate_dwarf_sections=False, follow_links=False)
            for i, cu in enumerate(dwarf.iter_CUs()):
                if i == MAX_UNITS:
                    break
                top = cu.get_top_DIE()
                name = _text(top.attributes.get("DW_AT_name"))
                comp = _text(top.attributes.get("DW_AT_comp_dir"))
                if comp and comp.startswith("/") and comp not in builds:
                    builds.append(comp)
                if not name:
                    continue
                full = os.path.normpath(os.path.join(comp or "/", name))
                d = os.path.dirname(full)
                if full.startswith("/") and d not in own and not (
                        comp and (d + "/").startswith(comp.rstrip("/") + "/")):
                    own.append(d)
        except Exception:  # noqa: BLE001 - damaged or unusual DWARF names no directory
            pass
    return own + [b for b in builds if b not in own]


def _text(attr: object) -> str | None:
    value = getattr(attr, "value", None)
    if isinstance(value, bytes):
        text = value.decode("utf-8", "replace")
        return text if text.isprintable() else None
    return None
