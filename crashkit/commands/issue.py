"""``crashkit report --issue``: the upstream issue of a bundle, prefilled for
the blamed code's tracker, cut to the URL budget; ``--submit`` files it with
the user's own ``gh`` after a duplicate check by the signature hash."""

from __future__ import annotations

import os
import shlex
from typing import Any

from crashkit.analysis import trackers as T
from crashkit.model.analyze import Analysis
from crashkit.model.report import Issue, Tracker

# (frames of the crashing thread, error-log lines), tried in turn until the URL fits.
STEPS = ((16, 20), (8, 20), (8, 10), (5, 10), (5, 5), (3, 5), (3, 3), (1, 3), (1, 0))


def _host_facts(a: Analysis, options: Any) -> tuple[dict[str, str] | None,
                                                    tuple[str, str] | None]:
    from crashkit.host import dpkg, git

    v = a.verdict
    if v is None or v.module is None:
        return None, None
    pkg = a.host.packages.get(v.module) or v.package
    fields = dpkg.package_fields(pkg.name) if pkg is not None else None
    remote = None
    if fields is None and v.origin == "third-party-module":
        from crashkit.analysis.trackers import repository
        from crashkit.nginx import config as C

        build = C.build_info(options.nginx)
        stem = os.path.basename(v.module).split(".so")[0]
        for d in [*git.module_source_dirs(build.configure_args if build else (), stem),
                  *_compiled_in(a, v.module)]:
            url = git.remote_url(d)
            if url is not None and repository(url) is not None:
                remote = (d, url)
                break
    return fields, remote


def _compiled_in(a: Analysis, module: str) -> list[str]:
    """The source directories the module's DWARF names (its own file's, or
    its separate debug file's, found by build-id)."""
    from crashkit.elf.dwarf import source_dirs
    from crashkit.elf.symbols import DEFAULT_DEBUG_DIRS, find_debug_file

    m = next((m for m in a.core.modules if m.path == module), None)
    files = [find_debug_file(m.build_id if m else None, DEFAULT_DEBUG_DIRS),
             m.disk_path if m and m.disk_path else module]
    for f in files:
        if f:
            dirs = [d for d in source_dirs(f) if os.path.isdir(d)]
            if dirs:
                return dirs
    return []


def _fit(t: Tracker, title: str, model: Any, files: dict[str, str], bundle: str,
         budget: int, full: str) -> tuple[str, str | None, bool]:
    """(body, url, cut): the whole report when its URL fits, else the parts
    maintainers ask for first, fewer frames and log lines until it fits."""
    from crashkit.render.report import ATTACHED, issue_body, issue_sections

    name = os.path.basename(bundle)
    whole = full.rstrip("\n") + "\n\n" + ATTACHED.format(bundle=name) + "\n"
    if t.form is None:
        url = T.issue_url(t, title, whole)
        if url is None or len(url) <= budget:
            return whole, url, False
    nginx_v = files.get("nginx-V.txt")
    log = files.get("error-log.txt")
    tries = [(f, n, nginx_v) for f, n in STEPS]
    if nginx_v:
        tries.append((1, 0, nginx_v.splitlines()[0]))
    body, url = whole, None
    for frames, lines, version in tries:
        sections = issue_sections(model, frames=frames, nginx_v=version, log=log,
                                  bundle=name, log_lines=lines)
        body = issue_body(title, sections)
        fields = {k: sections[k] for k in T.NGINX_FORM_FIELDS} if t.form else None
        url = T.issue_url(t, title, body, fields=fields)
        if url is None or len(url) <= budget:
            return body, url, True
    if t.form is not None:
        return body, None, True  # the form's fields cannot be cut further by lines
    # Then without what happened (the verdict says it) and with nginx's version only.
    sections = issue_sections(model, frames=1, nginx_v=(nginx_v or "").split("\n")[0] or None,
                              log=None, bundle=name, log_lines=0)
    body = issue_body(title, {**sections, "behavior": ""})
    url = T.issue_url(t, title, body)
    if url is None or len(url) <= budget:
        return body, url, True
    # Still too long: whole lines off the end, the bundle's note kept last.
    note = "\n\n…\n\n" + ATTACHED.format(bundle=name) + "\n"
    kept = body.rstrip("\n").splitlines()
    while kept:
        kept.pop()
        body = "\n".join(kept) + note
        url = T.issue_url(t, title, body)
        if url is None or len(url) <= budget:
            return body, url, True
    return body, None, True


def _write_body(bundle: str, body: str) -> str:
    from crashkit.writers.bundle import write_private_text

    stem = os.path.basename(bundle).removesuffix(".tar.gz")
    return write_private_text(os.path.join(os.path.dirname(bundle), f"{stem}-issue.md"), body)


def make_issue(a: Analysis, model: Any, files: dict[str, str], bundle: str,
               options: Any) -> Issue:
    from crashkit.render.report import issue_title

    o = options.issue
    fields, remote = _host_facts(a, options) if o.repo is None else (None, None)
    t = T.choose(a, repo=o.repo, fields=fields, git_remote=remote)
    sig = a.signature.hash if a.signature else None
    title = issue_title(model, sig)
    body, url, cut = _fit(t, title, model, files, bundle, o.budget, files["report.md"])
    full = files["report.md"].rstrip("\n") + "\n"
    body_file = _write_body(bundle, full)
    command: tuple[str, ...] | None = None
    slug = T.github_slug(t)
    if slug is not None:
        command = ("gh", "issue", "create", "--repo", slug, "--title", title,
                   "--body-file", body_file)
    elif t.kind == "debian" and t.package:
        command = ("reportbug", "--severity=important", f"--subject={title}",
                   f"--body-file={body_file}", t.package)
    issue = Issue(tracker=t, title=title, body=body, url=url,
                  search_url=T.search_url(t, sig) if sig else None, command=command,
                  body_file=body_file, budget=o.budget, cut=cut)
    if o.submit:
        issue = _submit(issue, sig, o)
    return issue


def _submit(issue: Issue, sig: str | None, o: Any) -> Issue:
    """File through the user's own gh: the duplicate check first."""
    import dataclasses
    import json

    from crashkit.errors import InputError
    from crashkit.host.run import resolve, run

    slug = T.github_slug(issue.tracker)
    command = issue.command
    if slug is None or command is None:
        raise InputError(f"--submit: {issue.tracker.kind} tracker: crashkit files only on "
                         "GitHub (through gh); use the URL or command shown")

    def problem(why: str) -> Issue:
        return dataclasses.replace(issue, problem=why)

    gh = resolve(o.gh)
    if gh is None:
        return problem(f"{o.gh} is not installed (Debian: apt install gh): run the command "
                       "below yourself")
    env = {"GH_PROMPT_DISABLED": "1", "NO_COLOR": "1"}
    st = run([gh, "auth", "status", "--hostname", "github.com"], timeout=20, env=env)
    if st.status != 0:
        return problem("gh is not logged in to github.com (gh auth login): run the command "
                       "below once it is")
    if sig:
        found = run([gh, "search", "issues", sig, "--repo", slug, "--json", "url,title",
                     "--limit", "10"], timeout=30, env=env)
        if found.status != 0:
            return problem(f"gh search issues failed ({_line(found.output)}): not filed")
        try:
            dups = tuple(str(x["url"]) for x in json.loads(found.stdout or "[]"))
        except (ValueError, KeyError, TypeError):
            dups = ()
        if dups and not o.force:
            return dataclasses.replace(issue, duplicates=dups, problem=(
                f"already reported: {dups[0]} names {sig}; add to it, or pass --force"))
        issue = dataclasses.replace(issue, duplicates=dups)
    done = run([gh, *command[1:]], timeout=60, env=env)
    if done.status != 0:
        return problem(f"gh issue create failed ({_line(done.output)}): not filed")
    return dataclasses.replace(issue, filed=done.stdout.strip().splitlines()[-1]
                               if done.stdout.strip() else None)


def _line(text: str) -> str:
    return next((x.strip() for x in text.splitlines() if x.strip()), "no output")[:200]


def shown_command(argv: tuple[str, ...]) -> str:
    return shlex.join(argv)
