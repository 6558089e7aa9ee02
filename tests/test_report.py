"""Reports: the tables carry the runs' own numbers, figures exist, the known defects are gone."""

import numpy as np
import pandas as pd

from simulator.cli.main import main
from simulator.config.loading import scenario_from_dict
from simulator.experiments import run_comparison
from simulator.report.common import column_format, income_histogram
from simulator.results import load_run
from simulator.run.runner import run_scenario


def test_run_report(tmp_path, capsys):
    sc = scenario_from_dict({"population": {"size": 150, "source": "census"},
                             "planner": {"kind": "saez"}, "run": {"tax_years": 3, "seed": 2}})
    run_scenario(sc, tmp_path / "run", progress=False)
    assert main(["report", str(tmp_path / "run")]) == 0
    assert "report.md" in capsys.readouterr().out
    page = (tmp_path / "run" / "report" / "report.md").read_text()
    years = load_run(tmp_path / "run").years
    fmt = column_format(years["objective"])
    fmt_u = column_format(years["swf_utilitarian"])
    for _, y in years.iterrows():
        assert f"| {int(y['year'])} | {fmt_u(y['swf_utilitarian'])} |" in page  # years stay whole numbers
        rates = "/".join(f"{100 * y[f'rate_{i}']:.0f}" for i in range(7))
        assert f"| {int(y['year'])} | {fmt(y['objective'])} |" in page
        assert rates in page
    # brackets named by their dollar thresholds, not b1..b7
    assert "$11,600–47,150" in page and "$609,350+" in page
    for fig in ("rates.png", "objective.png", "incomes.png"):
        assert (tmp_path / "run" / "report" / fig).stat().st_size > 1000
    html = (tmp_path / "run" / "report" / "report.html").read_text()
    assert "data:image/png;base64," in html and "utilitarian welfare" in html


def test_comparison_report_and_errors(tmp_path, capsys):
    sc = scenario_from_dict({
        "population": {"size": 100, "source": "gb2"}, "run": {"tax_years": 2},
        "compare": [{"label": "us"}, {"label": "flat30", "planner": {"kind": "flat", "rate": 0.3}}],
    })
    table = run_comparison(sc, tmp_path / "cmp", progress=False)
    assert isinstance(table, pd.DataFrame) and list(table["variant"]) == ["us", "flat30"]
    assert main(["report", str(tmp_path / "cmp")]) == 0
    page = (tmp_path / "cmp" / "report" / "report.md").read_text()
    means = pd.read_parquet(tmp_path / "cmp" / "report" / "final.parquet")
    pd.testing.assert_series_equal(means["objective"], table["objective"], check_names=False)
    assert "| flat30 | 1 |" in page
    capsys.readouterr()
    assert main(["report", str(tmp_path / "nothing")]) == 2
    assert "not a directory" in capsys.readouterr().err


def test_column_format_is_consistent():
    fmt = column_format([9693.2, 14160.4, 512.0])
    assert [fmt(v) for v in (9693.2, 14160.4, 512.0)] == ["9,693", "14,160", "512"]
    fmt = column_format([0.3012, 0.25])
    assert fmt(0.3012) == "0.3012" and fmt(0.25) == "0.2500"
    fmt = column_format([10.5, 0.000123])  # spread: significant digits, never exponents
    assert "e" not in fmt(0.000123) and fmt(10.5) == "10.50"
    assert column_format([float("nan")])(float("nan")) == "–"


def test_income_histogram_keeps_every_worker():
    rng = np.random.default_rng(0)
    pre = np.concatenate([[0.0, 0.0, 3.0], rng.lognormal(10.5, 1.0, 500)])
    post = pre * 0.8 + 1000
    edges, c_pre, c_post = income_histogram(pre, post)
    assert c_pre.sum() == pre.size and c_post.sum() == post.size
    assert edges[0] == 0.0 and c_pre[0] >= 2  # zero earners in the first bin


def test_failed_report_leaves_no_folder(tmp_path, capsys):
    sc = scenario_from_dict({"population": {"size": 50, "source": "gb2"}, "run": {"tax_years": 1}})
    run_scenario(sc, tmp_path / "run", progress=False)
    (tmp_path / "run" / "years.parquet").write_bytes(b"not parquet")
    assert main(["report", str(tmp_path / "run")]) == 2  # a damaged run: one line, exit 2
    assert "years.parquet" in capsys.readouterr().err
    assert not (tmp_path / "run" / "report").exists()
    (tmp_path / "empty").mkdir()
    assert main(["report", str(tmp_path / "empty")]) == 2
    assert not (tmp_path / "empty" / "report").exists()


def test_column_format_keeps_small_values_readable_beside_large_ones():
    """The CE % column of the differences table (utilitarian -2.72 %, saez 7.48 %, optimum
    6.80 %, inverse-income sum 1,397 %): whole numbers would show 7 and 7 for two
    different welfare gains and -3 beside a CI of [-3.028, -2.106]."""
    col = [-2.720, 17.63, 1397.2, 7.4868, 6.8057]
    fmt = column_format(col)
    shown = [fmt(v) for v in col]
    assert shown[3] != shown[4]
    for v, s in zip(col, shown, strict=True):  # at least 3 significant digits, never exponents
        assert "e" not in s and abs(float(s.replace(",", "")) - v) <= 0.005 * abs(v), (v, s)
    assert shown[2] == "1,397"


def test_decile_chart_keeps_each_variants_colour():
    """The decile chart has no baseline bars; its variants keep the colours they have in
    the over-years and schedule figures (flat was drawn blue there, orange elsewhere)."""
    import matplotlib.colors as mcolors

    from simulator.report.html import fig_deciles

    inc = pd.DataFrame([{"variant": v, "grouping": "income_decile", "group": str(g), "d_post_tax_pct": 1.0 + g}
                        for v in ("flat", "saez") for g in range(1, 11)])
    fig = fig_deciles(inc, ["us_federal", "flat", "saez"])
    bars = fig.axes[0].containers
    assert [c.get_label() for c in bars] == ["flat", "saez"]
    assert mcolors.same_color(bars[0].patches[0].get_facecolor(), "C1")
    assert mcolors.same_color(bars[1].patches[0].get_facecolor(), "C2")


def test_income_histogram_ticks_do_not_crowd_zero():
    """Ticks: $0, then powers of ten from the first log bin on; none inside the linear
    first bin, where a $1k label overlapped $0."""
    from simulator.report.common import fig_income_histogram

    rng = np.random.default_rng(0)
    pre = np.concatenate([[0.0], rng.lognormal(10.5, 0.6, 500)])  # lowest positive ~ $5k-$10k
    fig = fig_income_histogram(pre, pre * 0.8 + 20_000, 3)
    ax = fig.axes[0]
    lo = float(np.sort(np.concatenate([pre, pre * 0.8 + 20_000]))[1])
    ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
    assert ticks[0] == 0 and all(t >= lo for t in ticks[1:]), (ticks, lo)
    assert ax.get_xlim()[1] < 10 * max(pre * 0.8 + 20_000)  # the axis ends near the data


def test_experiment_report_leads_with_the_verdict(tmp_path):
    """The verdict comes first (after any run alerts) on both pages: per comparison the
    winner or 'no clear winner', the CE gain with its interval, revenue, who gains and
    loses; 2 seeds are called unreliable; the inverse-income-sum objective and the
    Atkinson row carry their caveats; the provenance names each variant's changes."""
    from simulator.experiments import run_experiment

    sc = scenario_from_dict({
        "population": {"size": 80, "source": "census"}, "run": {"tax_years": 1, "seeds": 2},
        "planner": {"objective": {"swf": "inverse_income_sum"}},
        "compare": [{"label": "us"}, {"label": "flat30", "planner": {"kind": "flat", "rate": 0.3}}],
    })
    run_experiment(sc, tmp_path / "e")
    assert main(["report", str(tmp_path / "e")]) == 0
    out = tmp_path / "e" / "report"
    md = (out / "report.md").read_text()
    assert md.index("## Verdict") < md.index("## Summary") < md.index("## Differences")
    verdict = pd.read_parquet(out / "verdict.parquet").iloc[0]
    diffs = pd.read_parquet(out / "differences.parquet").set_index(["variant", "metric"])
    d = diffs.loc[("flat30", "swf_inverse_income_sum")]
    assert (verdict.diff_mean, verdict.ci_low, verdict.ci_high) == (d.diff_mean, d.ci_low, d.ci_high)
    assert verdict.distinguishable == (d.ci_low > 0 or d.ci_high < 0)
    head = md[md.index("## Verdict"):md.index("## Summary")]
    assert "flat30 vs us:" in head and ("is better on" in head or "no clear winner" in head)
    assert "consumption-equivalent gain of flat30" in head and "revenue:" in head and "decile" in head
    assert "Only 2 paired seeds" in head and "unreliable" in head
    assert "at the $1 floor" in head  # the objective's caveat beside its CE
    assert "consumption only; can move opposite to utilitarian welfare" in md  # the Atkinson row
    assert "- **flat30**: planner.kind=flat, planner.rate=0.3" in md
    html = (out / "report.html").read_text()
    assert html.index('id="verdict"') < html.index('id="summary"')
    assert "Only 2 paired seeds" in html and "{}" not in html[html.index('id="provenance"'):].split("<pre>")[0]
    assert "flat30: planner.kind=flat, planner.rate=0.3" in html
    # the incidence tables carry intervals
    inc = pd.read_parquet(out / "incidence.parquet")
    assert {"d_post_tax_low", "d_post_tax_high", "d_post_tax_pct_low", "d_post_tax_pct_high"} <= set(inc.columns)
    dec = inc[inc.grouping == "income_decile"]  # every decile has workers on both seeds
    assert dec["d_post_tax_low"].notna().all() and (dec["d_post_tax_low"] <= dec["d_post_tax_high"]).all()
    assert inc.loc[inc.n_seeds < 2, "d_post_tax_low"].isna().all()  # a state seen on one seed: none
