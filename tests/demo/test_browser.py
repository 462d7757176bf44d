"""Live plots in a real browser: JupyterLab and Debian's headless Chromium, driven over the Chrome
DevTools Protocol (with websocket-client). Notebook 02 runs in the browser; two screenshots of its chart
taken seconds apart differ: the chart updates live. Skips, saying why, where Chromium or JupyterLab is
absent (.ci/run installs Debian's ``chromium``)."""

from __future__ import annotations

import base64
import itertools
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import websocket

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK = "02_live_plot.ipynb"
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def browser() -> str | None:
    return next((path for name in BROWSERS if (path := shutil.which(name))), None)


pytestmark = [
    pytest.mark.skipif(browser() is None, reason="no Chromium on PATH (Debian: apt-get install -y chromium)"),
    pytest.mark.timeout(90),
]


def wait_for(condition: Callable[[], Any], timeout: float, what: str, step: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(step)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get_json(url: str) -> Any:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return json.loads(response.read())
    except OSError:
        return None


class DevTools:
    """The Chrome DevTools Protocol over one page's WebSocket: commands in, their results out."""

    def __init__(self, ws_url: str) -> None:
        self.ws = websocket.create_connection(ws_url, timeout=20, suppress_origin=True)
        self.ids = itertools.count(1)

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        ident = next(self.ids)
        self.ws.send(json.dumps({"id": ident, "method": method, "params": params}))
        while True:  # events in between are skipped
            message = json.loads(self.ws.recv())
            if message.get("id") == ident:
                if "error" in message:
                    raise AssertionError(f"{method}: {message['error']}")
                return dict(message.get("result", {}))

    def evaluate(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            return None
        return result.get("result", {}).get("value")

    def screenshot(self, clip: dict[str, float]) -> bytes:
        data = self.call("Page.captureScreenshot", format="png", clip={**clip, "scale": 1})["data"]
        return base64.b64decode(data)

    def close(self) -> None:
        self.ws.close()


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[str]:
    """JupyterLab on a free loopback port serving a copy of the notebooks; yields its base URL + token."""
    pytest.importorskip("jupyterlab", reason="JupyterLab is not installed (pip install -e '.[dev]')")
    root = tmp_path / "notebooks"
    shutil.copytree(ROOT / "notebooks", root)
    port, token = free_port(), secrets.token_hex(16)
    env = {
        **os.environ,
        "JUPYTER_CONFIG_DIR": str(tmp_path / "jupyter-config"),
        "JUPYTER_RUNTIME_DIR": str(tmp_path / "rt"),
    }
    env["RXIBKR_TLS_PINS"] = str(tmp_path / "pins.json")
    as_root = ["--allow-root"] if hasattr(os, "geteuid") and os.geteuid() == 0 else []
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jupyterlab",
            *as_root,
            "--LabApp.extension_manager=readonly",
            "--no-browser",
            "--ip=127.0.0.1",
            f"--port={port}",
            f"--IdentityProvider.token={token}",
            f"--ServerApp.root_dir={root}",
            "--expose-app-in-browser",
            "--ServerApp.disable_check_xsrf=True",
            "--LabApp.news_url=",
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
        cwd=root,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        wait_for(lambda: get_json(f"{base}/api/status?token={token}"), 40, "JupyterLab to listen")
        yield f"{base}|{token}"
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


@pytest.fixture
def page(tmp_path: Path) -> Iterator[DevTools]:
    """Headless Chromium with remote debugging; yields its first page."""
    path = browser()
    assert path is not None
    profile = tmp_path / "chromium-profile"
    temp = Path(tempfile.gettempdir())
    before = set(temp.glob("org.chromium.Chromium.*"))
    process = subprocess.Popen(
        [
            path,
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--remote-debugging-port=0",
            "--remote-allow-origins=*",
            f"--user-data-dir={profile}",
            "--window-size=1280,2000",
            "about:blank",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        active = profile / "DevToolsActivePort"
        port = wait_for(lambda: active.exists() and active.read_text().split("\n")[0].strip(), 30, "Chromium")
        pages = wait_for(
            lambda: [
                t for t in get_json(f"http://127.0.0.1:{port}/json/list") or [] if t.get("type") == "page"
            ],
            10,
            "a Chromium page",
        )
        tools = DevTools(pages[0]["webSocketDebuggerUrl"])
        try:
            yield tools
        finally:
            tools.close()
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
        for left in set(temp.glob("org.chromium.Chromium.*")) - before:  # its shared-memory files
            shutil.rmtree(left, ignore_errors=True) if left.is_dir() else left.unlink(missing_ok=True)


IMAGES = "Array.from(document.querySelectorAll('.jp-OutputArea-output img'))"
NOTEBOOK_PANEL = (
    "Array.from(window.jupyterapp ? window.jupyterapp.shell.widgets('main') : []).find(w => w.sessionContext)"
)
KERNEL_IDLE = (
    f"(() => {{ const w = {NOTEBOOK_PANEL}; const s = w && w.sessionContext;"
    " return !!(s && s.isReady && s.session && s.session.kernel && s.session.kernel.status === 'idle'); })()"
)


def run(command: str) -> str:
    """JavaScript: activate the notebook, make the cell with ``plot.run(`` the active one, run ``command``
    (not awaited: the cells run while the test looks)."""
    return (
        f"(() => {{ const w = {NOTEBOOK_PANEL}; window.jupyterapp.shell.activateById(w.id);"
        " const i = w.content.widgets.findIndex(c => c.model.type === 'code'"
        " && c.model.sharedModel.getSource().startsWith('plot.run('));"
        " if (i < 0) return false; w.content.activeCellIndex = i;"
        f" window.jupyterapp.commands.execute('{command}'); return true; }})()"
    )


CHART = f"{IMAGES}.filter(i => i.naturalWidth > 100 && i.src.length > 20000)[0]"


def test_notebook_02_updates_its_chart_in_a_real_browser(lab: str, page: DevTools) -> None:
    started = time.monotonic()
    base, token = lab.split("|")
    page.call("Page.enable")
    page.call("Page.bringToFront")
    page.call("Emulation.setFocusEmulationEnabled", enabled=True)  # headless: JupyterLab needs focus
    page.call("Page.navigate", url=f"{base}/lab/tree/{NOTEBOOK}?token={token}")
    wait_for(lambda: page.evaluate(KERNEL_IDLE), 40, "the notebook to open with an idle kernel", 0.5)
    # the cells above plot.run(): the simulator, the client and live_plot(); once they returned, a timer
    # on the kernel's asyncio loop redraws the chart in the background while the kernel is idle
    assert page.evaluate(run("notebook:run-all-above"))
    wait_for(lambda: page.evaluate(f"!!{CHART}"), 30, "the chart with data")
    rect = page.evaluate(
        f"(() => {{ const i = {CHART}; i.scrollIntoView();"
        " const r = i.getBoundingClientRect();"
        " return {x: r.x, y: r.y, width: r.width, height: r.height}; })()"
    )
    assert rect and rect["width"] > 100 and rect["height"] > 50, rect
    src_before = page.evaluate(f"{CHART}.src")
    first = page.screenshot(rect)
    time.sleep(1.5)  # "seconds apart"; the chart redraws at most every 0.5 s, within a CPU budget
    shots = [page.screenshot(rect)]
    if shots[-1] == first:  # a loaded machine may skip a redraw or two: look again, bounded
        wait_for(lambda: shots.append(page.screenshot(rect)) or shots[-1] != first, 10, "the chart to change")
    second = shots[-1]
    src_after = page.evaluate(f"{CHART}.src")
    assert first.startswith(b"\x89PNG") and second.startswith(b"\x89PNG")
    assert first != second, "two screenshots of the chart seconds apart are identical: it did not update"
    assert src_before != src_after  # the displayed PNG itself was replaced
    # the rest of the notebook (plot.run, await plot.wait, stop, shutdown) runs to its end without an error
    assert page.evaluate(run("notebook:run-all-below"))
    code_cells = f"{NOTEBOOK_PANEL}.content.widgets.filter(c => c.model.type === 'code')"
    wait_for(
        lambda: (
            page.evaluate(KERNEL_IDLE)
            and page.evaluate(f"{code_cells}.every(c => c.model.executionCount !== null)")
        ),
        30,
        "every code cell to have run",
        0.5,
    )
    errors = page.evaluate(
        f"{code_cells}.flatMap(c => c.model.outputs.toJSON()).filter(o => o.output_type === 'error')"
        ".map(o => o.ename + ': ' + o.evalue)"
    )
    assert errors == []
    assert time.monotonic() - started < 60
