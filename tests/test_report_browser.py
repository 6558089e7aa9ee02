"""report.html in a real browser: headless Chromium over the DevTools protocol.

No console errors or exceptions, every image decoded, and the numbers the page shows
are those of the parquet files.  Skips when Debian's ``chromium`` or the
``websocket-client`` package is missing (``.ci/run`` installs chromium).
"""

import json
import shutil
import subprocess
import time
import urllib.request

import pandas as pd
import pytest

from simulator.cli.main import main
from simulator.experiments import run_experiment
from simulator.report import column_format
from simulator.runner import run_scenario
from simulator.scenario import scenario_from_dict

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


class Browser:
    """A headless Chromium and one page, driven through the DevTools protocol."""

    def __init__(self, profile):
        websocket = pytest.importorskip("websocket", reason="websocket-client is not installed")
        self.proc = subprocess.Popen(
            [CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-dev-shm-usage",
             "--disable-extensions", "--remote-debugging-port=0", "--remote-allow-origins=*",
             f"--user-data-dir={profile}", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        port_file = profile / "DevToolsActivePort"
        deadline = time.time() + 60
        while not (port_file.exists() and port_file.read_text().strip()):
            if time.time() > deadline or self.proc.poll() is not None:
                self.close()
                pytest.fail("chromium did not start")
            time.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        targets = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10))
        url = next(t["webSocketDebuggerUrl"] for t in targets if t["type"] == "page")
        self.ws = websocket.create_connection(url, timeout=60, suppress_origin=True)
        self.next_id = 0
        self.events = []

    def call(self, method, **params):
        self.next_id += 1
        mid = self.next_id
        self.ws.send(json.dumps({"id": mid, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == mid:
                if "error" in msg:
                    raise RuntimeError(msg["error"])
                return msg["result"]
            self.events.append(msg)

    def wait_for(self, method, timeout=60):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if any(e.get("method") == method for e in self.events):
                return
            self.events.append(json.loads(self.ws.recv()))
        raise TimeoutError(method)

    def open(self, path):
        for domain in ("Page", "Runtime", "Log"):
            self.call(f"{domain}.enable")
        self.call("Page.navigate", url=path.resolve().as_uri())
        self.wait_for("Page.loadEventFired")

    def js(self, expression):
        res = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        return res["result"].get("value")

    def errors(self):
        out = []
        for e in self.events:
            m, p = e.get("method"), e.get("params", {})
            if m == "Runtime.exceptionThrown":
                out.append(p["exceptionDetails"].get("text"))
            elif m == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
                out.append(str(p.get("args")))
            elif m == "Log.entryAdded" and p["entry"].get("level") == "error":
                out.append(p["entry"].get("text"))
        return out

    def close(self):
        try:
            self.ws.close()
        except Exception:  # noqa: BLE001
            pass
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


IMAGES = ("Promise.all(Array.from(document.images).map(i => i.decode().then(() => true, () => false)))"
          ".then(ok => Array.from(document.images).map((i, k) => "
          "({id: i.id, ok: ok[k], complete: i.complete, w: i.naturalWidth, h: i.naturalHeight})))")
CELLS = ("Array.from(document.querySelectorAll('#{table} td.num')).map(td => "
         "[td.dataset.col, td.dataset.value, td.textContent.replace(' ★', '')])")


@pytest.fixture
def browser(tmp_path):
    if CHROMIUM is None:
        pytest.skip("chromium is not installed (apt-get install chromium; .ci/run does it)")
    b = Browser(tmp_path / "profile")
    yield b
    b.close()


def _check_page(browser, page):
    browser.open(page)
    images = browser.js(IMAGES)
    assert images and all(i["ok"] and i["complete"] and i["w"] > 100 and i["h"] > 100 for i in images), images
    assert browser.errors() == []
    return images


def test_experiment_report_in_chromium(tmp_path, browser):
    sc = scenario_from_dict({"population": {"size": 60, "source": "census"}, "run": {"tax_years": 2, "seeds": 2},
                             "compare": [{"label": "us"}, {"label": "flat25", "planner": {"kind": "flat", "rate": 0.25}}]})
    run_experiment(sc, tmp_path / "e")
    assert main(["report", str(tmp_path / "e")]) == 0
    out = tmp_path / "e" / "report"
    images = _check_page(browser, out / "report.html")
    assert {"fig-over-years", "fig-schedules", "fig-tax-rates", "fig-deciles"} <= {i["id"] for i in images}
    # the summary shows the final-year means of the runs' years.parquet, formatted per column
    finals = []
    for v in ("us", "flat25"):
        for s in (0, 1):
            finals.append(pd.read_parquet(tmp_path / "e" / "runs" / v / f"seed-{s}" / "years.parquet").iloc[-1])
    finals = pd.DataFrame(finals)
    rev = [finals["revenue"].iloc[:2].mean(), finals["revenue"].iloc[2:].mean()]
    cells = browser.js(CELLS.replace("{table}", "summary-table"))
    shown = [(float(v), t) for c, v, t in cells if c == "revenue $/person"]
    fmt = column_format(rev)
    assert [v for v, _ in shown] == pytest.approx(rev, rel=1e-12)
    assert [t for _, t in shown] == [fmt(x) for x in rev]
    inc = pd.read_parquet(out / "incidence.parquet")
    dec = inc[(inc.grouping == "income_decile")]
    cells = browser.js(CELLS.replace("{table}", "incidence-flat25-income_decile"))
    shown = [float(v) for c, v, _ in cells if c == "change post-tax $"]
    assert shown == pytest.approx(dec["d_post_tax"].tolist(), rel=1e-12)


def test_the_browser_check_catches_broken_pages(tmp_path, browser):
    bad = tmp_path / "bad.html"
    bad.write_text('<!DOCTYPE html><html><head><link rel="icon" href="data:,"></head><body>'
                   '<img src="data:image/png;base64,AAAA"><script>notDefined()</script></body></html>')
    browser.open(bad)
    assert not browser.js(IMAGES)[0]["ok"]
    assert any("notDefined" in str(e) or "Uncaught" in str(e) for e in browser.errors())


def test_run_report_in_chromium(tmp_path, browser):
    sc = scenario_from_dict({"population": {"size": 60, "source": "census"}, "planner": {"kind": "saez"},
                             "run": {"tax_years": 2}})
    run_scenario(sc, tmp_path / "run", progress=False)
    assert main(["report", str(tmp_path / "run")]) == 0
    _check_page(browser, tmp_path / "run" / "report" / "report.html")
    years = pd.read_parquet(tmp_path / "run" / "years.parquet")
    cells = browser.js(CELLS.replace("{table}", "years"))
    assert [float(v) for c, v, _ in cells if c == "revenue $/person"] == pytest.approx(years["revenue"].tolist(), rel=1e-12)
