"""A real bugsink server (bugsink.com, from PyPI) on 127.0.0.1, for the
fleet export's tests and bench.

scripts/bootstrap installs bugsink into .venv-bugsink (its own virtualenv:
it pins Django and friends, which are none of crashkit's business). Each
server gets a private directory: its configuration made by
``bugsink-create-conf --template=local`` (which digests events
synchronously, so an event is in the issue list when its POST returns), its
SQLite databases, a full-access API token from ``bugsink-manage
create_auth_token``, and Django's server on a free port. Teams, projects,
issues and events are then created and read through bugsink's REST API
(/api/canonical/0/)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv-bugsink"


def installed() -> bool:
    return (VENV / "bin" / "bugsink-manage").is_file()


class Bugsink:
    def __init__(self, home: Path, port: int) -> None:
        self.home = home
        self.port = port
        self.base = f"http://127.0.0.1:{port}"
        self.token = ""
        self.proc: subprocess.Popen[bytes] | None = None

    def _env(self) -> dict[str, str]:
        return {**os.environ, "DJANGO_SETTINGS_MODULE": "bugsink_conf",
                "PYTHONPATH": str(self.home), "PATH": f"{VENV / 'bin'}:{os.environ['PATH']}"}

    def _manage(self, *args: str) -> str:
        proc = subprocess.run([str(VENV / "bin" / "bugsink-manage"), *args], cwd=self.home,
                              env=self._env(), capture_output=True, text=True, timeout=300)
        if proc.returncode != 0:
            raise RuntimeError(f"bugsink-manage {' '.join(args)}: {proc.stderr[-2000:]}")
        return proc.stdout

    def __enter__(self) -> Bugsink:
        self.home.mkdir(parents=True, exist_ok=True)
        subprocess.run([str(VENV / "bin" / "bugsink-create-conf"), "--template=local",
                        f"--port={self.port}", "--host=127.0.0.1"], cwd=self.home,
                       env=self._env(), check=True, capture_output=True, timeout=60)
        self._manage("migrate", "-v0")
        self.token = self._manage("create_auth_token").strip().splitlines()[-1]
        log = (self.home / "server.log").open("wb")
        self.proc = subprocess.Popen(
            [str(VENV / "bin" / "bugsink-manage"), "runserver", f"127.0.0.1:{self.port}",
             "--noreload"], cwd=self.home, env=self._env(), stdout=log, stderr=log,
            start_new_session=True)
        deadline = time.monotonic() + 60
        while True:
            try:
                self.api("GET", "teams/")
                break
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.__exit__(None, None, None)
                    raise RuntimeError("bugsink did not start: " + (
                        self.home / "server.log").read_text()[-2000:]) from None
                time.sleep(0.2)
        return self

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()

    def api(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        req = urllib.request.Request(
            f"{self.base}/api/canonical/0/{path}", method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": f"Bearer {self.token}",
                     "Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.loads(r.read() or b"null")

    def project(self, name: str) -> tuple[int, str]:
        """A new project (in a new team): its id and DSN."""
        team = self.api("POST", "teams/", {"name": f"{name}-team"})
        self.api("POST", "projects/", {"name": name, "team": team["id"]})
        found = next(p for p in self.api("GET", "projects/")["results"] if p["name"] == name)
        return int(found["id"]), str(found["dsn"])

    def issues(self, project: int) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = self.api("GET", f"issues/?project={project}")["results"]
        return out

    def events(self, issue: str) -> list[dict[str, Any]]:
        listed = self.api("GET", f"events/?issue={issue}")["results"]
        return [self.api("GET", f"events/{e['id']}/") for e in listed]
