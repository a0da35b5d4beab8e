"""Schema drift: every key the renderers emit is documented in its verb's JSON
Schema, and the schemas' enums are the model's vocabularies and registries."""

from __future__ import annotations

from typing import Any, get_args

import jsonschema
import pytest

from crashkit.analysis.meaning import MEANINGS
from crashkit.model import analyze as A
from crashkit.model import doctor as D
from crashkit.model import setup as S
from crashkit.model import triage as T
from tests.schema import enum_at, schema, undocumented


def test_meaning_registry_covers_every_kind() -> None:
    assert set(MEANINGS) == set(get_args(A.MeaningKind))


@pytest.mark.parametrize(("schema_id", "path", "vocabulary"), [
    ("crashkit/analysis/1", ("threads", "[]", "frames", "[]", "source"), A.FrameSource),
    ("crashkit/analysis/1", ("crash", "kind"), A.AnalysisKind),
    ("crashkit/analysis/1", ("modules", "[]", "file_status"), A.FileStatus),
    ("crashkit/analysis/1", ("verdict", "confidence"), A.Confidence),
    ("crashkit/analysis/1", ("verdict", "kind"), A.MeaningKind),
    ("crashkit/triage/1", ("findings", "[]", "severity"), T.Severity),
    ("crashkit/doctor/1", ("checks", "[]", "status"), D.CheckStatus),
    ("crashkit/setup/1", ("mode",), S.Mode),
    ("crashkit/setup/1", ("checks", "[]", "status"), D.CheckStatus),
])
def test_schema_enum_is_the_vocabulary(schema_id: str, path: tuple[str, ...],
                                       vocabulary: Any) -> None:
    assert set(enum_at(schema(schema_id), *path)) == set(get_args(vocabulary))


def test_verdict_origins() -> None:
    """A system library (libc, ld.so) is walked past, never blamed: every other
    origin, and null (nobody's code), is in the schema."""
    found = set(enum_at(schema("crashkit/analysis/1"), "verdict", "origin"))
    assert found == (set(get_args(A.Origin)) - {"system"}) | {None}


def test_undocumented_keys_are_found() -> None:
    root = schema("crashkit/doctor/1")
    good = {"schema": "crashkit/doctor/1", "crashkit_version": "0", "conf": "x",
            "needs_attention": False, "checks": []}
    assert undocumented(good, root) == []
    bad = {**good, "surprise": 1, "checks": [{"name": "a", "status": "ok", "summary": "",
                                              "fix": None, "details": {}, "extra": 2}]}
    assert sorted(undocumented(bad, root)) == [".checks[0].extra", ".surprise"]


def _analyses() -> list[A.Analysis]:
    from tests.unit.test_report_render import CASES

    return [make() for make in CASES.values()]


def test_analysis_json_keys_are_documented() -> None:
    from crashkit.render.analyze import to_json

    root = schema("crashkit/analysis/1")
    for a in _analyses():  # synthetic: not every required fact is there
        assert undocumented(to_json(a), root) == []


def test_doctor_json_keys_are_documented() -> None:
    from crashkit.analysis.doctor import judge
    from crashkit.render.doctor import to_json
    from tests.unit.test_host_units import facts

    data = to_json(D.Doctor("/etc/nginx/nginx.conf", judge(facts())))
    root = schema("crashkit/doctor/1")
    jsonschema.validate(data, root)
    assert undocumented(data, root) == []


def test_triage_json_keys_are_documented() -> None:
    from crashkit.render.triage import to_json
    from tests.cli.test_errorlog import REAL, counts

    _, stats, found = counts([str(REAL)])
    data = to_json(T.Triage(found, (T.LogSource("error.log", False, stats.bytes_read, False),),
                            None, 0, 0, 0.0, "not needed"))
    root = schema("crashkit/triage/1")
    jsonschema.validate(data, root)
    assert undocumented(data, root) == []
