"""The exploration page in a real browser: ``econsim explore`` served on 127.0.0.1 and
opened in headless Chromium (Debian's ``chromium``; ``.ci/run`` installs it when absent),
driven through the DevTools protocol.

Checks: the controls and plots are shown with no console errors; moving the top bracket's
rate slider with a real mouse click changes the revenue shown; an invalid combination
(minimum hours above the maximum) shows the validation message and keeps the revenue.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("solara", reason="the page needs the explore extra (solara)")
pytest.importorskip("websocket", reason="the browser test needs websocket-client (dev extra)")

from cdp_browser import Browser, find_chromium, free_port, wait_http  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]
ROOT = Path(__file__).resolve().parents[1]

REVENUE_JS = "((document.querySelector('.econsim-revenue') || {}).innerText || '')"
ERROR_JS = "Array.from(document.querySelectorAll('.econsim-error')).map(e => e.innerText).join(' ')"


def slider_box(label_start: str) -> str:
    """JavaScript: the page rectangle of the slider track whose label starts with ``label_start``."""
    return f"""(() => {{
      for (const inp of document.querySelectorAll('.v-input.v-input__slider')) {{
        const label = inp.querySelector('label');
        if (label && label.innerText.trim().startsWith({label_start!r})) {{
          inp.scrollIntoView({{block: 'center'}});
          const r = inp.querySelector('.v-slider').getBoundingClientRect();
          return {{x: r.left, y: r.top, w: r.width, h: r.height}};
        }}
      }}
      return null;
    }})()"""


def revenue(text: str) -> float:
    m = re.search(r"\$([\d,]+)", text)
    assert m, f"no revenue in {text!r}"
    return float(m.group(1).replace(",", ""))


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    port = free_port()
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    log_path = tmp_path_factory.mktemp("explore") / "server.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "simulator.cli.main", "explore", "rational_baselines",
             "--port", str(port), "--param", "population_size=1000"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}/"
    try:
        wait_http(url, timeout=90)
    except TimeoutError:
        os.killpg(proc.pid, signal.SIGKILL)
        pytest.fail(f"econsim explore did not serve {url}: {log_path.read_text()[-2000:]}")
    yield url
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)


@pytest.fixture
def browser():
    exe = find_chromium()
    if exe is None:
        pytest.skip("chromium is not installed (apt-get install -y chromium)")
    b = Browser(exe, timeout=30)
    yield b
    b.close()


def test_page_in_chromium_rate_slider_changes_revenue(server, browser, tmp_path):
    t0 = time.monotonic()
    browser.goto(server)
    first = browser.wait_for(f"{REVENUE_JS}.includes('$') && {REVENUE_JS}", 60, "the revenue line")
    rev0 = revenue(first)
    # controls: one slider per bracket rate, the planner and the Mesa buttons
    labels = browser.evaluate(
        "Array.from(document.querySelectorAll('.v-input label')).map(l => l.innerText.trim())")
    assert sum(bool(re.match(r"rate_\d, \$", label)) for label in labels) == 7, labels
    assert {"planner", "scenario", "workers", "population source"} <= set(labels), labels
    assert any(label.startswith("rebate share") for label in labels)
    buttons = browser.evaluate("Array.from(document.querySelectorAll('button')).map(b => b.innerText.trim())")
    assert {"RESET", "STEP"} <= {b.upper() for b in buttons}, buttons
    # plots: the matplotlib views arrive as images with real content
    n_plots = browser.wait_for(
        "Array.from(document.querySelectorAll('img')).filter(i => i.naturalWidth > 200).length >= 6"
        " && Array.from(document.querySelectorAll('img')).filter(i => i.naturalWidth > 200).length",
        30, "six plots")
    assert n_plots >= 6

    # a real click on the third bracket's rate slider ($47,150-$100,525), at 90 % of its width
    box = browser.evaluate(slider_box("rate_2,"))
    assert box, "no slider for rate_2"
    browser.click(box["x"] + 0.9 * box["w"], box["y"] + box["h"] / 2)
    changed = browser.wait_for(
        f"{REVENUE_JS}.includes('$') && {REVENUE_JS} !== {first!r} && {REVENUE_JS}",
        30, "the revenue to change after the rate slider moved")
    rev1 = revenue(changed)
    assert rev1 != rev0
    rates = browser.evaluate("document.querySelector('.econsim-rates').innerText")
    third = float(rates.split(":")[1].split(",")[2].strip().rstrip("%"))
    assert 80.0 <= third <= 100.0, rates  # the slider spans 0-100 %
    assert not browser.evaluate(ERROR_JS)

    # Mesa's Step button runs one tax year
    step = browser.evaluate("""(() => { const b = Array.from(document.querySelectorAll('button'))
        .find(b => b.innerText.trim().toUpperCase() === 'STEP'); b.scrollIntoView({block: 'center'});
        const r = b.getBoundingClientRect(); return {x: r.left + r.width / 2, y: r.top + r.height / 2}; })()""")
    browser.click(step["x"], step["y"])
    browser.wait_for("document.body.innerText.includes('tax years run: 2')", 30, "a second tax year")

    # bad input: the minimum hours slider pushed above the maximum (100 h)
    box = browser.evaluate(slider_box("min hours"))
    browser.click(box["x"] + 0.95 * box["w"], box["y"] + box["h"] / 2)
    message = browser.wait_for(ERROR_JS, 30, "the validation message")
    assert "hours_bounds" in message and "min < max" in message
    assert revenue(browser.evaluate(REVENUE_JS)) == rev1  # the last valid state is kept
    assert "Traceback" not in browser.evaluate("document.body.innerText")

    browser.pump(1.0)
    browser.screenshot(tmp_path / "explore.png")
    assert browser.console_errors == [], browser.console_errors
    assert time.monotonic() - t0 < 120
