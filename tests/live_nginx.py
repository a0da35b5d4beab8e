"""A real nginx (Debian's /usr/sbin/nginx) run by a test on 127.0.0.1.

Each instance lives in its own prefix directory with its own pid file, error
log and temp paths, listens on ports found free at run time, and is stopped
(master and workers) when the test ends, whatever happened.

    with LiveNginx(tmp_path / "ngx", conf_text) as ngx:
        status, body = http_get(f"http://127.0.0.1:{port}/")

``conf_text`` may use ``{prefix}`` for the prefix directory; see
``basic_conf`` for a complete small configuration.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType

NGINX = "/usr/sbin/nginx"
WORKER_USER = "www-data"


def require_live_nginx() -> None:
    """Skip (fail in CI) unless this test can run a real nginx: root and the binary."""
    from tests.conftest import unavailable

    if os.geteuid() != 0:
        unavailable("live nginx tests need root (workers run as www-data)")
    if not os.path.exists(NGINX):
        unavailable(f"{NGINX} is not installed")


@contextlib.contextmanager
def worker_tmpdir(prefix: str = "crashkit-") -> Iterator[Path]:
    """A directory under /tmp, owned by the worker user, mode 0755: the
    workers can reach it (tmp_path cannot be: pytest's base is 0700 root)."""
    d = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    try:
        pw = pwd.getpwnam(WORKER_USER)
        os.chown(d, pw.pw_uid, pw.pw_gid)
        d.chmod(0o755)
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


class Backend:
    """A TCP server on 127.0.0.1 for nginx to proxy to: ``handle`` gets each
    accepted connection (in a thread); close() stops it and closes them all."""

    def __init__(self, handle: Callable[[socket.socket], None]) -> None:
        self.handle = handle
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(32)
        self.port = int(self.sock.getsockname()[1])
        self.conns: list[socket.socket] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(conn)
            self.handle(conn)

    def close(self) -> None:
        self.sock.close()
        for c in self.conns:
            c.close()

    def __enter__(self) -> Backend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def basic_conf(port: int, *, main: str = "", http: str = "", server: str = "",
               worker_connections: int = 64, load_module: str | None = None) -> str:
    """A small, complete nginx.conf: one worker, one server on 127.0.0.1:port.

    ``main``, ``http`` and ``server`` are inserted into those contexts.
    """
    head = f"load_module {load_module};\n" if load_module else ""
    return f"""{head}user {WORKER_USER};
worker_processes 1;
error_log {{prefix}}/error.log info;
pid {{prefix}}/nginx.pid;
lock_file {{prefix}}/nginx.lock;
{main}
events {{
    worker_connections {worker_connections};
}}

http {{
    access_log off;
    client_body_temp_path {{prefix}}/tmp/body;
    proxy_temp_path {{prefix}}/tmp/proxy;
    fastcgi_temp_path {{prefix}}/tmp/fastcgi;
    uwsgi_temp_path {{prefix}}/tmp/uwsgi;
    scgi_temp_path {{prefix}}/tmp/scgi;
{http}
    server {{
        listen 127.0.0.1:{port};
        server_name crashkit.test;
{server}
    }}
}}
"""


def http_get(url: str, headers: dict[str, str] | None = None,
             timeout: float = 10.0) -> tuple[int, bytes]:
    """(status, body); status 0 when the connection failed or was cut."""
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return int(resp.status), resp.read()
    except urllib.error.HTTPError as exc:
        return int(exc.code), exc.read()
    except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
        return 0, b""


def _children(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True,
                         text=True).stdout
    return [int(p) for p in out.split()]


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


class LiveNginx:
    """nginx started in the foreground (``daemon off``) from a config file.

    ``conf`` is the text of the config (written to prefix/nginx.conf) or a
    Path to an existing config (used in place).  The master is our child.
    """

    def __init__(self, prefix: Path, conf: str | Path, *, error_log: Path | None = None,
                 start_timeout: float = 15.0) -> None:
        self.prefix = prefix
        prefix.mkdir(parents=True, exist_ok=True)
        (prefix / "tmp").mkdir(exist_ok=True)
        if isinstance(conf, Path):
            self.conf = conf
        else:
            self.conf = prefix / "nginx.conf"
            self.conf.write_text(conf.replace("{prefix}", str(prefix)))
        self.error_log = error_log or prefix / "error.log"
        self.start_timeout = start_timeout
        self.proc: subprocess.Popen[bytes] | None = None
        self.output = prefix / "nginx.out"

    # -- lifecycle -------------------------------------------------------
    def start(self) -> LiveNginx:
        if os.geteuid() != 0:
            raise RuntimeError("LiveNginx needs root (workers run as www-data)")
        pwd.getpwnam(WORKER_USER)
        self.error_log.touch()
        with open(self.output, "wb") as out:
            self.proc = subprocess.Popen(
                [NGINX, "-p", f"{self.prefix}/", "-c", str(self.conf), "-e", str(self.error_log),
                 "-g", "daemon off; master_process on;"],
                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"nginx exited {self.proc.returncode} at start: "
                                   f"{self.output.read_text(errors='replace')[-2000:]}")
            if self.worker_pids():
                return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"nginx started no worker within {self.start_timeout} s")

    @property
    def master_pid(self) -> int:
        assert self.proc is not None, "not started"
        return self.proc.pid

    def worker_pids(self) -> list[int]:
        """Worker processes of this master that run as the worker user."""
        if self.proc is None:
            return []
        uid = pwd.getpwnam(WORKER_USER).pw_uid
        pids = []
        for pid in _children(self.proc.pid):
            try:
                status = Path(f"/proc/{pid}/status").read_text()
            except OSError:
                continue
            for line in status.splitlines():
                if line.startswith("Uid:") and int(line.split()[1]) == uid:
                    pids.append(pid)
        return pids

    def reload(self, timeout: float = 15.0) -> None:
        """SIGHUP the master and wait until its workers are new ones."""
        old = set(self.worker_pids())
        os.kill(self.master_pid, signal.SIGHUP)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            now = set(self.worker_pids())
            if now and not now & old:
                return
            time.sleep(0.05)
        raise RuntimeError("nginx did not replace its workers after SIGHUP")

    def stop(self) -> None:
        if self.proc is None:
            return
        kids = _children(self.proc.pid)
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        for pid in kids:
            try:
                if os.readlink(f"/proc/{pid}/exe") == NGINX and _alive(pid):
                    os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        self.proc = None

    def __enter__(self) -> LiveNginx:
        return self.start()

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def half_requests(self, port: int, n: int, needle: str) -> None:
        """Open ``n`` connections to ``port`` that each send half a request
        (busy: nginx cannot reuse them), until ``needle`` is in the error log."""
        clients = []
        try:
            for _ in range(n):
                c = socket.create_connection(("127.0.0.1", port), timeout=5)
                c.sendall(b"GET / HTTP/1.1\r\n")
                clients.append(c)
            self.wait_log(needle)
            time.sleep(0.2)  # let nginx finish logging what the burst caused
        finally:
            for c in clients:
                c.close()

    # -- observations ------------------------------------------------------
    def log(self) -> str:
        return self.error_log.read_text(errors="replace")

    def wait_log(self, needle: str, timeout: float = 10.0) -> str:
        """The first error-log line containing ``needle`` (waits for it)."""
        deadline = time.monotonic() + timeout
        while True:
            for line in self.log().splitlines():
                if needle in line:
                    return line
            if time.monotonic() >= deadline:
                raise AssertionError(f"{needle!r} not in {self.error_log} after {timeout} s")
            time.sleep(0.05)


def reachable_dir(name: str) -> Path:
    """A new empty directory that the worker user can traverse, for core
    directories and the like: pytest's tmp_path sits under a 0700 directory
    that www-data cannot enter. Under /tmp/crashkit-tests (mode 0711); the
    caller removes it."""
    import tempfile

    base = Path("/tmp/crashkit-tests")
    base.mkdir(mode=0o711, exist_ok=True)
    base.chmod(0o711)
    d = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=base))
    d.chmod(0o711)
    return d


def debian_tree(dest: Path) -> Path:
    """A copy of Debian's packaged /etc/nginx under dest/etc-nginx that
    validates (nginx -t) there: its absolute paths (includes, pid file, logs)
    point into dest, symlinks inside the tree stay symlinks inside the copy,
    symlinks out of it (modules-enabled) become copies. Returns the main file."""
    src = Path("/etc/nginx")
    root = dest / "etc-nginx"
    logs = dest / "log"
    logs.mkdir(parents=True, exist_ok=True)
    for d, dirs, files in os.walk(src):
        rel = Path(d).relative_to(src)
        (root / rel).mkdir(parents=True, exist_ok=True)
        for name in [*dirs, *files]:
            s, t = Path(d) / name, root / rel / name
            if s.is_symlink():
                target = Path(os.path.realpath(s))
                if target.is_relative_to(src):
                    t.symlink_to(root / target.relative_to(src))
                    continue
                t.write_bytes(target.read_bytes())
            elif s.is_file():
                t.write_bytes(s.read_bytes())
    for f in root.rglob("*"):
        if f.is_file() and not f.is_symlink():
            text = f.read_text(errors="surrogateescape")
            new = (text.replace("/etc/nginx/", f"{root}/")
                   .replace("/run/nginx.pid", f"{dest}/nginx.pid")
                   .replace("/var/log/nginx/", f"{logs}/"))
            if new != text:
                f.write_text(new, errors="surrogateescape")
    return root / "nginx.conf"


def crash_worker(ngx: LiveNginx, url: str, core_dir: Path,
                 headers: dict[str, str] | None = None, timeout: float = 30.0) -> Path:
    """Request ``url`` (a location that crashes the worker) and return the
    core the worker left in ``core_dir`` (its working_directory)."""
    status, _ = http_get(url, headers)
    assert status == 0, f"the worker answered {status} instead of dying"
    line = ngx.wait_log("exited on signal", timeout)
    assert line.endswith("(core dumped)"), line
    # The kernel has written the whole core when the master sees the exit.
    cores = [p for p in core_dir.iterdir() if p.name.startswith("core")]
    assert len(cores) == 1, f"cores in {core_dir}: {cores}"
    return cores[0]
