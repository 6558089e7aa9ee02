"""Reports: the Markdown tables carry the run's own numbers, and the figures exist."""

import pandas as pd

from simulator.cli.main import main
from simulator.results import load_run
from simulator.runner import run_comparison, run_scenario
from simulator.scenario import scenario_from_dict


def test_run_report(tmp_path, capsys):
    sc = scenario_from_dict({"population": {"size": 150, "source": "census"},
                             "planner": {"kind": "saez"}, "run": {"tax_years": 3, "seed": 2}})
    run_scenario(sc, tmp_path / "run", progress=False)
    assert main(["report", str(tmp_path / "run")]) == 0
    assert "report.md" in capsys.readouterr().out
    page = (tmp_path / "run" / "report" / "report.md").read_text()
    years = load_run(tmp_path / "run").years
    for _, y in years.iterrows():
        rates = "/".join(f"{100 * y[f'rate_{i}']:.0f}" for i in range(7))
        assert f"| {int(y['year'])} | {y['objective']:,.4g} |" in page
        assert rates in page
    for fig in ("rates.png", "objective.png", "incomes.png"):
        assert (tmp_path / "run" / "report" / fig).stat().st_size > 1000


def test_comparison_report_and_errors(tmp_path, capsys):
    sc = scenario_from_dict({
        "population": {"size": 100, "source": "gb2"}, "run": {"tax_years": 2},
        "compare": [{"label": "us"}, {"label": "flat30", "planner": {"kind": "flat", "rate": 0.3}}],
    })
    table = run_comparison(sc, tmp_path / "cmp", progress=False)
    assert main(["report", str(tmp_path / "cmp")]) == 0
    page = (tmp_path / "cmp" / "report" / "report.md").read_text()
    assert "| flat30 | flat |" in page and "30/30/30/30/30/30/30" in page
    assert f"{table.loc[table.variant == 'us', 'objective'].iloc[0]:,.4g}" in page
    assert isinstance(table, pd.DataFrame)
    capsys.readouterr()
    assert main(["report", str(tmp_path / "nothing")]) == 2
    assert "not a directory" in capsys.readouterr().err
