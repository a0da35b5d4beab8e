"""What the report templates see: plain, already-formatted data. Templates
only lay it out; every fact and sentence is decided here or in the analysis."""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from crashkit import __version__
from crashkit.analysis.attribution import describe_module
from crashkit.analysis.meaning import MEANINGS
from crashkit.errors import InputError
from crashkit.model.analyze import Analysis, Package
from crashkit.model.report import ReportResult
from crashkit.model.words import size
from crashkit.render.analyze import (
    crash_site,
    crash_time_text,
    crashing_frames,
    visible,
)


@dataclass(frozen=True)
class Fact:
    name: str
    value: str


@dataclass(frozen=True)
class ModuleRow:
    path: str
    build_id: str  # "unknown" when the core does not hold it
    on_disk: str  # "same build", "OTHER BUILD (…)", "missing", …
    package: str  # "nginx 1.22.1-9+deb12u11", or "-"
    deleted: bool


@dataclass(frozen=True)
class ReportModel:
    title: str
    verdict: str  # the verdict sentence
    what_happened: str
    facts: tuple[Fact, ...]  # signal, meaning, process, confidence, signature …
    report_to: str
    blamed: ModuleRow | None
    backtrace: str  # the crashing thread, as the text output shows it
    crash_site: str  # registers and instructions
    modules: tuple[ModuleRow, ...]
    environment: tuple[Fact, ...]
    files: tuple[Fact, ...]  # what the bundle holds
    attach_if_asked: tuple[str, ...]
    warnings: tuple[str, ...]
    redacted: bool
    generator: str
    fence: str  # a Markdown code fence longer than any run of backticks in the blocks
    # What the reader must know about the bundle before trusting it (a config
    # that may be another nginx's), shown at the top.
    caveats: tuple[str, ...] = ()


def package_label(p: Package | None) -> str:
    if p is None:
        return "-"
    return f"{p.name} {p.version}" if p.version else p.name


def module_rows(a: Analysis) -> tuple[ModuleRow, ...]:
    rows = []
    for m in a.core.modules:
        if m.build_id_match is True:
            disk = "same build"
        elif m.build_id_match is False:
            disk = f"OTHER BUILD on disk ({m.file_build_id})"
        else:
            disk = {"missing": "not on this host", "unreadable": "unreadable",
                    "not-elf": "not an ELF file now"}.get(m.file_status, "not compared")
        rows.append(ModuleRow(path=m.path, build_id=m.build_id or "unknown", on_disk=disk,
                              package=package_label(a.host.packages.get(m.path)),
                              deleted=m.deleted))
    return tuple(rows)


def title(a: Analysis) -> str:
    v = a.verdict
    p = a.core.process
    who = p.fname if p else os.path.basename(a.core.exe or "?")
    if p and "worker process" in p.args and who == "nginx":
        who = "nginx worker"
    s = a.core.signal
    sig = s.name if s else "no signal"
    if v is None or a.kind == "snapshot":
        return f"{who}: snapshot ({sig}), not a crash"
    if a.kind == "killed":
        sender = f" (pid {s.sender_pid})" if s and s.sender_pid else ""
        return f"{who} killed by {sig} from another process{sender}"
    what = MEANINGS[v.kind].title or sig
    if v.module is None:
        return f"{who} crash: {what}"
    where = f"{v.function}()" if v.function else (
        f"{os.path.basename(v.module)}+{v.module_offset:#x}" if v.module_offset is not None
        else os.path.basename(v.module))
    return f"{who} crash: {what} in {where} ({os.path.basename(v.module)})"


def build_model(a: Analysis, *, environment: list[tuple[str, str]],
                files: list[tuple[str, str]], redacted: bool, generator: str,
                caveats: Sequence[str] = ()) -> ReportModel:
    v = a.verdict
    s = a.core.signal
    p = a.core.process
    facts: list[Fact] = []
    if s is not None:
        detail = [f"{s.name} ({s.number})"]
        if s.code_name:
            detail.append(s.code_name)
        if s.fault_address is not None:
            detail.append(f"fault address {s.fault_address:#x}")
        if s.sender_pid is not None and (p is None or s.sender_pid != p.pid):
            detail.append(f"sent by pid {s.sender_pid} (uid {s.sender_uid})")
        facts.append(Fact("signal", ", ".join(detail)))
    if a.meaning is not None:
        facts.append(Fact("meaning", a.meaning.text))
    if p is not None:
        facts.append(Fact("process", f"{p.args or p.fname} (pid {p.pid}, uid {p.uid})"))
    when = crash_time_text(a)
    if when is not None:
        facts.append(Fact("crash time", when))
    if a.core.exe:
        facts.append(Fact("executable", a.core.exe))
    if v is not None:
        facts.append(Fact("confidence", f"{v.confidence}: {v.reason}"))
    if a.signature is not None:
        facts.append(Fact("crash signature", f"{a.signature.hash} ({a.signature.text})"))
    facts.append(Fact("core", f"{size(a.core.size)} ({a.core.size} bytes)" + (
        f", TRUNCATED (expected {size(a.core.expected_size)})" if a.core.truncated else "")))
    blamed = None
    if v is not None and v.module:
        blamed = next((r for r in module_rows(a) if r.path == v.module), None)
    if v is not None and v.report_to:
        report_to = v.report_to
    elif a.kind == "killed":
        report_to = ("nobody upstream: another process sent the signal. Find out why that "
                     "process (see the signal's sender) killed the worker.")
    elif a.kind == "snapshot":
        report_to = "nobody: this core is a snapshot of a live process, not a crash."
    else:
        report_to = ("unknown yet: the code at fault could not be named (see confidence). "
                     "A core with a complete stack, or gdb with the exact binaries, is "
                     "needed first.")
    attach = [
        "the core file itself, from crashkit report --include-core (it holds the process's "
        "memory: request data, cookies, TLS keys. Share it privately, never on a public "
        "tracker)",
        "the exact binaries and their debug files (matched by the build-ids listed above)",
        "the request or traffic that triggers the crash, if it can be reproduced",
    ]
    if redacted:
        attach.append("values redacted from this report (marked redacted, with their "
                      "length), if the maintainer needs one: check it yourself first")
    if blamed is not None and v is not None:
        attach.insert(1, f"the source or version of {describe_module(blamed.path, v.origin)}")
    model = _model(a, facts, blamed, report_to, attach, environment, files, redacted, generator)
    return _shown(dataclasses.replace(model, caveats=tuple(caveats)))


T = TypeVar("T")
_MULTILINE = frozenset({"backtrace", "crash_site"})  # escaped line by line already


def _shown(value: T) -> T:
    """Every string, control characters shown as \\xNN: names and paths come
    from the core, and a newline in one must not start a Markdown heading."""
    if isinstance(value, str):
        return visible(value)  # type: ignore[return-value]
    if isinstance(value, tuple):
        return tuple(_shown(v) for v in value)  # type: ignore[return-value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.replace(value, **{
            f.name: _shown(getattr(value, f.name)) for f in dataclasses.fields(value)
            if f.name not in _MULTILINE})
    return value


def _model(a: Analysis, facts: list[Fact], blamed: ModuleRow | None, report_to: str,
           attach: list[str], environment: list[tuple[str, str]], files: list[tuple[str, str]],
           redacted: bool, generator: str) -> ReportModel:
    v = a.verdict
    backtrace, site = crashing_frames(a), crash_site(a)
    ticks = max((len(run) for run in re.findall(r"`+", backtrace + site)), default=0)
    return ReportModel(
        fence="`" * max(3, ticks + 1), title=title(a),
        verdict=v.summary if v else a.summary, what_happened=a.summary,
        facts=tuple(facts), report_to=report_to, blamed=blamed,
        backtrace=backtrace, crash_site=site, modules=module_rows(a),
        environment=tuple(Fact(n, x) for n, x in environment),
        files=tuple(Fact(n, x) for n, x in files), attach_if_asked=tuple(attach),
        warnings=a.warnings, redacted=redacted, generator=generator)


# ---------------------------------------------------------------- templates

def shipped_templates() -> Path:
    """reports/templates: inside the installed package (crashkit.report_templates),
    or at the top of a source checkout."""
    import importlib.util

    spec = importlib.util.find_spec("crashkit.report_templates")
    if spec is not None and spec.submodule_search_locations:
        return Path(next(iter(spec.submodule_search_locations)))
    return Path(__file__).resolve().parent.parent.parent / "reports" / "templates"


def template_environment(template_dir: str | None) -> object:
    import jinja2

    loaders: list[jinja2.BaseLoader] = []
    if template_dir is not None:
        loaders.append(jinja2.FileSystemLoader(template_dir))
    loaders.append(jinja2.FileSystemLoader(str(shipped_templates())))
    env = jinja2.Environment(
        loader=jinja2.ChoiceLoader(loaders), undefined=jinja2.StrictUndefined,
        autoescape=lambda name: bool(name and name.endswith(".html.j2")),
        keep_trailing_newline=True, trim_blocks=True, lstrip_blocks=True)
    # Markdown (text from a core, a config or a log is not to be trusted):
    # md escapes what would make links, images, HTML, emphasis or code;
    # code makes a code span no backtick inside can close; cell keeps a
    # table cell whole (a "|" or a newline would end it).
    env.filters["md"] = md_text
    env.filters["code"] = md_code
    env.filters["cell"] = lambda v: str(v).replace("|", "\\|").replace("\n", " ")
    return env


# Not "_": GitHub and GitLab do not emphasize inside words (a_b_c), and
# function names stay readable in the raw text.
# Nor "!" and "|": without "[" no image starts, and the cell filter guards
# table cells.
_MD_SPECIAL = re.compile(r"([\\`*\[\]<>])")


def md_text(value: object) -> str:
    return _MD_SPECIAL.sub(r"\\\1", str(value))


def md_code(value: object) -> str:
    text = str(value)
    ticks = "`" * (max((len(m) for m in re.findall("`+", text)), default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{ticks}{pad}{text}{pad}{ticks}"


def render_template(env: object, name: str, **context: object) -> str:
    import jinja2

    assert isinstance(env, jinja2.Environment)
    try:
        return env.get_template(name).render(**context)
    except jinja2.TemplateNotFound:
        raise InputError(f"template {name} not found", path=str(shipped_templates())) from None
    except jinja2.TemplateError as exc:
        where = getattr(exc, "filename", None) or name
        line = getattr(exc, "lineno", None)
        raise InputError(f"template error{f' at line {line}' if line else ''}: {exc}",
                         path=where) from None


# ---------------------------------------------------------------- the verb's output

SCHEMA = "crashkit/report/1"


def text(r: ReportResult) -> str:
    out = f"{r.verdict}\n\nwrote {r.bundle} ({size(r.size)}): {', '.join(r.files)}"
    if r.portable:
        out += ("\nportable: the core and the files it maps; `crashkit analyze BUNDLE` "
                "reads it on any machine. Biggest: " + ", ".join(
                    f"{name} ({size(n)})" for name, n in r.biggest))
    i = r.issue
    if i is None:
        return out
    import shlex

    t = i.tracker
    lines = [out, "", f"tracker: {t.kind} {t.url or ''}".rstrip(), f"why: {visible(t.reason)}"]
    if t.upstream:
        lines.append(f"upstream: {t.upstream}")
    if t.note:
        lines.append(f"note: {t.note}")
    lines.append(f"title: {visible(i.title)}")
    if i.url:
        lines.append(f"new issue ({len(i.url)} of {i.budget} characters"
                     f"{', body cut to fit' if i.cut else ''}): {i.url}")
    if i.search_url:
        lines.append(f"look for duplicates: {i.search_url}")
    if i.command:
        lines.append(f"to file it: {shlex.join(i.command)}")
    lines += [f"already reported: {d}" for d in i.duplicates]
    if i.filed:
        lines.append(f"filed: {i.filed}")
    return "\n".join(lines)


def _issue_json(r: ReportResult) -> dict[str, Any] | None:
    i = r.issue
    if i is None:
        return None
    t = i.tracker
    return {"tracker": {"kind": t.kind, "project": t.project, "url": t.url,
                        "reason": t.reason, "form": t.form, "package": t.package,
                        "upstream": t.upstream, "note": t.note},
            "title": i.title, "body": i.body, "url": i.url, "search_url": i.search_url,
            "command": list(i.command) if i.command else None, "body_file": i.body_file,
            "budget": i.budget, "cut": i.cut, "duplicates": list(i.duplicates),
            "filed": i.filed, "problem": i.problem}


def to_json(r: ReportResult) -> dict[str, Any]:
    return {"schema": SCHEMA, "crashkit_version": __version__,
            "bundle": os.path.abspath(r.bundle), "size": r.size, "files": list(r.files),
            "redacted": r.redacted, "include_core": r.include_core, "verdict": r.verdict,
            "notes": list(r.notes), "portable": r.portable,
            "biggest": [{"name": n, "size": s} for n, s in r.biggest],
            **({"issue": _issue_json(r)} if r.issue else {})}


def messages(r: ReportResult) -> list[str]:
    out = [f"warning: {w}" for w in r.warnings] + [f"note: {n}" for n in r.notes]
    if r.issue is not None and r.issue.problem is not None:
        out.append(f"not filed: {r.issue.problem}")
    return out


# ---------------------------------------------------------------- the upstream issue

ATTACHED = ("The full crashkit bundle ({bundle}: every thread's backtrace, the registers, "
            "the modules with their packages, the whole redacted configuration and the "
            "error log) is attached separately.")


def issue_title(m: ReportModel, signature: str | None) -> str:
    return f"{m.title} [crashkit {signature}]" if signature else m.title


def _block(fence: str, text: str) -> str:
    return f"{fence}text\n{text.rstrip()}\n{fence}"


def _top(backtrace: str, frames: int) -> str:
    """The first ``frames`` frames of the crashing thread's text (a frame's
    argument lines stay with it)."""
    out: list[str] = []
    seen = 0
    for line in backtrace.splitlines():
        if re.match(r"^\s*#\d+\s", line):
            seen += 1
            if seen > frames:
                out.append("  …")
                break
        out.append(line)
    return "\n".join(out)


def issue_sections(m: ReportModel, *, frames: int, nginx_v: str | None, log: str | None,
                   bundle: str, log_lines: int) -> dict[str, str]:
    """The issue's parts, by nginx's form field ids (the plain body joins them)."""
    f = m.fence
    facts = {x.name: x.value for x in m.facts}
    overview = f"**Verdict:** {md_text(m.verdict)}\n\n**Where to report:** {md_text(m.report_to)}"
    if "crash signature" in facts:
        overview += f"\n\n**crash signature:** {md_code(facts['crash signature'])}"
    behavior = md_text(m.what_happened)
    if "signal" in facts:
        behavior += f"\n\n- **signal:** {md_text(facts['signal'])}"
    context = [f"### Backtrace of the crashing thread\n\n{_block(f, _top(m.backtrace, frames))}"]
    if m.blamed is not None:
        context.append(f"### The module at fault\n\n- path: {md_code(m.blamed.path)}\n"
                       f"- build-id: {md_code(m.blamed.build_id)}\n"
                       f"- package: {md_text(m.blamed.package)}")
    if nginx_v:
        context.append(f"### nginx -V\n\n{_block(f, nginx_v)}")
    context.append(ATTACHED.format(bundle=bundle))
    steps = "Not known yet: the crash happened while nginx served traffic."
    logs = ""
    if log and log_lines:
        # The lines before the worker's exit line (what it did last), not after.
        rows = [x for x in log.rstrip("\n").splitlines() if not x.startswith("# ")]
        end = next((i + 1 for i in range(len(rows) - 1, -1, -1)
                    if "exited on signal" in rows[i]), len(rows))
        tail = "\n".join(rows[max(0, end - log_lines):end])
        logs = _block(f, tail)
        steps += " The error log's lines before the crash are under the log."
    return {"overview": overview, "behavior": behavior, "steps": steps,
            "configuration": "The whole redacted configuration (nginx -T) is nginx-T.txt in "
                             "the attached bundle.",
            "logs": logs, "context": "\n\n".join(context)}


def issue_body(title: str, sections: dict[str, str]) -> str:
    heads = {"overview": None, "behavior": "What happened", "steps": None,
             "configuration": None, "logs": "Error log before the crash", "context": None}
    out = [f"# {md_text(title)}"]
    for key, head in heads.items():
        text = sections.get(key, "")
        if not text or key in ("steps", "configuration"):
            continue
        out.append(f"## {head}\n\n{text}" if head else text)
    return "\n\n".join(out) + "\n"
