"""Reports of us_current_law runs: rates by household type, the net-tax decomposition and
the deciles, checked against hand computation and against agents.parquet; income-tax-only
reports gain none of it; experiment incidence gains the components' changes."""

from html.parser import HTMLParser

import numpy as np
import pandas as pd
import pytest

from simulator.config.loading import scenario_from_dict
from simulator.experiments import run_comparison
from simulator.report.common import TYPE_INCOMES, household_rate_curves
from simulator.report.markdown import write_report
from simulator.results import load_run
from simulator.run.runner import run_scenario

US = {"population": {"size": 300, "source": "census"},
      "economy": {"world": "us_current_law", "fiscal_rule": "revenue_requirement",
                  "utility": {"form": "isoelastic", "eta": 1.0, "frisch": 0.5}},
      "tax": {"us_federal": {"year": 2024, "filing_status": "single"}},
      "planner": {"kind": "us_federal"}, "workers": {"policy": "rational"},
      "run": {"tax_years": 1, "seed": 5}}
LAW_2024 = [0.10, 0.12, 0.22, 0.24, 0.32, 0.35, 0.37]
PAYROLL = 0.0765  # 6.2 % Social Security + 1.45 % Medicare, below the wage base
NEW_HEADINGS = ("## Effective tax rates by household type", "## Net tax, final year",
                "## By income decile, final year")
NEW_SECTIONS = ('id="household-rates"', 'id="net-tax"', 'id="tax-deciles"')


class _Tables(HTMLParser):
    """Numeric cells of every table with an id: id -> rows of {data-col: data-value}, and
    the first (text) cell of each row under key ``""``."""

    def __init__(self):
        super().__init__()
        self.tables: dict[str, list[dict[str, float | str]]] = {}
        self._id = None
        self._cell = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "table":
            self._id = a.get("id")
            if self._id:
                self.tables[self._id] = []
        elif tag == "tr" and self._id:
            self.tables[self._id].append({})
        elif tag == "td" and self._id:
            row = self.tables[self._id][-1]
            if "data-value" in a:
                row[a["data-col"]] = float(a["data-value"])
            elif "" not in row:
                self._cell = row

    def handle_data(self, data):
        if self._cell is not None:
            self._cell[""] = data
            self._cell = None

    def handle_endtag(self, tag):
        if tag == "table":
            self._id = None


def _html_tables(path) -> dict[str, list[dict]]:
    p = _Tables()
    p.feed(path.read_text(encoding="utf-8"))
    return {k: [r for r in v if r] for k, v in p.tables.items()}


@pytest.fixture(scope="module")
def us_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("us_report")
    run_scenario(scenario_from_dict(US, "us_report"), root / "run", progress=False)
    write_report(root / "run")
    return root / "run"


def _final(run):
    """Final-year agents with population weights and unit shares, computed here."""
    res = load_run(run)
    a = res.agents[res.agents["year"] == res.agents["year"].max()]
    a = a.merge(res.population[["id", "weight", "unit_earners"]], on="id", how="left")
    return res, a, a["weight"].to_numpy(float), 1.0 / a["unit_earners"].to_numpy(float)


def test_rates_by_household_type_match_hand_computation():
    """2024 law at the statutory rates, by hand: brackets of taxable income = earnings less
    the standard deduction, EITC and ACTC phase-ins and phase-outs, payroll tax."""
    c = household_rate_curves(US, LAW_2024).set_index(["household", "income"])

    def mtr(h, z):
        return float(c.loc[(h, float(z)), "marginal_rate"])

    single, hoh2 = "single, no children, 40", "head of household, 2 children"
    # $30,000 single: taxable 15,400 in the 12 % bracket; the childless EITC ends at $18,591
    assert mtr(single, 30_000) == pytest.approx(0.12 + PAYROLL, abs=1e-6)
    # $10,000 single: on the childless EITC plateau ($8,260-10,330), no taxable income
    assert mtr(single, 10_000) == pytest.approx(PAYROLL, abs=1e-6)
    # $20,000 head of household, 2 children: taxable income 0 (deduction $21,900), EITC on
    # its plateau ($17,400-22,720), the ACTC phasing in at 15 % of earnings above $2,500
    assert mtr(hoh2, 20_000) == pytest.approx(-0.15 + PAYROLL, abs=1e-6)
    # $30,000: EITC phase-out 21.06 %; the 10 % income tax is offset by the nonrefundable
    # CTC, which crowds out as much ACTC (capped at 2 x $1,700): +10 % on net
    assert mtr(hoh2, 30_000) == pytest.approx(0.2106 + 0.10 + PAYROLL, abs=1e-6)
    # $250,000 single: 32 % bracket, above the Social Security wage base, Medicare 1.45 %
    # plus the additional 0.9 % above $200,000
    assert mtr(single, 250_000) == pytest.approx(0.32 + 0.0145 + 0.009, abs=1e-6)
    # average net tax rate, single $50,000: 10 % of 11,600 + 12 % of 23,800, plus payroll
    assert float(c.loc[(single, 50_000.0), "average_rate"]) == pytest.approx(
        (1_160 + 0.12 * 23_800 + PAYROLL * 50_000) / 50_000, abs=1e-9)
    # spouse earning $40,000: the rate is of own earnings, T(0) (the spouse's taxes) taken off
    two = c.loc["married, 2 children, spouse earns $40,000"]
    z = two.index.to_numpy()
    assert abs(float(two["net_tax"].iloc[0])) > 100 and np.isnan(two["average_rate"].iloc[0])
    k = np.searchsorted(z, 75_000.0)
    assert float(two["average_rate"].iloc[k]) == pytest.approx(
        (two["net_tax"].iloc[k] - two["net_tax"].iloc[0]) / 75_000.0)
    # the marginal rate is the slope of net tax between grid points inside a segment
    s = c.loc[single]
    zz, t = s.index.to_numpy(), s["net_tax"].to_numpy()
    i = np.searchsorted(zz, 60_000.0)
    assert (t[i + 1] - t[i]) / (zz[i + 1] - zz[i]) == pytest.approx(float(s["marginal_rate"].iloc[i]), abs=1e-6)


def test_rates_follow_the_reform():
    sc = {**US, "economy": {**US["economy"], "reform": {"eitc_scale": 1.5}}}
    c = household_rate_curves(sc, LAW_2024).set_index(["household", "income"])
    assert float(c.loc[("head of household, 2 children", 30_000.0), "marginal_rate"]) == pytest.approx(
        1.5 * 0.2106 + 0.10 + PAYROLL, abs=1e-6)
    off = {**US, "economy": {**US["economy"], "reform": {"payroll_tax": False}}}
    c = household_rate_curves(off, LAW_2024).set_index(["household", "income"])
    assert float(c.loc[("single, no children, 40", 30_000.0), "marginal_rate"]) == pytest.approx(0.12, abs=1e-6)


def test_run_report_sections(us_run):
    md = (us_run / "report" / "report.md").read_text(encoding="utf-8")
    for h in NEW_HEADINGS:
        assert h in md
    assert (us_run / "report" / "household_rates.png").stat().st_size > 5000
    assert "| single, no children, 40 | 7.65 | 17.65 | 19.65 | 19.65 | 29.65 | 29.65 | 31.65 | 34.35 |" in md
    assert "2024 law (current law)" in md
    html = (us_run / "report" / "report.html").read_text(encoding="utf-8")
    for s in NEW_SECTIONS:
        assert s in html
    tables = _html_tables(us_run / "report" / "report.html")
    emtr = {r[""]: r for r in tables["household-emtr"]}
    assert emtr["head of household, 2 children"]["$20k"] == pytest.approx(100 * (-0.15 + PAYROLL), abs=1e-4)
    assert emtr["single, no children, 40"]["$30k"] == pytest.approx(100 * (0.12 + PAYROLL), abs=1e-4)
    assert len(emtr) == 6 and all(len(r) == 1 + len(TYPE_INCOMES) for r in emtr.values())


def test_decomposition_matches_agents_and_years(us_run):
    res, a, w, share = _final(us_run)
    y = res.years.iloc[-1]
    rows = {r[""]: r for r in _html_tables(us_run / "report" / "report.html")["net-tax-table"]}

    def per_person(col):
        return float((w * share * a[col]).sum() / w.sum())

    def recipients(x):
        return float((w * share * (x > 0)).sum() / w.sum())

    got = {label.split(" (")[0].split(":")[0].lstrip("-+= "): r["$/person/yr"] for label, r in rows.items()}
    assert got["income tax before credits"] == pytest.approx(per_person("income_tax_before_credits"))
    assert got["EITC"] == pytest.approx(per_person("eitc")) == pytest.approx(float(y["eitc_cost"]))
    assert got["CTC"] == pytest.approx(float(y["ctc_cost"]))
    assert got["ACTC"] == pytest.approx(float(y["actc_cost"]))
    assert got["income tax after credits"] == pytest.approx(float(y["income_tax_revenue"]))
    assert got["employee payroll tax"] == pytest.approx(float(y["payroll_revenue"]))
    assert got["employer payroll tax"] == pytest.approx(float(y["payroll_revenue_employer"]))
    assert got["net tax"] == pytest.approx(float(y["revenue"]))
    # the identity: before credits - credits = after credits; + payroll = net tax
    assert got["income tax before credits"] - got["credit for the elderly"] - got["EITC"] - got["CTC"] \
        - got["ACTC"] == pytest.approx(got["income tax after credits"])
    assert got["income tax after credits"] + got["employee payroll tax"] == pytest.approx(got["net tax"])
    eitc_row = next(r for label, r in rows.items() if label == "- EITC")
    assert eitc_row["% of workers receiving"] == pytest.approx(100 * recipients(a["eitc"].to_numpy()))
    assert eitc_row["% of workers receiving"] == pytest.approx(100 * float(y["eitc_recipients"]))
    assert got["EITC"] > 0 and got["CTC"] > 0  # the census population has units with children
    md = (us_run / "report" / "report.md").read_text(encoding="utf-8")
    assert "not in workers' budgets (incidence: see docs)" in md


def test_deciles_match_numpy(us_run):
    res, a, w, share = _final(us_run)
    z = a["pre_tax"].to_numpy(float)
    order = np.argsort(z, kind="stable")
    mid = (np.cumsum(w[order]) - w[order] / 2) / w.sum()
    dec = np.empty(z.size, dtype=int)
    dec[order] = np.minimum(np.floor(10 * mid).astype(int), 9) + 1
    rows = {r[""]: r for r in _html_tables(us_run / "report" / "report.html")["tax-deciles-table"]}
    assert list(rows) == [str(d) for d in range(1, 11)] + ["all"]
    for d in [*range(1, 11), "all"]:
        m = np.ones(z.size, dtype=bool) if d == "all" else dec == d
        wm = w[m]

        def mean(x, m=m, wm=wm):
            return float((wm * np.asarray(x, dtype=float)[m]).sum() / wm.sum())

        r = rows[str(d)]
        assert r["earnings $"] == pytest.approx(mean(z))
        assert r["income tax $"] == pytest.approx(mean(a["income_tax"] * share), abs=1e-6)
        assert r["EITC $"] == pytest.approx(mean(a["eitc"] * share), abs=1e-6)
        assert r["CTC+ACTC $"] == pytest.approx(mean((a["ctc"] + a["actc"]) * share), abs=1e-6)
        assert r["payroll tax $"] == pytest.approx(mean(a["payroll_tax"] * share))
        assert r["net tax $"] == pytest.approx(mean(a["tax"]), abs=1e-6)  # tax: the worker's share
        assert r["post-tax $"] == pytest.approx(mean(a["post_tax"]))
        assert r["EMTR %"] == pytest.approx(100 * mean(a["marginal_rate"]))
    assert rows["all"]["net tax $"] == pytest.approx(float(res.years["revenue"].iloc[-1]))
    assert rows["1"]["earnings $"] < rows["5"]["earnings $"] < rows["10"]["earnings $"]


def test_income_tax_only_report_has_no_new_sections(tmp_path):
    sc = scenario_from_dict({"population": {"size": 100, "source": "census"},
                             "run": {"tax_years": 1, "seed": 2}}, "plain")
    run_scenario(sc, tmp_path / "run", progress=False)
    write_report(tmp_path / "run")
    md = (tmp_path / "run" / "report" / "report.md").read_text(encoding="utf-8")
    html = (tmp_path / "run" / "report" / "report.html").read_text(encoding="utf-8")
    assert not any(h in md for h in NEW_HEADINGS) and "household_rates" not in md
    assert not any(s in html for s in NEW_SECTIONS) and "income-tax schedule alone" not in html
    assert not (tmp_path / "run" / "report" / "household_rates.png").exists()


def test_comparison_incidence_gains_component_changes(tmp_path):
    sc = scenario_from_dict({**US, "population": {"size": 200, "source": "census"},
                             "compare": [{"label": "law"},
                                         {"label": "eitc15", "economy": {"reform": {"eitc_scale": 1.5}}}]})
    run_comparison(sc, tmp_path / "cmp", progress=False)
    write_report(tmp_path / "cmp")
    inc = pd.read_parquet(tmp_path / "cmp" / "report" / "incidence.parquet")
    dec = inc[inc["grouping"] == "income_decile"].set_index("group")
    final = pd.read_parquet(tmp_path / "cmp" / "report" / "final.parquet").set_index("variant")
    # all workers: the change of the per-person totals years.parquet records
    for col, total in (("d_eitc", "eitc_cost"), ("d_income_tax", "income_tax_revenue"),
                       ("d_payroll_tax", "payroll_revenue"), ("d_net_tax", "revenue")):
        assert dec.loc["all", col] == pytest.approx(final.loc["eitc15", total] - final.loc["law", total], abs=1e-6)
    assert dec.loc["all", "d_ctc"] == pytest.approx(
        (final.loc["eitc15", "ctc_cost"] + final.loc["eitc15", "actc_cost"])
        - (final.loc["law", "ctc_cost"] + final.loc["law", "actc_cost"]), abs=1e-6)
    assert dec.loc["all", "d_eitc"] > 0 and dec.loc["10", "d_eitc"] == 0  # top earners get no EITC
    md = (tmp_path / "cmp" / "report" / "report.md").read_text(encoding="utf-8")
    assert "change EITC $" in md and "change EMTR (points)" in md


def test_income_tax_only_incidence_has_no_component_columns(tmp_path):
    sc = scenario_from_dict({"population": {"size": 80, "source": "gb2"}, "run": {"tax_years": 1},
                             "compare": [{"label": "us"}, {"label": "flat", "planner": {"kind": "flat", "rate": 0.3}}]})
    run_comparison(sc, tmp_path / "cmp", progress=False)
    write_report(tmp_path / "cmp")
    inc = pd.read_parquet(tmp_path / "cmp" / "report" / "incidence.parquet")
    assert not any(c.startswith(("d_eitc", "d_ctc", "d_net_tax", "d_marginal")) for c in inc.columns)
    assert "change EITC" not in (tmp_path / "cmp" / "report" / "report.md").read_text(encoding="utf-8")


def test_us_run_report_in_chromium(us_run):
    """The page with the new sections in headless Chromium: no console errors, every image
    decoded, the decile cells those of the parquet-derived numbers."""
    from cdp_browser import Browser, find_chromium  # deferred: only this test needs a browser

    exe = find_chromium()
    if exe is None:
        pytest.skip("chromium is not installed (apt-get install chromium; .ci/run does it)")
    pytest.importorskip("websocket", reason="websocket-client is not installed")
    b = Browser(exe, timeout=60)
    try:
        b.open(us_run / "report" / "report.html")
        images = b.evaluate("Promise.all(Array.from(document.images).map(i => i.decode().then(() => true, "
                            "() => false))).then(ok => Array.from(document.images).map((i, k) => "
                            "({id: i.id, ok: ok[k], w: i.naturalWidth})))", await_promise=True)
        assert all(i["ok"] and i["w"] > 100 for i in images), images
        assert "fig-household-rates" in {i["id"] for i in images}
        b.pump(0.3)
        assert b.console_errors == []
        cells = b.evaluate("Array.from(document.querySelectorAll('#tax-deciles-table td.num'))"
                           ".map(td => [td.dataset.col, td.dataset.value])")
        shown = [float(v) for c, v in cells if c == "net tax $"]
        rows = _html_tables(us_run / "report" / "report.html")["tax-deciles-table"]
        assert shown == pytest.approx([r["net tax $"] for r in rows], rel=1e-12) and len(shown) == 11
    finally:
        b.close()


def test_sampled_and_absent_agents(tmp_path):
    """A sampled agents table: the decomposition is its sample_weight estimate, and says so;
    no agents table: the decomposition is years.parquet's totals, no deciles."""
    sc = scenario_from_dict({**US, "output": {"agents_sample": 120}}, "sampled")
    run_scenario(sc, tmp_path / "s", progress=False)
    write_report(tmp_path / "s")
    res = load_run(tmp_path / "s")
    a = res.agents[res.agents["year"] == res.agents["year"].max()]
    a = a.merge(res.population[["id", "unit_earners"]], on="id")
    w = a["sample_weight"].to_numpy(float)
    rows = {r[""]: r for r in _html_tables(tmp_path / "s" / "report" / "report.html")["net-tax-table"]}
    assert rows["- EITC"]["$/person/yr"] == pytest.approx(float((w * a["eitc"] / a["unit_earners"]).sum() / w.sum()))
    assert "Estimated from the agents sample (120 of 300 workers" in (tmp_path / "s" / "report" / "report.md").read_text()

    sc = scenario_from_dict({**US, "output": {"agents_table": False}}, "no_agents")
    run_scenario(sc, tmp_path / "n", progress=False)
    write_report(tmp_path / "n")
    y = load_run(tmp_path / "n").years.iloc[-1]
    md = (tmp_path / "n" / "report" / "report.md").read_text()
    assert "## Effective tax rates by household type" in md and "## By income decile" not in md
    rows = {r[""]: r for r in _html_tables(tmp_path / "n" / "report" / "report.html")["net-tax-table"]}
    assert rows["- EITC"]["$/person/yr"] == pytest.approx(float(y["eitc_cost"]))
    assert rows["= net tax (in workers' budgets)"]["$/person/yr"] == pytest.approx(float(y["revenue"]))
    assert np.isnan(rows["income tax before credits"]["$/person/yr"])
