"""``crashkit setup`` output: text for a person, JSON (schema ``crashkit/setup/1``) for scripts."""

from __future__ import annotations

import re
from typing import Any

from crashkit import __version__
from crashkit.model.setup import Result
from crashkit.model.words import plural

SCHEMA = "crashkit/setup/1"
_MARK = {"ok": "ok  ", "warn": "WARN", "fail": "FAIL", "skip": "skip"}
# The status of each OS check ("  [WARN] name: …"), coloured on a terminal.
STATUS_WORDS = re.compile(r"^  \[(?P<w>ok|WARN|FAIL|skip|fixed) *\] ")


def to_json(r: Result) -> dict[str, Any]:
    plan = r.plan
    return {
        "schema": SCHEMA,
        "crashkit_version": __version__,
        "mode": r.mode,
        "config": {"path": r.location.path, "found_by": r.location.source,
                   "files": list(r.config.files)},
        "worker": {"user": r.worker.user, "group": r.worker.group, "uid": r.worker.uid,
                   "gid": r.worker.gid, "processes": r.workers},
        "core_dir": None if r.core_dir is None else {
            "path": r.core_dir.path, "exists": r.core_dir.exists, "owner": r.core_dir.owner,
            "mode": r.core_dir.mode, "actions": list(r.core_dir.actions),
            "worker_can_write": r.core_dir.worker_can_write,
            "worker_can_reach": r.core_dir.worker_can_reach},
        "core_limit": None if plan is None else {"value": plan.core_limit,
                                                 "bytes": plan.core_limit_bytes},
        "changes": [] if plan is None else [
            {"directive": c.directive, "old": c.old, "new": c.new, "file": c.file,
             "line": c.line} for c in plan.changes],
        "dropin": None if plan is None or plan.dropin is None else {
            "path": plan.dropin.path, "pattern": plan.dropin.pattern,
            "included_at": plan.dropin.include},
        "files": [{"path": f.path, "backup": f.backup, "diff": f.diff, "created": f.created}
                  for f in r.files],
        "changed": r.changed,
        # The one check shape (doctor's): name, status, summary, fix, details;
        # "detail" is summary's former name, kept within version 1.
        "checks": [{"name": c.name, "status": c.status, "summary": c.detail, "fix": c.fix,
                    "details": {}, "fixed": c.name in r.fixed, "detail": c.detail}
                   for c in r.checks],
        "system": [{"kind": s.kind, "path": s.path, "content": s.content, "applied": True,
                    "live": s.live} for s in r.system]
        + [{"kind": k, "path": p, "content": c, "applied": False, "live": None}
           for k, p, c in r.system_planned],
        "reload": None if r.reload is None else {"method": r.reload.method,
                                                 "pid": r.reload.pid,
                                                 "detail": r.reload.detail},
        "collect_unit": None if r.collect_unit is None else {
            "path": r.collect_unit.path, "action": r.collect_unit.action,
            "live": r.collect_unit.live},
        "undone": [{"kind": u.kind, "what": u.what, "action": u.action, "detail": u.detail}
                   for u in r.undone],
        "notes": list(r.notes),
        "needs_attention": r.needs_attention,
    }


def text(r: Result) -> str:
    out: list[str] = []
    add = out.append
    title = {"dry-run": "crashkit setup (dry run: nothing changed; --apply to do it)",
             "apply": "crashkit setup --apply", "undo": "crashkit setup --undo"}[r.mode]
    add(title)
    add(f"config: {r.location.path} (found by {r.location.source}; "
        f"{plural(len(r.config.files), 'file')})")
    add(f"workers: {r.workers} x {r.worker.user}:{r.worker.group}")
    if r.plan is not None:
        add(f"cores: up to {r.plan.core_limit} each, into {r.plan.core_dir}")
    if r.core_dir is not None:
        d = r.core_dir
        state = f"{d.owner} {d.mode}" if d.exists else "missing"
        verb = "will" if r.mode == "dry-run" else "did"
        add(f"core directory: {d.path} ({state})")
        for a in d.actions:
            add(f"  {verb}: {a}")
        if d.worker_can_reach is False:
            add(f"  PROBLEM: {r.worker.user} cannot pass through the directories above it; "
                "--apply refuses it (choose another --core-dir)")
    if r.plan is not None and r.plan.changes:
        add("nginx config:")
        for ch in r.plan.changes:
            verb = "add" if ch.old is None else f"change {ch.old} ->"
            add(f"  {ch.directive}: {verb} {ch.new} ({ch.file}:{ch.line})")
    dropin = r.plan.dropin if r.plan is not None else None
    for f in r.files:
        where = (f"loaded by the include at {dropin.include}"
                 if dropin is not None and dropin.path == f.path else "")
        if f.created and r.mode == "dry-run":
            add(f"would write {f.path} (a new file of crashkit's own, {where}; "
                "the main file stays as it is)")
        elif f.created:
            add(f"wrote {f.path} (new, {where}; validated with nginx -t; --undo removes it)")
        elif r.mode == "apply":
            add(f"replaced {f.path} (validated with nginx -t; backup {f.backup})")
        elif r.mode == "undo":
            add(f"restored {f.path} from {f.backup} (validated with nginx -t)")
        add(f.diff.rstrip("\n"))
    for step in r.undone:
        add(f"{step.action} {step.what}: {step.detail}")
    for n in r.notes:
        add(n)
    if r.checks:
        add("OS side:")
        for c in r.checks:
            mark = "fixed" if c.name in r.fixed else _MARK[c.status]
            add(f"  [{mark}] {c.name}: {c.detail}")
            if c.fix and c.needs_attention:
                add(f"         fix: {c.fix}")
    for s in r.system:
        add(f"wrote {s.path}" + (f"; {s.live}" if s.live else ""))
    for kind, path, _content in r.system_planned:
        add(f"with --system: would write {path} ({kind})")
    if r.reload is not None:
        add(f"reloaded nginx: {r.reload.detail}")
    if r.collect_unit is not None:
        u = r.collect_unit
        words = {"installed": "installed", "removed": "removed", "unchanged": "already installed",
                 "absent": "not installed (nothing to remove)",
                 "would_install": "with --apply: would install"}.get(u.action, u.action)
        add(f"collect service {words}: {u.path}" + (f"; {u.live}" if u.live else ""))
    if r.needs_attention:
        add("needs attention: exit status 1")
    return "\n".join(out)


def messages(_r: Result) -> list[str]:
    return []
