"""Writes ``crashkit report``'s bundle: a .tar.gz made under a hidden temporary
name with O_EXCL and mode 0600, fsynced, then linked to its final name
without replacing an earlier bundle."""

from __future__ import annotations

import io
import os
import tarfile
import time
from collections.abc import Sequence
from pathlib import Path

from crashkit.errors import InputError
from crashkit.model.analyze import Analysis


def bundle_name(a: Analysis) -> str:
    p = a.core.process
    who = "".join(c if c.isalnum() or c in "-_." else "_"
                  for c in (p.fname if p else "core"))[:32] or "core"
    tag = a.signature.hash[:8] if a.signature else "nosig"
    return f"crashkit-report-{who}-{p.pid if p else 0}-{tag}"


def write_bundle(a: Analysis, files: dict[str, str], order: Sequence[str], *, out_dir: str,
                 redact: bool, include_core: bool,
                 copies: Sequence[tuple[str, str]] = ()) -> str:
    """The .tar.gz, written to a hidden temporary file beside it and renamed
    into place: a reader sees the whole bundle or none. Mode 0600 from the
    first byte: it may hold secrets the redaction missed. ``copies``: (name
    in the bundle, file on this host) of files added as they are (--portable)."""
    out = Path(out_dir)
    if not out.is_dir():
        raise InputError("--out: no such directory" if not out.exists() else
                         "--out: not a directory", path=str(out))
    if not os.access(out, os.W_OK | os.X_OK):
        raise InputError("--out: not writable", path=str(out))
    # What the bundle holds is in its name: an unredacted one, or one with
    # the core, must not be mistaken for the one to post.
    top = bundle_name(a) + ("-UNREDACTED" if not redact else "") + (
        "-with-core" if include_core else "")
    tmp = out / f".{top}.tar.gz.{os.getpid()}.tmp"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except OSError as exc:
        raise InputError(f"--out: cannot write here ({exc.strerror})", path=str(out)) from None
    now = time.time()
    try:
        with os.fdopen(fd, "wb") as raw:
            with tarfile.open(fileobj=raw, mode="w:gz") as tar:
                for name in order:
                    data = files[name].encode("utf-8", "surrogateescape")
                    info = tarfile.TarInfo(f"{top}/{name}")
                    info.size, info.mode, info.mtime = len(data), 0o600, now
                    tar.addfile(info, io.BytesIO(data))
                if include_core:
                    _add_core(tar, a.core.path, f"{top}/{os.path.basename(a.core.path)}")
                for name, source in copies:
                    _add_core(tar, source, f"{top}/{name}")
            raw.flush()
            os.fsync(raw.fileno())
        return str(_place(tmp, out, top))
    except OSError as exc:
        import errno

        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise InputError(f"--out: the filesystem is full: {top}.tar.gz was not written "
                             "(nothing of it is left behind)", path=str(out)) from None
        raise InputError(f"--out: {top}.tar.gz could not be written "
                         f"({(exc.strerror or str(exc)).lower()})", path=str(out)) from None
    finally:
        tmp.unlink(missing_ok=True)


def _place(tmp: Path, out: Path, top: str) -> Path:
    """Give the finished bundle its name without replacing an earlier one
    (link fails on an existing name): NAME.tar.gz, else NAME-2.tar.gz, …"""
    for n in range(1, 1000):
        final = out / (f"{top}.tar.gz" if n == 1 else f"{top}-{n}.tar.gz")
        try:
            os.link(tmp, final)
        except FileExistsError:
            continue
        except OSError:  # a filesystem without hard links: rename, checked first
            if final.exists():
                continue
            os.replace(tmp, final)
        return final
    raise InputError("--out: too many bundles of this crash already", path=str(out))


def _add_core(tar: tarfile.TarFile, path: str, name: str) -> None:
    """A file's bytes (a symlink is followed: the bundle gets the file, not a
    link; only a regular file is read), owner-less and mode 0600."""
    from crashkit.elf.files import open_regular

    with os.fdopen(open_regular(path), "rb") as f:
        info = tarfile.TarInfo(name)
        info.size = os.fstat(f.fileno()).st_size
        info.mode, info.mtime = 0o600, time.time()
        tar.addfile(info, f)


def write_private_text(path: str, text: str) -> str:
    """``text`` in a new file (mode 0600, O_EXCL: never over another file);
    a name taken gets a -2, -3 … suffix. Returns the path written."""
    base, ext = os.path.splitext(path)
    for n in range(1, 1000):
        candidate = path if n == 1 else f"{base}-{n}{ext}"
        try:
            fd = os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        except FileExistsError:
            continue
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
        return os.path.abspath(candidate)
    raise FileExistsError(path)
