"""report.html in a real browser: headless Chromium over the DevTools protocol.

No console errors or exceptions, every image decoded, and the numbers the page shows
are those of the parquet files.  Skips when Debian's ``chromium`` or the
``websocket-client`` package is missing (``.ci/run`` installs chromium).
"""

import pandas as pd
import pytest
from cdp_browser import Browser, find_chromium

from simulator.cli.main import main
from simulator.config.loading import scenario_from_dict
from simulator.experiments import run_experiment
from simulator.report.common import column_format
from simulator.run.runner import run_scenario

IMAGES = ("Promise.all(Array.from(document.images).map(i => i.decode().then(() => true, () => false)))"
          ".then(ok => Array.from(document.images).map((i, k) => "
          "({id: i.id, ok: ok[k], complete: i.complete, w: i.naturalWidth, h: i.naturalHeight})))")
CELLS = ("Array.from(document.querySelectorAll('#{table} td.num')).map(td => "
         "[td.dataset.col, td.dataset.value, td.textContent.replace(' ★', '')])")


@pytest.fixture
def browser():
    exe = find_chromium()
    if exe is None:
        pytest.skip("chromium is not installed (apt-get install chromium; .ci/run does it)")
    pytest.importorskip("websocket", reason="websocket-client is not installed")
    b = Browser(exe, timeout=60)
    yield b
    b.close()


def _check_page(browser, page):
    browser.open(page)
    images = browser.evaluate(IMAGES, await_promise=True)
    assert images and all(i["ok"] and i["complete"] and i["w"] > 100 and i["h"] > 100 for i in images), images
    browser.pump(0.3)
    assert browser.console_errors == []
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
    cells = browser.evaluate(CELLS.replace("{table}", "summary-table"))
    shown = [(float(v), t) for c, v, t in cells if c == "revenue $/person"]
    fmt = column_format(rev)
    assert [v for v, _ in shown] == pytest.approx(rev, rel=1e-12)
    assert [t for _, t in shown] == [fmt(x) for x in rev]
    inc = pd.read_parquet(out / "incidence.parquet")
    dec = inc[(inc.grouping == "income_decile")]
    cells = browser.evaluate(CELLS.replace("{table}", "incidence-flat25-income_decile"))
    shown = [float(v) for c, v, _ in cells if c == "change post-tax $"]
    assert shown == pytest.approx(dec["d_post_tax"].tolist(), rel=1e-12)


def test_the_browser_check_catches_broken_pages(tmp_path, browser):
    bad = tmp_path / "bad.html"
    bad.write_text('<!DOCTYPE html><html><head><link rel="icon" href="data:,"></head><body>'
                   '<img src="data:image/png;base64,AAAA"><script>notDefined()</script></body></html>')
    browser.open(bad)
    assert not browser.evaluate(IMAGES, await_promise=True)[0]["ok"]
    browser.pump(0.3)
    assert any("notDefined" in str(e) or "Uncaught" in str(e) for e in browser.console_errors)


def test_run_report_in_chromium(tmp_path, browser):
    sc = scenario_from_dict({"population": {"size": 60, "source": "census"}, "planner": {"kind": "saez"},
                             "run": {"tax_years": 2}})
    run_scenario(sc, tmp_path / "run", progress=False)
    assert main(["report", str(tmp_path / "run")]) == 0
    _check_page(browser, tmp_path / "run" / "report" / "report.html")
    years = pd.read_parquet(tmp_path / "run" / "years.parquet")
    cells = browser.evaluate(CELLS.replace("{table}", "years"))
    assert [float(v) for c, v, _ in cells if c == "revenue $/person"] == pytest.approx(years["revenue"].tolist(), rel=1e-12)
