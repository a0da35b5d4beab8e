"""report.html in a real browser: Debian's Chromium, headless, at a phone's and
a desktop's size. The page is laid out for real; a probe script (added to a
copy, never to the shipped report) reads the rendered DOM: the verdict and
the backtrace must be on screen, and nothing may need a network."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tarfile
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT, fixture, run_cli, unavailable

pytestmark = pytest.mark.integration

ARTIFACTS = Path(os.environ.get("CRASHKIT_ARTIFACTS", ROOT / "build" / "artifacts"))

PROBE = """
<script>
window.addEventListener("load", () => {
  const seen = (id) => {
    const el = document.getElementById(id);
    if (!el) return {present: false};
    const r = el.getBoundingClientRect();
    const style = getComputedStyle(el);
    return {present: true, text: el.innerText,
            on_screen: r.top >= 0 && r.top < innerHeight && r.width > 0 && r.height > 0,
            visible: style.visibility === "visible" && style.display !== "none",
            fits: r.right <= innerWidth + 1};
  };
  const outside = [...document.querySelectorAll("[src],link[href]")].map(
    (e) => e.getAttribute("src") || e.getAttribute("href"));
  document.documentElement.dataset.probe = JSON.stringify({
    verdict: seen("verdict"), backtrace: seen("backtrace"), title: document.title,
    width: innerWidth, scroll_width: document.documentElement.scrollWidth,
    resources: outside});
});
</script>
"""


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    unavailable("chromium is not installed (apt-get install chromium)")
    raise AssertionError  # not reached


def browse(html: Path, width: int, height: int, screenshot: Path | None = None,
           ) -> dict[str, Any]:
    """Load ``html`` in headless Chromium; the probe's findings."""
    args = [chromium(), "--headless", "--no-sandbox", "--disable-gpu",
            "--allow-file-access-from-files", "--hide-scrollbars",
            f"--window-size={width},{height}", "--virtual-time-budget=3000",
            f"--user-data-dir={html.parent / 'profile'}"]
    if screenshot is not None:
        shot = subprocess.run([*args, f"--screenshot={screenshot}", html.as_uri()],
                              capture_output=True, text=True, timeout=120)
        assert shot.returncode == 0 and screenshot.stat().st_size > 10_000, shot.stderr[-800:]
    probed = html.with_name("probed.html")
    probed.write_text(html.read_text().replace("</body>", PROBE + "</body>"))
    proc = subprocess.run([*args, "--dump-dom", probed.as_uri()], capture_output=True,
                          text=True, timeout=120)
    m = re.search(r'data-probe="([^"]*)"', proc.stdout)
    assert m, f"no probe result: {proc.stderr[-800:]}"
    import html as htmllib

    result: dict[str, Any] = json.loads(htmllib.unescape(m.group(1)))
    return result


@pytest.fixture(scope="module")
def report_html(manifest: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("html")
    fx = fixture(manifest, "nginx-libc")
    proc = run_cli("report", fx["core"], "--out", str(tmp), "--format", "html", "--json",
                   check=True)
    with tarfile.open(json.loads(proc.stdout)["bundle"]) as tar:
        member = next(m for m in tar.getmembers() if m.name.endswith("/report.html"))
        data = tar.extractfile(member).read()  # type: ignore[union-attr]
    page = tmp / "report.html"
    page.write_bytes(data)
    return page


@pytest.mark.parametrize(("device", "width", "height"), [("phone", 390, 844),
                                                         ("desktop", 1280, 900)])
def test_verdict_and_backtrace_are_on_screen(report_html: Path, device: str, width: int,
                                             height: int) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / f"report-{device}.png"
    found = browse(report_html, width, height, screenshot=shot)
    v, bt = found["verdict"], found["backtrace"]
    assert v["present"] and v["visible"] and v["on_screen"] and v["fits"]
    assert v["text"] == ("Verdict: NULL pointer dereference in strlen() [libc.so.6], called "
                         "from crashkit_copy_header(): the third-party nginx module "
                         "ngx_http_crashkit_test_module.so is at fault (high confidence).")
    assert bt["present"] and bt["visible"] and bt["on_screen"]
    first = bt["text"].splitlines()[0]
    # glibc picks its strlen by the CPU (__strlen_evex, __strlen_avx2, __strlen_sse2).
    assert re.match(r"  #0  0x[0-9a-f]{16} __strlen_\w+(\+0x[0-9a-f]+)? \[libc\.so\.6\]",
                    first), first
    assert "crashkit_copy_header+0x" in bt["text"].splitlines()[1]
    # Readable on a phone: the page does not scroll sideways (wide blocks
    # scroll inside themselves), and it is self-contained.
    assert found["scroll_width"] <= found["width"]
    assert found["resources"] == []
    assert found["title"].startswith("nginx worker crash: NULL pointer dereference in")
