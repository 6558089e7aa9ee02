"""Behavioural validity report (``econsim behaviour``, simulator/validity).

Scripted populations built to pass or to fail each check; every number is checked
against a direct computation on the same replies.  Populations are small (40 workers).
"""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest
from scipy.stats import ks_2samp, wasserstein_distance

from simulator.config.loading import scenario_from_dict
from simulator.economy.elasticity import estimate_elasticity, perturb_net_of_tax
from simulator.errors import UserError
from simulator.llm import build_llm
from simulator.validity import NOT_APPLICABLE, NOT_MEASURABLE, OUTSIDE, WITHIN
from simulator.validity import dispersion as disp
from simulator.validity.collect import DEFAULT_PERTURBATIONS, run_validity
from simulator.validity.consistency import position_share

N = 40


def scenario(policy="llm", size=N, **sections):
    base = {
        "population": {"size": size, "source": "census"},
        "workers": {"policy": policy},
        "planner": {"kind": "us_federal"},
        # Taxed from the first dollar, so the scripted workers' net-of-tax rate at 30-50 hours
        # is the statutory marginal rate their replies were calibrated on.
        "tax": {"us_federal": {"standard_deduction": False}},
        "run": {"tax_years": 1, "seed": 5},
        "llm": {"backend": "scripted", "cache": "off"},
    }
    for k, v in sections.items():
        base[k] = {**base.get(k, {}), **v} if isinstance(v, dict) else v
    return scenario_from_dict(base)


# --------------------------------------------------------------------------- scripted workers
def _money(s: str) -> float:
    return float(s.replace("$", "").replace(",", ""))


def _marginal_rate(system: str, income: float) -> float:
    """The marginal rate at ``income`` of the compact prompt's schedule line
    ("Rates[ after a $D deduction]: 10% to $11600, ..., 37% above.")."""
    line = system.split("\nRates", 1)[1].splitlines()[0]
    ded = re.match(r" after a \$(\d+) deduction", line)
    taxable = income - (float(ded.group(1)) if ded else 0.0)
    for rate, upper in re.findall(r"([\d.]+)% (?:to \$(\d+)|above)", line):
        if not upper or taxable < float(upper):
            return float(rate) / 100
    raise AssertionError(line)


def parse(req) -> dict:
    system, user = req.messages[0]["content"], req.messages[-1]["content"]
    wage = _money(re.search(r"Your wage: (\$[\d,]+) a year", user).group(1))
    return {
        "rebate": _money(re.search(r"Expected rebate: (-?\$[\d,]+)", system).group(1)),
        "wage": wage,
        "usual": int(re.search(r"You usually work (\d+) hour", user).group(1)),
        # the rate at 40 hours (taxed from the first dollar: the statutory rate the replies are calibrated on)
        "net_of_tax": 1.0 - _marginal_rate(system, 40 * wage),
        "woman": " woman " in user,
        "age": int(re.search(r"(\d+)-year-old", user).group(1)),
        "degree": "bachelor's degree" in user or "graduate degree" in user,
    }


ETI, MPE = 0.3, -0.15


def _persona_adjust(p) -> float:
    return -2.0 * p["woman"] - 3.0 * (p["age"] < 25 or p["age"] >= 60) + 2.0 * p["degree"]


def _incentive_factor(p) -> float:
    return (p["net_of_tax"] / 0.75) ** ETI * (p["wage"] / 1200.0) ** 0.1


def reply(h: float) -> str:
    return json.dumps({"hours": int(np.clip(round(h), 0, 100))})


def calibrated(req):
    """Usual hours (CPS-calibrated personas) moved by taxes, the rebate, the wage and the persona."""
    p = parse(req)
    return reply(p["usual"] * _incentive_factor(p) + MPE * p["rebate"] / p["wage"] + _persona_adjust(p))


def constant(req):
    return reply(40)


def persona_blind(req):
    p = parse(req)
    return reply(40 * _incentive_factor(p) + MPE * p["rebate"] / p["wage"])


def tax_blind(req):
    p = parse(req)
    return reply(p["usual"] + _persona_adjust(p))


def random_answer(req):
    from simulator.llm import demo_reply  # uniform 0..100 drawn from the seed and prompt

    return demo_reply(req)


def measure(fn, sc=None, **kw):
    sc = sc or scenario()
    return run_validity(sc, llm=build_llm(sc.llm, script=fn), progress=False, **kw)


@pytest.fixture(scope="module")
def reports():
    return {name: measure(fn) for name, fn in [
        ("calibrated", calibrated), ("constant", constant), ("persona_blind", persona_blind),
        ("tax_blind", tax_blind), ("random", random_answer)]}


EXPECTED = {
    # check: calibrated, constant, persona_blind, tax_blind, random
    "incentives.eti": (WITHIN, OUTSIDE, WITHIN, OUTSIDE, OUTSIDE),
    "incentives.income_effect": (WITHIN, OUTSIDE, WITHIN, OUTSIDE, OUTSIDE),
    "dispersion.sd": (WITHIN, OUTSIDE, OUTSIDE, WITHIN, OUTSIDE),
    "dispersion.wasserstein": (WITHIN, OUTSIDE, None, WITHIN, OUTSIDE),
    "dispersion.ks": (WITHIN, OUTSIDE, None, WITHIN, OUTSIDE),
    "dispersion.top3_share": (WITHIN, OUTSIDE, None, WITHIN, WITHIN),
    "persona.sensitivity": (WITHIN, OUTSIDE, OUTSIDE, WITHIN, OUTSIDE),
    "persona.wage": (WITHIN, OUTSIDE, WITHIN, OUTSIDE, OUTSIDE),
    "consistency.seed": (WITHIN, WITHIN, WITHIN, WITHIN, OUTSIDE),
    "consistency.order": (WITHIN, WITHIN, WITHIN, WITHIN, WITHIN),
    "reliability.fallback": (WITHIN, WITHIN, WITHIN, WITHIN, WITHIN),
}


@pytest.mark.parametrize("name", ["calibrated", "constant", "persona_blind", "tax_blind", "random"])
def test_each_scripted_population_gets_the_verdicts_it_should(reports, name):
    rep = reports[name]
    col = ["calibrated", "constant", "persona_blind", "tax_blind", "random"].index(name)
    got = rep.verdicts
    want = {c: v[col] for c, v in EXPECTED.items() if v[col] is not None}
    assert {c: got[c] for c in want} == want, rep.text()


def test_calibrated_population_passes_everything(reports):
    got = reports["calibrated"].verdicts
    # everyone works in these populations: the participation checks do not apply
    assert {got[c] for c in got if c.startswith("participation.")} == {NOT_APPLICABLE}
    assert {v for c, v in got.items() if not c.startswith("participation.")} == {WITHIN}


# --------------------------------------------------------------------------- numbers
def _phase(rep, phase, variant=None):
    r = rep.replies
    r = r[(r["phase"] == phase) & ((r["variant"] == variant) if variant else True)]
    return r.sort_values("worker")["hours"].to_numpy(float)


def test_numbers_match_direct_computation_on_the_same_replies(reports):
    from simulator.sim.model import EconomyModel

    rep = reports["calibrated"]
    sc = scenario()
    m = EconomyModel(sc, llm=build_llm(sc.llm, script=calibrated), agent_objects=False)
    w = m.wages
    # ETI: within regression of log income on the log net-of-tax rate at the base income
    z = np.stack([w * _phase(rep, "incentives", f"net-of-tax {d:+.0%}") for d in DEFAULT_PERTURBATIONS], 1)
    scheds = [perturb_net_of_tax(m.schedule, d) for d in DEFAULT_PERTURBATIONS]
    net = np.stack([1 - s.marginal_rate(z[:, 2]) for s in scheds], 1)
    x = np.log(net) - np.log(net).mean(1, keepdims=True)
    y = np.log(z) - np.log(z).mean(1, keepdims=True)
    eti = (x * y).sum() / (x * x).sum()
    row = rep.row("incentives.eti")
    assert row["value"] == pytest.approx(eti, rel=1e-9)
    assert row["value"] == pytest.approx(ETI, abs=0.08)  # the scripted elasticity, after rounding
    # the rational column: rational workers' ETI on the same schedules, told the same rebate
    from simulator.economy.best_response import best_response
    from simulator.economy.rebate import lump_sum_rebate

    r0 = lump_sum_rebate(m.schedule.tax(w * best_response(m.schedule, w, m.utility, m.expected_rebate,
                                                          m.hours_bounds)), 1.0)
    rat = estimate_elasticity(lambda s: w * best_response(s, w, m.utility, r0, m.hours_bounds),
                              m.schedule, DEFAULT_PERTURBATIONS)
    assert row["rational"] == pytest.approx(rat.value, rel=1e-9)
    # income effect: mean change of earnings per dollar of rebate
    h0 = _phase(rep, "incentives", "net-of-tax +0%")
    h1 = _phase(rep, "income_effect")
    mpe = w * (h1 - h0) / 10_000.0
    row = rep.row("incentives.income_effect")
    assert row["value"] == pytest.approx(mpe.mean(), rel=1e-9)
    se = mpe.std(ddof=1) / np.sqrt(N)
    assert row["ci_low"] == pytest.approx(mpe.mean() - 1.96 * se, rel=1e-9)
    assert row["value"] == pytest.approx(MPE, abs=0.05)
    # dispersion against the CPS reference
    support, p = disp.cps_reference()
    assert rep.row("dispersion.wasserstein")["value"] == pytest.approx(wasserstein_distance(h0, support, None, p))
    assert rep.row("dispersion.sd")["value"] == pytest.approx(h0.std() / np.sqrt(np.sum(p * (support - (p * support).sum()) ** 2)))
    values, counts = np.unique(h0, return_counts=True)
    assert rep.row("dispersion.top3_share")["value"] == pytest.approx(np.sort(counts)[-3:].sum() / N)
    # KS on whole hours equals the two-sample statistic against a large sample with the CPS shares
    ref = np.repeat(support, np.rint(p * 1_000_000).astype(int))
    assert rep.row("dispersion.ks")["value"] == pytest.approx(ks_2samp(h0, ref).statistic, abs=2e-5)
    # persona and consistency: mean absolute change on the paired replies
    h_sex = _phase(rep, "persona", "sex")
    assert rep.row("persona.sex")["value"] == pytest.approx(np.abs(h_sex - h0).mean())
    h_seed = _phase(rep, "consistency", "another seed")
    assert rep.row("consistency.seed")["value"] == pytest.approx((np.abs(h_seed - h0) > 5).mean())
    assert rep.row("reliability.fallback")["value"] == 0.0


def test_cps_reference_is_the_shipped_table():
    t = pd.read_csv("personas/data/hours_worked_cps2024.csv")
    t19 = t[(t.bls_table == "cpsaat19") & (t.sex == "total")].set_index("measure")["value"]
    shares = disp.cps_band_shares()
    assert shares[0] == 0.0  # persons at work have no zero-hour band
    assert shares[6] == pytest.approx(t19["40 hours"] / sum(t19[b[0]] for b in disp.BANDS[1:]))
    assert disp.band_shares(np.array([0, 3, 40, 40, 75.0])).tolist() == [0.2, 0.2, 0, 0, 0, 0, 0.4, 0, 0, 0.2]


def test_position_share_counts_answers_that_follow_the_row():
    levels = [0, 20, 30, 40, 50, 60]
    base = np.array([40, 40, 20, 33])
    # 40 sits in row 3, which shows 30 once reversed; 20 sits in row 1, which then shows 50
    assert position_share(base, np.array([30, 40, 50, 33]), levels, None) == pytest.approx(2 / 4)
    assert position_share(base, np.array([20, 40, 40, 30]), levels, None) == 0.0
    # one table per worker (compact prompts): the same answers read against each worker's
    # own rows, given as lists and with explicit reversed rows
    own = [[0, 20, 40, 60], [20, 40, 50], [20, 30, 60], [0, 33, 40]]
    rev = [r[::-1] for r in own]
    # worker 0: 40 in row 2, reversed row 2 shows 20; worker 1: 40 in row 1, still 40 (not
    # counted); worker 2: 20 in row 0, reversed shows 60; worker 3: 33 in row 1, still 33
    assert position_share(base, np.array([20, 40, 60, 33]), own, None) == pytest.approx(2 / 4)
    assert position_share(base, np.array([20, 40, 60, 33]), own, None, rev) == pytest.approx(2 / 4)
    # reversed rows that do not mirror (a row the layout keeps in place) are taken as given
    fixed = [[0, 60, 40, 20], [50, 40, 20], [60, 30, 20], [0, 40, 33]]
    # (worker 0 and 1: the row keeps its level; 2 follows 20 -> 60; 3 follows 33 -> 40)
    assert position_share(base, np.array([20, 40, 60, 40]), own, None, fixed) == pytest.approx(2 / 4)


def test_random_answers_change_with_the_seed_and_fill_the_range(reports):
    rep = reports["random"]
    assert rep.row("consistency.seed")["value"] > 0.6
    assert rep.row("dispersion.sd")["value"] > 1.8  # uniform 0..100: SD 29 h vs CPS about 12 h


# --------------------------------------------------------------------------- rational, bad input
def test_rational_workers_known_elasticity_and_llm_checks_not_applicable():
    sc = scenario(policy="rational", economy={"utility": {"form": "isoelastic", "eta": 0.0, "frisch": 0.3}},
                  tax={"thresholds": [0.0], "initial_rates": [0.25]})
    rep = run_validity(sc, progress=False)
    eti = rep.row("incentives.eti")
    assert eti["value"] == pytest.approx(0.3, abs=0.01)  # flat schedule, no income effect
    assert eti["value"] == eti["rational"]
    assert eti["verdict"] == WITHIN
    ie = rep.row("incentives.income_effect")
    assert abs(ie["value"]) < 1e-6 and ie["verdict"] == OUTSIDE  # eta = 0: no income effect at all
    for c in ("persona.sensitivity", "consistency.seed", "consistency.order", "reliability.fallback"):
        assert rep.verdict(c) == NOT_APPLICABLE
    assert rep.replies is None


def test_log_utility_rational_workers_have_a_negative_income_effect():
    sc = scenario(policy="rational")
    rep = run_validity(sc, progress=False)
    ie = rep.row("incentives.income_effect")
    assert ie["value"] < 0 and ie["value"] == pytest.approx(ie["rational"])
    assert rep.row("persona.wage")["value"] > 0


def test_fixed_workers_do_not_respond():
    rep = run_validity(scenario(policy="fixed"), progress=False)
    assert rep.row("incentives.eti")["value"] == pytest.approx(0.0, abs=1e-12)
    assert rep.verdict("incentives.eti") == OUTSIDE
    assert rep.verdict("persona.wage") == OUTSIDE
    assert rep.verdict("reliability.fallback") == NOT_APPLICABLE


def test_a_population_too_small_says_so():
    rep = measure(calibrated, scenario(size=8))
    for c in ("incentives.eti", "incentives.income_effect", "dispersion.ks", "persona.sensitivity",
              "consistency.seed"):
        r = rep.row(c)
        assert r["verdict"] == NOT_MEASURABLE and "at least" in r["detail"]
        assert np.isnan(r["value"]) and np.isnan(r["ci_low"])
    assert "not measurable" in rep.text()


def test_population_without_persona_fields_marks_persona_not_measurable(tmp_path):
    table = tmp_path / "wages.csv"
    pd.DataFrame({"wage": np.linspace(300, 3000, 12)}).to_csv(table, index=False)
    rep = measure(lambda req: reply(38 + (req.seed % 5)),
                  scenario(population={"source": "file", "path": str(table), "size": 12}))
    r = rep.row("persona.sensitivity")
    assert r["verdict"] == NOT_MEASURABLE and "no sex, age, state" in r["detail"]
    assert rep.verdict("consistency.seed") in (WITHIN, OUTSIDE)  # the other checks still run


def test_fallbacks_are_counted_by_cause():
    from simulator.llm import ScriptedTransportError

    def flaky(req):
        if req.seed % 4 == 0:
            raise ScriptedTransportError("down")
        if req.seed % 4 == 1:
            return "no json"
        return calibrated(req)

    sc = scenario(llm={"max_retries": 0})
    rep = measure(flaky, sc)
    r = rep.replies
    assert rep.row("reliability.fallback")["value"] == pytest.approx((~r["answered"]).mean())
    assert rep.row("reliability.transport")["value"] == pytest.approx((r["error_kind"] == "transport").mean())
    assert rep.row("reliability.invalid")["value"] == pytest.approx((r["error_kind"] == "invalid").mean())
    assert rep.verdict("reliability.fallback") == OUTSIDE


# --------------------------------------------------------------------------- cache, progress, files
def test_second_call_is_served_by_the_cache(tmp_path):
    sc = scenario(size=12, llm={"cache": "readwrite", "cache_path": str(tmp_path / "c.sqlite")})
    calls = {"n": 0}

    def counting(req):
        calls["n"] += 1
        return calibrated(req)

    a = run_validity(sc, llm=build_llm(sc.llm, script=counting), progress=False)
    first = calls["n"]
    assert first > 0
    b = run_validity(sc, llm=build_llm(sc.llm, script=counting), progress=False)
    assert calls["n"] == first  # zero backend calls
    pd.testing.assert_frame_equal(a.table, b.table)


def test_progress_one_line_per_phase_when_not_a_terminal(capsys):
    import io

    buf = io.StringIO()
    sc = scenario(size=4)
    run_validity(sc, llm=build_llm(sc.llm, script=constant), stream=buf)
    lines = buf.getvalue().splitlines()
    assert lines[0].startswith("validity: incentives net-of-tax -20% (4 prompts")
    assert any(line.startswith("validity: consistency rows reversed") for line in lines)
    assert len(lines) == 5 + 1 + 5 + 1 + 2


def test_cli_writes_the_table_and_report_section(tmp_path, capsys):
    from simulator.cli.main import main
    from simulator.report.markdown import run_report
    from simulator.run.runner import run_scenario

    path = tmp_path / "s.yaml"
    path.write_text("name: v\npopulation: {size: 12}\nworkers: {policy: llm}\nrun: {tax_years: 1}\n"
                    "llm: {backend: scripted, cache: 'off'}\n")
    run_dir = tmp_path / "run"
    sc = scenario(size=12)
    run_scenario(sc, run_dir, progress=False, llm=build_llm(sc.llm, script=constant))
    assert main(["behaviour", str(path), "--out", str(run_dir), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "Incentives" in out and "incentives.eti" in out and "validity table:" in out
    table = pd.read_parquet(run_dir / "validity.parquet")
    assert set(table["check"]) >= {"incentives.eti", "dispersion.ks", "consistency.order"}
    (tmp_path / "rep").mkdir()
    page = run_report(run_dir, tmp_path / "rep")
    assert "## Behavioural validity" in page.read_text()
    assert main(["behaviour", str(path), "--rebate-change", "0"]) == 2
    assert "--rebate-change" in capsys.readouterr().err


# --------------------------------------------------------------------------- the gate
def test_gate_stops_the_run_before_the_first_year(tmp_path):
    from simulator.results import load_run
    from simulator.run.runner import run_scenario
    from simulator.validity.gate import ValidityGateError

    sc = scenario(size=12, validity_gate=["incentives", "consistency.seed"])
    with pytest.raises(ValidityGateError, match=r"incentives\.eti outside.*incentives\.income_effect outside"):
        run_scenario(sc, tmp_path / "a", progress=False, llm=build_llm(sc.llm, script=constant))
    manifest = json.loads((tmp_path / "a" / "manifest.json").read_text())
    assert manifest["status"] == "failed" and "validity gate" in manifest["reason"]
    assert (tmp_path / "a" / "validity.parquet").exists()
    assert not (tmp_path / "a" / "years.parquet").exists() or load_run(tmp_path / "a").years.empty
    # a population that passes runs normally
    res = run_scenario(sc, tmp_path / "b", progress=False, llm=build_llm(sc.llm, script=calibrated))
    assert len(res.years) == 1
    assert (tmp_path / "b" / "validity.parquet").exists()


def test_gate_names_are_validated_and_not_applicable_passes(tmp_path):
    from simulator.run.runner import run_scenario

    with pytest.raises(UserError, match="unknown validity check 'vibes'"):
        scenario(validity_gate=["vibes"])
    sc = scenario(policy="rational", size=12, validity_gate=["persona.sensitivity", "reliability"])
    res = run_scenario(sc, tmp_path / "r", progress=False)
    assert len(res.years) == 1


@pytest.mark.parametrize(("garbage_every", "code"), [(1, 1), (4, 3), (0, 0)])
def test_cli_exit_status_says_when_the_model_did_not_answer(tmp_path, capsys, monkeypatch, garbage_every, code):
    """Every reply unusable: exit 1 (the checks describe fallbacks); some: exit 3; none: 0."""
    import simulator.llm.factory as factory
    from simulator.cli.main import main

    real = factory.demo_reply
    monkeypatch.setattr(factory, "demo_reply", lambda r: "garbage" if garbage_every and r.seed % garbage_every == 0
                        else real(r))
    path = tmp_path / "s.yaml"
    path.write_text("name: v\npopulation: {size: 12}\nworkers: {policy: llm}\nrun: {tax_years: 1}\n"
                    "llm: {backend: scripted, cache: 'off', max_retries: 0}\n")
    assert main(["behaviour", str(path), "--no-progress"]) == code
    err = capsys.readouterr().err
    assert ("the checks describe the fallbacks" in err) == (code == 1)
    assert ("warning:" in err) == (code == 3)
