"""``crashkit setup``: make a crashing nginx host leave usable cores.

The steps, in order: find and parse the config; refuse a config that already
fails ``nginx -t``; plan the main-context directives (:mod:`.plan`); inspect
the core directory (:mod:`.coredir`); run the OS checks
(:mod:`crashkit.analysis.readiness`). A dry run stops there. ``--apply`` prepares
the directory, then replaces the config files validated (:mod:`.write`);
``--system`` applies the OS remedies (:mod:`.system`); ``--reload`` reloads
nginx. ``--undo`` restores the newest backup set instead.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from crashkit.analysis.readiness import core_checks
from crashkit.analysis.setup import (
    DEFAULT_CORE_DIR,
    FileEdit,
    Lexed,
    NginxPlan,
    choose_dropin,
    choose_values,
    main_files,
    parse_size,
    plan_core_directives,
)
from crashkit.errors import InputError
from crashkit.formats.nginx_config import statements
from crashkit.host import cores
from crashkit.host.proc import SYSCTL_ROOT, nginx_master, systemd_running
from crashkit.model.nginx import ConfigLocation, NginxConfig
from crashkit.model.readiness import CoreCheck as Check
from crashkit.model.readiness import CoreSetting
from crashkit.model.setup import FileResult, Result
from crashkit.nginx.config import (
    build_info,
    find_config,
    open_config,
    pid_path,
    worker_process_count,
    worker_user,
)
from crashkit.nginx.files import read_text
from crashkit.writers import coredir, record
from crashkit.writers.config import (
    LOCK_WAIT,
    check_as_is,
    check_names,
    config_lock,
    latest_backups,
    new_stamp,
    reload_nginx,
)
from crashkit.writers.config import replace_validated as _replace
from crashkit.writers.dropins import SystemChange, apply_remedies, daemon_reload, plan_files


@dataclass(frozen=True)
class Options:
    conf: str | None = None
    core_dir: str | None = None
    core_limit: str | None = None
    apply: bool = False
    reload: bool = False
    undo: bool = False
    system: bool = False
    system_root: str = "/"
    nginx: str = "nginx"
    prefix: str | None = None  # nginx's -p (None: the running master's, else the build's)
    collect: bool = False  # also install (apply) or remove (undo) the collect --watch service
    store: str = "/var/lib/crashkit"  # the store that service fills
    # Where the kernel settings are read and (--system) written: None for the
    # kernel's /proc/sys (written only when system_root is "/"); a private
    # tree in tests, so they never touch the machine's sysctls.
    sysctl_root: str | None = None
    lock_wait: float = LOCK_WAIT  # seconds --apply/--undo wait for another setup's lock

    @property
    def sysctls(self) -> str:
        return self.sysctl_root or SYSCTL_ROOT


@dataclass(frozen=True)
class Readiness:
    """Will this config's workers leave usable cores: the plan that would make
    them, the core directory's state, and the OS-side checks."""

    plan: NginxPlan
    core_dir: coredir.CoreDir
    checks: tuple[Check, ...]
    path: str  # the core directory chosen
    manage: bool  # crashkit would own it (chown, chmod)
    setting: CoreSetting  # what the checks judged

    def recheck(self, sysctl_root: str = SYSCTL_ROOT) -> tuple[Check, ...]:
        """The OS-side checks again, on the host as it is now."""
        return tuple(core_checks(self.setting, cores.gather(self.setting,
                                                            sysctl_root=sysctl_root)))


def readiness(cfg: NginxConfig, worker: coredir.Worker, workers: int,
              core_dir: str | None = None, core_limit: str | None = None,
              sysctl_root: str = SYSCTL_ROOT,
              lexed: Mapping[str, Lexed] | None = None) -> Readiness:
    """Gathers the facts (config text, the directory, the OS's settings) and
    judges them; changes nothing. setup's dry run and doctor both use it.
    ``lexed``: files lexed already (:func:`_lex_main_files`)."""
    path, limit = choose_values(cfg, core_dir, core_limit,
                                lambda p: coredir.fit_as_is(p, worker))
    # A working_directory kept as it is (fit, not asked for) is never chowned.
    manage = core_dir is not None or path == DEFAULT_CORE_DIR
    texts = {os.path.realpath(f): read_text(os.path.realpath(f)) for f in cfg.files}
    dropin = choose_dropin(cfg, os.path.isdir)
    if dropin is not None and dropin.path not in texts and os.path.lexists(dropin.path):
        dropin = None  # a name taken by what nginx does not load as a file: the main file
    plan = plan_core_directives(cfg, texts, path, limit, dropin, lexed)
    dir_state = coredir.inspect(path, worker, manage)
    master = nginx_master(pid_path(cfg))
    setting = CoreSetting(worker.user, worker.uid, worker.gid, path, plan.core_limit_bytes,
                          workers, master)
    checks = tuple(core_checks(setting, cores.gather(setting, sysctl_root=sysctl_root)))
    return Readiness(plan, dir_state, checks, path, manage, setting)


def run(opts: Options) -> Result:
    # The parse of a config of 100,000 servers makes ~10^7 objects that live
    # until setup ends: the cyclic collector's passes over them took a third
    # of setup's own time, and they free nothing (the tree holds no cycles;
    # reference counting frees the rest). What the result still holds is
    # frozen, so that the collections after it (rendering) pass it by too.
    import gc

    was_enabled = gc.isenabled()
    gc.disable()
    try:
        return _run_unlocked_or_locked(opts)
    finally:
        if was_enabled:
            gc.freeze()
            gc.enable()


def _run_unlocked_or_locked(opts: Options) -> Result:
    if opts.core_limit is not None and parse_size(opts.core_limit) is None:
        raise InputError(f"--core-limit: not a size nginx accepts: {opts.core_limit!r} "
                         "(bytes, or a number with k, m or g)")
    if opts.core_dir is not None and not os.path.isabs(opts.core_dir):
        raise InputError("--core-dir must be an absolute path", path=opts.core_dir)
    if opts.apply or opts.undo:  # two setups never interleave: what each reports, it wrote
        root = find_config(opts.conf, build_info(opts.nginx)).path
        with config_lock(root, opts.lock_wait) as waited:
            location, cfg = open_config(opts.conf, opts.nginx, opts.prefix)
            worker = coredir.resolve_worker(worker_user(cfg))
            result = _run(opts, location, cfg, worker, worker_process_count(cfg))
        if waited:
            result = dataclasses.replace(result, notes=(
                f"waited {waited:.1f} s for another crashkit setup on this config to finish "
                "(the lock on its directory), then planned from the config it left",
                *result.notes))
    else:
        location, cfg = open_config(opts.conf, opts.nginx, opts.prefix)
        worker = coredir.resolve_worker(worker_user(cfg))
        result = _run(opts, location, cfg, worker, worker_process_count(cfg))
    return _collect_unit(opts, result) if opts.collect else result


def _collect_unit(opts: Options, result: Result) -> Result:
    """--collect: the service that runs `crashkit collect --watch`, installed
    with --apply (after nginx's config took), removed with --undo."""
    from crashkit.model.collect import CollectUnit
    from crashkit.writers import units

    path = os.path.join(opts.system_root, units.UNIT_PATH)
    if opts.undo:
        unit = units.remove(opts.system_root)
    elif opts.apply:
        unit = units.install(opts.store, opts.system_root)
    else:
        unit = CollectUnit(path, "would_install", None)
    return dataclasses.replace(result, collect_unit=unit)


def _run(opts: Options, location: ConfigLocation, cfg: NginxConfig, worker: coredir.Worker,
         workers: int) -> Result:
    if opts.undo:  # the backups are validated before they go back; the live file may fail
        return _undo(opts, location, cfg, worker, workers)
    # A config that already fails is the user's to fix: change nothing (and
    # the check itself leaves the disk as it was where it can). While nginx -t
    # reads the config, the files the plan edits are lexed (pure work on text
    # that nginx -t does not write: a config of 100,000 servers takes about as
    # long to lex as nginx -t takes to check); its errors come first, as before.
    (_, isolated), lexed = _beside(lambda: check_as_is(opts.nginx, cfg),
                                   lambda: _lex_main_files(cfg))

    r = readiness(cfg, worker, workers, opts.core_dir, opts.core_limit, opts.sysctls, lexed)
    plan, dir_state, checks, core_dir, manage = r.plan, r.core_dir, r.checks, r.path, r.manage
    if opts.apply and dir_state.worker_can_reach is False:
        raise InputError(f"{worker.user} cannot reach this directory (one above it is not "
                         "searchable by that user): its workers could not chdir there; choose "
                         "another --core-dir", path=core_dir)
    if manage:  # crashkit would chown it: its parents must be root's alone
        coredir.refuse_unsafe_parent(core_dir)
    remedies = [c.remedy for c in checks if c.remedy is not None]
    if not opts.apply:
        return Result("dry-run", location, cfg, worker, workers, plan, dir_state, checks,
                      tuple(FileResult(e.path, e.diff(), None, e.new) for e in plan.edits),
                      bool(plan.edits),
                      system_planned=tuple(plan_files(remedies, opts.system_root)),
                      notes=() if isolated else (
                          "nginx -t ran as it is (no private mount namespace with overlays "
                          "of the directories it writes could be made here): it may have "
                          "created the config's missing log and pid files and temp "
                          "directories, as nginx itself does when it starts",))

    notes = []
    prepared: list[coredir.CoreDir] = []
    created: list[str] = []
    stamp = new_stamp()
    check_names(cfg, [record.record_path(cfg.root, stamp)])

    new_files = tuple(record.FileWrite(e.path, None, e.after) for e in plan.edits if e.new)

    def prepare_dir() -> None:  # only once nginx accepted the candidates
        missing = _missing_dirs(core_dir) if manage else []
        prepared.append(coredir.prepare(core_dir, worker, manage))
        created.extend(missing)
        if new_files:  # named for --undo before they exist: a kill leaves none unrecorded
            record.write(cfg.root, stamp, record.Record(new_files, dirs=tuple(created)))

    files: tuple[FileResult, ...] = ()
    if plan.edits:
        # The diffs (pure work) are made while nginx -t checks the candidates.
        diffs, done = _beside(lambda: [e.diff() for e in plan.edits],
                              lambda: _replace(cfg, opts.nginx, plan.edits, stamp, prepare_dir),
                              raise_meanwhile=True)
        files = tuple(FileResult(r.path, diff, r.backup, e.new)
                      for r, e, diff in zip(done or (), plan.edits, diffs, strict=True))
    else:
        prepare_dir()
        notes.append("nginx config: nothing to change (worker_rlimit_core and "
                     "working_directory already set)")
    system: tuple[SystemChange, ...] = ()
    fixed: tuple[str, ...] = ()
    if opts.system and remedies:
        system = tuple(apply_remedies(remedies, opts.system_root, opts.sysctl_root))
        # What the user sees is the host after the fix, not before it.
        before = {c.name: c for c in checks}
        checks = r.recheck(opts.sysctls)
        fixed = tuple(c.name for c in checks if c.name in before and
                      before[c.name].needs_attention and not c.needs_attention)
    done_outside = record.Record(
        new_files + tuple(record.FileWrite(x.path, x.previous, x.content) for x in system),
        tuple(record.SysctlWrite(k, old, new) for x in system for k, old, new in x.sysctls),
        tuple(created), any(x.kind == "systemd" and x.live for x in system))
    if done_outside:  # for --undo (the config's own changes are in its backups)
        record.write(cfg.root, stamp, done_outside)
    reloaded = reload_nginx(cfg, opts.nginx) if opts.reload else None
    return Result("apply", location, cfg, worker, workers, plan, prepared[0], checks, files,
                  bool(plan.edits), system=system, reload=reloaded, notes=tuple(notes),
                  fixed=fixed)


_T = TypeVar("_T")
_U = TypeVar("_U")


def _beside(first: Callable[[], _T], meanwhile: Callable[[], _U],
            raise_meanwhile: bool = False) -> tuple[_T, _U | None]:
    """``first()`` in a thread while this thread runs ``meanwhile()`` (one of
    them waits on a child, so the GIL is free for the other). ``meanwhile``'s
    exception is raised first with ``raise_meanwhile`` (it then comes before
    ``first`` in the steps' order), else swallowed (None: its work is redone
    where it is used, and fails there as it would have); then ``first``'s."""
    import threading

    got: list[tuple[bool, Any]] = []

    def run_first() -> None:
        try:
            got.append((True, first()))
        except BaseException as exc:  # noqa: BLE001 - raised again below, in this thread
            got.append((False, exc))

    thread = threading.Thread(target=run_first, name="crashkit-check", daemon=True)
    thread.start()
    try:
        extra: _U | None = meanwhile()
    except Exception:  # redone (and so raised) where it is used, unless raised here
        if raise_meanwhile:
            raise
        extra = None
    finally:
        thread.join()
    ok, value = got[0]
    if not ok:
        raise value
    return value, extra


def _lex_main_files(cfg: NginxConfig) -> dict[str, Lexed]:
    """The text, statements and redactions of each file the plan may edit (main_files)."""
    from crashkit.analysis.redact import config_edits

    out = {}
    for path in main_files(cfg):
        text = read_text(path)
        stmts = statements(text, path)
        out[path] = (text, stmts, tuple(config_edits(stmts)))
    return out


def _missing_dirs(path: str) -> list[str]:
    """The directories of ``path`` (itself included) that do not exist yet, outermost first."""
    out = []
    path = os.path.normpath(path)
    while not os.path.lexists(path):
        out.append(path)
        path = os.path.dirname(path)
    return out[::-1]


_OURS = ("worker_rlimit_core", "working_directory")
# One of apply's directives with its arguments, wherever it sits on a line
# (a compact config holds several directives a line).
_OUR_STMT = re.compile(r"(?<![\w$])(?:worker_rlimit_core|working_directory)(?:\s+[^;{}]*)?;")


def _without_ours(text: str) -> list[tuple[str, str]]:
    """(line without apply's directives, the line) for every line that holds
    anything else: what undo may not lose."""
    out = []
    for line in text.splitlines():
        rest = _OUR_STMT.sub("", line)
        if rest.strip():
            out.append((" ".join(rest.split()), line))
    return out


def _only_ours(edit: FileEdit, backup: str) -> None:
    """Undo puts the backup back: refuse when the file changed since apply
    anywhere but in the directives apply writes (their own lines, or their
    arguments on a line they share), or those edits would be lost without a
    trace."""
    import difflib

    now, then = _without_ours(edit.before), _without_ours(edit.after)
    if [x for x, _ in now] == [x for x, _ in then]:
        return
    sm = difflib.SequenceMatcher(None, [x for x, _ in now], [x for x, _ in then], autojunk=False)
    for tag, i1, _i2, j1, _j2 in sm.get_opcodes():
        if tag != "equal":
            line = now[i1][1] if i1 < len(now) else then[j1][1]
            raise InputError(f"changed since crashkit setup --apply (the line {line.strip()!r} "
                             f"is not crashkit's): undo would lose that edit; nothing restored. "
                             f"The file before --apply is {backup}", path=edit.path)


def _undo(opts: Options, location: ConfigLocation, cfg: NginxConfig, worker: coredir.Worker,
          workers: int) -> Result:
    """Take back the newest apply: its nginx files from their backups, then
    what its record says it did outside them (drop-ins, kernel settings, the
    core directories it created), each only while still as crashkit left it."""
    found = latest_backups(cfg)
    rec = record.latest(cfg)
    if found is None and rec is None:
        return Result("undo", location, cfg, worker, workers, None, None, (), (), False,
                      notes=("nothing to undo: no crashkit backup beside the config's files",))
    stamp = max(x[0] for x in (found, rec) if x is not None)
    backups = found[1] if found is not None and found[0] == stamp else {}
    rec_path = rec[1] if rec is not None and rec[0] == stamp else None
    done = record.read(rec_path) if rec_path is not None else record.Record()
    edits = tuple(FileEdit(path, read_text(path), read_text(backup))
                  for path, backup in sorted(backups.items()))
    edits = tuple(e for e in edits if e.before != e.after)
    for e in edits:
        _only_ours(e, backups[e.path])
    if edits:
        _replace(cfg, opts.nginx, edits, None)
    for backup in backups.values():  # its content is the live file again
        os.unlink(backup)
    files = tuple(FileResult(e.path, e.diff(), backups[e.path]) for e in edits)
    steps = [record.undo_file(f) for f in done.files]
    steps += [record.undo_sysctl(x, opts.sysctls) for x in done.sysctls]
    steps += record.undo_dirs(done.dirs)
    if done.daemon_reload and systemd_running():
        daemon_reload()
    if rec_path is not None:
        os.unlink(rec_path)
    # The drop-ins of nginx's own config that undo removed or restored.
    ours = {os.path.realpath(f) for f in cfg.files}
    nginx_changed = bool(edits) or any(
        s.kind == "file" and s.action != "left" and s.what in ours for s in steps)
    notes = []
    reloaded = reload_nginx(cfg, opts.nginx) if opts.reload else None
    if nginx_changed and reloaded is None:
        master = nginx_master(pid_path(cfg))
        notes.append(f"nginx (master PID {master}) still runs with crashkit's settings until "
                     "it is reloaded: systemctl reload nginx, or nginx -s reload"
                     if master is not None else
                     "nginx is not running: the restored config applies when it starts")
    return Result("undo", location, cfg, worker, workers, None, None, (), files, nginx_changed,
                  reload=reloaded, notes=tuple(notes), undone=tuple(steps))
