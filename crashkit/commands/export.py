"""``crashkit export --sentry DSN``: the store's crashes as events on a
Sentry-protocol server (Sentry, bugsink), each sent once.

Per crash, in this order: the stored core is analysed again (the index keeps
the verdict, not the frames), redacted as ``report`` redacts, turned into an
event (analysis/sentry_event), written to the index as ``pending`` with its
event id, sent, and marked ``sent`` or ``failed``. The event id is a
function of the core's content and the server, so a run killed between the
send and the mark sends the same event again, and the server keeps one.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from crashkit import __version__
from crashkit.errors import CrashkitError, InputError
from crashkit.model.export import ExportedCrash, ExportResult
from crashkit.store import index as ix

CONFIG_FILE = "/etc/crashkit/crashkit.toml"


def _quiet(_message: str) -> None:
    pass


@dataclass(frozen=True)
class Options:
    store: str
    dsn: str | None  # None: --dry-run without a server
    ids: tuple[int, ...] = ()  # none: every crash with a core not yet sent
    since: int | None = None  # epoch seconds
    dry_run: bool = False
    use_gdb: bool = True
    attach_report: bool = True
    timeout: float = 30.0  # per request
    dsn_from: str | None = None
    progress: Callable[[str], None] = _quiet
    step: Callable[[int, int, str], None] | None = None  # (done, total, crash): a progress bar


def find_dsn(option: str | None, environ: dict[str, str] | None = None,
             config: str | None = None) -> tuple[str | None, str | None]:
    """The DSN and where it came from: the option, else SENTRY_DSN, else the
    config file's ``[export] sentry_dsn``."""
    env = os.environ if environ is None else environ
    if option:
        return option, "--sentry"
    if env.get("SENTRY_DSN"):
        return env["SENTRY_DSN"], "SENTRY_DSN"
    path = config or env.get("CRASHKIT_CONFIG") or CONFIG_FILE
    if config is None and not os.path.lexists(path):
        return None, None
    from crashkit.host.settings import read_settings

    dsn = read_settings(path).get("export", {}).get("sentry_dsn")
    if dsn is not None and not isinstance(dsn, str):
        raise InputError("[export] sentry_dsn must be a string", path=path)
    return (dsn, path) if dsn else (None, None)


def _os_context() -> dict[str, str]:
    from crashkit.host.system import os_release

    u = os.uname()
    ctx = {"name": u.sysname, "kernel_version": u.release, "machine": u.machine}
    distro = os_release()
    if distro:
        ctx["name"] = distro  # PRETTY_NAME: "Debian GNU/Linux 12 (bookworm)"
    return ctx


class _Facts:
    """What every event of one run shares, looked up once."""

    def __init__(self) -> None:
        self.os_context = _os_context()
        self.hostname = socket.gethostname()
        self._nginx_v: dict[str, str | None] = {}
        self._environment: list[tuple[str, str]] | None = None

    def nginx_v(self, exe: str | None, same_build: bool) -> str | None:
        """``nginx -V`` of the crashed executable when this host has that very build."""
        if exe is None or not same_build or "nginx" not in os.path.basename(exe):
            return None
        if exe not in self._nginx_v:
            from crashkit.nginx.dump import version_text

            self._nginx_v[exe] = version_text(exe)
        return self._nginx_v[exe]

    def environment(self) -> list[tuple[str, str]]:
        if self._environment is None:
            from crashkit.host.system import system_facts

            self._environment = system_facts()
        return self._environment


def _report_md(a: Any, facts: _Facts) -> bytes:
    """report.md as ``crashkit report`` writes it, for the event's attachment."""
    from crashkit.render.report import build_model, render_template, template_environment

    model = build_model(a, environment=facts.environment(), files=[], redacted=True,
                        generator=f"crashkit {__version__} export")
    return render_template(template_environment(None), "report.md.j2", r=model).encode()


def event_for(row: ix.CrashRow, core: str, target: str, options: Options,
              facts: _Facts) -> tuple[dict[str, Any], bytes | None]:
    """The event of one stored crash, and its report.md."""
    import dataclasses

    from crashkit.analysis.sentry_event import build_event, event_id
    from crashkit.commands import analyze
    from crashkit.commands.report import redacted

    a = analyze.run(analyze.Options(core=core, use_gdb=options.use_gdb, redact=True,
                                    display_path=f"crash {row.id}"))
    a = redacted(a)
    if row.host and row.host != facts.hostname:
        # Another host's crash (a store filled elsewhere): this host's
        # packages and files say nothing about it.
        a = dataclasses.replace(a, host=dataclasses.replace(a.host, packages={}))
    exe = next((m for m in a.core.modules if m.path == a.core.exe), None)
    nginx_v = facts.nginx_v(a.core.exe, exe is not None and exe.build_id_match is True)
    version = row.exe_version
    if version is None and nginx_v:
        first = nginx_v.splitlines()[0]
        version = first.rsplit("/", 1)[-1] if "/" in first else None
    event = build_event(a, event_id=event_id(row.sha256, target), host=row.host,
                        timestamp=float(row.time) if row.time is not None else None,
                        os_context=facts.os_context, nginx_version=version,
                        nginx_configure=nginx_v, crash_id=row.id)
    md = _report_md(a, facts) if options.attach_report else None
    return event, md


def run(options: Options) -> ExportResult:
    from crashkit.commands.list import open_index
    from crashkit.writers.store import CRASHES_DIR

    started = time.monotonic()
    if options.dsn is None and not options.dry_run:
        raise InputError("no Sentry DSN: pass --sentry DSN, set SENTRY_DSN, or set "
                         f"[export] sentry_dsn in {CONFIG_FILE}")
    sender = None
    target = None
    if options.dsn is not None:
        from crashkit.writers.sentry import target_of

        target = target_of(options.dsn)
    conn, path = open_index(options.store, writable=not options.dry_run)
    if not options.dry_run:
        from crashkit.writers import sent as W
    facts = _Facts()
    out: list[ExportedCrash] = []
    events: list[dict[str, Any]] = []
    try:
        rows = ix.exportable(conn, path, ids=options.ids, since=options.since)
        if options.ids:
            missing = sorted(set(options.ids) - {r.id for r in rows})
            if missing:
                raise InputError(f"no crash {missing[0]} in the store (`crashkit list` "
                                 "shows them)", path=options.store)
        done = ix.sent_to(conn, path, target) if target is not None else {}
        waiting: str | None = None
        for n, row in enumerate(rows, 1):
            previous = done.get(row.id)
            if previous is not None and previous.status == "sent":
                out.append(ExportedCrash(row.id, "already", previous.event_id, row.signature,
                                         row.summary, attempts=previous.attempts))
                continue
            if row.stored_name is None:
                out.append(ExportedCrash(row.id, "skipped", None, row.signature, row.summary,
                                         "no stored core: only a log line tells of it"
                                         if row.evidence == "log" else
                                         "its core was not kept"))
                continue
            if waiting is not None:
                out.append(ExportedCrash(row.id, "deferred", None, row.signature, row.summary,
                                         f"{waiting}; the next export sends it"))
                continue
            if options.step is not None:
                options.step(n - 1, len(rows), f"crash {row.id}")
            else:
                options.progress(f"crash {row.id} ({n} of {len(rows)}): analysing")
            core = os.path.join(options.store, CRASHES_DIR, row.stored_name)
            try:
                event, md = event_for(row, core, target or "dry-run", options, facts)
            except CrashkitError as exc:
                out.append(ExportedCrash(row.id, "failed", None, row.signature, row.summary,
                                         f"cannot analyse its core: {exc}"))
                continue
            if options.dry_run:
                events.append(event)
                out.append(ExportedCrash(row.id, "would_send", event["event_id"],
                                         row.signature, row.summary))
                continue
            assert target is not None and options.dsn is not None
            if sender is None:
                from crashkit.writers.sentry import Sender

                sender = Sender(options.dsn, timeout=options.timeout)
            attempts = (previous.attempts if previous is not None else 0) + 1
            W.mark_pending(conn, path, row.id, target, event["event_id"], attempts)
            if options.step is None:
                options.progress(f"crash {row.id} ({n} of {len(rows)}): sending")
            attachments = (("report.md", md, "text/markdown"),) if md is not None else ()
            answer = sender.send(event, attachments)
            if answer.ok:
                W.mark_sent(conn, path, row.id, target)
                out.append(ExportedCrash(row.id, "sent", event["event_id"], row.signature,
                                         row.summary, status=answer.status, attempts=attempts))
                continue
            why = (f"HTTP {answer.status}: {answer.detail}" if answer.status is not None
                   else answer.detail) or "no answer"
            W.mark_failed(conn, path, row.id, target, why)
            out.append(ExportedCrash(row.id, "failed", event["event_id"], row.signature,
                                     row.summary, why, answer.status, attempts))
            if answer.status == 429 or answer.status is None:
                # Rate limited, or the server is unreachable: the rest would
                # fare the same; they wait for the next run.
                waiting = "the server asked to wait" if answer.status == 429 else \
                    "the server could not be reached"
    finally:
        conn.close()
        if sender is not None:
            sender.close()
    return ExportResult(options.store, target, options.dry_run, tuple(out),
                        time.monotonic() - started, tuple(events), options.dsn_from)
