"""The extensive margin in the simulation: calibrating each person's fixed cost of
working when the model is built, and the employment statistics of a year.

The economics (the participation choice, reservation costs, the calibration) is in
:mod:`simulator.economy.participation` and :mod:`simulator.economy.fixed_costs`;
``docs/economics.md`` ("The extensive margin") documents the procedure.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from simulator.economy.best_response import best_response
from simulator.economy.fixed_costs import calibrate_fixed_costs, reservation_cost
from simulator.economy.participation import FixedCostUtility, participation_tax_rate
from simulator.economy.rebate import lump_sum_rebate
from simulator.errors import UserError

if TYPE_CHECKING:
    from simulator.sim.model import EconomyModel

#: household groups of the employment statistics: key -> label
HOUSEHOLD_GROUPS = {
    "single": "single, no children",
    "single_parent": "single parent",
    "married_spouse_not_working": "married, spouse not working",
    "married_spouse_working": "married, spouse working",
    "married_separate": "married filing separately",
}
#: a stream of its own for the cost draws, derived from the population seed
COST_STREAM = 0x46495843  # "FIXC"


@dataclass(frozen=True)
class ParticipationSetup:
    """What the model's build decided: the costs (dollars a year), who works at the
    calibration, and the calibration's summary (``None`` when the costs were read)."""

    fixed_cost: np.ndarray
    employed: np.ndarray
    summary: dict[str, Any] | None


def household_group(population: pd.DataFrame) -> np.ndarray:
    """Each person's key of :data:`HOUSEHOLD_GROUPS`: married filing separately, married
    with a working spouse, married with a spouse not working, single parent (head of
    household, or any qualifying child), else single."""
    n = len(population)
    fs = population["filing_status"].to_numpy() if "filing_status" in population else np.ones(n)
    kids = population["children"].to_numpy() if "children" in population else np.zeros(n)
    sw = population["spouse_wages"].to_numpy() if "spouse_wages" in population else np.zeros(n)
    ekids = population["eitc_children"].to_numpy() if "eitc_children" in population else np.zeros(n)
    return np.select(
        [fs == 3, (fs == 2) & (sw > 0), fs == 2, (fs == 4) | (kids > 0) | (ekids > 0)],
        ["married_separate", "married_spouse_working", "married_spouse_not_working", "single_parent"],
        "single",
    )


def wage_deciles(wages: np.ndarray, weights: np.ndarray | None) -> np.ndarray:
    """Decile 1-10 of the potential wage (weighted; ties share a decile)."""
    w = np.ones_like(wages) if weights is None else weights
    order = np.argsort(wages, kind="stable")
    cum = np.cumsum(w[order])
    mid = (cum - 0.5 * w[order]) / cum[-1]
    d = np.empty(wages.size, dtype=np.int64)
    d[order] = np.minimum((mid * 10).astype(np.int64), 9) + 1
    return d


def targets_of(population: pd.DataFrame, weights: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Each person's employment target and calibration cell (checked).

    Targets come from an ``employment_target`` column (a share in [0, 1]), else from an
    ``employed`` column (0 or 1, e.g. survey data): each cell's weighted share employed.
    Cells are ``participation_cell`` when given, else people with equal targets (with
    ``employed`` only: one cell)."""
    n = len(population)
    w = np.ones(n) if weights is None else np.asarray(weights, dtype=float)
    has_cells = "participation_cell" in population.columns
    cells = (np.unique(population["participation_cell"].astype(str).to_numpy(), return_inverse=True)[1].ravel()
             if has_cells else None)
    if "employment_target" in population.columns:
        col = "employment_target"
        t = pd.to_numeric(population[col], errors="coerce").to_numpy(dtype=float)
        bad = ~np.isfinite(t) | (t < 0) | (t > 1)
        expected = "a share in [0, 1]"
    elif "employed" in population.columns:
        col = "employed"
        t = pd.to_numeric(population[col].astype(object).replace({True: 1, False: 0}),
                          errors="coerce").to_numpy(dtype=float)
        bad = ~np.isin(t, (0.0, 1.0))
        expected = "0 or 1"
    else:
        raise UserError("population: participation needs an employment_target column "
                        "(a share in [0, 1] per person) or an employed column (0 or 1)")
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise UserError(f"population: column {col!r} row {row}: expected {expected}, "
                        f"got {str(population[col].iloc[row])!r}")
    if col == "employed":
        cells = np.zeros(n, dtype=np.int64) if cells is None else cells
        share = np.bincount(cells, weights=w * t) / np.maximum(np.bincount(cells, weights=w), 1e-300)
        t = share[cells]
    elif cells is None:
        cells = np.unique(t, return_inverse=True)[1].ravel()
    return t, cells


def _fixed_costs_of(pop: pd.DataFrame) -> np.ndarray:
    q = pd.to_numeric(pop["fixed_cost"], errors="coerce").to_numpy(dtype=float)
    bad = np.isnan(q) | (q < 0)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise UserError(f"population: column 'fixed_cost' row {row}: expected a number >= 0 "
                        f"(dollars a year), got {str(pop['fixed_cost'].iloc[row])!r}")
    return q


def check_participation_columns(pop: pd.DataFrame, weights: np.ndarray | None = None) -> None:
    """What a run with participation reads from a population table, checked (one line,
    naming the column and row): saved fixed costs, or employment targets with at least
    one person employed."""
    if "fixed_cost" in pop.columns:
        _fixed_costs_of(pop)
        return
    targets, _ = targets_of(pop, weights)
    if float(np.average(targets, weights=weights)) <= 0:
        raise UserError("population: no person is employed (every employment_target is 0): "
                        "participation cannot be calibrated")


def setup(model: EconomyModel, seed: int) -> ParticipationSetup:
    """The fixed costs of working: read from the population's ``fixed_cost`` column
    when it has one (a resumed run, a user's file), else calibrated (see
    :mod:`simulator.economy.fixed_costs`) under the initial schedule, at the transfer
    the fiscal rule then gives (0 under the revenue requirement; found by a few rounds
    under rebate_all), and multiplied by ``population.participation.fixed_cost_scale``."""
    cfg = model.settings.population.participation
    pop = model.population
    budget = model.budget(model.base_schedule)
    u = model.utility
    check_participation_columns(pop, model.weights)
    if "fixed_cost" in pop.columns:
        q = _fixed_costs_of(pop)
        h = best_response(budget, model.wages, FixedCostUtility(u, q, cfg.nonwork_income), 0.0,
                          model.hours_bounds)
        return ParticipationSetup(q, h > 0, None)
    targets, cells = targets_of(pop, model.weights)
    eps = np.random.default_rng(np.random.SeedSequence([seed, COST_STREAM])).standard_normal(len(pop))
    rebate = 0.0
    for _ in range(4):  # the transfer the fiscal rule gives at the calibrated employment
        res = reservation_cost(budget, model.wages, u, rebate, model.hours_bounds,
                               nonwork_income=cfg.nonwork_income)
        try:
            cal = calibrate_fixed_costs(res, cells, targets, eps, cfg.elasticity, model.weights)
        except ValueError as exc:
            raise UserError(f"population.participation: {exc}") from None
        if model.settings.economy.fiscal_rule == "revenue_requirement":
            break
        hours = np.where(cal.employed, res.hours, 0.0)
        tax = model.attributed_tax(model.base_schedule, model.wages * hours)
        new = lump_sum_rebate(tax, model.rebate_share, model.weights, 0.0)
        if abs(new - rebate) < 1.0:
            break
        rebate = new
    q = cal.fixed_cost * cfg.fixed_cost_scale
    employed = cal.employed if cfg.fixed_cost_scale == 1.0 else (
        best_response(budget, model.wages, FixedCostUtility(u, q, cfg.nonwork_income), rebate,
                      model.hours_bounds) > 0)
    w = np.ones(len(pop)) if model.weights is None else model.weights
    summary = {
        "participation_sigma": cal.sigma,
        "participation_elasticity_target": float(cfg.elasticity),
        "participation_elasticity_calibrated": cal.elasticity,
        "employment_target": cal.target_rate,
        "employment_calibrated": float(np.average(employed, weights=w)),
        "participation_calibration_transfer": float(rebate),
        "participation_cells": int(np.unique(cells).size),
        "participation_nonwork_income": float(cfg.nonwork_income),
        "median_fixed_cost": float(np.median(q[employed])) if employed.any() else float("nan"),
    }
    return ParticipationSetup(q, employed, summary)


def employment_record(model: EconomyModel) -> dict[str, float]:
    """The year's employment statistics (shares of the population weight; the
    participation tax rate averaged over the employed)."""
    o = model.outcome
    w = np.ones(model.n_workers) if model.weights is None else model.weights
    employed = (o.hours > 0).astype(float)
    out: dict[str, float] = {"employment_rate": float(np.average(employed, weights=w))}
    we = w * employed
    out["mean_hours_employed"] = float(np.dot(we, o.hours) / we.sum()) if we.sum() > 0 else float("nan")
    dec = model.wage_deciles
    num = np.bincount(dec, weights=we, minlength=11)
    den = np.bincount(dec, weights=w, minlength=11)
    for d in range(1, 11):
        out[f"employment_rate_d{d:02d}"] = float(num[d] / den[d]) if den[d] > 0 else float("nan")
    groups = model.household_groups
    for key in HOUSEHOLD_GROUPS:
        m = groups == key
        out[f"employment_rate_hh_{key}"] = float(np.average(employed[m], weights=w[m])) if m.any() else float("nan")
    ptr = person_rates(model)["participation_tax_rate"]
    ok = np.isfinite(ptr) & (employed > 0)
    out["mean_participation_tax_rate"] = float(np.average(ptr[ok], weights=w[ok])) if ok.any() else float("nan")
    return out


def person_rates(model: EconomyModel) -> dict[str, np.ndarray]:
    """Per person this year: ``employed``, ``potential_earnings`` (own earnings if
    working, else wage x usual hours: dollars a year) and the ``participation_tax_rate``
    at those earnings."""
    o = model.outcome
    key = (model.year, model.step_in_year, id(o))
    cached = getattr(model, "_person_rates_cache", None)
    if cached is not None and cached[0] == key:
        return cached[1]
    employed = o.hours > 0
    z = np.where(employed, o.pre_tax, model.wages * model.usual_hours)
    out = {
        "employed": employed,
        "potential_earnings": z,
        "participation_tax_rate": participation_tax_rate(model.budget(model.schedule), z),
    }
    model._person_rates_cache = (key, out)
    return out
