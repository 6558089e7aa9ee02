"""The exploration page's model building, views and plots (no browser; see test_explore_browser)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import yaml

from simulator.cli.main import main
from simulator.economy import IsoelasticUtility, TaxSchedule, best_response, equilibrium, evaluate
from simulator.economy.participation import FixedCostUtility
from simulator.economy.taxbenefit.system import Households, USTaxBenefit
from simulator.errors import UserError
from simulator.explore.model import (
    ExploreModel,
    build_scenario,
    decile_of,
    default_settings,
    schedule_curves,
    winners_losers,
)

US = TaxSchedule.us_federal(2024, "single", standard_deduction=True)  # the scenario default (the law)
SMALL = {"population_size": 300}


@pytest.fixture(scope="module")
def model():
    return ExploreModel("rational_baselines", **SMALL)


def expected_revenue(m: ExploreModel, rates) -> float:
    """Revenue per person from the economic core directly, independent of the page."""
    eco = m.economy
    util = IsoelasticUtility(eta=m.settings["eta"], frisch=m.settings["frisch"])
    if "fixed_cost" in eco.population.columns:  # rational_baselines: people may not work
        util = FixedCostUtility(util, eco.population["fixed_cost"].to_numpy(float),
                                eco.settings.population.participation.nonwork_income)
    # rational_baselines runs the us_current_law world with the revenue requirement
    world = USTaxBenefit(Households.from_frame(eco.population), 2024)
    base = world.bind(US)
    h0 = best_response(base, eco.wages, util, 0.0, eco.hours_bounds)
    requirement = float(np.average(base.attributed_tax(eco.wages * h0), weights=eco.weights))
    budget = world.bind(US.with_rates(rates))
    hours, _ = equilibrium(budget, eco.wages, util, eco.rebate_share, eco.hours_bounds, eco.weights,
                           requirement=requirement)
    return float(np.average(budget.attributed_tax(eco.wages * hours), weights=eco.weights))


def test_default_settings_start_from_the_scenario_schedule():
    s = default_settings("rational_baselines")
    assert s["planner"] == "fixed"  # the US federal planner becomes the rate sliders at US rates
    assert [s[f"rate_{i}"] for i in range(7)] == pytest.approx([100 * r for r in US.rates])
    assert s["population_size"] == 5000 and s["seed"] == 7 and s["rebate_share"] == 100


def test_build_scenario_maps_every_control():
    s = {**default_settings("rational_baselines"), "rate_6": 45.0, "rebate_share": 50.0,
         "min_hours": 5.0, "max_hours": 80.0, "eta": 0.5, "frisch": 0.3, "seed": 11,
         "population_size": 123}
    sc = build_scenario(s)
    assert sc.planner.kind == "fixed"
    assert sc.planner.rates == pytest.approx([*US.rates[:6], 0.45])
    assert sc.economy.rebate_share == 0.5
    assert sc.economy.hours_bounds == (5.0, 80.0)
    assert (sc.economy.utility.eta, sc.economy.utility.frisch) == (0.5, 0.3)
    assert sc.run.seed == 11 and sc.population.size == 123
    assert not sc.compare
    flat = build_scenario({**s, "planner": "flat", "flat_rate": 25.0})
    assert flat.planner.kind == "flat" and flat.planner.rate == 0.25 and flat.planner.rates is None


@pytest.mark.parametrize("change, where", [
    ({"rate_6": 137.0}, "planner.rates"),
    ({"min_hours": 60.0, "max_hours": 40.0}, "economy.hours_bounds"),
    ({"population_source": "file"}, "population.path"),
    ({"population_size": 0}, "population.size"),
])
def test_build_scenario_rejects_invalid_combinations(change, where):
    with pytest.raises(UserError) as err:
        build_scenario({**default_settings("rational_baselines"), **change})
    assert where in str(err.value)


def test_first_year_revenue_matches_the_core(model):
    assert len(model.economy.history) == 1 and model.steps == 1  # a cheap economy runs year 0 at once
    assert model.last("revenue") == pytest.approx(expected_revenue(model, US.rates), rel=1e-6)
    assert model.economy.n_workers == 300


def test_rate_change_applies_at_once_and_bad_input_keeps_the_last_valid_state():
    m = ExploreModel("rational_baselines", **SMALL)
    rev0 = m.last("revenue")
    assert m.apply(rate_1=30.0) is None and m.error is None
    rates = [0.10, 0.30, 0.22, 0.24, 0.32, 0.35, 0.37]
    assert m.economy.schedule.rates == pytest.approx(rates)
    assert m.last("revenue") == pytest.approx(expected_revenue(m, rates), rel=1e-6)
    assert m.last("revenue") > rev0
    state = (m.economy, dict(m.settings), m.last("revenue"), m.steps)
    msg = m.apply(rate_6=137.0)
    assert msg and "planner.rates" in msg and "[0, 1]" in msg and m.error == msg
    assert msg.startswith("rate_6 = 137 % is outside 0-100 %")  # in the page's own unit first
    assert (m.economy, m.settings, m.last("revenue"), m.steps) == state  # nothing moved
    assert m.settings_ref == m.settings  # Mesa's Reset rebuilds from the last valid settings
    assert m.apply(min_hours=70.0, max_hours=50.0).startswith("page: economy.hours_bounds")
    assert m.economy is state[0]
    assert m.apply(rate_1=12.0) is None and m.error is None  # a valid change clears the message
    assert m.last("revenue") == pytest.approx(rev0, rel=1e-9)


def test_reset_rebuilds_from_the_shared_settings():
    m = ExploreModel("rational_baselines", **SMALL)
    m.apply(rate_6=50.0)
    m.run_years(2)
    fresh = ExploreModel(settings=m.settings_ref)  # what Mesa's Reset button does
    assert fresh.settings == m.settings and fresh.steps == 1
    assert fresh.last("revenue") == pytest.approx(m.last("revenue"), rel=1e-9)
    # Mesa 3.5's Reset also passes scenario=<a mesa Scenario object>: the settings still rule
    again = ExploreModel(scenario=object(), settings=m.settings_ref)
    assert again.settings == m.settings


def test_unknown_control_and_scenario_errors_are_user_errors():
    with pytest.raises(UserError, match="unknown control"):
        ExploreModel("rational_baselines", rate_99=3.0)
    with pytest.raises(UserError, match="no such scenario"):
        ExploreModel("no_such_scenario")
    m = ExploreModel("rational_baselines", **SMALL)
    assert "no such scenario" in m.apply(scenario="no_such_scenario")


def test_datacollector_rows_per_year_and_welfare_against_the_start():
    m = ExploreModel("rational_baselines", **SMALL)
    m.run_years(2)
    df = m.datacollector.get_model_vars_dataframe()
    assert list(df["year"]) == [0, 1, 2]
    assert np.allclose(df["welfare_revenue"], 0.0)  # the starting schedule itself
    m.apply(rate_0=20.0)
    rev_base = m.baseline_welfare["revenue"]
    df = m.datacollector.get_model_vars_dataframe()
    assert len(df) == 1  # a change restarts at year 0
    assert df["welfare_revenue"].iloc[0] == pytest.approx(100 * (m.last("revenue") - rev_base) / rev_base)
    assert rev_base == pytest.approx(expected_revenue(m, US.rates), rel=1e-6)


def test_saez_planner_moves_the_schedule_over_years():
    m = ExploreModel("rational_baselines", **SMALL, planner="saez")
    m.run_years(2)
    years = m.years
    assert len(years) == 3
    assert years["rate_6"].iloc[0] == pytest.approx(0.37)  # the first year keeps the start
    assert years["rate_6"].iloc[2] != pytest.approx(0.37)


def test_decile_of_matches_a_sort_into_ten_equal_groups():
    rng = np.random.default_rng(0)
    x = rng.lognormal(10, 1, 1000)
    dec = decile_of(x)
    expected = np.empty(1000, dtype=int)
    expected[np.argsort(x)] = np.repeat(np.arange(10), 100)
    assert np.array_equal(dec, expected)
    w = np.r_[np.full(500, 3.0), np.full(500, 1.0)]  # weighted: the 500 poorest weigh 3 each
    dec = decile_of(np.arange(1000.0), w)
    weight_per_decile = np.bincount(dec, weights=w)
    assert np.all(np.abs(weight_per_decile - 200.0) <= 3.0)  # a tenth of 2,000, up to one worker
    assert np.all(np.diff(dec) >= 0)  # ranked by income


def test_winners_losers_against_an_independent_groupby():
    rng = np.random.default_rng(1)
    n = 500
    wages = rng.lognormal(7, 0.7, n)
    util = IsoelasticUtility()
    h0, _ = equilibrium(US, wages, util)
    flat = US.with_rates([0.25] * 7)
    h1, _ = equilibrium(flat, wages, util)
    base, now = evaluate(US, wages, h0, util), evaluate(flat, wages, h1, util)
    table = winners_losers(base, now)
    df = pd.DataFrame({"z": base.pre_tax, "d": now.post_tax - base.post_tax, "du": now.utility - base.utility})
    df["g"] = pd.qcut(df["z"].rank(method="first"), 10, labels=False)
    g = df.groupby("g")
    assert table["mean_change_post_tax"].to_numpy() == pytest.approx(g["d"].mean().to_numpy())
    assert table["share_winners"].to_numpy() == pytest.approx(g["du"].apply(lambda s: (s > 0).mean()).to_numpy())
    assert table["share_losers"].to_numpy() == pytest.approx(g["du"].apply(lambda s: (s < 0).mean()).to_numpy())
    assert table["income_low"].is_monotonic_increasing


def test_schedule_curves_against_the_tax_formula():
    z = np.array([10_000.0, 50_000.0, 700_000.0])
    c = schedule_curves(TaxSchedule.us_federal(2024, "single", standard_deduction=False),
                        rebate=5_000.0, incomes=z)  # from the first dollar
    assert c["marginal_rate"].tolist() == pytest.approx([0.10, 0.22, 0.37])
    # by hand: 10 % of 11,600 + 12 % of 35,550 + 22 % of 2,850 = 6,053 on $50,000
    assert c["average_rate"][1] == pytest.approx(6_053.0 / 50_000)
    assert c["effective_average_rate"][1] == pytest.approx((6_053.0 - 5_000.0) / 50_000)
    assert c["effective_average_rate"][0] == pytest.approx((1_000.0 - 5_000.0) / 10_000)


def test_plot_functions_draw_each_view(model):
    from simulator.explore import plots

    fig = plots.schedule_figure(model)
    ax = fig.axes[0]
    assert len(ax.get_lines()) >= 4  # marginal, average, effective, starting marginal
    assert "year 0" in ax.get_title()
    fig = plots.distributions_figure(model)
    assert [a.get_xlabel() for a in fig.axes] == ["hours a week", "post-tax income incl. rebate, $/yr"]
    assert all(len(a.patches) == 2 for a in fig.axes)  # now and the starting schedule
    m = ExploreModel("rational_baselines", **SMALL, rate_6=80.0)
    fig = plots.winners_losers_figure(m)
    heights = [p.get_height() for p in fig.axes[0].patches]
    assert heights == pytest.approx(m.winners_losers()["mean_change_post_tax"].tolist())
    fig = plots.llm_figure(model)
    assert "no LLM agents" in fig.axes[0].texts[0].get_text()
    assert plots.llm_table(model) == ""


def _llm_scenario(tmp_path):
    path = tmp_path / "llm.yaml"
    path.write_text(yaml.safe_dump({
        "name": "llm_page", "population": {"size": 6, "source": "gb2"},
        "workers": {"policy": "llm"}, "planner": {"kind": "us_federal"},
        "run": {"seed": 3}, "llm": {"backend": "scripted", "cache": "off"},
    }))
    return str(path)


def test_llm_workers_show_fallback_rate_and_telemetry(tmp_path):
    from simulator.explore import plots

    m = ExploreModel(_llm_scenario(tmp_path))
    assert m.uses_llm and m.steps == 0 and m.baseline is None  # LLM years run on Step only
    m.step()
    assert m.baseline is not None  # LLM workers compare with their first year
    row = m.datacollector.get_model_vars_dataframe().iloc[-1]
    assert 0.0 <= row["fallback_rate"] <= 1.0
    assert row["llm_requests"] >= 6  # one prompt per worker at least
    fig = plots.llm_figure(m)
    assert fig.axes[0].get_ylabel() == "fallback rate"
    table = plots.llm_table(m)
    assert "fallback_rate" in table and "llm_requests" in table


def test_explore_cli_rejects_bad_input_in_one_line(capsys):
    pytest.importorskip("solara", reason="econsim explore needs the explore extra (solara)")
    assert main(["explore", "no_such_scenario"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no such scenario" in err[0]
    assert main(["explore", "rational_baselines", "--param", "min_hours=100",
                 "--param", "max_hours=50", "--param", "population_size=50"]) == 2
    assert "economy.hours_bounds" in capsys.readouterr().err  # a combination: the schema's check
    assert main(["explore", "rational_baselines", "--port", "70000"]) == 2


@pytest.mark.parametrize("param, message", [
    ("rate_6=abc", "--param rate_6=abc: expected a number (0-100 %)"),
    ("rate_6=150", "--param rate_6=150: outside 0-100 %"),
    ("rate_7=30", "--param rate_7=30: unknown control; known: scenario, population_size"),
    ("rate_6=[", "--param rate_6=[: expected a number"),
    ("population_size=5", "--param population_size=5: outside 10-200000"),
    ("population_size=500.5", "--param population_size=500.5: expected a whole number"),
    ("seed=-1", "--param seed=-1: outside 0-1000"),
    ("planner=nope", "--param planner=nope: expected one of fixed, us_federal"),
    ("workers=7", "--param workers=7: expected one of rational"),
    ("eta=nan", "--param eta=nan: outside 0-3"),
    ("rate_6", "--param 'rate_6': expected NAME=VALUE"),
])
def test_explore_cli_bad_param_is_one_line_exit_2(capsys, param, message):
    """Each bad --param is one line naming the control and what it takes, exit 2, at
    once (before any server starts), and never a traceback."""
    import time

    pytest.importorskip("solara", reason="econsim explore needs the explore extra (solara)")
    t0 = time.monotonic()
    assert main(["explore", "rational_baselines", "--param", param]) == 2
    assert time.monotonic() - t0 < 30
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"econsim: error: {message}"), err


def test_controls_are_checked_and_converted_for_python_callers_too():
    from simulator.explore.model import check_controls, control_range

    start = default_settings("rational_baselines")
    assert check_controls({"rate_6": "45", "population_size": 500.0, "seed": 3}, start) == {
        "rate_6": 45.0, "population_size": 500, "seed": 3}
    with pytest.raises(UserError, match="rate_6=abc: expected a number") as info:
        ExploreModel("rational_baselines", rate_6="abc")
    assert len(info.value.problems) == 1
    # a scenario's own value outside the page's range widens it (million.yaml: 1,000,000 workers)
    assert control_range("population_size", {"population_size": 1_000_000}) == (10, 1_000_000, 10)
    assert control_range("rate_3") == (0.0, 100.0, 0.5)


def test_page_controls_are_mesa_sliders(model):
    pytest.importorskip("solara", reason="the page needs the explore extra (solara)")
    from simulator.explore import page  # before mesa.visualization: it filters a Mesa warning
    from simulator.explore.page import components, economy_params, tax_params

    Slider = page.Slider  # Mesa's

    tax = tax_params(model)
    rates = [k for k in tax if k.startswith("rate_")]
    assert rates == [f"rate_{i}" for i in range(7)]
    assert all(isinstance(tax[k], Slider) and (tax[k].min, tax[k].max) == (0.0, 100.0) for k in rates)
    assert tax["rate_2"].value == pytest.approx(22.0) and tax["rate_2"].label.startswith("rate_2, $47,150-$100,525")
    assert all(tax[k].label.startswith(f"{k}, ") for k in rates)  # the names --param takes
    eco = economy_params(model)
    assert {"scenario", "population_size", "population_source", "eta", "frisch", "seed"} <= set(eco)
    assert "rational_baselines" in eco["scenario"]["values"]
    flat = ExploreModel("rational_baselines", **SMALL, planner="flat")
    assert "flat_rate" in tax_params(flat) and "rate_0" not in tax_params(flat)
    assert len(components()) == 7


def test_page_renders_and_its_controls_drive_the_model():
    """The whole SolaraViz page rendered in-process (no browser): sliders, Mesa's Step and
    Reset, Run N years, and a rejected combination."""
    solara = pytest.importorskip("solara", reason="the page needs the explore extra (solara)")
    import ipyvuetify as v

    from simulator.explore import explore_page

    box, rc = solara.render(solara.AppLayout(children=[explore_page("rational_baselines", **SMALL)]),
                            handle_error=False)
    try:
        def text(cls):
            return rc.find(v.Html, class_=cls).widget.children[0]

        def slider(label):
            return next(w for w in rc.find(v.Slider).widgets if w.label.startswith(label))

        def button(label):
            return next(w for w in rc.find(v.Btn).widgets
                        if any(label in str(c) for c in w.children))

        rev0 = text("econsim-revenue")
        assert rev0.startswith("Revenue per person: $")
        # the rate sliders carry the names --param takes: rate_0 ... rate_6
        assert sorted(w.label.split(",")[0] for w in rc.find(v.Slider).widgets
                      if w.label.startswith("rate_")) == [f"rate_{i}" for i in range(7)]
        slider("rate_2,").v_model = 60.0  # $47,150-$100,525: many of the 300 workers
        rev1 = text("econsim-revenue")
        assert rev1 != rev0 and "60.0%" in text("econsim-rates")
        slider("min hours").v_model = 150.0  # above the maximum: rejected
        alerts = [a.children[0] for a in rc.find(v.Alert).widgets]
        assert any("economy.hours_bounds" in a for a in alerts), alerts
        assert text("econsim-revenue") == rev1
        button("Step").fire_event("click", {})  # Mesa's Step: one tax year
        assert "tax years run: 2" in text("econsim-summary")
        button("Run 5 years").fire_event("click", {})
        assert "tax years run: 7" in text("econsim-summary")
        button("Reset").fire_event("click", {})  # Mesa's Reset: year 0 from the last valid settings
        assert "tax years run: 1" in text("econsim-summary")
        assert "60.0%" in text("econsim-rates") and text("econsim-revenue") == rev1
    finally:
        rc.close()


def _serve(tmp_path, *extra):
    """Start `econsim explore --port 0` in a subprocess; (process, port) once it says it
    serves (the port it printed)."""
    import os
    import re
    import select
    import subprocess
    import sys
    import time
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "simulator.cli.main", "explore", "rational_baselines", "--port", "0",
         "--param", "population_size=200", *extra],
        env={**os.environ, "PYTHONPATH": str(root)}, cwd=tmp_path,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline, seen = time.monotonic() + 240, []
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], 1.0)
        if not ready:
            assert proc.poll() is None, "".join(seen)
            continue
        line = proc.stdout.readline()
        assert line or proc.poll() is None, "".join(seen)
        seen.append(line)
        if m := re.match(r"econsim: serving rational_baselines at http://127\.0\.0\.1:(\d+) ", line):
            return proc, int(m.group(1))
    proc.kill()
    raise AssertionError("the page never said it was serving:\n" + "".join(seen))


def _port_free(port: int) -> bool:
    import socket

    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return False
    except OSError:
        return True


@pytest.mark.slow
def test_explore_port_0_prints_the_real_port_and_kill_9_ends_the_server(tmp_path):
    """`--port 0` prints the port it serves on (not 0), which answers HTTP; SIGKILL of
    `econsim explore` ends the Solara server (found through /proc before the kill) within
    5 s and frees the port."""
    import os
    import signal
    import time
    import urllib.request

    from test_lifeline import descendants, gone_within, kill_tree

    pytest.importorskip("solara", reason="econsim explore needs the explore extra (solara)")
    proc, port = _serve(tmp_path)
    kids: set[int] = set()
    try:
        assert port != 0
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=60) as r:
            assert r.status == 200
        kids = descendants(proc.pid)
        assert kids, "no server process"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        t0 = time.monotonic()
        left = gone_within(kids, 5.0)
        assert not left, f"server processes {sorted(left)} outlived `econsim explore` by 5 s"
        while not _port_free(port) and time.monotonic() - t0 < 5.0:
            time.sleep(0.05)
        assert _port_free(port) and time.monotonic() - t0 < 5.0
    finally:
        kill_tree(proc.pid, kids)


@pytest.mark.slow
def test_explore_sigterm_stops_the_server_and_exits_143(tmp_path):
    import signal
    import time

    from test_lifeline import descendants, gone_within, kill_tree

    pytest.importorskip("solara", reason="econsim explore needs the explore extra (solara)")
    proc, port = _serve(tmp_path)
    kids: set[int] = set()
    try:
        kids = descendants(proc.pid)
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)  # to `econsim explore` only, as `kill PID` does
        assert proc.wait(timeout=15) == 128 + signal.SIGTERM
        assert not gone_within(kids, 5.0) and _port_free(port)
        assert time.monotonic() - t0 < 15
    finally:
        kill_tree(proc.pid, kids)
