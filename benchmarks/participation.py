"""The extensive margin, measured: the calibration against its CPS targets, the
participation elasticity it reaches and the one simulated reforms recover, and what
participation costs in build and tax-year time.

    .venv/bin/python benchmarks/participation.py [--size 100000] [--seed 0]
                                                 [--sizes 10000 100000] [--million]
                                                 [--repeats 3] [--quick] [--json]

One Census population with participation (``population.participation.enabled``:
working-age adults 18-64, employed or not, each with a CPS 2024 ``employment_target``),
``economy.world: us_current_law`` (2024 law), ``fiscal_rule: revenue_requirement``,
planner ``us_federal`` (2024 statutory brackets), rational workers with equilibrium
expectations.  The population is drawn with ``numpy.random.default_rng(--seed)`` (as
``benchmarks/taxbenefit_scale.py`` draws its own), the fixed costs of working from the
model's stream of ``run.seed = --seed``.

1. **Calibration against its targets.**  Who works in the model's first tax year
   (``model.run_year()``: hours > 0) against the CPS target, the weighted mean of the
   people's ``employment_target``, by age band x sex (the bands of
   ``personas.participation.AGE_BANDS``), by education x sex for ages 25+, and overall;
   ``s.e.`` is the binomial standard error of the simulated rate,
   ``sqrt(p (1 - p) / n_eff)``, and ``z`` = (simulated - target) / s.e.  The fixed
   costs match every cell's *expected* employment to its target, so the realised
   rates differ from the targets by the draws' sampling error only (a binomial s.e.
   overstates it slightly: the draws have person-specific probabilities).  Employment
   by household type and by potential-wage decile (the year record's
   ``employment_rate_hh_*`` and ``employment_rate_dNN``) has no CPS target: printed as
   information, next to the mean target of the people's cells.
2. **The participation elasticity.**  The calibrated value (``model.participation_summary``:
   the elasticity in expectation over the cost draws, ``log(P1/P0)/log(1.1)`` for an
   in-work benefit of 10 % of every net gain from working) and the value recovered by
   simulating that reform on the same people with their realised costs and exact best
   responses (``simulator.validity.participation.elasticity_value``: the arc elasticity
   with its delta-method 95 % interval over the paired choices).  The net gain from
   working (take-home working minus take-home not working) is taken (a) at the
   reservation hours, the hours worked when paying the largest cost at which working
   still pays (``reservation_cost(...).net_gain``: the calibration's own reform), and
   (b) at the hours chosen when paying one's own cost, 0 where no hours pay it (for
   comparison: ``simulator/validity/collect.py`` and ``tests/test_participation.py`` use
   (a)); the two agree for a person at the margin and
   differ where a person's cost exceeds the take-home of every hours.  For (a) the
   number of people it brings into work is set against what the calibrated cost
   distribution expects (each person's cell location recovered as ``log q - sigma *
   eps`` from the model's cost stream), with the s.d. of that count over the draws.
   Then a real reform through the planner's schedule: the first bracket's rate from
   10 % to 0 %, for the people in the bottom three potential-wage deciles: employment
   before and after, their mean participation tax rate ``(T(z) - T(0)) / z`` at each
   person's potential earnings under each schedule (own earnings if working, else wage
   x usual hours, as the year record measures them), and the arc elasticity
   ``log(P1/P0) / log((1 - ptr1) / (1 - ptr0))`` (interval: the paired sampling of
   ``log(P1/P0)``, the PTR ratio taken as given).  The baseline is the rational
   equilibrium at current law (``equilibrium`` with the model's utility and revenue
   requirement: the transfer is 0 there); each reform once with the transfer held at
   the baseline's (the calibration's definition: only the gain from working changes)
   and once at its own equilibrium transfer (the revenue requirement re-solved: the
   bracket cut's lost revenue collected lump-sum; the in-work benefit is not charged to
   the budget, only the changed taxes of those who work enter it).
3. **Cost.**  Each (size, participation off/on) is one child process that draws the
   population (``pop s``), builds the model (``model s``: the household budgets, the
   revenue requirement and, with participation, the fixed-cost calibration, of which
   ``calib s`` is ``simulator.sim.participation.setup``) and then runs
   ``model.run_year()`` on request: an untimed warm-up year, then ``--repeats`` timed
   years, the two children of a size interleaved (off on, on off, ...).  ``s/year`` is
   the median wall time of a timed year, ``cpu/year`` the median CPU time of the child
   (all threads), ``build on/off`` the ratio of the two builds (pop + model) and ``year
   on/off`` the median of the per-repeat ratios; ``peak MB`` the child's max RSS after
   building and the warm-up year.  Without participation the population is employed
   workers only (the paper's), of the same size.

``--quick``: 5,000 people, sizes 2,000 and 5,000, one repeat (a smoke test).
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from scipy.special import ndtr

sys.path.append(str(Path(__file__).resolve().parent))  # _provenance
from _provenance import footer, header  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the checkout's simulator and personas, whatever the working directory

from personas.model import EDUCATION, SEXES  # noqa: E402
from personas.participation import AGE_BANDS, EDU_MARGIN_MIN_AGE, age_band_index  # noqa: E402
from simulator.config.loading import scenario_from_dict  # noqa: E402
from simulator.economy.best_response import best_response, equilibrium  # noqa: E402
from simulator.economy.fixed_costs import REFORM_RATIO, reservation_cost  # noqa: E402
from simulator.economy.participation import (  # noqa: E402
    FixedCostUtility,
    intensive,
    participation_tax_rate,
    take_home,
)
from simulator.sim import participation as extensive  # noqa: E402
from simulator.sim.model import EconomyModel  # noqa: E402
from simulator.sim.participation import HOUSEHOLD_GROUPS  # noqa: E402
from simulator.sim.population import build_population  # noqa: E402
from simulator.validity.participation import elasticity_value  # noqa: E402

#: the first bracket's rate under the reform (the statutory 10 % cut to this)
CUT_RATE = 0.0
#: the bottom potential-wage deciles the bracket cut is measured on
BOTTOM_DECILES = 3
#: the overall employment rate must lie within this many standard errors of its target
Z_OVERALL = 3.0


def scenario(n: int, seed: int, participation: bool):
    """The benchmark's scenario: census population of ``n``, us_current_law, revenue
    requirement, planner us_federal 2024, rational workers (equilibrium expectations)."""
    return scenario_from_dict({
        "name": f"participation-{'on' if participation else 'off'}-{n}",
        "population": {"size": n, "source": "census", "participation": {"enabled": participation}},
        "economy": {"world": "us_current_law", "fiscal_rule": "revenue_requirement"},
        "tax": {"us_federal": {"year": 2024, "filing_status": "single"}},
        "planner": {"kind": "us_federal"},
        "workers": {"policy": "rational", "expectations": "equilibrium"},
        "run": {"seed": seed, "mesa_agents": False, "steps_per_year": 1, "tax_years": 1},
        "output": {"agents_table": False},
    })


class _CalibrationTimer:
    """Wraps ``simulator.sim.participation.setup`` (the model looks it up on the module
    at build time) to time the fixed-cost calibration inside the model's build."""

    def __init__(self) -> None:
        self.module, self.original, self.seconds = extensive, extensive.setup, 0.0

        def timed(*args, **kwargs):
            t0 = time.perf_counter()
            try:
                return self.original(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - t0

        extensive.setup = timed

    def close(self) -> None:
        self.module.setup = self.original


def build(n: int, seed: int, participation: bool) -> tuple[object, dict[str, float]]:
    """The model and its build times (seconds): population, model, calibration."""
    sc = scenario(n, seed, participation)
    t0 = time.perf_counter()
    pop = build_population(sc.population, np.random.default_rng(seed))
    t_pop = time.perf_counter() - t0
    timer = _CalibrationTimer()
    try:
        t0 = time.perf_counter()
        model = EconomyModel(sc, pop, agent_objects=False)
        t_model = time.perf_counter() - t0
    finally:
        timer.close()
    return model, {"pop_s": t_pop, "model_s": t_model, "calib_s": timer.seconds}


# --------------------------------------------------------------------------- 1. calibration
def _weights(model) -> np.ndarray:
    return np.ones(model.n_workers) if model.weights is None else np.asarray(model.weights, dtype=float)


def _rate(x: np.ndarray, w: np.ndarray) -> tuple[float, float, int]:
    """Weighted share, its binomial standard error and the headcount."""
    p = float(np.average(x, weights=w))
    n_eff = w.sum() ** 2 / np.sum(w**2)
    return p, float(np.sqrt(max(p * (1.0 - p), 0.0) / n_eff)), int(x.size)


def calibration_tables(model, record: dict) -> dict:
    """Simulated employment (first tax year) against the targets, by group."""
    pop = model.population
    w = _weights(model)
    employed = (model.outcome.hours > 0).astype(float)
    target = pop["employment_target"].to_numpy(dtype=float)
    age = pop["age"].to_numpy()
    sex = pop["sex"].to_numpy()
    edu = pop["education"].to_numpy()
    band = age_band_index(age)

    def row(label: str, mask: np.ndarray) -> dict | None:
        if not mask.any():
            return None
        p, se, n = _rate(employed[mask], w[mask])
        t = float(np.average(target[mask], weights=w[mask]))
        return {"group": label, "people": n, "target": t, "simulated": p, "se": se,
                "z": (p - t) / se if se > 0 else float("nan")}

    out: dict[str, list] = {"age_sex": [], "education_sex": [], "overall": [], "household": [], "decile": []}
    for s in SEXES:
        for b, lab in enumerate(AGE_BANDS):
            r = row(f"{lab} {s}", (band == b) & (sex == s))
            if r:
                out["age_sex"].append(r)
    adult = age >= EDU_MARGIN_MIN_AGE
    for s in SEXES:
        for e in EDUCATION:
            r = row(f"{e} {s}", adult & (edu == e) & (sex == s))
            if r:
                out["education_sex"].append(r)
    out["overall"].append(row("all", np.ones(model.n_workers, dtype=bool)))
    # the calibration's own cells (age band x sex x education): how far each lies from its target
    cells = pop["participation_cell"].to_numpy()
    zs = [r["z"] for c in np.unique(cells) if (r := row(str(c), cells == c)) and np.isfinite(r["z"])]
    out["cells"] = {"n": len(zs), "sum_z2": float(np.sum(np.square(zs))),
                    "beyond_1_96": int(np.sum(np.abs(zs) > 1.96))}
    # information: household types and potential-wage deciles (the year record's columns)
    groups = model.household_groups
    mismatch = 0.0
    for key, label in HOUSEHOLD_GROUPS.items():
        m = groups == key
        r = row(label, m)
        if r:
            rec = record[f"employment_rate_hh_{key}"]
            mismatch = max(mismatch, abs(rec - r["simulated"]))
            r["simulated"] = rec
            out["household"].append(r)
    dec = model.wage_deciles
    hourly = model.wages / 52.0
    for d in range(1, 11):
        m = dec == d
        r = row(f"d{d:02d}", m)
        if r:
            rec = record[f"employment_rate_d{d:02d}"]
            mismatch = max(mismatch, abs(rec - r["simulated"]))
            r["simulated"] = rec
            r["wage_lo"], r["wage_median"] = float(hourly[m].min()), float(np.median(hourly[m]))
            out["decile"].append(r)
    out["record_mismatch"] = mismatch
    out["record_employment_rate"] = float(record["employment_rate"])
    return out


def _print_rates(title: str, rows: list[dict], target_label: str = "target", z: bool = True) -> None:
    print(f"\n{title:<34} {'people':>9} {target_label:>9} {'simulated':>9} {'s.e.':>6} "
          f"{'sim-' + target_label:>10}" + (f" {'z':>6}" if z else ""))
    for r in rows:
        zs = (r["simulated"] - r["target"]) / r["se"] if r["se"] > 0 else float("nan")
        print(f"  {r['group']:<32} {r['people']:>9,} {100 * r['target']:>8.2f}% {100 * r['simulated']:>8.2f}% "
              f"{100 * r['se']:>6.2f} {100 * (r['simulated'] - r['target']):>+7.2f} pp"
              + (f" {zs:>+6.2f}" if z else ""))


def print_calibration(cal: dict, model) -> bool:
    """Prints the tables; True when the overall rate is within Z_OVERALL s.e. of its target."""
    _print_rates("age band x sex", cal["age_sex"])
    _print_rates("education x sex, ages 25+", cal["education_sex"])
    _print_rates("overall", cal["overall"])
    o = cal["overall"][0]
    ok = abs(o["simulated"] - o["target"]) <= Z_OVERALL * o["se"]
    c = cal["cells"]
    print(f"\noverall: simulated {100 * o['simulated']:.2f} % against the target {100 * o['target']:.2f} %, "
          f"{100 * (o['simulated'] - o['target']):+.2f} pp = {o['z']:+.2f} s.e.: "
          f"{'within' if ok else 'NOT within'} {Z_OVERALL:g} s.e.")
    print(f"the {c['n']} calibration cells (age band x sex x education): sum of z^2 {c['sum_z2']:.1f} on {c['n']} "
          f"cells (about {c['n']} or less when only the draws' sampling error separates simulated from target), "
          f"{c['beyond_1_96']} with |z| > 1.96 (about {0.05 * c['n']:.1f} expected)")
    print("\nno CPS target for these (information; 'cells' = the mean target of the people's "
          "age band x sex x education cells,\nwhat employment would be if household type and wage "
          "did not matter within a cell):")
    _print_rates("household type", cal["household"], "cells", z=False)
    print(f"\n{'potential-wage decile':<34} {'people':>9} {'cells':>9} {'simulated':>9} {'s.e.':>6} "
          f"{'sim-cells':>10}   hourly wage from (median)")
    for r in cal["decile"]:
        print(f"  {r['group']:<32} {r['people']:>9,} {100 * r['target']:>8.2f}% {100 * r['simulated']:>8.2f}% "
              f"{100 * r['se']:>6.2f} {100 * (r['simulated'] - r['target']):>+7.2f} pp   "
              f"${r['wage_lo']:,.2f} (${r['wage_median']:,.2f})")
    check = "ok" if cal["record_mismatch"] < 1e-12 else f"differ by up to {cal['record_mismatch']:.2e}"
    print(f"(the household and decile rates are the year record's columns; recomputed from the hours: {check})")
    return ok


# --------------------------------------------------------------------------- 2. elasticity
def _log_ratio(x0: np.ndarray, x1: np.ndarray, w: np.ndarray) -> tuple[float, float, float, float]:
    """P0, P1, log(P1/P0) and its delta-method standard error over paired choices."""
    wn = w / w.sum()
    p0, p1 = float(wn @ x0), float(wn @ x1)
    if p0 <= 0 or p1 <= 0:
        return p0, p1, float("nan"), float("nan")
    infl = (x1 - p1) / p1 - (x0 - p0) / p0
    return p0, p1, float(np.log(p1 / p0)), float(np.sqrt(np.sum(wn**2 * infl**2)))


def elasticities(model) -> dict:
    """The calibrated elasticity and those recovered from the two reforms."""
    w = model.wages
    wt = _weights(model)
    u = model.utility
    bounds = model.hours_bounds
    req = model.revenue_requirement

    def eq(budget, utility):
        return equilibrium(budget, w, utility, model.rebate_share, bounds, model.weights, requirement=req)

    t0 = time.perf_counter()
    b0 = model.budget(model.base_schedule)
    h0, r0 = eq(b0, u)
    same_as_year = float(np.mean((h0 > 0) != (model.outcome.hours > 0)))
    q = np.broadcast_to(np.asarray(u.fixed_cost, dtype=float), w.shape)
    qf = np.where(np.isfinite(q), q, 0.0)
    # the in-work benefit, 10 % of each person's net gain from working, two ways:
    # (a) the calibration's: the gain at the reservation hours (the hours worked when paying
    #     the largest cost at which working still pays; simulator.economy.fixed_costs)
    res = reservation_cost(b0, w, u, r0, bounds)  # with the model's income when not working
    benefit_cal = (REFORM_RATIO - 1.0) * res.net_gain
    # (b) for comparison (the validity check and the tests use (a)):
    #     the gain at the hours chosen when paying one's own cost; 0 where no hours pay it
    positive = best_response(b0, w, intensive(u), r0 - qf, bounds)
    gain = take_home(b0, w * positive) - take_home(b0, np.zeros_like(w)) - u.nonwork_income
    benefit_own = (REFORM_RATIO - 1.0) * np.maximum(gain, 0.0)
    u_cal = FixedCostUtility(intensive(u), q - benefit_cal, u.nonwork_income)
    u_own = FixedCostUtility(intensive(u), q - benefit_own, u.nonwork_income)
    h_cal_held = best_response(b0, w, u_cal, r0, bounds)
    h_cal_eq, r_cal_eq = eq(b0, u_cal)
    h_own_held = best_response(b0, w, u_own, r0, bounds)
    # the first bracket's rate cut, through the planner's schedule
    rates = list(model.base_schedule.rates)
    cut = model.base_schedule.with_rates([CUT_RATE, *rates[1:]])
    b1 = model.budget(cut)
    h_cut_held = best_response(b1, w, u, r0, bounds)
    h_cut_eq, r_cut_eq = eq(b1, u)
    seconds = time.perf_counter() - t0

    everyone = np.ones(w.size, dtype=bool)
    bottom = model.wage_deciles <= BOTTOM_DECILES
    e0 = (h0 > 0).astype(float)

    def potential(h):
        return np.where(h > 0, w * h, w * model.usual_hours)

    def mean_ptr(budget, h, mask):
        ptr = participation_tax_rate(budget, potential(h))[mask]
        ok = np.isfinite(ptr)
        return float(np.average(ptr[ok], weights=wt[mask][ok]))

    rows = []
    for key, label, h1, r1, mask in (
            ("benefit_cal_held", "(a) transfer held", h_cal_held, r0, everyone),
            ("benefit_cal_held_bottom", "(a) transfer held", h_cal_held, r0, bottom),
            ("benefit_cal_equilibrium", "(a) equilibrium", h_cal_eq, r_cal_eq, everyone),
            ("benefit_own_held", "(b) transfer held", h_own_held, r0, everyone)):
        el, se = elasticity_value(h0[mask], h1[mask], wt[mask])
        p0, p1, _, _ = _log_ratio(e0[mask], (h1[mask] > 0).astype(float), wt[mask])
        rows.append({"key": key, "reform": f"in-work benefit +10 % {label}", "bottom": bool(mask is bottom),
                     "people": int(mask.sum()), "transfer": float(r1), "p0": p0, "p1": p1, "ptr0": None,
                     "ptr1": None, "net_ratio": REFORM_RATIO, "elasticity": el, "se": se})
    for key, label, h1, r1 in (("cut_held", "transfer held", h_cut_held, r0),
                               ("cut_equilibrium", "equilibrium", h_cut_eq, r_cut_eq)):
        mask = bottom
        p0, p1, lr, lr_se = _log_ratio(e0[mask], (h1[mask] > 0).astype(float), wt[mask])
        ptr0, ptr1 = mean_ptr(b0, h0, mask), mean_ptr(b1, h1, mask)
        ratio = (1.0 - ptr1) / (1.0 - ptr0)
        den = np.log(ratio) if ratio > 0 and ratio != 1 else float("nan")
        rows.append({"key": key, "reform": f"bracket 1 {rates[0]:.0%} -> {CUT_RATE:.0%}, {label}", "bottom": True,
                     "people": int(mask.sum()), "transfer": float(r1), "p0": p0, "p1": p1, "ptr0": ptr0,
                     "ptr1": ptr1, "net_ratio": ratio, "elasticity": lr / den, "se": lr_se / abs(den)})
    # (a) on the realised draws against its expectation over the draws: with log q_i = mu_cell +
    # sigma * eps_i (simulator.economy.fixed_costs), each person's location is log q_i - sigma *
    # eps_i, eps from the model's cost stream (simulator.sim.participation.setup)
    summary = model.participation_summary or {}
    sigma = float(summary.get("participation_sigma", float("nan")))
    eps = np.random.default_rng(np.random.SeedSequence([model.settings.run.seed if
                                                        model.settings.population.seed is None else
                                                        model.settings.population.seed,
                                                        extensive.COST_STREAM])).standard_normal(w.size)
    with np.errstate(divide="ignore", invalid="ignore"):
        mu = np.log(q) - sigma * eps
    cells = model.population["participation_cell"].to_numpy()
    spread = max(float(np.ptp(mu[cells == c])) for c in np.unique(cells))
    wn = wt / wt.sum()

    def expected(cost):
        with np.errstate(divide="ignore"):
            return np.where(cost > 0, ndtr((np.log(np.where(cost > 0, cost, 1.0)) - mu) / sigma), 0.0)

    d_exp = expected(res.cost + benefit_cal) - expected(res.cost)
    switch = (h_cal_held > 0) & (h0 <= 0)
    draws = {
        "reproduced": spread < 1e-6,
        "expected_share": float(wn @ d_exp), "sd_share": float(np.sqrt(np.sum(wn**2 * d_exp * (1 - d_exp)))),
        "realised_share": float(wn @ switch), "leavers": int(np.sum((h_cal_held <= 0) & (h0 > 0))),
        "expected_elasticity": float(np.log((wn @ expected(res.cost + benefit_cal)) / (wn @ expected(res.cost)))
                                     / np.log(REFORM_RATIO)),
    }
    # where the two benefits differ: people whose own cost no hours of work pay for
    no_hours = (positive <= 0) & (w > 0)
    at_cap = res.hours >= bounds[1] - 1e-9
    c0 = take_home(b0, np.zeros_like(w)) + r0
    diagnostics = {
        "no_paying_hours": float(np.average(no_hours, weights=wt)),
        "no_paying_hours_switchers": float(np.average(no_hours[switch], weights=wt[switch])) if switch.any()
        else float("nan"),
        "reservation_at_cap": float(np.average(at_cap, weights=wt)),
        "reservation_at_cap_switchers": float(np.average(at_cap[switch], weights=wt[switch])) if switch.any()
        else float("nan"),
        "nothing_when_not_working": float(np.average(c0 <= 1.0, weights=wt)),
        "nonwork_income": float(np.mean(u.nonwork_income)),
        "cap_without_income": float(np.average(c0[at_cap] <= 1.0, weights=wt[at_cap])) if at_cap.any()
        else float("nan"),
        "mean_benefit_cal_employed": float(np.average(benefit_cal[h0 > 0], weights=wt[h0 > 0])),
        "mean_benefit_own_employed": float(np.average(benefit_own[h0 > 0], weights=wt[h0 > 0])),
    }
    return {
        "target": float(summary.get("participation_elasticity_target", float("nan"))),
        "calibrated": float(summary.get("participation_elasticity_calibrated", float("nan"))),
        "sigma": float(summary.get("participation_sigma", float("nan"))),
        "baseline_transfer": float(r0), "baseline_employment": float(np.average(e0, weights=wt)),
        "baseline_differs_from_year": same_as_year,
        "rows": rows, "diagnostics": diagnostics, "draws": draws, "seconds": seconds,
    }


def print_elasticities(el: dict) -> bool:
    """Prints the table; True when the interval recovered from the calibration's in-work
    benefit (transfer held, everyone) holds the calibrated elasticity."""
    d = el["diagnostics"]
    print(f"\ncalibration: target elasticity {el['target']:.4f}; calibrated (expected over the cost draws, "
          f"model.participation_summary) {el['calibrated']:.4f} at sigma {el['sigma']:.4f} (log-normal costs "
          "within a cell)")
    check = "the same as" if el["baseline_differs_from_year"] == 0 else \
        f"{el['baseline_differs_from_year']:.2%} of choices differ from"
    print(f"baseline: rational equilibrium at current law, transfer ${el['baseline_transfer']:,.0f}/yr, "
          f"employment {100 * el['baseline_employment']:.2f} % ({check} the model's first year)")
    print("in-work benefit, 10 % of each person's net gain from working (take-home working minus take-home not "
          "working), the gain taken\n  (a) at the reservation hours (the hours worked when paying the largest cost "
          "at which working pays: the calibration's reform),\n      on average "
          f"${d['mean_benefit_cal_employed']:,.0f}/yr to those working;\n  (b) at the hours chosen when paying "
          "one's own cost, 0 where no hours pay it (for comparison: the validity check and\n"
          "      tests/test_participation.py use (a)), on average "
          f"${d['mean_benefit_own_employed']:,.0f}/yr to those working")
    print(f"\n{'reform':<40} {'people':<14} {'transfer':>9} {'P0':>7} {'P1':>7} {'P1-P0':>8} {'PTR0':>7} "
          f"{'PTR1':>7} {'(1-PTR) ratio':>13} {'elasticity':>10}  95 % interval")
    ok, first = False, (float("nan"), float("nan"))
    for r in el["rows"]:
        lo, hi = r["elasticity"] - 1.96 * r["se"], r["elasticity"] + 1.96 * r["se"]
        ptr0 = "-" if r["ptr0"] is None else f"{100 * r['ptr0']:.2f}%"
        ptr1 = "-" if r["ptr1"] is None else f"{100 * r['ptr1']:.2f}%"
        group = f"d1-{BOTTOM_DECILES} {r['people']:,}" if r["bottom"] else f"all {r['people']:,}"
        print(f"{r['reform']:<40} {group:<14} {r['transfer']:>9,.0f} {100 * r['p0']:>6.2f}% {100 * r['p1']:>6.2f}% "
              f"{100 * (r['p1'] - r['p0']):>+5.2f} pp {ptr0:>7} {ptr1:>7} {r['net_ratio']:>13.4f} "
              f"{r['elasticity']:>10.4f}  [{lo:.4f}, {hi:.4f}]")
        if r["key"] == "benefit_cal_held":
            ok, first = lo <= el["calibrated"] <= hi, (lo, hi)
    print(f"\nthe calibrated elasticity {el['calibrated']:.4f} is {'inside' if ok else 'OUTSIDE'} the interval "
          f"recovered from the simulated in-work benefit (a) (transfer held, all people) "
          f"[{first[0]:.4f}, {first[1]:.4f}]")
    dr = el["draws"]
    n = el["rows"][0]["people"]
    z = (dr["realised_share"] - dr["expected_share"]) / dr["sd_share"]
    print(f"(a) brings {dr['realised_share'] * n:,.0f} people into work ({dr['leavers']} leave it); the calibrated "
          f"cost distribution expects {dr['expected_share'] * n:,.1f} (s.d. {dr['sd_share'] * n:.1f} over the cost "
          f"draws, z = {z:+.2f}),\nan expected elasticity of {dr['expected_elasticity']:.4f} on these reservation costs: "
          "the recovered elasticity is the realised draws', the calibrated one their expectation"
          + ("" if dr["reproduced"] else " (WARNING: the cost draws were not reproduced)"))
    print(f"(b) differs from (a) where no hours of work pay a person's own fixed cost ({100 * d['no_paying_hours']:.1f} % "
          f"of people, {100 * d['no_paying_hours_switchers']:.1f} % of those (a) brings into work): (b) gives them no "
          f"benefit.\nThe reservation hours are the hours cap for {100 * d['reservation_at_cap']:.1f} % of people "
          f"({100 * d['reservation_at_cap_switchers']:.1f} % of those (a) brings into work); "
          f"{100 * d['cap_without_income']:.1f} % of these have no take-home\nat zero earnings from the tax-benefit system "
          f"(only the support when not working, ${d['nonwork_income']:,.0f}/yr), "
          f"{100 * d['nothing_when_not_working']:.1f} % of all people.")
    print("transfer: $/yr per person (revenue requirement: 0 at current law; a bracket cut's lost revenue is "
          "collected lump-sum at its equilibrium;\nthe in-work benefit is not charged to the budget). PTR: mean "
          "participation tax rate (T(z) - T(0)) / z of the group at each person's potential\nearnings under each "
          "schedule; the in-work benefit raises every net gain from working by 10 % (ratio 1.1 by construction).\n"
          "Bracket-cut interval: sampling of log(P1/P0) over the paired choices, the PTR ratio taken as given. "
          f"Reforms solved in {el['seconds']:.1f} s.")
    return ok


# --------------------------------------------------------------------------- 3. cost
def child_main(cfg: dict) -> int:
    """One (size, participation) configuration: build, then a year per 'year' line."""
    def peak_mb() -> float:
        # this process's own high-water mark: Linux carries ru_maxrss over an exec, so a
        # child of a parent that held a large model would report the parent's peak
        try:
            for line in Path("/proc/self/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
        except (OSError, ValueError, IndexError):
            pass
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    model, times = build(cfg["n"], cfg["seed"], cfg["participation"])
    print(json.dumps({**times, "built_peak_mb": peak_mb()}), flush=True)
    for line in sys.stdin:
        cmd = line.strip()
        if cmd == "year":
            w0, c0 = time.perf_counter(), time.process_time()
            rec = model.run_year()
            out = {"wall": time.perf_counter() - w0, "cpu": time.process_time() - c0,
                   "employment_rate": float(rec.get("employment_rate", 1.0)),
                   "mean_hours": float(rec["mean_hours"])}
        elif cmd == "peak":
            out = {"peak_mb": peak_mb()}
        else:
            print(json.dumps({"peak_mb": peak_mb()}), flush=True)
            break
        print(json.dumps(out), flush=True)
    return 0


class Child:
    """One (size, participation) configuration in its own process."""

    def __init__(self, n: int, participation: bool, seed: int) -> None:
        self.n, self.participation = n, participation
        cfg = json.dumps({"n": n, "participation": participation, "seed": seed})
        self.proc = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--child", cfg],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, cwd=ROOT)
        self.built = self._read()

    def _read(self) -> dict:
        line = self.proc.stdout.readline()
        if not line:
            err = self.proc.stderr.read().strip().splitlines() or ["no output"]
            what = "with" if self.participation else "without"
            raise RuntimeError(f"{self.n:,} people {what} participation failed: {err[-1]}")
        return json.loads(line)

    def ask(self, cmd: str) -> dict:
        self.proc.stdin.write(cmd + "\n")
        self.proc.stdin.flush()
        return self._read()

    def close(self) -> None:
        self.ask("done")
        self.proc.wait(timeout=60)


def measure(n: int, seed: int, repeats: int) -> dict[str, dict]:
    """Both configurations at ``n``: build, warm up, ``repeats`` interleaved years."""
    kids: dict[str, Child] = {}
    try:
        for key, part in (("off", False), ("on", True)):
            kids[key] = Child(n, part, seed)
        res = {k: {**c.built, "years": []} for k, c in kids.items()}
        for k, c in kids.items():
            res[k]["warmup"] = c.ask("year")
            res[k]["peak_mb"] = c.ask("peak")["peak_mb"]
        ratios = []
        for r in range(repeats):
            order = ("off", "on") if r % 2 == 0 else ("on", "off")
            got = {k: kids[k].ask("year") for k in order}
            for k in got:
                res[k]["years"].append(got[k])
            ratios.append(got["on"]["wall"] / got["off"]["wall"])
        for c in kids.values():
            c.close()
        for k in res:
            res[k]["build_s"] = res[k]["pop_s"] + res[k]["model_s"]
            res[k]["median_wall"] = statistics.median(y["wall"] for y in res[k]["years"])
            res[k]["median_cpu"] = statistics.median(y["cpu"] for y in res[k]["years"])
        res["on"]["build_ratio"] = res["on"]["build_s"] / res["off"]["build_s"]
        res["on"]["year_ratio"] = statistics.median(ratios)
        return res
    finally:
        for c in kids.values():
            if c.proc.poll() is None:
                c.proc.kill()


def print_cost(n: int, res: dict, repeats: int) -> None:
    for k in ("off", "on"):
        r = res[k]
        calib = f"{r['calib_s']:.2f}" if k == "on" else "-"
        b_ratio = f"{r['build_ratio']:.2f}" if k == "on" else "-"
        y_ratio = f"{r['year_ratio']:.2f}" if k == "on" else "-"
        emp = f"{100 * r['years'][-1]['employment_rate']:.1f}%"
        print(f"{n:>10,}  {k:<13} {r['pop_s']:>6.2f} {r['model_s']:>8.2f} {calib:>7} {r['build_s']:>8.2f} "
              f"{b_ratio:>12} {repeats:>7} {r['median_wall']:>8.3f} {r['median_cpu']:>8.3f} {y_ratio:>11} "
              f"{r['peak_mb']:>8,.0f} {emp:>9} {r['years'][-1]['mean_hours']:>6.1f}", flush=True)


# --------------------------------------------------------------------------- main
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=100_000, help="people of the calibration and elasticity runs")
    ap.add_argument("--seed", type=int, default=0, help="population and fixed-cost seed")
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000], help="sizes of the cost table")
    ap.add_argument("--million", action="store_true", help="add 1,000,000 people to the cost table")
    ap.add_argument("--repeats", type=int, default=3, help="timed tax years per configuration")
    ap.add_argument("--quick", action="store_true", help="5,000 people, sizes 2,000 and 5,000, one repeat")
    ap.add_argument("--json", action="store_true", help="also print the measurements as JSON")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.quick:
        args.size, args.sizes, args.repeats = 5_000, [2_000, 5_000], 1
    if args.million and 1_000_000 not in args.sizes:
        args.sizes = [*args.sizes, 1_000_000]
    if min(args.size, *args.sizes, args.repeats) < 1:
        ap.error("--size, --sizes and --repeats must be >= 1")
    if args.size < 200:
        ap.error("--size must be at least 200 (every age band x sex group needs people)")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        return child_main(json.loads(args.child))
    started = time.perf_counter()
    print(header(__file__, argv), flush=True)
    print(f"Census population with participation (working-age adults 18-64, employed or not), {args.size:,} "
          f"people, seed {args.seed};\nus_current_law 2024, revenue_requirement, planner us_federal 2024, "
          "rational workers (equilibrium expectations), 1 step a tax year", flush=True)
    failed = False
    out: dict = {}

    model, times = build(args.size, args.seed, True)
    record = model.run_year()
    print(f"built in {times['pop_s'] + times['model_s']:.1f} s (population {times['pop_s']:.1f} s, model "
          f"{times['model_s']:.1f} s, of which the fixed-cost calibration {times['calib_s']:.1f} s); "
          f"first tax year: year {record['year']} of the model, 2024 law", flush=True)
    print("\n1. Employment in the first tax year against the CPS 2024 targets (rates of the population; "
          "s.e. and sim-target in pp)", flush=True)
    cal = calibration_tables(model, record)
    ok_overall = print_calibration(cal, model)
    print("\n2. The participation elasticity (d log employment / d log net-of-participation-tax rate)", flush=True)
    el = elasticities(model)
    ok_el = print_elasticities(el)
    out["calibration"], out["elasticity"] = cal, el
    del model

    print(f"\n3. Cost: building the model and one rational tax year, without and with participation "
          f"(median of {args.repeats} timed years after a warm-up)", flush=True)
    print(f"\n{'people':>10}  {'participation':<13} {'pop s':>6} {'model s':>8} {'calib s':>7} {'build s':>8} "
          f"{'build on/off':>12} {'repeats':>7} {'s/year':>8} {'cpu/year':>8} {'year on/off':>11} "
          f"{'peak MB':>8} {'employed':>9} {'hours':>6}", flush=True)
    out["cost"] = {}
    for n in args.sizes:
        try:
            res = measure(n, args.seed, args.repeats)
        except (RuntimeError, OSError, ValueError) as e:
            print(f"{n:>10,}  error: {e}", flush=True)
            failed = True
            continue
        out["cost"][str(n)] = res
        print_cost(n, res, args.repeats)
    print("(employed: share of people working in the last timed year; hours: mean weekly hours of everyone, "
          "0 for those not working)")
    print(f"\noverall employment within {Z_OVERALL:g} s.e. of its target: {'yes' if ok_overall else 'NO'}; "
          f"calibrated elasticity inside the recovered 95 % interval: {'yes' if ok_el else 'NO'}")
    print(footer(started))
    if args.json:
        print(json.dumps(out, indent=2, default=float))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
