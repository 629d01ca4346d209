"""`nbo report` end to end, rendered in headless Chromium (Debian's `chromium`).

The browser is driven over the DevTools protocol (aiohttp's websocket client): console errors,
uncaught exceptions and failed loads are collected while the page loads, every section and
image is checked in the live DOM, and a full-page screenshot is written to the test's folder.
A negative test feeds a broken page and must see its errors, so the detector is proven to work.
"""

from __future__ import annotations

import asyncio
import atexit
import base64
import functools
import json
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
needs_chromium = pytest.mark.skipif(
    not Path(CHROMIUM).is_file(),
    reason="Debian's chromium is not installed (make test installs it with apt-get install chromium)",
)
CHECK_PAGE = """JSON.stringify({
  sections: [...document.querySelectorAll('section[data-section]')].map(s => s.id),
  images: [...document.images].map(i => ({
    id: i.dataset.image || i.src.slice(0, 40), ok: i.complete && i.naturalWidth > 0, width: i.naturalWidth})),
  tables: [...document.querySelectorAll('table.data')].map(t => t.id),
})"""


class DevTools:
    """A minimal Chrome DevTools Protocol client: commands by id, events kept in order."""

    def __init__(self, socket) -> None:
        self.socket = socket
        self.next_id = 0
        self.events: list[dict] = []

    async def _read(self) -> dict:
        message = await self.socket.receive(timeout=30)
        return json.loads(message.data)

    async def call(self, method: str, **params) -> dict:
        self.next_id += 1
        ident = self.next_id
        await self.socket.send_json({"id": ident, "method": method, "params": params})
        while True:
            data = await self._read()
            if data.get("id") == ident:
                if "error" in data:
                    raise RuntimeError(f"{method}: {data['error']}")
                return data.get("result", {})
            self.events.append(data)

    async def wait_for(self, event: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not any(item.get("method") == event for item in self.events):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no {event} within {timeout} s")
            self.events.append(await asyncio.wait_for(self._read(), remaining))

    async def drain(self, seconds: float) -> None:
        """Collect events for a little longer (late errors, e.g. from timers)."""
        deadline = time.monotonic() + seconds
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                self.events.append(await asyncio.wait_for(self._read(), remaining))
            except TimeoutError:
                return

    def errors(self) -> list[str]:
        found = []
        for item in self.events:
            method, params = item.get("method"), item.get("params", {})
            if method == "Runtime.exceptionThrown":
                details = params["exceptionDetails"]
                found.append(f"exception: {details.get('exception', {}).get('description') or details.get('text')}")
            elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
                found.append(
                    "console.error: "
                    + " ".join(str(arg.get("value", arg.get("description"))) for arg in params["args"])
                )
            elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
                found.append(f"log: {params['entry']['text']} {params['entry'].get('url', '')}")
        return found


def _start_chromium(profile: Path) -> tuple[subprocess.Popen, int]:
    log = (profile.parent / "chromium.log").open("wb")
    process = subprocess.Popen(
        [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", "--remote-debugging-port=0", "--window-size=1280,4000",
         "about:blank"],
        stdout=subprocess.DEVNULL, stderr=log,
    )  # fmt: skip
    port_file = profile / "DevToolsActivePort"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if port_file.is_file() and port_file.read_text().strip():
            return process, int(port_file.read_text().splitlines()[0])
        if process.poll() is not None:
            break
        time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"chromium did not open its DevTools port; see {profile.parent / 'chromium.log'}")


async def _inspect(port: int, page: Path, screenshot: Path) -> tuple[list[str], dict]:
    import aiohttp

    async with aiohttp.ClientSession() as session:
        async with session.get(f"http://127.0.0.1:{port}/json/list") as response:
            targets = await response.json()
        url = next(target["webSocketDebuggerUrl"] for target in targets if target["type"] == "page")
        async with session.ws_connect(url, max_msg_size=0) as socket:
            tools = DevTools(socket)
            for domain in ("Runtime", "Log", "Page"):
                await tools.call(f"{domain}.enable")
            await tools.call("Page.navigate", url=page.resolve().as_uri())
            await tools.wait_for("Page.loadEventFired", timeout=60)
            await tools.drain(1.0)
            result = await tools.call("Runtime.evaluate", expression=CHECK_PAGE, returnByValue=True)
            shot = await tools.call("Page.captureScreenshot", format="png", captureBeyondViewport=True)
            screenshot.write_bytes(base64.b64decode(shot["data"]))
            return tools.errors(), json.loads(result["result"]["value"])


def render_in_chromium(page: Path, screenshot: Path) -> tuple[list[str], dict]:
    """Open `page` in headless Chromium: (console errors, DOM facts); writes `screenshot`."""
    profile = screenshot.parent / f"profile-{screenshot.stem}"
    profile.mkdir()
    process, port = _start_chromium(profile)
    try:
        return asyncio.run(_inspect(port, page, screenshot))
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@needs_chromium
def test_the_detector_sees_errors_of_a_broken_page(tmp_path: Path) -> None:
    page = tmp_path / "broken.html"
    page.write_text(
        "<!DOCTYPE html><html><body><section data-section='x' id='x'>x</section>"
        "<script>console.error('deliberate console error'); notDefinedAnywhere();</script></body></html>"
    )
    errors, facts = render_in_chromium(page, tmp_path / "broken.png")
    assert any("deliberate console error" in error for error in errors), errors
    assert any("notDefinedAnywhere" in error for error in errors), errors
    assert facts["sections"] == ["x"]


@needs_chromium
def test_the_detector_passes_a_clean_page(tmp_path: Path) -> None:
    page = tmp_path / "clean.html"
    page.write_text("<!DOCTYPE html><html><body><script>console.log('fine');</script></body></html>")
    errors, _ = render_in_chromium(page, tmp_path / "clean.png")
    assert errors == []


@functools.cache
def build_report_world() -> tuple:
    """A registered nbo model (tests/serving/model_fixture.py) and the same simulated world on disk,
    built once per test process (the explain tests share it)."""
    from features.simulate import simulate_world, write_world
    from tests.serving.model_fixture import build_serving_fixture

    directory = Path(tempfile.mkdtemp(prefix="nbo-report-"))
    atexit.register(shutil.rmtree, directory, ignore_errors=True)
    fixture = build_serving_fixture(directory, customers=1500, seed=3)
    write_world(simulate_world(1500, months=8, seed=3, start="2025-01-01"), directory / "world")
    return fixture, directory


@pytest.fixture(scope="module")
def report_world():
    return build_report_world()


@needs_chromium
def test_nbo_report_renders_in_chromium_without_errors(report_world, tmp_path: Path, monkeypatch) -> None:
    import mlflow

    from training.cli import app
    from training.report import SECTION_IDS

    fixture, directory = report_world
    monkeypatch.setenv("MLFLOW_TRACKING_URI", fixture.tracking_uri)
    out = tmp_path / "report.html"
    result = CliRunner().invoke(app, ["report", "--data", str(directory / "world"), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert str(out.resolve()) in result.output.replace("\n", "")
    html = out.read_text(encoding="utf-8")
    assert not re.search(r"https?://", html), re.findall(r".{40}https?://.{40}", html)[:3]
    assert "<script" not in html.lower()

    errors, facts = render_in_chromium(out, tmp_path / "report.png")
    assert errors == []
    assert facts["sections"] == list(SECTION_IDS)
    ids = {image["id"] for image in facts["images"]}
    expected = {"churn-calibration", "churn-roc", "shap-beeswarm", "shap-dependence-1", "shap-dependence-4"}
    expected |= {f"qini-{offer}" for offer in ("discount_10", "free_shipping", "content_reminder")}
    assert expected <= ids, ids
    assert all(image["ok"] and image["width"] > 100 for image in facts["images"]), facts["images"]
    tables = set(facts["tables"])
    assert {"churn-metrics", "qini-summary", "segment-table", "decision-totals", "decision-offers"} <= tables
    assert "decision-suppressions" in tables
    assert (tmp_path / "report.png").stat().st_size > 50_000

    mlflow.set_tracking_uri(fixture.tracking_uri)
    runs = mlflow.search_runs(experiment_names=["report"], output_format="list")
    artifacts = [item.path for item in mlflow.MlflowClient().list_artifacts(runs[0].info.run_id, "report")]
    assert artifacts == ["report/report.html"]
