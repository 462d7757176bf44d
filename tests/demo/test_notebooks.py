"""Every notebook in notebooks/ runs headless (nbclient, a real ipykernel) against the simulator.

Each notebook ends with a cell printing a one-line JSON summary of what it did; the tests check
those numbers (and the pictures it displayed), not only that no cell raised.
"""

from __future__ import annotations

import base64
import json
import struct
from pathlib import Path
from typing import Any

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")
pytest.importorskip("matplotlib")
pytest.importorskip("aiohttp")  # the simulator

from jupyter_client.kernelspec import KernelSpecManager  # noqa: E402
from jupyter_client.manager import AsyncKernelManager  # noqa: E402
from jupyter_core.utils import run_sync  # noqa: E402

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
ALL = sorted(p.name for p in NOTEBOOKS.glob("*.ipynb"))


def execute(name: str, cwd: Path) -> Any:
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    # this interpreter's ipykernel, whatever "python3" kernels the machine has installed elsewhere
    specs = KernelSpecManager(kernel_dirs=[], ensure_native_kernel=True)
    manager = AsyncKernelManager(kernel_name="python3", kernel_spec_manager=specs)
    client = nbclient.NotebookClient(
        nb, km=manager, timeout=60, startup_timeout=60, resources={"metadata": {"path": str(cwd)}}
    )
    try:
        client.execute()
    finally:
        # nbclient leaves a kernel manager it was given running, and its connection file (a tmp*.json
        # in the temporary directory) behind: shut it down, which removes the file
        if manager.has_kernel:
            run_sync(manager.shutdown_kernel)(now=True)
        manager.cleanup_connection_file()
    return nb


def outputs(nb: Any) -> list[Any]:
    return [o for cell in nb.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]


def summary_of(nb: Any) -> dict[str, Any]:
    """The JSON line the last code cell printed."""
    last = [c for c in nb.cells if c.cell_type == "code"][-1]
    text = "".join(o.text for o in last.outputs if o.output_type == "stream" and o.name == "stdout")
    line = [ln for ln in text.splitlines() if ln.startswith("{")][-1]
    result: dict[str, Any] = json.loads(line)
    return result


def pngs(nb: Any) -> list[bytes]:
    return [base64.b64decode(o.data["image/png"]) for o in outputs(nb) if "image/png" in o.get("data", {})]


def png_size(png: bytes) -> tuple[int, int]:
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    width, height = struct.unpack(">II", png[16:24])
    return width, height


def test_every_notebook_is_tested() -> None:
    assert ALL == [
        "01_quickstart.ipynb",
        "02_live_plot.ipynb",
        "03_strategy.ipynb",
        "04_testing_with_marbles.ipynb",
        "05_resilience.ipynb",
        "06_datasets.ipynb",
        "07_remote.ipynb",
    ]


@pytest.mark.parametrize("name", ALL)
def test_notebooks_are_committed_without_outputs(name: str) -> None:
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    nbformat.validate(nb)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, (name, cell.source[:60])


def test_quickstart(tmp_path: Path) -> None:
    nb = execute("01_quickstart.ipynb", tmp_path)
    summary = summary_of(nb)
    assert summary["symbols"] == ["AAPL", "MSFT", "NVDA"]
    assert summary["quotes"] > 10
    assert all(mid > 0 for mid in summary["mids"].values())
    assert summary["raw_topic"].startswith("smd+")
    assert summary["ibind_queue_item"] == ["756733"]
    table = [o for o in outputs(nb) if "text/markdown" in o.get("data", {})]
    assert table and "| AAPL | 265598 |" in table[0].data["text/markdown"]


def test_live_plot(tmp_path: Path) -> None:
    nb = execute("02_live_plot.ipynb", tmp_path)
    summary = summary_of(nb)
    assert summary["panels"] == ["AAPL", "MSFT", "NVDA"]
    assert set(summary["series"]) == {
        f"{s} {f}" for s in ("AAPL", "MSFT", "NVDA") for f in ("bid", "ask", "last")
    }
    assert all(count > 30 for count in summary["series"].values()), summary
    assert summary["redraws"] >= 3  # run() and wait() redraw; how often depends on the machine (max_busy)
    assert summary["conflated"] > summary["redraws"]  # many quotes per redraw
    assert summary["displayed"] is True and summary["errors"] == []
    # the displayed picture was updated in place to the three-panel chart (not the empty first one)
    (picture,) = pngs(nb)
    assert png_size(picture)[1] > 400


def test_strategy(tmp_path: Path) -> None:
    nb = execute("03_strategy.ipynb", tmp_path)
    summary = summary_of(nb)
    assert summary["buys"] >= 1 and summary["sells"] >= 1, summary  # the forced moves cross the averages
    assert summary["bars"] >= 2
    series = summary["plot"]["series"]
    assert series["AAPL price"] > 50 and series["AAPL fast"] == series["AAPL slow"] == series["AAPL price"]
    assert series.get("buy", 0) + series.get("sell", 0) == len(summary["signals"])
    (picture,) = pngs(nb)
    assert len(picture) > 10_000  # lines drawn, not an empty frame


def test_testing_with_marbles(tmp_path: Path) -> None:
    summary = summary_of(execute("04_testing_with_marbles.ipynb", tmp_path))
    assert summary["tests"] == 4
    assert summary["passed"] == 4, summary["outcomes"]


def test_resilience(tmp_path: Path) -> None:
    nb = execute("05_resilience.ipynb", tmp_path)
    summary = summary_of(nb)
    assert summary["faults"] == ["drop", "silent", "auth lost", "auth back"]
    states = summary["states"]
    assert states[-1] == "stopped" and states[-2] == "authenticated"
    assert summary["authenticated"] >= 4  # the first session and one recovery per fault
    assert "unauthenticated" in states and states.count("reconnecting") >= 3
    assert {"connection_lost", "watchdog", "authentication"} <= set(summary["error_kinds"])
    assert summary["quotes"] > 20
    assert len(pngs(nb)) == 1  # the timeline


def test_datasets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("duckdb")
    pytest.importorskip("pyarrow")
    pytest.importorskip("zstandard")
    monkeypatch.setenv("RXIBKR_DATASETS_SECONDS", "3")  # the kernel inherits it: a short recording
    nb = execute("06_datasets.ipynb", tmp_path)
    summary = summary_of(nb)
    assert summary["seconds"] == 3.0
    conids = {"265598", "272093", "4815747"}
    assert set(summary["rows"]) == conids and summary["rows"] == summary["delivered"]
    assert all(n > 10 for n in summary["rows"].values())
    assert set(summary["spread_median"]) == {"AAPL", "MSFT", "NVDA"}
    assert all(m > 0 for m in summary["spread_median"].values())
    assert summary["ohlc_conids"] == sorted(int(c) for c in conids) and summary["ohlc_bars"] >= 3
    assert summary["exported_equal"] is True
    (picture,) = pngs(nb)
    assert len(picture) > 10_000


def test_remote(tmp_path: Path) -> None:
    pytest.importorskip("redis")
    nb = execute("07_remote.ipynb", tmp_path)
    summary = summary_of(nb)
    assert summary["state"] == "authenticated"
    assert summary["symbols"] == ["AAPL", "MSFT", "NVDA"]
    assert summary["quotes"] > 10
    assert summary["late_symbol"] == "AAPL" and summary["late_fields"] >= 10  # the snapshot, not a delta
    table = [o for o in outputs(nb) if "text/markdown" in o.get("data", {})]
    assert table and "| AAPL | 265598 |" in table[0].data["text/markdown"]


def test_live_plot_keeps_redrawing_while_the_kernel_is_idle() -> None:
    """What JupyterLab sees after the cell returned: display updates (routed by display id) from the
    timer on the kernel's event loop, and a kernel that still answers the next cell."""
    import queue
    import time

    from jupyter_client.manager import KernelManager

    specs = KernelSpecManager(kernel_dirs=[], ensure_native_kernel=True)
    manager = KernelManager(kernel_name="python3", kernel_spec_manager=specs)
    manager.start_kernel()
    client = manager.client()
    client.start_channels()
    try:
        client.wait_for_ready(timeout=60)
        setup = client.execute(
            "from rxibkr import IbkrWsClient\n"
            "from rxibkr import operators as rxo\n"
            "from rxibkr.plot import live_plot\n"
            "from rxibkr.sim import GatewaySimulator\n"
            "sim = GatewaySimulator(md_interval=0.05, heartbeat_interval=0.5).start()\n"
            "client = IbkrWsClient(url=sim.ws_url, cacert=sim.cacert, account_id=sim.account)\n"
            "assert client.start()\n"
            "plot = live_plot(client.market_data(265598).pipe(rxo.snapshots()), interval=0.2)\n"
        )
        display_id = None
        while True:
            msg = client.get_iopub_msg(timeout=60)
            if msg["parent_header"].get("msg_id") != setup:
                continue
            if msg["msg_type"] == "error":
                pytest.fail("\n".join(msg["content"]["traceback"]))
            if msg["msg_type"] == "display_data":
                display_id = msg["content"]["transient"]["display_id"]
            if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
                break
        assert display_id is not None

        updates: list[dict[str, Any]] = []
        deadline = time.monotonic() + 20
        while len(updates) < 3 and time.monotonic() < deadline:  # no cell is running now
            try:
                msg = client.get_iopub_msg(timeout=1)
            except queue.Empty:
                continue
            if msg["msg_type"] == "update_display_data":
                updates.append(msg["content"])
        assert len(updates) >= 3
        assert all(u["transient"]["display_id"] == display_id and "image/png" in u["data"] for u in updates)

        reply = client.execute_interactive("print(plot.redraws)", timeout=30)
        assert reply["content"]["status"] == "ok"
        reply = client.execute_interactive("plot.stop(); client.shutdown(); sim.stop()", timeout=30)
        assert reply["content"]["status"] == "ok"
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)
