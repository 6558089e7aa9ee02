"""Reports and experiment incidence of runs with an extensive margin (people may not work):
the "Who works" section of a run, the employment columns and groupings of incidence, checked
against independent pandas computations on run directories given the participation columns
(``employed``, ``participation_tax_rate``, ``potential_earnings``, ``fixed_cost`` in the
agents; ``employment_rate...`` in the years; ``employment_target``, ``participation_cell`` in
the population); runs without those columns keep their reports exactly."""

from html.parser import HTMLParser

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from simulator.config.loading import scenario_from_dict
from simulator.experiments import experiment_stats, load_experiment, run_experiment, stats
from simulator.report.markdown import write_report
from simulator.results import load_run
from simulator.run.runner import run_scenario

US = {"population": {"size": 240, "source": "census"},
      "economy": {"world": "us_current_law", "fiscal_rule": "revenue_requirement",
                  "utility": {"form": "isoelastic", "eta": 1.0, "frisch": 0.5}},
      "tax": {"us_federal": {"year": 2024, "filing_status": "single"}},
      "planner": {"kind": "us_federal"}, "workers": {"policy": "rational"},
      "run": {"tax_years": 2, "seed": 4}}
HH = ("single", "single_parent", "married_spouse_not_working", "married_spouse_working", "married_separate")
HH_LABEL = {"single": "single, no children", "single_parent": "single parent",
            "married_spouse_not_working": "married, spouse not working",
            "married_spouse_working": "married, spouse working", "married_separate": "married filing separately"}
#: incidence.parquet columns of a run without an extensive margin (us_current_law), as before issue 23
OLD_INCIDENCE = ["variant", "grouping", "group", "workers_share", "pre_tax_b", "post_tax_b", "d_post_tax",
                 "d_post_tax_pct", "d_utility", "share_gaining", "share_losing", "d_income_tax", "d_eitc",
                 "d_ctc", "d_payroll_tax", "d_net_tax", "d_marginal_rate", "n_seeds", "d_post_tax_low",
                 "d_post_tax_high", "d_post_tax_pct_low", "d_post_tax_pct_high", "d_utility_low",
                 "d_utility_high", "d_income_tax_low", "d_income_tax_high", "d_eitc_low", "d_eitc_high",
                 "d_ctc_low", "d_ctc_high", "d_payroll_tax_low", "d_payroll_tax_high", "d_net_tax_low",
                 "d_net_tax_high", "d_marginal_rate_low", "d_marginal_rate_high"]


class _Tables(HTMLParser):
    """Cells of every table with an id: id -> rows of {data-col: data-value} (numbers) and
    {column: text} for text cells."""

    def __init__(self):
        super().__init__()
        self.tables: dict[str, list[dict]] = {}
        self._id = None
        self._col = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "table":
            self._id = a.get("id")
            if self._id:
                self.tables[self._id] = []
        elif tag == "tr" and self._id:
            self.tables[self._id].append({})
        elif tag == "td" and self._id:
            if "data-value" in a:
                self.tables[self._id][-1][a["data-col"]] = float(a["data-value"])
            else:
                self._col = a.get("data-col")

    def handle_data(self, data):
        if self._col is not None and self._id:
            self.tables[self._id][-1][self._col] = data
            self._col = None

    def handle_endtag(self, tag):
        if tag == "table":
            self._id = None


def _html_tables(path) -> dict[str, list[dict]]:
    p = _Tables()
    p.feed(path.read_text(encoding="utf-8"))
    return {k: [r for r in v if r] for k, v in p.tables.items()}


# --------------------------------------------------------------------------- synthetic columns
def _hh_type(row) -> str:
    """The household type by the rule docs/experiments.md states, row by row."""
    if row["filing_status"] == 3:
        return "married_separate"
    if row["filing_status"] == 2:
        return "married_spouse_working" if row["spouse_wages"] > 0 else "married_spouse_not_working"
    if row["filing_status"] == 4 or row["children"] > 0:
        return "single_parent"
    return "single"


def _wdecile(x: pd.Series, w: pd.Series) -> pd.Series:
    """Weighted decile 1..10 of ``x``: rank (ties by position), the midpoint of each
    person's weight in the cumulative distribution."""
    order = np.argsort(x.to_numpy(float), kind="stable")
    ww = w.to_numpy(float)[order]
    mid = (np.cumsum(ww) - ww / 2) / ww.sum()
    dec = np.empty(len(x), dtype=int)
    dec[order] = np.minimum(np.floor(10 * mid).astype(int), 9) + 1
    return pd.Series(dec, index=x.index)


def _wavg(df: pd.DataFrame, col: str, w: str = "w") -> float:
    return float(np.average(df[col], weights=df[w])) if df[w].sum() > 0 else np.nan


def add_participation(run_dir, seed: int, shift: float = 0.0, weights: np.ndarray | None = None) -> None:
    """Give a finished run the columns of a run with an extensive margin: ``employed`` drawn
    from a wage-dependent probability (uniforms common to every run of the same ``seed``,
    ``shift`` moves the low-wage half up and the high-wage half down), zero hours and
    earnings for those not working, a participation tax rate, potential earnings and a fixed
    cost per person; the years' employment rates from those rows; the population's targets
    and cells (and ``weights``, when given)."""
    res = load_run(run_dir)
    pop = res.population.copy()
    if weights is not None:
        pop["weight"] = weights
    n = len(pop)
    rng = np.random.default_rng(1000 + seed)
    u = pd.Series(rng.random(n), index=pop["id"])
    ptr = pd.Series(rng.uniform(-0.3, 0.7, n), index=pop["id"])
    cost = pd.Series(rng.uniform(0, 5000, n), index=pop["id"])
    rank = pop.set_index("id")["wage"].rank(pct=True)
    p = 0.55 + 0.4 * rank + shift * np.where(rank < 0.5, 1.0, -0.5)
    a = res.agents.copy()
    a["employed"] = (u.loc[a["id"]].to_numpy() < p.loc[a["id"]].to_numpy())
    usual = pop.set_index("id")["hours"]
    a["potential_earnings"] = np.where(a["employed"], a["wage"] * a["hours"],
                                       a["wage"] * usual.loc[a["id"]].to_numpy())
    for col in ("hours", "pre_tax"):
        a[col] = np.where(a["employed"], a[col], 0.0)
    a["participation_tax_rate"] = ptr.loc[a["id"]].to_numpy()
    a["fixed_cost"] = cost.loc[a["id"]].to_numpy()
    pop["employment_target"] = 0.5 + 0.4 * pop["wage"].rank(pct=True).to_numpy()
    pop["participation_cell"] = pop["sex"].astype(str) + "|" + np.where(pop["age"] < 45, "under 45", "45+")
    a.to_parquet(run_dir / "agents.parquet", index=False)
    pop.to_parquet(run_dir / "population.parquet", index=False)

    y = res.years.copy()
    cols: dict[str, list[float]] = {}
    for year in y["year"]:
        ay = a[a["year"] == year].merge(pop[["id", "weight", "filing_status", "children", "spouse_wages"]],
                                        on="id", suffixes=("", "_pop"))
        ay = ay.assign(w=ay["weight"], e=ay["employed"].astype(float),
                       d=_wdecile(ay["wage"], ay["weight"]),
                       hh=[_hh_type(r) for _, r in ay[["filing_status", "children", "spouse_wages"]].iterrows()])
        vals = {"employment_rate": _wavg(ay, "e"), "mean_hours": _wavg(ay, "hours"),
                "mean_hours_employed": _wavg(ay[ay["employed"]], "hours"),
                "mean_participation_tax_rate": _wavg(ay[ay["employed"]], "participation_tax_rate")}
        for d in range(1, 11):
            vals[f"employment_rate_d{d:02d}"] = _wavg(ay[ay["d"] == d], "e")
        for t in HH:
            g = ay[ay["hh"] == t]
            vals[f"employment_rate_hh_{t}"] = _wavg(g, "e") if len(g) else np.nan
        for k, v in vals.items():
            cols.setdefault(k, []).append(v)
    for k, v in cols.items():
        y[k] = v
    y.to_parquet(run_dir / "years.parquet", index=False)


# --------------------------------------------------------------------------- single run
@pytest.fixture(scope="module")
def part_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("participation")
    run_scenario(scenario_from_dict(US, "part"), root / "run", progress=False)
    weights = np.random.default_rng(9).uniform(0.5, 3.0, US["population"]["size"])
    add_participation(root / "run", seed=4, weights=weights)
    write_report(root / "run")
    return root / "run"


def _final_people(run):
    res = load_run(run)
    a = res.agents[res.agents["year"] == res.agents["year"].max()]
    a = a.merge(res.population[["id", "weight", "employment_target", "participation_cell"]], on="id")
    return res, a.assign(w=a["weight"], e=a["employed"].astype(float))


def _group_expect(g: pd.DataFrame, total: float) -> dict[str, float]:
    emp = g[g["employed"]]
    return {"% of people": 100 * g["w"].sum() / total, "potential earnings $": _wavg(g, "potential_earnings"),
            "employed %": 100 * _wavg(g, "e"), "hours/wk": _wavg(g, "hours"),
            "hours/wk employed": _wavg(emp, "hours"),
            "PTR % everyone": 100 * _wavg(g, "participation_tax_rate"),
            "PTR % employed": 100 * _wavg(emp, "participation_tax_rate"),
            "EMTR % employed": 100 * _wavg(emp, "marginal_rate")}


def test_years_view_shows_employment_next_to_hours(part_run):
    y = load_run(part_run).years
    md = (part_run / "report" / "report.md").read_text(encoding="utf-8")
    assert "| year | objective | revenue $/person | hours/wk | hours/wk employed | employed % | Gini pre |" in md
    rows = _html_tables(part_run / "report" / "report.html")["years"]
    assert len(rows) == len(y)
    for r, (_, yr) in zip(rows, y.iterrows(), strict=True):
        assert r["employed %"] == pytest.approx(100 * yr["employment_rate"], rel=1e-12)
        assert r["hours/wk employed"] == pytest.approx(yr["mean_hours_employed"], rel=1e-12)
        assert r["hours/wk"] == pytest.approx(yr["mean_hours"], rel=1e-12)


def test_who_works_by_wage_decile_matches_pandas(part_run):
    res, a = _final_people(part_run)
    a = a.assign(d=_wdecile(a["wage"], a["w"]))
    rows = _html_tables(part_run / "report" / "report.html")["who-works-deciles"]
    assert [r["potential-wage decile"] for r in rows] == [str(d) for d in range(1, 11)] + ["all"]
    total = a["w"].sum()
    for r in rows:
        g = a if r["potential-wage decile"] == "all" else a[a["d"] == int(r["potential-wage decile"])]
        for col, want in _group_expect(g, total).items():
            assert r[col] == pytest.approx(want, rel=1e-9, abs=1e-9), (r["potential-wage decile"], col)
    # the all row is the years.parquet numbers (the full agents table, population weights)
    y = res.years.iloc[-1]
    assert rows[-1]["employed %"] == pytest.approx(100 * y["employment_rate"])
    assert rows[-1]["PTR % employed"] == pytest.approx(100 * y["mean_participation_tax_rate"])
    for d in range(1, 11):
        assert rows[d - 1]["employed %"] == pytest.approx(100 * y[f"employment_rate_d{d:02d}"])
    # the synthetic rule: employment rises with the wage
    assert rows[0]["employed %"] < rows[9]["employed %"]
    md = (part_run / "report" / "report.md").read_text(encoding="utf-8")
    assert "## Who works, final year" in md and "By potential-wage decile:" in md


def test_who_works_by_household_type_matches_pandas(part_run):
    res, a = _final_people(part_run)
    a = a.assign(hh=a.apply(_hh_type, axis=1))
    rows = _html_tables(part_run / "report" / "report.html")["who-works-households"]
    present = [t for t in HH if (a["hh"] == t).any()]
    assert [r["household"] for r in rows] == [HH_LABEL[t] for t in present] + ["all"]
    assert len(present) >= 3  # the census population has singles, parents and couples
    total = a["w"].sum()
    y = res.years.iloc[-1]
    for r, t in zip(rows, [*present, "all"], strict=True):
        g = a if t == "all" else a[a["hh"] == t]
        for col, want in _group_expect(g, total).items():
            assert r[col] == pytest.approx(want, rel=1e-9, abs=1e-9), (t, col)
        if t != "all":
            assert r["employed %"] == pytest.approx(100 * y[f"employment_rate_hh_{t}"])


def test_employment_targets_against_simulation(part_run):
    res, a = _final_people(part_run)
    tables = _html_tables(part_run / "report" / "report.html")
    (overall,) = tables["employment-targets"]
    pop = res.population
    target = 100 * float(np.average(pop["employment_target"], weights=pop["weight"]))
    sim = 100 * float(res.years["employment_rate"].iloc[-1])
    assert overall["target employed %"] == pytest.approx(target)
    assert overall["simulated employed %"] == pytest.approx(sim)
    assert overall["difference (points)"] == pytest.approx(sim - target)
    cells = {r["cell"]: r for r in tables["employment-cells"]}
    assert set(cells) == set(a["participation_cell"])
    for cell, g in a.groupby("participation_cell"):
        r = cells[cell]
        assert r["% of people"] == pytest.approx(100 * g["w"].sum() / a["w"].sum())
        assert r["target employed %"] == pytest.approx(100 * _wavg(g, "employment_target"))
        assert r["simulated employed %"] == pytest.approx(100 * _wavg(g, "e"))
    weights = [r["% of people"] for r in tables["employment-cells"]]
    assert weights == sorted(weights, reverse=True)
    md = (part_run / "report" / "report.md").read_text(encoding="utf-8")
    assert "Employment targets: the weighted mean" in md and "| all |" in md
    assert "| male\\|under 45 |" in md  # a "|" in a cell name is escaped: the table keeps its columns


def test_without_agents_the_years_rates(tmp_path, part_run):
    """No agents table: the decile and household rates of years.parquet."""
    import json
    import shutil

    run = tmp_path / "run"
    shutil.copytree(part_run, run, ignore=shutil.ignore_patterns("report"))
    man = json.loads((run / "manifest.json").read_text())
    man["files"] = [f for f in man["files"] if f != "agents.parquet"]
    (run / "manifest.json").write_text(json.dumps(man))
    write_report(run)
    y = load_run(run).years.iloc[-1]
    tables = _html_tables(run / "report" / "report.html")
    dec = tables["who-works-deciles"]
    assert [r["employed %"] for r in dec[:10]] == pytest.approx(
        [100 * y[f"employment_rate_d{d:02d}"] for d in range(1, 11)])
    assert dec[-1]["employed %"] == pytest.approx(100 * y["employment_rate"])
    assert dec[-1]["hours/wk employed"] == pytest.approx(y["mean_hours_employed"])
    hh = {r["household"]: r["employed %"] for r in tables["who-works-households"]}
    for t in HH:
        if np.isfinite(y[f"employment_rate_hh_{t}"]):
            assert hh[HH_LABEL[t]] == pytest.approx(100 * y[f"employment_rate_hh_{t}"])
    assert "employment-cells" not in tables and "employment-targets" in tables
    assert "the employment rates of years.parquet only" in (run / "report" / "report.md").read_text()


# --------------------------------------------------------------------------- incidence
def test_incidence_employment_columns_by_hand():
    base = pd.DataFrame({"id": [0, 1, 2, 3], "pre_tax": [0.0, 10.0, 20.0, 0.0],
                         "post_tax": [100.0, 110.0, 120.0, 90.0], "utility": 0.0,
                         "hours": [0.0, 40.0, 30.0, 0.0], "tax": 0.0, "wage": [1.0, 2.0, 3.0, 4.0],
                         "employed": [False, True, True, False]})
    var = base.assign(hours=[20.0, 0.0, 35.0, 0.0], employed=[True, False, True, False])
    pop = pd.DataFrame({"id": [0, 1, 2, 3], "weight": [1.0, 1.0, 2.0, 4.0], "sex": ["f", "f", "m", "m"],
                        "filing_status": [1, 4, 2, 2], "children": [0, 1, 0, 2], "spouse_wages": [0, 0, 1e4, 0]})
    p = stats.paired_workers(base, var, pop)
    assert list(p["household_type"].astype(str)) == ["single", "single_parent", "married_spouse_working",
                                                    "married_spouse_not_working"]
    t = stats.incidence(p, "sex").set_index("group")
    # f: weights 1, 1; starts (id 0) and stops (id 1); hours +20 and -40
    assert t.loc["f", "employment_b"] == pytest.approx(0.5)
    assert t.loc["f", "d_employment"] == pytest.approx(0.0)
    assert (t.loc["f", "share_starting"], t.loc["f", "share_stopping"]) == pytest.approx((0.5, 0.5))
    assert t.loc["f", "d_hours"] == pytest.approx(-10.0)
    assert t.loc["f", "d_hours_employed"] == pytest.approx(20.0 - 40.0)
    # all: weights 1, 1, 2, 4 (total 8); employed at baseline 1 + 2 = 3, in the variant 1 + 2
    assert t.loc["all", "employment_b"] == pytest.approx(3 / 8)
    assert t.loc["all", "d_employment"] == pytest.approx(0.0)
    assert t.loc["all", "share_starting"] == pytest.approx(1 / 8)
    assert t.loc["all", "d_hours"] == pytest.approx((20 - 40 + 2 * 5) / 8)
    assert t.loc["all", "d_hours_employed"] == pytest.approx((20 + 2 * 35) / 3 - (40 + 2 * 30) / 3)
    # m: nobody starts or stops; id 3 never works
    assert t.loc["m", "share_starting"] == 0 and t.loc["m", "share_stopping"] == 0
    assert t.loc["m", "employment_b"] == pytest.approx(2 / 6)
    hh = stats.incidence(p, "household_type")
    assert list(hh["group"]) == ["single", "single_parent", "married_spouse_not_working",
                                 "married_spouse_working", "all"]
    # without `employed` on both sides: none of it
    q = stats.paired_workers(base.drop(columns="employed"), var, pop)
    assert "employed_b" not in q and "wage_decile" not in q and "household_type" not in q
    assert "d_employment" not in stats.incidence(q, "sex")


@pytest.fixture(scope="module")
def part_exp(tmp_path_factory):
    """A 3-seed experiment (us_current_law, rational workers) given an extensive margin:
    the variant moves low-wage people into work and high-wage people out."""
    root = tmp_path_factory.mktemp("participation_exp") / "exp"
    sc = {**US, "population": {"size": 150, "source": "census"}, "run": {"tax_years": 1, "seeds": [1, 2, 3]},
          "compare": [{"label": "law"}, {"label": "eitc15", "economy": {"reform": {"eitc_scale": 1.5}}}]}
    run_experiment(scenario_from_dict(sc, "part_exp"), root)
    exp = load_experiment(root)
    for _, r in exp.index.iterrows():
        seed = int(r["seed"])
        w = np.random.default_rng(50 + seed).uniform(0.5, 3.0, 150)  # the same weights for both variants
        add_participation(exp.root / "runs" / r["variant"] / f"seed-{seed}", seed,
                          shift=0.15 if r["variant"] == "eitc15" else 0.0, weights=w)
    write_report(root)
    return root


def _expected_incidence(root, grouping: str) -> pd.DataFrame:
    """The employment incidence by pandas: per seed, group means of the paired rows, then the
    mean over seeds and scipy's t interval."""
    exp = load_experiment(root)
    per_seed = []
    for seed in (1, 2, 3):
        b, v = load_run(exp.root / "runs" / "law" / f"seed-{seed}"), load_run(exp.root / "runs" / "eitc15" / f"seed-{seed}")
        ab = b.agents[b.agents["year"] == b.agents["year"].max()]
        av = v.agents[v.agents["year"] == v.agents["year"].max()]
        m = ab.merge(av[["id", "employed", "hours"]], on="id", suffixes=("_b", "_v"))
        m = m.merge(b.population[["id", "weight"]], on="id")
        if grouping == "wage_decile":
            m["g"] = _wdecile(m["wage"], m["weight"]).astype(str)
        else:
            m["g"] = m.apply(_hh_type, axis=1)
        m = m.assign(eb=m["employed_b"].astype(float), ev=m["employed_v"].astype(float))
        m = m.assign(start=(1 - m["eb"]) * m["ev"], stop=m["eb"] * (1 - m["ev"]), dh=m["hours_v"] - m["hours_b"])
        rows = []
        for g, d in [*m.groupby("g"), ("all", m)]:
            rows.append({"group": g, "seed": seed, "employment_b": np.average(d["eb"], weights=d["weight"]),
                         "d_employment": np.average(d["ev"] - d["eb"], weights=d["weight"]),
                         "share_starting": np.average(d["start"], weights=d["weight"]),
                         "share_stopping": np.average(d["stop"], weights=d["weight"]),
                         "d_hours": np.average(d["dh"], weights=d["weight"])})
        per_seed.append(pd.DataFrame(rows))
    return pd.concat(per_seed)


@pytest.mark.parametrize("grouping", ["wage_decile", "household_type"])
def test_experiment_incidence_matches_pandas(part_exp, grouping):
    inc = pd.read_parquet(part_exp / "report" / "incidence.parquet")
    got = inc[(inc["variant"] == "eitc15") & (inc["grouping"] == grouping)].set_index("group")
    want = _expected_incidence(part_exp, grouping)
    assert set(got.index) == set(want["group"])
    intervals = 0
    for g, w in want.groupby("group"):
        for col in ("employment_b", "d_employment", "share_starting", "share_stopping", "d_hours"):
            x = w[col].to_numpy(float)
            assert got.loc[g, col] == pytest.approx(x.mean(), abs=1e-12), (g, col)
            if col == "employment_b":
                continue
            if len(x) >= 2 and x.std() > 0:
                lo, hi = sps.t.interval(0.95, len(x) - 1, loc=x.mean(), scale=sps.sem(x))
                assert (got.loc[g, f"{col}_low"], got.loc[g, f"{col}_high"]) == pytest.approx((lo, hi), abs=1e-12)
                intervals += 1
            else:  # the same value on every seed: a point
                assert got.loc[g, f"{col}_low"] == pytest.approx(x.mean(), abs=1e-12)
    assert intervals >= 2 * len(got)  # most columns vary over seeds
    # identities: the change is starters less stoppers; the all row is years.parquet's change
    assert np.allclose(got["d_employment"], got["share_starting"] - got["share_stopping"])
    final = pd.read_parquet(part_exp / "report" / "final.parquet")
    e = final.pivot(index="seed", columns="variant", values="employment_rate")
    assert got.loc["all", "d_employment"] == pytest.approx(float((e["eitc15"] - e["law"]).mean()))
    h = final.pivot(index="seed", columns="variant", values="mean_hours")
    assert got.loc["all", "d_hours"] == pytest.approx(float((h["eitc15"] - h["law"]).mean()))
    he = final.pivot(index="seed", columns="variant", values="mean_hours_employed")
    assert got.loc["all", "d_hours_employed"] == pytest.approx(float((he["eitc15"] - he["law"]).mean()))
    if grouping == "wage_decile":  # the synthetic shift: the low-wage half starts, the high-wage half stops
        assert got.loc["1", "share_starting"] > 0 and got.loc["1", "share_stopping"] == 0
        assert got.loc["10", "share_stopping"] > 0 and got.loc["10", "d_employment"] < 0


def test_experiment_pages_show_employment(part_exp):
    inc = pd.read_parquet(part_exp / "report" / "incidence.parquet")
    assert {"wage_decile", "household_type"} <= set(inc["grouping"])
    # every grouping gains the employment columns (pre-tax income deciles, persona attributes too)
    assert inc["d_employment"].notna().all() and inc["share_starting_low"].notna().any()
    tables = _html_tables(part_exp / "report" / "report.html")
    shown = tables["employment-eitc15-wage_decile"]
    t = inc[(inc["variant"] == "eitc15") & (inc["grouping"] == "wage_decile")]
    assert [r["group"] for r in shown] == list(t["group"])
    for r, (_, x) in zip(shown, t.iterrows(), strict=True):
        assert r["change employed (points)"] == pytest.approx(100 * x["d_employment"], rel=1e-12)
        assert r["CI low points"] == pytest.approx(100 * x["d_employment_low"], rel=1e-12)
        assert r["% starting work"] == pytest.approx(100 * x["share_starting"], rel=1e-12)
        assert r["CI high % stopping"] == pytest.approx(100 * x["share_stopping_high"], rel=1e-12)
        assert r["change hours/wk"] == pytest.approx(x["d_hours"], rel=1e-12)
        assert r["CI low hours"] == pytest.approx(x["d_hours_low"], rel=1e-12)
    hh = [r["group"] for r in tables["employment-eitc15-household_type"]]
    assert hh[-1] == "all" and set(hh[:-1]) <= set(HH_LABEL.values())
    md = (part_exp / "report" / "report.md").read_text(encoding="utf-8")
    assert "## Employment by potential-wage decile" in md and "## Employment by household type" in md
    assert "change employed (points)" in md and "% starting work" in md and "change hours/wk" in md
    # the paired difference of the employment rate, with its interval
    diffs = pd.read_parquet(part_exp / "report" / "differences.parquet")
    assert "employment_rate" in set(diffs["metric"]) and "mean_hours_employed" in set(diffs["metric"])
    assert "employed (share)" in md


def test_runs_without_participation_keep_their_reports(tmp_path):
    """No employment columns: no "Who works", no employment columns or groupings, the years
    table and incidence.parquet exactly as before."""
    run_scenario(scenario_from_dict({**US, "population": {"size": 80, "source": "census"}}, "old"),
                 tmp_path / "run", progress=False)
    write_report(tmp_path / "run")
    md = (tmp_path / "run" / "report" / "report.md").read_text(encoding="utf-8")
    html = (tmp_path / "run" / "report" / "report.html").read_text(encoding="utf-8")
    assert "| year | objective | revenue $/person | hours/wk | Gini pre | Gini post | rates % |" in md
    assert "Who works" not in md and 'id="who-works"' not in html and "employed" not in md

    sc = {**US, "population": {"size": 80, "source": "census"}, "run": {"tax_years": 1, "seeds": [1, 2]},
          "compare": [{"label": "law"}, {"label": "eitc15", "economy": {"reform": {"eitc_scale": 1.5}}}]}
    run_experiment(scenario_from_dict(sc, "old_exp"), tmp_path / "exp")
    write_report(tmp_path / "exp")
    inc = pd.read_parquet(tmp_path / "exp" / "report" / "incidence.parquet")
    assert list(inc.columns) == OLD_INCIDENCE
    assert set(inc["grouping"]) == {"income_decile", "occupation_name", "age_band", "sex", "education", "state"}
    md = (tmp_path / "exp" / "report" / "report.md").read_text(encoding="utf-8")
    assert "Employment by" not in md and "employed" not in md
    st = experiment_stats(load_experiment(tmp_path / "exp"))
    assert not {"employment_rate", "mean_hours_employed"} & set(st["differences"]["metric"])


def test_participation_pages_in_chromium(part_run, part_exp):
    """Both pages with the new tables in headless Chromium: no console errors, every image
    decoded, the cells those of the parsed page."""
    from cdp_browser import Browser, find_chromium  # deferred: only this test needs a browser

    exe = find_chromium()
    if exe is None:
        pytest.skip("chromium is not installed (apt-get install chromium; .ci/run does it)")
    pytest.importorskip("websocket", reason="websocket-client is not installed")
    b = Browser(exe, timeout=60)
    try:
        for page, table, col in ((part_run, "who-works-deciles", "employed %"),
                                 (part_exp, "employment-eitc15-household_type", "% starting work")):
            b.open(page / "report" / "report.html")
            ok = b.evaluate("Promise.all(Array.from(document.images).map(i => i.decode().then(() => true, "
                            "() => false)))", await_promise=True)
            assert ok and all(ok)
            b.pump(0.3)
            assert b.console_errors == []
            cells = b.evaluate(f"Array.from(document.querySelectorAll('#{table} td.num'))"
                               ".map(td => [td.dataset.col, td.dataset.value])")
            shown = [float(v) for c, v in cells if c == col]
            rows = _html_tables(page / "report" / "report.html")[table]
            assert shown == pytest.approx([r[col] for r in rows], rel=1e-12) and len(shown) >= 4
    finally:
        b.close()
