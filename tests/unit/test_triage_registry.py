"""The registry of error.log conditions (crashkit/analysis/conditions.py)
against everything derived from it or depending on it: the pattern, the
JSON schema's enum of kinds, ``triage --help``, the text renderer's labels.

Generic over CONDITIONS: a new condition is tested here by its own example
lines, with nothing to add to this file.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from crashkit.analysis import conditions, triage
from crashkit.analysis.conditions import CONDITIONS, KINDS
from crashkit.model.triage import SEVERITY_ORDER, Finding
from crashkit.nginx import errorlog
from crashkit.render import triage as render

SCHEMA = Path(conditions.__file__).resolve().parents[1] / "schema" / "triage-1.json"
FINDING = json.loads(SCHEMA.read_text())["properties"]["findings"]["items"]["properties"]
EXAMPLES = [(c.name, kind, line) for c in CONDITIONS for kind, line in c.examples]
# What add_host_facts and the commands put in details, by host fact.
FACT_DETAILS = {"kernel-log": {"oom_kills", "oom_confirmed", "kernel_log"},
                "port-holders": {"holders"}, "socket-state": {"socket_state"},
                "selinux": {"selinux"}, "config": {"cores"}}


def scan(tmp_path: Path, lines: list[bytes]) -> tuple[Finding, ...]:
    log = tmp_path / "error.log"
    log.write_bytes(b"".join(line + b"\n" for line in lines))
    return triage.findings(triage.tally(errorlog.select([str(log)], triage.PATTERN)))


def test_schema_enum_is_the_registry_kinds() -> None:
    enum = FINDING["kind"]["enum"]
    assert len(enum) == len(set(enum))
    assert set(enum) == set(KINDS)


def test_every_kind_has_severity_title_fix() -> None:
    names = [k.name for c in CONDITIONS for k in c.kinds]
    for name, kind in KINDS.items():
        assert kind.severity in SEVERITY_ORDER and kind.severity in FINDING["severity"]["enum"]
        assert kind.title.strip() and kind.fix.strip(), name
        # one record per kind: a kind shared by two conditions is the same object
        assert all(k is kind for c in CONDITIONS for k in c.kinds if k.name == name)
    assert set(names) == set(KINDS)


def test_conditions_are_distinct_alternatives_of_the_pattern() -> None:
    groups = [c.group for c in CONDITIONS]
    assert len(groups) == len(set(groups))
    index = triage.PATTERN.groupindex
    for c in CONDITIONS:
        assert c.group in index and c.regex in triage.PATTERN.pattern
        assert all(g in index for g in c.groups), c.name
        assert c.kinds and (len(c.kinds) == 1 or c.kind_of is not None), c.name
    # the catch-alls are the last alternatives: a condition after them never matches
    assert [c.name for c in CONDITIONS[-2:]] == ["emerg", "other"]


def test_every_kind_has_an_example() -> None:
    for c in CONDITIONS:
        assert {k.name for k in c.kinds} == {kind for kind, _ in c.examples}, c.name


@pytest.mark.parametrize(("condition", "kind", "line"), EXAMPLES,
                         ids=[f"{c}:{k}" for c, k, _ in EXAMPLES])
def test_example_line_makes_its_finding(tmp_path: Path, condition: str, kind: str,
                                        line: bytes) -> None:
    # Surrounded by lines triage ignores, and selected by its own alternative.
    noise = [b"2026/11/24 04:23:39 [notice] 2036#2036: start worker processes",
             b"2026/11/24 04:23:39 [info] 2038#2038: *9 client 10.0.0.1 closed keepalive "
             b"connection"]
    (hit,) = errorlog.select([str(_write(tmp_path, [*noise, line]))], triage.PATTERN)
    assert hit[1].lastgroup == "k_" + condition
    (f,) = scan(tmp_path, [noise[0], line, noise[1], line])
    k = KINDS[kind]
    assert (f.kind, f.severity, f.title, f.fix) == (kind, k.severity, k.title, k.fix)
    assert f.count == 2 and f.first is not None
    # the details it fills are the ones its kind declares, and the schema knows them
    assert set(f.details) <= set(k.details), (kind, set(f.details))
    assert set(k.details) <= set(FINDING["details"]["properties"])


def _write(tmp_path: Path, lines: list[bytes]) -> Path:
    log = tmp_path / "one.log"
    log.write_bytes(b"".join(line + b"\n" for line in lines))
    return log


def test_all_examples_together_make_every_kind(tmp_path: Path) -> None:
    found = scan(tmp_path, [line for _, _, line in EXAMPLES])
    assert {f.kind for f in found} == set(KINDS)
    assert len(found) == len(KINDS)  # a condition counted apart merges into its kind


def test_host_facts_land_where_the_registry_says(tmp_path: Path) -> None:
    found = scan(tmp_path, [line for _, _, line in EXAMPLES])
    with_facts = triage.add_host_facts(found, kernel_log="/dev/kmsg", holders=[],
                                       sockets={"/run/app.sock": {"exists": False}},
                                       selinux="absent")
    for before, after in zip(found, with_facts, strict=True):
        added = set(after.details) - set(before.details)
        expect = set().union(*(FACT_DETAILS[fact] for fact in KINDS[after.kind].facts))
        assert added <= expect, after.kind
        assert expect - {"cores"} <= added, after.kind  # cores: added by commands.triage
    assert set(FACT_DETAILS) == set(conditions.HostFact.__args__)  # type: ignore[attr-defined]


def test_text_output_shows_or_leaves_to_json_every_detail() -> None:
    shown = {key for key, _ in render.DETAIL_LABELS} | {"messages"}
    declared = {d for k in KINDS.values() for d in k.details}
    assert declared <= shown | set(render.JSON_ONLY_DETAILS)
    assert shown | set(render.JSON_ONLY_DETAILS) <= set(FINDING["details"]["properties"])


def test_help_lists_every_kind() -> None:
    from crashkit.cli import cli

    out = CliRunner().invoke(cli, ["triage", "--help"], terminal_width=100).output
    for name, kind in KINDS.items():
        assert f" {name} " in out and kind.title in out, name


def test_shared_starts_select_as_the_conditions_alone() -> None:
    # A shared start is a speed-up only: each condition's own full regex
    # (shared start + regex) matches its examples just the same.
    for c in CONDITIONS:
        alone = re.compile(conditions.HEAD + c.shared + c.regex)
        for _kind, line in c.examples:
            assert alone.search(line) is not None, c.name
