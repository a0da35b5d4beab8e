"""Compressed cores told by their magic numbers, never by a file's name
(the sources are cited in crashkit.elf.compressed, which decodes them).
Kept apart from the codecs so that telling costs no import of zstandard,
lz4 or lzma."""

from __future__ import annotations

from typing import Literal

Compression = Literal["zstd", "xz", "lz4", "gzip"]

MAGICS: tuple[tuple[bytes, Compression], ...] = (
    (b"\x28\xb5\x2f\xfd", "zstd"),
    (b"\xfd7zXZ\x00", "xz"),
    (b"\x04\x22\x4d\x18", "lz4"),
    (b"\x1f\x8b\x08", "gzip"),
)
# The longest magic above; what detect() needs to see.
MAGIC_BYTES = 6


def detect(head: bytes) -> Compression | None:
    """The compression whose magic ``head`` starts with; None for anything
    else (a plain ELF core included)."""
    for magic, kind in MAGICS:
        if head.startswith(magic):
            return kind
    return None
