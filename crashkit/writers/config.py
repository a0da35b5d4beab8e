"""Put a planned nginx change in place safely: candidate, ``nginx -t``, backup, atomic replace.

Candidates (``.NAME.crashkit-new``) and backups (``.NAME.crashkit-backup-STAMP``)
sit beside the file they belong to, on the same filesystem (so os.replace is
atomic), and start with a dot: nginx expands ``include`` patterns with glob(3)
without GLOB_PERIOD, so ``*`` never matches a leading dot and
``include conf.d/*.conf`` cannot load them. :func:`check_names` still checks
them against every include pattern of the config, for patterns that spell
the dot out.

Validation runs the real ``nginx -t`` on the whole config with the candidates
in place: for the main file alone, ``nginx -t -c CANDIDATE`` (same directory,
so relative includes resolve the same); when an included file changes, nginx
runs in a private mount namespace where each candidate is bind-mounted over
its original, so globs, includes and relative paths behave exactly as they
will after the replace, and nothing outside sees it. A new file (crashkit's
drop-in in a directory an include glob loads) is seen there through a
read-only overlay of its directory: the candidate, in a private directory of
its own, over the directory as it is.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import secrets
import shutil
import signal
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from crashkit.errors import CommandError, CrashkitError, InputError
from crashkit.formats.nginx_config import Statement, glob_matches, quote, statements, to_bytes
from crashkit.host.proc import children, nginx_master, systemd_running
from crashkit.host.run import Completed, run
from crashkit.model.nginx import NginxConfig
from crashkit.nginx.config import check_writes, pid_path, prefix_args
from crashkit.nginx.files import read_text

if TYPE_CHECKING:
    from crashkit.analysis.setup import FileEdit

CANDIDATE_TAG = ".crashkit-new"
BACKUP_TAG = ".crashkit-backup-"
_STAMP_RE = re.compile(r"^\d{8}T\d{6}\.\d{6}Z$")

# For each KIND A B (until "--"): bind-mount the file A over B; overlay the
# directory A over the directory B (read-only, A's files above B's own);
# mount a tmpfs on A; make the directory A writable with its changes kept in
# B (an overlay on itself, upper and work dirs in B, on that tmpfs); bind
# an empty file A over the file B; or bind the tree A (mounts below it
# included) on B. Then run the command.
_NS_SCRIPT = ('while [ "$1" != "--" ]; do case "$1" in '
              'bind) mount --bind "$2" "$3";; '
              'overlay) mount -t overlay overlay -o "lowerdir=$2:$3" "$3";; '
              'tmpfs) mount -t tmpfs -o size=16m,mode=0700 crashkit "$2";; '
              'cow) mkdir "$3" "$3/u" "$3/w" && '
              'mount -t overlay overlay -o "lowerdir=$2,upperdir=$3/u,workdir=$3/w" "$2";; '
              'blank) : > "$2" && mount --bind "$2" "$3";; '
              'rbind) { [ -e "$3" ] || mkdir "$3"; } && mount --rbind "$2" "$3";; '
              '*) false;; esac || exit 99; shift 3; done; shift; exec "$@"')
_NS_FAILED = 99  # the script's status when a mount failed
_UNSHARE = ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", _NS_SCRIPT, "sh"]


class ValidationError(CrashkitError):
    """``nginx -t`` rejected a config; ``output`` is what nginx said."""

    def __init__(self, message: str, *, path: str | None = None, output: str = "") -> None:
        super().__init__(message, path=path)
        self.output = output


@dataclass(frozen=True)
class Replaced:
    path: str
    backup: str | None  # None when undo consumed the backup


def candidate_path(path: str) -> str:
    """A name of this run's own (pid and random part): two setups never share one."""
    d, name = os.path.split(path)
    return os.path.join(d, f".{name}{CANDIDATE_TAG}-{os.getpid()}-{secrets.token_hex(4)}")


# How long a setup --apply/--undo waits for another one on the same config
# (setup --lock-wait): an apply validates the whole config with nginx -t,
# which takes a minute or more on a config of 100,000 servers.
LOCK_WAIT = 120.0


@contextlib.contextmanager
def config_lock(root: str, wait: float = LOCK_WAIT) -> Iterator[float]:
    """Hold an exclusive lock for one setup --apply/--undo on the config whose
    main file is ``root``: an flock(2) on that file's directory (a
    descriptor, no lock file left behind), taken before the config is read,
    so what a run plans from is what the run before it left. Yields how long
    it waited for another setup to finish (0.0: not at all); after ``wait``
    seconds it gives up, one line, nothing changed."""
    d = os.path.dirname(os.path.realpath(root))
    try:
        fd = os.open(d, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        raise InputError(f"cannot open the config's directory {d}: {exc.strerror}",
                         path=root) from None
    try:
        start = time.monotonic()
        tries = 0
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                tries += 1
                if time.monotonic() - start >= wait:
                    raise InputError(
                        "another crashkit setup is changing this config now (it holds the "
                        f"lock on its directory; waited {wait:g} s); nothing changed, run "
                        "again when it is done", path=root) from None
                time.sleep(0.05)
        yield time.monotonic() - start if tries else 0.0
    finally:
        os.close(fd)


def backup_path(path: str, stamp: str) -> str:
    d, name = os.path.split(path)
    return os.path.join(d, f".{name}{BACKUP_TAG}{stamp}")


def check_copy_path(root: str) -> str:
    """Where validate_copies puts the main file's copy: beside the main file as named."""
    d, name = os.path.split(root)
    return os.path.join(d, f".{name}.crashkit-check")


def new_stamp() -> str:
    """UTC to the microsecond, from one reading of the clock (seconds and
    microseconds read apart could name a later run by an earlier second, and
    undo takes the newest stamp)."""
    us = time.time_ns() // 1000
    return time.strftime("%Y%m%dT%H%M%S", time.gmtime(us // 10**6)) + f".{us % 10**6:06d}Z"


# ---------------------------------------------------------------- include globs

def include_patterns(cfg: NginxConfig) -> list[tuple[str, str]]:
    """(absolute pattern, where) of every include; relative ones are relative to the
    directory of the main file (nginx's conf prefix)."""
    base = os.path.dirname(cfg.root)
    return [(a if os.path.isabs(a) else os.path.join(base, a), d.where)
            for d in cfg.find("include") for a in d.args[:1]]


def check_names(cfg: NginxConfig, paths: list[str]) -> None:
    """Refuse names that an include of this config would load."""
    patterns = include_patterns(cfg)
    for path in paths:
        for pattern, where in patterns:
            for variant in {path, os.path.realpath(path)}:
                if glob_matches(pattern, variant):
                    raise InputError(f"would be loaded by the include at {where} ({pattern}); "
                                     "crashkit will not write it", path=path)


# ---------------------------------------------------------------- nginx -t

def nginx_test(nginx: str, root: str, replacements: Mapping[str, str] | None = None,
               cfg: NginxConfig | None = None, additions: Mapping[str, str] | None = None,
               ) -> str:
    """Run ``nginx -t`` on the config rooted at ``root`` (as the user names it),
    each original in ``replacements`` (real paths) replaced by its candidate,
    each new file of ``additions`` (real path: its candidate, named as the new
    file in a private directory) in place. Returns nginx's output; raises
    ValidationError when the config fails.

    An included or new file's candidate is validated in a private mount
    namespace; where none can be made (no CAP_SYS_ADMIN: most containers, or
    no overlayfs), on a copy of the config whose includes name the copies
    (:func:`validate_copies`).
    """
    replacements = dict(replacements or {})
    additions = dict(additions or {})
    real_root = os.path.realpath(root)
    p = prefix_args(cfg)
    if not replacements and not additions:
        if cfg is not None and cfg.root == root:
            return check_as_is(nginx, cfg)[0]
        cmd = [nginx, *p, "-t", "-c", root]
    elif (not additions and set(replacements) == {real_root}
          and os.path.dirname(real_root) == os.path.dirname(root)):
        # Beside the original: relative includes resolve against the same
        # directory (nginx's conf prefix is the directory of -c).
        cmd = [nginx, *p, "-t", "-c", replacements[real_root]]
    else:
        mounts = [x for orig, cand in replacements.items() for x in ("bind", cand, orig)]
        layers = {os.path.dirname(cand): os.path.dirname(new) for new, cand in additions.items()}
        if any(c in x for pair in layers.items() for x in pair for c in ":,\\"):
            # overlayfs's lowerdir option cannot name these directories
            if cfg is None:
                raise CrashkitError("cannot validate a new included file here")
            return validate_copies(nginx, cfg, replacements, additions)
        mounts += [x for layer, d in layers.items() for x in ("overlay", layer, d)]
        cmd = [*_UNSHARE, *mounts, "--", nginx, *p, "-t", "-c", root]
    proc = _run(cmd)
    output = (proc.stderr + proc.stdout).strip()
    if proc.status != 0 and cmd[0] == "unshare" and (
            output.startswith("unshare:") or proc.status == _NS_FAILED):
        if cfg is None:
            raise CrashkitError("cannot validate a changed included file: no private mount "
                                f"namespace here ({output})")
        return validate_copies(nginx, cfg, replacements, additions)
    if proc.status != 0:
        what = ("the changed config fails nginx -t, nothing replaced"
                if replacements or additions
                else "the config fails nginx -t; fix it first, nothing changed")
        raise ValidationError(f"{what}: {_first_error(output)}", path=root, output=output)
    return output


def check_as_is(nginx: str, cfg: NginxConfig) -> tuple[str, bool]:
    """``nginx -t`` of the config as it is, leaving the disk as it was: its
    output, and whether it ran isolated.

    nginx -t creates the pid file and the log files it opens, and makes and
    chowns the temp paths (:func:`~crashkit.nginx.config.check_writes`). It
    runs in a private mount namespace where each directory that would gain
    or change an entry is an overlay of itself, its changes on a tmpfs that
    goes with the namespace, and each of those files that exists has an
    empty file bound over it (no copy of a large log, no write to it).
    Where that cannot be (no CAP_SYS_ADMIN, no overlayfs, the root
    directory to overlay), nginx -t runs as it is, and the flag is False.
    """
    cmd = [nginx, *prefix_args(cfg), "-t", "-c", cfg.root]
    mounts = _isolating_mounts(cfg)
    cows = [path + "/" for kind, path in mounts or () if kind == "cow"]
    # The tmpfs's mount point: in no directory that gets overlaid.
    parent = next((p for p in (tempfile.gettempdir(), "/run", "/dev/shm", "/var/tmp")
                   if os.path.isdir(p) and not any((p + "/").startswith(c) for c in cows)),
                  None)
    proc: Completed | None = None
    if mounts and parent is not None:
        _remove_stale_bases(parent)
        base = tempfile.mkdtemp(prefix=f"{_NS_BASE}{os.getpid()}-", dir=parent)
        try:
            spec = _mount_spec(mounts, base)
            proc = _run([*_UNSHARE, *spec, "--", *cmd])
            if proc.status != 0 and (proc.stderr.startswith("unshare:")
                                     or proc.status == _NS_FAILED):
                proc = None  # no namespace or no overlay here: as it is
        finally:
            with contextlib.suppress(OSError):
                os.rmdir(base)
    isolated = proc is not None or mounts == []
    if proc is None:
        proc = _run(cmd)
    output = (proc.stderr + proc.stdout).strip()
    if proc.status != 0:
        raise ValidationError("the config fails nginx -t; fix it first, nothing changed: "
                              f"{_first_error(output)}", path=cfg.root, output=output)
    return output, isolated


_NS_BASE = "crashkit-ns-"  # + PID-RANDOM: the check's tmpfs mount point


def _remove_stale_bases(parent: str) -> None:
    """Mount points left by a check that was SIGKILLed: its tmpfs went with its
    namespace, an empty directory stays. Removed once their process is gone."""
    try:
        names = [n for n in os.listdir(parent) if n.startswith(_NS_BASE)]
    except OSError:
        return
    for name in names:
        pid = name[len(_NS_BASE):].split("-", 1)[0]
        if pid.isdigit() and not os.path.exists(f"/proc/{pid}"):
            with contextlib.suppress(OSError):  # not empty, or not ours: left alone
                os.rmdir(os.path.join(parent, name))


def _isolating_mounts(cfg: NginxConfig) -> list[tuple[str, str]] | None:
    """("cow", DIR) for each directory nginx -t would add to or change,
    parents first, then ("blank", FILE) for each existing file it opens for
    writing; None when a directory cannot be overlaid (the root, or a name
    overlayfs's options cannot hold)."""
    cows: set[str] = set()
    blanks: list[str] = []
    for path in check_writes(cfg):
        real = os.path.realpath(path)
        if os.path.isdir(real):  # a temp path: mkdir (EEXIST), chown
            cows.add(os.path.dirname(real))
        elif os.path.lexists(real):
            if os.path.isfile(real):
                blanks.append(real)
        elif os.path.isdir(os.path.dirname(real)):  # else nginx -t fails, creating nothing
            cows.add(os.path.dirname(real))
    if not cows and not blanks:
        return []
    if any(d == "/" or any(c in d for c in ":,\\") for d in cows):
        return None
    out = [("cow", d) for d in sorted(cows, key=lambda x: (x.count("/"), x))]
    return out + [("blank", f) for f in dict.fromkeys(blanks)]


def _mount_spec(mounts: list[tuple[str, str]], base: str) -> list[str]:
    """The namespace script's arguments for :func:`_isolating_mounts`'s list,
    its files on a tmpfs at ``base`` (outside every overlaid directory). An
    overlay shows its directory's own filesystem only: the mounts below it
    are bound back in their places."""
    points = _mount_points()
    spec = ["tmpfs", base, "-"]
    for i, (kind, path) in enumerate(mounts):
        if kind == "cow":
            below = [m for m in points if m.startswith(path + "/")]
            keep = os.path.join(base, f"m{i}")
            if below:  # the tree as it is, kept aside before the overlay hides it
                spec += ["rbind", path, keep]
            spec += ["cow", path, os.path.join(base, str(i))]
            # Each outermost mount below, back in its place from the kept tree.
            for m in below:
                if not any(m.startswith(o + "/") for o in below):
                    spec += ["rbind", keep + m[len(path):], m]
        elif kind == "blank":
            spec += ["blank", os.path.join(base, f"b{i}"), path]
    return spec


def _mount_points() -> list[str]:
    """Every mount point of this mount namespace (/proc/self/mountinfo, field 5)."""
    try:
        with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as f:
            lines = f.read().splitlines()
    except OSError:
        return ["/"]
    out = []
    for line in lines:
        fields = line.split()
        if len(fields) > 4:
            out.append(re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), fields[4]))
    return out


def _run(cmd: list[str]) -> Completed:
    try:
        return run(cmd, timeout=120)
    except CommandError as exc:
        raise CrashkitError(f"cannot run {cmd[0]}: {exc.message}") from exc


def validate_copies(nginx: str, cfg: NginxConfig, replacements: Mapping[str, str],
                    additions: Mapping[str, str] | None = None) -> str:
    """``nginx -t`` on copies of every file of the config, candidates in place.

    Each copy's include statements are rewritten to include the copies of the
    files they matched (crossplane expanded the globs as nginx does: sorted,
    no hidden files), and each new file of ``additions`` where its glob
    loads it, in glob(3)'s order. The main file's copy sits beside it, so
    every other relative path resolves as before; the rest go to a private
    temp dir.
    """
    additions = dict(additions or {})
    work = tempfile.mkdtemp(prefix="crashkit-check-")
    main_copy = check_copy_path(cfg.root)
    copies = {f: (main_copy if i == 0 else os.path.join(work, f"{i}.conf"))
              for i, (f, _) in enumerate(cfg.includes)}
    base = os.path.dirname(cfg.root)

    def loaded(st: Statement, matched: tuple[str, ...]) -> list[str]:
        """What the include loads once the additions are in place."""
        if not st.args or not additions:
            return list(matched)
        pattern = os.path.normpath(os.path.join(base, st.args[0].value))
        d, glob = os.path.split(pattern)
        out = list(matched)
        for new, cand in additions.items():
            if glob_matches(os.path.join(os.path.realpath(d), glob), new):
                named = os.path.join(d, os.path.basename(new))
                copies[named] = os.path.join(work, f"new-{len(copies)}.conf")
                shutil.copyfile(cand, copies[named])
                out.append(named)
        return sorted(out) if len(out) > len(matched) else out

    try:
        for f, includes in cfg.includes:
            real = os.path.realpath(f)
            text = read_text(replacements.get(real, real))
            stmts = [st for st in statements(text, real) if st.name.value == "include"]
            if len(stmts) != len(includes):
                raise CrashkitError(f"{real}: cannot validate a copy (its includes read "
                                    "differently)")
            for st, matched in reversed(list(zip(stmts, includes, strict=True))):
                repl = " ".join(f"include {quote(copies[m])};" for m in loaded(st, matched))
                text = text[:st.name.start] + repl + text[st.end:]
            _remove([copies[f]])  # a killed run's main copy (the caller holds the lock)
            _write_beside(copies[f], to_bytes(text), like=real)
        proc = _run([nginx, *prefix_args(cfg), "-t", "-c", main_copy])
        output = (proc.stderr + proc.stdout).strip()
        for f, copy in copies.items():  # name the real files in nginx's messages
            output = output.replace(copy, os.path.realpath(f))
        if proc.status != 0:
            raise ValidationError("the changed config fails nginx -t, nothing replaced: "
                                  f"{_first_error(output)}", path=cfg.root, output=output)
        return output
    finally:
        _remove([main_copy])
        shutil.rmtree(work, ignore_errors=True)


_LOG_PREFIX = re.compile(r"^(?:nginx: )?(?:\d{4}/\d\d/\d\d \d\d:\d\d:\d\d )?"
                         r"\[(?:emerg|alert|crit)\] (?:\d+#\d+: )?")


def _first_error(output: str) -> str:
    """nginx's own error message ("[emerg] ..." without the log prefix): one line."""
    for line in output.splitlines():
        m = _LOG_PREFIX.match(line)
        if m:
            return line[m.end():].strip()
    lines = [x for x in output.splitlines() if x.strip()]
    return lines[0] if lines else "nginx -t failed"


# ---------------------------------------------------------------- writing

def _write_beside(path: str, data: bytes, like: str) -> None:
    """Create ``path`` (never an existing file: O_EXCL; complete and synced)
    with the owner and mode of ``like``."""
    st = os.stat(like)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                 0o600)
    try:
        os.fchmod(fd, st.st_mode & 0o7777)
        if os.geteuid() == 0:
            os.fchown(fd, st.st_uid, st.st_gid)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)


def _sync_dir(path: str) -> None:
    fd = os.open(os.path.dirname(path) or ".", os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _remove(paths: list[str]) -> None:
    for p in paths:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(p)


def replace_validated(cfg: NginxConfig, nginx: str, edits: tuple[FileEdit, ...],
                      backup_stamp: str | None,
                      before_replace: Callable[[], object] | None = None) -> list[Replaced]:
    """Write candidates, validate the whole config with them, back up, replace.

    Nothing is replaced unless nginx accepts the candidates. Each file is
    replaced by a rename, so a kill at any point leaves it old or new, never
    partial; a new file (``FileEdit.new``: crashkit's drop-in) is linked
    into place complete, and never over a file that appeared meanwhile.
    ``backup_stamp`` None means no backup (undo restores one); a new file
    has none (the apply's record names it, for undo).
    ``before_replace`` runs once the candidates passed (and may refuse by raising).
    """
    old = tuple(e for e in edits if not e.new)
    new = tuple(e for e in edits if e.new)
    for e in edits:  # candidates of a run killed half-way (the caller holds the lock)
        d, name = os.path.split(e.path)
        with contextlib.suppress(OSError):
            _remove([os.path.join(d, x) for x in os.listdir(d)
                     if x.startswith(f".{name}{CANDIDATE_TAG}-")])
    candidates = {e.path: candidate_path(e.path) for e in edits}
    backups = {e.path: backup_path(e.path, backup_stamp) for e in old} if backup_stamp else {}
    check_names(cfg, [*candidates.values(), *backups.values(), check_copy_path(cfg.root)])
    # A new file's candidate is also seen, under its own name, in a private
    # directory: what the validation overlays on the file's directory.
    private = tempfile.mkdtemp(prefix="crashkit-new-") if new else None
    additions = {e.path: os.path.join(private, os.path.basename(e.path))
                 for e in new if private is not None}
    like = os.path.realpath(cfg.root)  # a new file gets the main file's owner and mode
    try:
        for e in old:
            _write_beside(candidates[e.path], to_bytes(e.after), like=e.path)
        for e in new:
            _write_beside(candidates[e.path], to_bytes(e.after), like=like)
            _write_beside(additions[e.path], to_bytes(e.after), like=like)
        nginx_test(nginx, cfg.root, {e.path: candidates[e.path] for e in old}, cfg, additions)
        for e in old:
            if read_text(e.path) != e.before:
                raise InputError("changed while crashkit was working on it; nothing replaced, "
                                 "run crashkit setup again", path=e.path)
        for e in new:
            if os.path.lexists(e.path):
                raise InputError("appeared while crashkit was working; nothing replaced, "
                                 "run crashkit setup again", path=e.path)
        if before_replace is not None:
            before_replace()
        for e in old:
            if e.path in backups:
                tmp = backups[e.path] + ".tmp"
                _remove([tmp])  # a killed run's (we hold the lock)
                _write_beside(tmp, to_bytes(e.before), like=e.path)
                os.replace(tmp, backups[e.path])
        for e in new:  # first: a refusal here leaves every other file as it was
            try:  # link(2) never replaces: a file made meanwhile is kept
                os.link(candidates[e.path], e.path)
            except FileExistsError:
                raise InputError("appeared while crashkit was working; nothing replaced, "
                                 "run crashkit setup again", path=e.path) from None
            _sync_dir(e.path)
        for e in old:
            os.replace(candidates[e.path], e.path)
            _sync_dir(e.path)
        return [Replaced(e.path, backups.get(e.path)) for e in edits]
    finally:
        _remove(list(candidates.values()))
        if private is not None:
            shutil.rmtree(private, ignore_errors=True)


def latest_backups(cfg: NginxConfig) -> tuple[str, dict[str, str]] | None:
    """The newest backup set (stamp, {file: backup}) beside the config's files."""
    found: dict[str, dict[str, str]] = {}
    for f in {os.path.realpath(x) for x in cfg.files}:
        d, name = os.path.split(f)
        prefix = f".{name}{BACKUP_TAG}"
        try:
            entries = os.listdir(d)
        except OSError:
            continue
        for entry in entries:
            stamp = entry[len(prefix):]
            if entry.startswith(prefix) and _STAMP_RE.match(stamp):
                found.setdefault(stamp, {})[f] = os.path.join(d, entry)
    if not found:
        return None
    stamp = max(found)
    return stamp, found[stamp]


# ---------------------------------------------------------------- reload

@dataclass(frozen=True)
class Reload:
    method: str  # "systemctl", "signal", or "none" (nginx not running)
    pid: int | None
    detail: str


def reload_nginx(cfg: NginxConfig, nginx: str) -> Reload:
    """Reload the running nginx that uses this config: ``systemctl reload`` when
    systemd's nginx.service runs it, else SIGHUP to the master in the pid file."""
    pidfile = pid_path(cfg)
    master = nginx_master(pidfile)
    if master is None:
        return Reload("none", None, f"nginx is not running (no live master in {pidfile}): "
                                    "the new settings apply when it starts")
    if systemd_running() and _systemd_main_pid("nginx.service") == master:
        proc = _run(["systemctl", "reload", "nginx.service"])
        if proc.status != 0:
            raise CrashkitError(f"systemctl reload nginx failed: {proc.stderr.strip()}")
        return Reload("systemctl", master, "systemctl reload nginx.service")
    before = set(children(master))
    os.kill(master, signal.SIGHUP)
    # A master that accepted the new config starts new workers at once.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if set(children(master)) - before:
            return Reload("signal", master, f"SIGHUP to the nginx master, PID {master}; "
                                            "new workers started")
        time.sleep(0.05)
    return Reload("signal", master, f"SIGHUP sent to the nginx master, PID {master}, but no "
                                    "new worker started within 10 s: see nginx's error log")


def _systemd_main_pid(unit: str) -> int | None:
    try:
        proc = run(["systemctl", "show", unit, "-p", "MainPID", "--value"])
        return int(proc.stdout.strip() or 0) or None
    except (CommandError, ValueError):
        return None
