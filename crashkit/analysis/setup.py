"""Plan the nginx side of ``crashkit setup``: pure functions, text in, text out.

:func:`plan_core_directives` decides the values of ``worker_rlimit_core`` and
``working_directory`` and returns, for every file that must change, its old
and new text. Existing directives are updated in place (in whichever file of
the main context holds them); missing ones are added once, beside their
sibling when it is in an included file, else in a drop-in file of crashkit's
own (:func:`choose_dropin`) when the main context includes a directory's
glob (Debian's ``include /etc/nginx/modules-enabled/*.conf``: its nginx.conf
is a dpkg conffile, and an edit there makes every package upgrade ask),
else beside their sibling, else after the main file's last simple directive
before its first block. Only the arguments (or the inserted lines) change:
comments, indentation, line endings and includes stay as they are.
"""

from __future__ import annotations

import bisect
import difflib
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from crashkit.errors import InputError
from crashkit.formats.nginx_config import (
    Statement,
    glob_matches,
    lex_span,
    line_span,
    newline_of,
    quote,
    statements,
)

if TYPE_CHECKING:  # the config reader's types; the plan itself reads nothing
    from crashkit.analysis.redact import Block
    from crashkit.model.nginx import Directive, NginxConfig

# A file's text, its statements and their redactions (redact.config_edits).
Lexed = tuple[str, list[Statement], tuple[tuple[int, int, str], ...]]

RLIMIT_CORE = "worker_rlimit_core"
WORKDIR = "working_directory"

# Where cores go by default: persistent state (FHS /var/lib), on the root
# filesystem rather than a tmpfs, outside /tmp (world-writable; tmp cleaners;
# systemd's PrivateTmp would hide it), one directory crashkit collect knows.
DEFAULT_CORE_DIR = "/var/lib/crashkit/cores"
# A worker's core holds all its dumped memory: heap, the shared-memory zones
# (caches, limit_req, upstream zones) mapped in every worker, and last of all
# the stack, which sits at the top of the address space. The kernel writes
# mappings in address order, so a core cut short by the limit loses the stack
# first, and with it every backtrace. 2G covers ordinary workers with room for
# large shared zones, while a burst of crashes still cannot fill a disk
# unnoticed (setup checks the free space).
DEFAULT_CORE_LIMIT = "2G"

_SIZE_RE = re.compile(r"^(\d+)([kKmMgG]?)$")
_SCALE = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}


def parse_size(text: str) -> int | None:
    """An nginx size (ngx_parse_offset: bytes, or k/m/g suffixed), None if not one."""
    m = _SIZE_RE.match(text.strip())
    if not m:
        return None
    return int(m.group(1)) * _SCALE[m.group(2).lower()]


@dataclass(frozen=True)
class Change:
    directive: str
    old: str | None  # the value as written before, None when added
    new: str
    file: str
    line: int  # of the existing directive, or the line it is inserted after


@dataclass(frozen=True)
class FileEdit:
    path: str  # the real file (symlinks resolved): that is what gets replaced
    before: str
    after: str
    new: bool = False  # crashkit's drop-in, created (before is "")
    # The statements of ``before`` when the plan lexed it already (a config
    # of 100,000 servers takes a second to lex): the diff reuses them.
    lexed: tuple[Statement, ...] | None = field(default=None, compare=False, repr=False)
    # And their redactions (crashkit.analysis.redact.config_edits), if made already.
    redactions: tuple[tuple[int, int, str], ...] | None = field(default=None, compare=False,
                                                                repr=False)

    def diff(self) -> str:
        """The unified diff, secrets in its context lines redacted: people
        paste setup's output into tickets."""
        a_text, b_text = _redacted_pair(self.before, self.after, self.lexed, self.redactions)
        a = a_text.splitlines(keepends=True)
        b = b_text.splitlines(keepends=True)
        # Only the changed window goes through difflib (its matching is far
        # from linear on a file of 100,000 servers); the common head and tail
        # are cut, keeping the context lines, and the hunk lines renumbered.
        head = _common_lines(a, b)
        tail = _common_lines(a[::-1], b[::-1], min(len(a), len(b)) - head)
        cut = max(head - 3, 0)
        keep = max(tail - 3, 0)
        lines = difflib.unified_diff(
            a[cut:len(a) - keep], b[cut:len(b) - keep],
            fromfile="/dev/null" if self.new else self.path,
            tofile=f"{self.path} (crashkit setup)")
        lines = (_shift_hunk(line, cut) for line in lines)
        # A last line without a newline is marked, as diff(1) does, instead of
        # running into the next line of the diff.
        return "".join(line if line.endswith("\n") else
                       line + "\n\\ No newline at end of file\n" for line in lines)


def _common_lines(a: list[str], b: list[str], most: int | None = None) -> int:
    """How many lines ``a`` and ``b`` share from their starts (at most ``most``)."""
    n = min(len(a), len(b)) if most is None else most
    lo, hi = 0, n  # a[:lo] == b[:lo]; list slices compare in C, so bisect
    if a[:n] == b[:n]:
        return n
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if a[:mid] == b[:mid]:
            lo = mid
        else:
            hi = mid
    return lo


def _common_prefix(a: str, b: str) -> int:
    """The length of the longest common prefix of ``a`` and ``b``."""
    lo, hi = 0, min(len(a), len(b))  # a[:lo] == b[:lo]; a[:hi] may differ
    if a[:hi] == b[:hi]:
        return hi
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if a[lo:mid] == b[lo:mid]:
            lo = mid
        else:
            hi = mid
    return lo


def _redacted_pair(before: str, after: str, lexed: tuple[Statement, ...] | None,
                   redactions: tuple[tuple[int, int, str], ...] | None = None,
                   ) -> tuple[str, str]:
    """``before`` and ``after`` redacted (crashkit.analysis.redact.redacted_config),
    lexing ``before`` once (or not at all, given ``lexed``; ``redactions``: its
    config_edits) and of ``after`` only the span that differs: from the last
    statement end before the first difference to the first statement end past
    the last one where the lexer is back in ``before``'s state (same depth,
    same open blocks). Past that point both texts lex alike, so ``before``'s
    redactions serve, shifted. Where the lexer does not come back into step
    (or the span does not lex), ``after`` is lexed whole, as before."""
    from crashkit.analysis.redact import apply_edits, config_edits

    stmts = list(lexed) if lexed is not None else statements(before)
    edits_before = list(redactions) if redactions is not None else config_edits(stmts)
    red_before = apply_edits(before, edits_before)
    if before == after:
        return red_before, red_before
    p = _common_prefix(before, after)
    tail = _common_prefix(before[p:][::-1], after[p:][::-1])
    delta = len(after) - len(before)
    changed_end = len(before) - tail  # before[changed_end:] == after[changed_end + delta:]
    # Statement ends where the lexer rests (a Lua block's "{" is not one).
    ends = [st.end for st in stmts]
    first = bisect.bisect_right(ends, p)  # stmts[:first] end at or before p
    while first and _lua(stmts[first - 1]):
        first -= 1
    start = ends[first - 1] if first else 0
    depth = _depth_after(stmts[first - 1]) if first else 0
    at_start = _open_before(stmts, first, depth)
    prefix = [e for e in edits_before if e[1] <= start]
    # The first statement end of before at or past the change, in a rest state.
    last = bisect.bisect_left(ends, changed_end, first)
    while last < len(stmts) and _lua(stmts[last]):
        last += 1
    if last < len(stmts):
        stop = ends[last]
        try:
            span, span_depth = lex_span(after, start=start, end=stop + delta, depth=depth,
                                        line=before.count("\n", 0, start) + 1)
        except InputError:
            span = []
        if span and span[-1].end == stop + delta and not _lua(span[-1]) and \
                span_depth == _depth_after(stmts[last]):
            ours = list(at_start)
            span_edits = config_edits(span, ours)
            theirs = list(at_start)
            config_edits(stmts[first:last + 1], theirs)
            if _open(ours, span_depth) == _open(theirs, span_depth):
                suffix = [(a + delta, b + delta, r) for a, b, r in edits_before if a >= stop]
                return red_before, apply_edits(after, prefix + span_edits + suffix)
    return red_before, apply_edits(after, config_edits(statements(after)))


def _open_before(stmts: list[Statement], first: int, depth: int) -> list[tuple[int, Block]]:
    """The blocks open just past ``stmts[first - 1]`` (where the lexer is at
    ``depth``), outermost first, as config_edits keeps them: for each depth
    below, the last block statement opened there."""
    out: list[tuple[int, Block]] = []
    i = first - 1
    while depth > 0 and i >= 0:
        st = stmts[i]
        if st.depth < depth and st.terminator == "{" and not _lua(st):
            out.append((st.depth, (st.name.value, tuple(t.value for t in st.args))))
            depth = st.depth
        i -= 1
    return out[::-1]


def _lua(st: Statement) -> bool:
    return st.terminator == "{" and st.name.value.endswith("_by_lua_block")


def _depth_after(st: Statement) -> int:
    return st.depth + (st.terminator == "{" and not _lua(st))


def _open(blocks: list[tuple[int, Block]], depth: int) -> list[tuple[int, Block]]:
    """The blocks still open at ``depth`` (config_edits drops closed ones only later)."""
    return [b for b in blocks if b[0] < depth]


_HUNK = re.compile(r"^@@ -(\d+)((?:,\d+)?) \+(\d+)((?:,\d+)?) @@")


def _shift_hunk(line: str, by: int) -> str:
    """A hunk header of a diff over lines from ``by`` on, numbered for the whole file."""
    m = _HUNK.match(line) if by and line.startswith("@@") else None
    if m is None:
        return line
    a, b = int(m.group(1)), int(m.group(3))
    return (f"@@ -{a + by if a else a}{m.group(2)} +{b + by if b else b}{m.group(4)} @@"
            + line[m.end():])


# The drop-in's name: after the modules' own files in Debian's
# modules-enabled (10-mod-*, 50-mod-*), so it reads as the last word.
DROPIN_STEM = "90-crashkit-cores"
_GLOB_CHARS = "*?["  # what makes nginx's include a glob (ngx_conf_include)


@dataclass(frozen=True)
class DropIn:
    """A file of crashkit's own that a main-context include glob loads."""

    path: str  # the real directory, and the name crashkit gives the file
    pattern: str  # the include's pattern, absolute
    include: str  # where that include is: FILE:LINE


def choose_dropin(cfg: NginxConfig, is_dir: Callable[[str], bool]) -> DropIn | None:
    """The first main-context ``include DIR/GLOB`` whose directory exists
    (``is_dir``) and whose glob loads a file named DROPIN_STEM + its suffix
    (``*.conf``: 90-crashkit-cores.conf); None when the config has none.

    The directives go in the main context, where the include sits:
    worker_rlimit_core and working_directory are valid anywhere there
    (NGX_MAIN_CONF|NGX_DIRECT_CONF), before or after load_module."""
    base = os.path.dirname(cfg.root)  # nginx's conf prefix: relative includes
    for d in _main_all(cfg, "include"):
        if len(d.args) != 1:
            continue
        pattern = os.path.normpath(os.path.join(base, d.args[0]))
        directory, glob = os.path.split(pattern)
        if not any(c in glob for c in _GLOB_CHARS) or any(c in directory for c in _GLOB_CHARS):
            continue
        if not is_dir(directory):
            continue
        names = [DROPIN_STEM + ".conf"]
        if glob.startswith("*") and not any(c in glob[1:] for c in _GLOB_CHARS):
            names.append(DROPIN_STEM + glob[1:])
        for name in names:
            if glob_matches(pattern, os.path.join(directory, name)):
                return DropIn(os.path.join(os.path.realpath(directory), name), pattern, d.where)
    return None


_DROPIN_HEAD = ("# Written by crashkit setup --apply: where nginx's workers leave their cores",
                "# (crashkit setup --undo removes this file).")


@dataclass(frozen=True)
class NginxPlan:
    core_dir: str
    core_limit: str
    core_limit_bytes: int
    changes: tuple[Change, ...]
    edits: tuple[FileEdit, ...]
    dropin: DropIn | None = None  # the drop-in the plan writes or edits, if any


def choose_values(cfg: NginxConfig, core_dir: str | None, core_limit: str | None,
                  fit: Callable[[str], bool]) -> tuple[str, str]:
    """The directory and limit to configure.

    Explicit options win. Otherwise an existing ``working_directory`` is kept
    when ``fit(path)`` says it already serves (see coredir.fit_as_is), else the
    default directory replaces it; an existing ``worker_rlimit_core`` is kept
    when it is at least the default.
    """
    have_dir = _main(cfg, WORKDIR)
    have_limit = _main(cfg, RLIMIT_CORE)
    if core_dir is None:
        core_dir = DEFAULT_CORE_DIR
        if have_dir is not None and len(have_dir.args) == 1 and fit(have_dir.args[0]):
            core_dir = have_dir.args[0]
    if core_limit is None:
        core_limit = DEFAULT_CORE_LIMIT
        if have_limit is not None and have_limit.args:
            current = parse_size(have_limit.args[0])
            if current is not None and current >= (parse_size(DEFAULT_CORE_LIMIT) or 0):
                core_limit = have_limit.args[0]
    return core_dir, core_limit


def main_files(cfg: NginxConfig) -> list[str]:
    """The files a plan may edit, but for a drop-in: the main file, and those
    holding its main-context directives (real paths)."""
    return list(dict.fromkeys([os.path.realpath(cfg.root), *(
        os.path.realpath(d.file) for name in (RLIMIT_CORE, WORKDIR)
        for d in _main_all(cfg, name))]))


def _main_all(cfg: NginxConfig, name: str) -> list[Directive]:
    """``cfg.find(name, ())``, from the top level alone: the main context's
    directives are the top level of ``cfg.directives`` (includes expanded),
    so the 10^6 directives of the blocks below need no walk."""
    return [d for d in cfg.directives if d.name == name and not d.context]


def _main(cfg: NginxConfig, name: str) -> Directive | None:
    found = _main_all(cfg, name)
    return found[-1] if found else None


def plan_core_directives(cfg: NginxConfig, texts: Mapping[str, str], core_dir: str,
                         core_limit: str, dropin: DropIn | None = None,
                         lexed_already: Mapping[str, Lexed] | None = None,
                         ) -> NginxPlan:
    """The edits that make the main context say ``worker_rlimit_core core_limit`` and
    ``working_directory core_dir``. ``texts`` maps real file paths to their text.
    ``dropin`` (:func:`choose_dropin`): where directives missing from the main
    context go, rather than into the main file; a new file when it is not one
    of ``texts``. ``lexed_already``: real paths to (text, its statements,
    their redactions), used for a file whose text is that very text."""
    limit_bytes = parse_size(core_limit)
    if limit_bytes is None:
        raise ValueError(f"not an nginx size: {core_limit!r}")
    wanted = {RLIMIT_CORE: core_limit, WORKDIR: core_dir}
    new_text = dict(texts)
    changes: list[Change] = []
    # (file, offset) -> directives to insert there, in order
    inserts: dict[tuple[str, int], list[str]] = {}
    missing: list[str] = []
    cache: dict[str, list[Statement]] = {
        path: stmts for path, (text, stmts, _) in (lexed_already or {}).items()
        if path in texts and texts[path] == text}
    redactions = {path: red for path, (_, _, red) in (lexed_already or {}).items()
                  if path in cache}

    def lexed(path: str) -> list[Statement]:  # each file lexed once: configs can be huge
        if path not in cache:
            cache[path] = statements(texts[path], path)
        return cache[path]

    updates: list[tuple[str, int, int, str]] = []  # file, start, end, replacement
    for name, value in wanted.items():
        d = _main(cfg, name)
        if d is None:
            missing.append(name)
            continue
        if _same_value(name, d.args, value):
            continue
        path = os.path.realpath(d.file)
        stmt = _statement_at(lexed(path), path, d)
        start, end = stmt.args[0].start, stmt.args[-1].end
        updates.append((path, start, end, quote(value)))
        changes.append(Change(name, " ".join(d.args), value, path, d.line))
    root = os.path.realpath(cfg.root)
    created: list[str] = []  # the directives of a new drop-in
    for name in missing:
        sibling = _main(cfg, WORKDIR if name == RLIMIT_CORE else RLIMIT_CORE)
        anchor: Statement | None
        if sibling is not None and (dropin is None or os.path.realpath(sibling.file) != root):
            path = os.path.realpath(sibling.file)
            anchor = _statement_at(lexed(path), path, sibling)
        elif dropin is not None and dropin.path not in texts:
            created.append(f"{name} {quote(wanted[name])};")
            changes.append(Change(name, None, wanted[name], dropin.path, len(_DROPIN_HEAD)))
            continue
        else:  # the drop-in exists (its include loads it): add to it
            path = dropin.path if dropin is not None else root
            anchor = _anchor(lexed(path))
        offset = anchor.end if anchor is not None else 0
        inserts.setdefault((path, offset), []).append(f"{name} {quote(wanted[name])};")
        changes.append(Change(name, None, wanted[name], path,
                              anchor.line if anchor is not None else 0))
    # Apply from the end of each file backwards, so earlier offsets stay valid.
    edits_by_file: dict[str, list[tuple[int, int, str]]] = {}
    for path, start, end, repl in updates:
        edits_by_file.setdefault(path, []).append((start, end, repl))
    for (path, offset), lines in inserts.items():
        point, body = _placement(new_text[path], lexed(path), offset, lines)
        edits_by_file.setdefault(path, []).append((point, point, body))
    out = []
    for path, spans in edits_by_file.items():
        text = new_text[path]
        for start, end, repl in sorted(spans, reverse=True):
            text = text[:start] + repl + text[end:]
        if text != texts[path]:
            out.append(FileEdit(path, texts[path], text,
                                lexed=tuple(cache[path]) if path in cache else None,
                                redactions=redactions.get(path)))
    if created and dropin is not None:
        out.append(FileEdit(dropin.path, "", "".join(f"{x}\n" for x in (*_DROPIN_HEAD, *created)),
                            new=True))
    used_dropin = dropin if dropin is not None and any(
        c.file == dropin.path for c in changes) else None
    return NginxPlan(core_dir, core_limit, limit_bytes, tuple(changes), tuple(out), used_dropin)


def _same_value(name: str, args: tuple[str, ...], value: str) -> bool:
    if len(args) != 1:
        return False
    if name == RLIMIT_CORE:
        return parse_size(args[0]) == parse_size(value)
    return os.path.normpath(args[0]) == os.path.normpath(value)


def _statement_at(stmts: list[Statement], path: str, d: Directive) -> Statement:
    """The statement of ``stmts`` that crossplane reported as ``d`` (same name and line)."""
    same_line = [s for s in stmts
                 if s.depth == 0 and s.line == d.line and s.name.value == d.name]
    if not same_line:  # crossplane and this lexer disagree: never guess an edit
        raise InputError(f"line {d.line}: cannot locate {d.name} in the file's text; "
                         "set it by hand", path=path)
    return same_line[0]


def _anchor(stmts: list[Statement]) -> Statement | None:
    """The main file's last simple top-level directive before its first block."""
    anchor = None
    for s in stmts:
        if s.depth != 0:
            continue
        if s.terminator == "{":
            break
        anchor = s
    return anchor


def _placement(text: str, stmts: list[Statement], offset: int,
               directives: list[str]) -> tuple[int, str]:
    """Where and what to insert for an anchor ending at ``offset``: the new
    directives always get lines of their own (the neighbours' indentation and
    line ending), so the change is whole lines and undo can tell it apart.

    After the anchor's line when nothing but a comment follows it there;
    when other statements share that line (a compact config), before that
    line if it starts with a top-level statement, else at the top of the file.
    """
    nl = newline_of(text)
    if offset == 0:
        return 0, "".join(d + nl for d in directives)
    line_start, line_end = line_span(text, offset)
    rest = text[offset:line_end].strip()
    if rest and not rest.startswith("#"):
        point = line_start if _starts_top_level(text, stmts, line_start) else 0
        first = text[point:line_span(text, point)[1]]
        indent = first[:len(first) - len(first.lstrip(" \t"))]
        return point, "".join(indent + d + nl for d in directives)
    head = text[line_start:offset]
    indent = head[:len(head) - len(head.lstrip(" \t"))]
    body = "".join(indent + d + nl for d in directives)
    if line_end == len(text):  # the anchor is on a last line without a newline
        return len(text), nl + body.removesuffix(nl)
    return line_end + 1, body


def _starts_top_level(text: str, stmts: list[Statement], pos: int) -> bool:
    """Does the line at ``pos`` begin (after blanks) with a depth-0 statement's name?"""
    i = bisect.bisect_left([s.name.start for s in stmts], pos)
    if i == len(stmts) or stmts[i].depth != 0:
        return False
    return not text[pos:stmts[i].name.start].strip(" \t")
