"""Where export's DSN comes from: the option, SENTRY_DSN, the settings file."""

from __future__ import annotations

from pathlib import Path

import pytest

from crashkit.commands.export import find_dsn
from crashkit.errors import InputError
from crashkit.writers.sentry import target_of


def test_dsn_order(tmp_path: Path) -> None:
    conf = tmp_path / "crashkit.toml"
    conf.write_text('[export]\nsentry_dsn = "https://file@sentry.example/3"\n')
    conf.chmod(0o600)
    env = {"SENTRY_DSN": "https://env@sentry.example/2", "CRASHKIT_CONFIG": str(conf)}
    assert find_dsn("https://opt@sentry.example/1", env) == ("https://opt@sentry.example/1",
                                                              "--sentry")
    assert find_dsn(None, env) == ("https://env@sentry.example/2", "SENTRY_DSN")
    assert find_dsn(None, {"CRASHKIT_CONFIG": str(conf)}) == \
        ("https://file@sentry.example/3", str(conf))
    assert find_dsn(None, {"CRASHKIT_CONFIG": str(tmp_path / "absent.toml")}) == (None, None)
    with pytest.raises(InputError, match="no such settings file"):
        find_dsn(None, {}, config=str(tmp_path / "absent.toml"))


def test_target_hides_the_key() -> None:
    assert target_of("https://abc123@o1.ingest.sentry.io/4505") == \
        "https://o1.ingest.sentry.io/4505"
    assert target_of("http://k@127.0.0.1:8000/sub/path/9") == "http://127.0.0.1:8000/sub/path/9"
    for bad in ("ftp://k@host/1", "https://host/1", "https://k@host/notanumber"):
        with pytest.raises(InputError, match="not a Sentry DSN"):
            target_of(bad)
