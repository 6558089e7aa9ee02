"""The page's model: a thin ``mesa.Model`` adapter around :class:`~simulator.sim.model.EconomyModel`.

:class:`ExploreModel` turns the page's flat controls (``population_size``, ``rate_3``,
``planner``, ``rebate_share``, ...) into a validated :class:`~simulator.config.schema.Scenario`,
builds the economy from it and steps it one *tax year* per Mesa ``step()``.  Changing a
control through :meth:`ExploreModel.apply` validates the whole combination first; a
rejected combination leaves the economy exactly as it was and stores the validation
message in :attr:`ExploreModel.error` (the page shows it).

Units: rates in the controls are percent (0-100); incomes in dollars a year, hours in
hours a week.  No Solara here: this module is importable (and tested) without the
``explore`` extra.
"""

from __future__ import annotations

import copy
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any

import mesa
import numpy as np
import pandas as pd
import yaml

from simulator.config.builders import build_base_schedule
from simulator.config.loading import resolve_scenario_path, scenario_from_dict
from simulator.config.planners import PLANNER_KINDS as REGISTERED_PLANNERS
from simulator.config.schema import Scenario
from simulator.economy.tax import TaxSchedule
from simulator.economy.welfare import SWF_NAMES, Outcome, social_welfare
from simulator.errors import UserError
from simulator.sim.model import EconomyModel
from simulator.sim.population import build_population

#: The scenario the page opens with when none is named.
DEFAULT_SCENARIO = "rational_baselines"
#: Planner kinds offered by the page (those with an explore label in the registry,
#: :data:`simulator.config.planners.PLANNER_KINDS`); ``fixed`` means "the rate sliders".
PLANNER_KINDS = tuple(k.name for k in REGISTERED_PLANNERS.values() if k.explore_label is not None)
WORKER_POLICIES = ("rational", "fixed", "llm")
POPULATION_SOURCES = ("census", "gb2", "file")
#: Populations above this size get no per-worker Mesa agent objects (about 10 us each).
MAX_AGENT_OBJECTS = 10_000
#: Populations kept in memory, keyed by their source settings (drawing 100,000 Census
#: personas takes seconds; a rate change must not redraw them).
POPULATION_CACHE_SIZE = 4
_POPULATIONS: OrderedDict[str, pd.DataFrame] = OrderedDict()
# Starting-schedule outcomes (outcome, welfare, deciles), keyed like the population plus
# everything else they depend on: a rate change does not solve the starting schedule again.
_BASELINES: OrderedDict[str, tuple] = OrderedDict()

# Controls that define the economy's people or randomness (everything else is policy).
_STRUCTURAL = ("scenario", "population_size", "population_source", "population_path", "seed")

#: (low, high, step) of each numeric control, in the page's units: the page's slider
#: ranges, and the values a starting control may take (widened to the scenario's own
#: value where it lies outside).  ``rate`` stands for every ``rate_<i>``.
CONTROL_RANGES: dict[str, tuple[float, float, float]] = {
    "population_size": (10, 200_000, 10), "seed": (0, 1000, 1),
    "delta": (1.1, 6.0, 0.1), "eta": (0.0, 3.0, 0.1), "frisch": (0.1, 2.0, 0.05),
    "min_hours": (0.0, 168.0, 1.0), "max_hours": (0.0, 168.0, 1.0),
    "rate": (0.0, 100.0, 0.5), "flat_rate": (0.0, 100.0, 0.5), "rebate_share": (0.0, 100.0, 1.0),
}
_WHOLE = ("population_size", "seed")
_PERCENT = ("rate", "flat_rate", "rebate_share")
_CHOICES = {"planner": PLANNER_KINDS, "workers": WORKER_POLICIES, "population_source": POPULATION_SOURCES}


def control_range(name: str, settings: dict[str, Any] | None = None) -> tuple[float, float, float]:
    """(low, high, step) of numeric control ``name``, widened to ``settings[name]``."""
    lo, hi, step = CONTROL_RANGES["rate" if name.startswith("rate_") else name]
    own = (settings or {}).get(name)
    if isinstance(own, int | float) and not isinstance(own, bool) and np.isfinite(own):
        lo, hi = min(lo, own), max(hi, own)
    return lo, hi, step


def check_controls(params: dict[str, Any], settings: dict[str, Any]) -> dict[str, Any]:
    """Starting values of controls, checked one by one against ``settings`` (the
    scenario's :func:`default_settings`): known names, numbers where numbers go, whole
    numbers for sizes and seeds, within :func:`control_range`, one of the choices.
    Returns them converted (``"45"`` -> 45.0); raises :class:`UserError`, one line per
    bad control.  Combinations (minimum above maximum hours, ...) are the scenario
    schema's to check."""
    out, problems = {}, []
    for name, value in params.items():
        if name not in settings:
            known = ", ".join(k for k in settings if not k.startswith("rate_"))
            rates = [k for k in settings if k.startswith("rate_")]
            problems.append(f"{name}={value}: unknown control; known: {known}"
                            + (f", {rates[0]} ... {rates[-1]} (one per tax bracket)" if rates else ""))
        elif name in _CHOICES:
            if value not in _CHOICES[name]:
                problems.append(f"{name}={value}: expected one of {', '.join(_CHOICES[name])}")
            out[name] = value
        elif name in ("scenario", "population_path"):
            out[name] = str(value)
        else:
            lo, hi, _ = control_range(name, settings)
            unit = " %" if name.startswith(_PERCENT) else ""
            try:
                if isinstance(value, bool) or isinstance(value, list | dict) or value is None:
                    raise ValueError
                number = float(value)
            except (TypeError, ValueError):
                problems.append(f"{name}={value}: expected a number ({lo:g}-{hi:g}{unit})")
                continue
            if not np.isfinite(number) or not lo <= number <= hi:
                problems.append(f"{name}={value}: outside {lo:g}-{hi:g}{unit}")
            elif name in _WHOLE and number != int(number):
                problems.append(f"{name}={value}: expected a whole number")
            out[name] = int(number) if name in _WHOLE and np.isfinite(number) else number
    if problems:
        raise UserError(*problems)
    return out


def _scenario_data(name: str | Path) -> tuple[dict[str, Any], Path]:
    """The raw YAML mapping of a scenario file or shipped scenario name."""
    path = resolve_scenario_path(str(name))
    if not path.exists():
        raise UserError(f"{name}: no such scenario file or shipped scenario")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: cannot read the scenario: {str(exc).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a mapping of sections at the top level")
    data.pop("compare", None)  # the page explores one economy at a time
    return data, path


def default_settings(scenario: str | Path = DEFAULT_SCENARIO) -> dict[str, Any]:
    """The page's controls as the scenario sets them (rates in percent)."""
    data, path = _scenario_data(scenario)
    sc = scenario_from_dict(data, str(path))
    base = build_base_schedule(sc)
    u = sc.economy.utility
    settings: dict[str, Any] = {
        "scenario": str(scenario),
        "population_size": sc.population.size,
        "population_source": sc.population.source,
        "population_path": str(sc.population.path or ""),
        "workers": sc.workers.policy,
        "eta": u.eta,
        "frisch": u.frisch,
        "delta": u.delta,
        "min_hours": float(sc.economy.hours_bounds[0]),
        "max_hours": float(sc.economy.hours_bounds[1]),
        # the US federal planner keeps the starting schedule: the rate sliders start there
        "planner": "fixed" if sc.planner.kind in ("us_federal", "fixed", "grid") else sc.planner.kind,
        "flat_rate": round(100 * sc.planner.rate, 4),
        "rebate_share": round(100 * sc.economy.rebate_share, 4),
        "seed": sc.run.seed,
    }
    rates = sc.planner.rates if sc.planner.rates is not None else base.rates
    for i, r in enumerate(rates):
        settings[f"rate_{i}"] = round(100 * r, 4)
    return settings


def build_scenario(settings: dict[str, Any]) -> Scenario:
    """Validate the page's controls as a scenario; raises :class:`UserError`.

    The scenario file supplies everything the page has no control for; each control
    overrides one scenario field (``rate_i`` -> ``planner.rates[i]`` with the ``fixed``
    planner, percent -> fraction).
    """
    data, path = _scenario_data(settings["scenario"])
    data = copy.deepcopy(data)
    pop = data.setdefault("population", {}) or {}
    data["population"] = pop
    pop["size"] = settings["population_size"]
    pop["source"] = settings["population_source"]
    if settings.get("population_path"):
        p = Path(settings["population_path"])
        pop["path"] = str(p if p.is_absolute() else (path.parent / p))
    elif pop.get("path") and not Path(pop["path"]).is_absolute():
        pop["path"] = str(path.parent / pop["path"])
    eco = data.setdefault("economy", {}) or {}
    data["economy"] = eco
    util = eco.setdefault("utility", {}) or {}
    eco["utility"] = util
    if util.get("form", "isoelastic") == "quasi_linear":
        util["delta"] = settings["delta"]
    else:
        util["eta"], util["frisch"] = settings["eta"], settings["frisch"]
    eco["hours_bounds"] = [settings["min_hours"], settings["max_hours"]]
    eco["rebate_share"] = settings["rebate_share"] / 100.0
    planner = data.setdefault("planner", {}) or {}
    data["planner"] = planner
    planner["kind"] = settings["planner"]
    planner["rate"] = settings["flat_rate"] / 100.0
    n_rates = len([k for k in settings if k.startswith("rate_")])
    if settings["planner"] == "fixed":
        planner["rates"] = [settings[f"rate_{i}"] / 100.0 for i in range(n_rates)]
    data.setdefault("workers", {})["policy"] = settings["workers"]
    data.setdefault("run", {})["seed"] = settings["seed"]
    sc = scenario_from_dict(data, "page")
    if sc.population.source == "file" and not sc.population.path.exists():
        raise UserError(f"page: population.path: file not found ({sc.population.path})")
    return sc


def _population_key(sc: Scenario) -> str:
    p = sc.population
    seed = sc.run.seed if p.seed is None else p.seed
    return p.model_dump_json(exclude={"seed"}) + f"|seed={seed}"


def cached_population(sc: Scenario) -> pd.DataFrame:
    """The scenario's population, drawn once per source settings and seed (an LRU cache)."""
    key = _population_key(sc)
    if key in _POPULATIONS:
        _POPULATIONS.move_to_end(key)
        return _POPULATIONS[key]
    pop_seed = sc.run.seed if sc.population.seed is None else sc.population.seed
    # the same derived stream EconomyModel uses, so the page shows the run's population
    rng = np.random.default_rng(np.random.SeedSequence([pop_seed, 0x504F50]))
    pop = build_population(sc.population, rng).reset_index(drop=True)
    _POPULATIONS[key] = pop
    while len(_POPULATIONS) > POPULATION_CACHE_SIZE:
        _POPULATIONS.popitem(last=False)
    return pop


def describe_error(exc: BaseException) -> str:
    """One message for the page from any failure to build or step the economy."""
    if isinstance(exc, UserError):
        return "; ".join(exc.problems)
    return f"{type(exc).__name__}: {exc}"


def decile_of(income: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """Income decile (0-9) of each worker by ``income``, population-weighted.

    Workers are ranked by income (ties in index order); a worker's decile is
    ``floor(10 * weight ranked before it / total weight)``.
    """
    x = np.asarray(income, dtype=float)
    w = np.ones_like(x) if weights is None else np.asarray(weights, dtype=float)
    order = np.argsort(x, kind="stable")
    before = np.concatenate([[0.0], np.cumsum(w[order])[:-1]])
    dec = np.empty(x.size, dtype=int)
    dec[order] = np.minimum((10.0 * before / w.sum()).astype(int), 9)
    return dec


def winners_losers(base: Outcome, now: Outcome, weights: np.ndarray | None = None,
                   deciles: np.ndarray | None = None) -> pd.DataFrame:
    """Gains and losses by income decile against the starting schedule.

    Deciles are of pre-tax income under the starting schedule (``deciles``: precomputed
    :func:`decile_of` of it).  Per decile: the income range (dollars a year), the mean
    change of post-tax income including the rebate (dollars a year), and the population
    shares whose utility rose (winners) or fell (losers) by more than 1e-9 of its size.
    """
    dec = decile_of(base.pre_tax, weights) if deciles is None else deciles
    w = np.ones(dec.size) if weights is None else np.asarray(weights, dtype=float)
    d_u = now.utility - base.utility
    tol = 1e-9 * np.maximum(np.abs(base.utility), 1.0)

    def per_decile(x: np.ndarray) -> np.ndarray:
        return np.bincount(dec, weights=w * x, minlength=10)

    wsum = np.bincount(dec, weights=w, minlength=10)
    lo = np.full(10, np.inf)
    hi = np.full(10, -np.inf)
    np.minimum.at(lo, dec, base.pre_tax)
    np.maximum.at(hi, dec, base.pre_tax)
    keep = wsum > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        table = pd.DataFrame({
            "decile": np.arange(1, 11),
            "income_low": lo,
            "income_high": hi,
            "mean_change_post_tax": per_decile(now.post_tax - base.post_tax) / wsum,
            "share_winners": per_decile((d_u > tol).astype(float)) / wsum,
            "share_losers": per_decile((d_u < -tol).astype(float)) / wsum,
        })
    return table[keep].reset_index(drop=True)


def schedule_curves(schedule: TaxSchedule, rebate: float = 0.0,
                    incomes: np.ndarray | None = None) -> pd.DataFrame:
    """Tax, statutory marginal rate, average and effective average rate by gross income.

    ``schedule`` is the one the economy charges (its deduction included); the columns come
    from ``TaxSchedule.curves``, the evaluation behind the simulation's tax and the
    reports' curves.  ``incomes`` in dollars a year (default 300 log-spaced points from
    $1,000 to $2M plus the schedule's kinks in gross income).  The effective average rate
    nets out the lump-sum ``rebate`` (dollars a year): ``(T(z) - rebate) / z``; it is
    negative where the rebate exceeds the tax.
    """
    z = schedule.curve_incomes(300, 1_000.0, 2_000_000.0) if incomes is None else np.asarray(incomes, dtype=float)
    c = schedule.curves(z, rebate=rebate)
    return pd.DataFrame({
        "income": c["income"],
        "tax": c["tax"],
        "marginal_rate": c["marginal_rate"],
        "average_rate": c["average_rate"],
        "effective_average_rate": c["net_average_rate"],
    })


class ExploreModel(mesa.Model):
    """The economy behind the exploration page: one Mesa ``step()`` is one tax year.

    Parameters are the page's controls (see :func:`default_settings` for the names and
    :mod:`simulator.explore.page` for their sliders); any not given take the
    scenario's values.  ``settings`` is a dict of controls to start from (the page's
    Reset passes the last valid ones).  Raises :class:`UserError` when the initial
    combination is invalid; later changes go through :meth:`apply`, which never raises.

    Attributes
    ----------
    economy:
        The :class:`~simulator.sim.model.EconomyModel` being explored.
    baseline:
        The outcome under the scenario's starting schedule (rational and fixed workers:
        solved directly; LLM workers: their first tax year), for winners and losers.
    error:
        The message of the last rejected change, or None.
    """

    def __init__(self, scenario: str | Path | None = None, *, settings: dict[str, Any] | None = None,
                 auto_first_year: bool = True, **kwargs: Any) -> None:
        # ``**kwargs`` (not another name): Mesa's SolaraViz checks the signature by name
        params = kwargs
        if scenario is not None and not isinstance(scenario, str | Path):
            scenario = None  # Mesa 3.5's Reset passes its own Scenario object: use ``settings``
        start = dict(settings or {})
        name = scenario if scenario is not None else start.get("scenario", DEFAULT_SCENARIO)
        merged = default_settings(name)
        if settings and str(start.get("scenario", name)) == str(name):
            merged.update({k: v for k, v in start.items() if k in merged})
        merged.update(check_controls(params, merged))
        merged["scenario"] = str(name)
        sc = build_scenario(merged)
        super().__init__(rng=sc.run.seed)
        self.auto_first_year = auto_first_year
        # the last valid settings, updated in place (the page's Reset rebuilds from it)
        self.settings_ref: dict[str, Any] = settings if settings is not None else {}
        self.error: str | None = None
        self.last_apply_s = float("nan")
        self.datacollector = mesa.DataCollector(model_reporters=self._reporters())
        self._build(merged, sc)

    # ------------------------------------------------------------------ building
    @staticmethod
    def _reporters() -> dict[str, Any]:
        rep: dict[str, Any] = {
            "year": lambda m: m.economy.year - 1,
            "revenue": lambda m: m.last("revenue"),
            "mean_hours": lambda m: m.last("mean_hours"),
            "gini_post_tax": lambda m: m.last("gini_post_tax"),
            "fallback_rate": lambda m: m.last("fallback_rate"),
            "llm_requests": lambda m: m.last("llm_requests"),
            "llm_cache_hits": lambda m: m.last("llm_cache_hits"),
            "llm_failures": lambda m: m.last("llm_failures"),
            "llm_latency_p50_s": lambda m: m.last("llm_latency_p50_s"),
        }
        for name in SWF_NAMES:
            rep[f"welfare_{name}"] = lambda m, n=name: m.welfare_change(n)
        return rep

    def _build(self, settings: dict[str, Any], sc: Scenario) -> None:
        """(Re)build the economy for validated ``settings``; the year count restarts."""
        population = cached_population(sc)
        n = len(population)
        self.settings = dict(settings)
        self.settings_ref.clear()
        self.settings_ref.update(settings)
        self.scenario_settings = sc
        self.economy = EconomyModel(sc, population=population, agent_objects=n <= MAX_AGENT_OBJECTS)
        self.rng = np.random.default_rng(sc.run.seed)
        # (Mesa 3.5's clock ``time`` is left alone: its next step event is already scheduled)
        self.steps = 0
        self.datacollector = mesa.DataCollector(model_reporters=self._reporters())
        self._set_baseline()
        if self.auto_first_year and self.cheap:
            self.step()

    @property
    def cheap(self) -> bool:
        """True when a tax year needs no language model (rational or fixed workers and a
        planner that is not an LLM): such economies show their first year at once."""
        return self.settings["workers"] != "llm" and self.settings["planner"] != "llm"

    def _baseline_key(self) -> str:
        """Everything the starting-schedule outcome depends on (not the tax design)."""
        sc = self.scenario_settings
        return "|".join([
            _population_key(sc), sc.economy.model_dump_json(), sc.workers.model_dump_json(),
            repr(self.economy.base_schedule), sc.planner.objective.model_dump_json(),
        ])

    def _set_baseline(self) -> None:
        key = self._baseline_key() if self.settings["workers"] != "llm" else None
        cached = _BASELINES.get(key) if key is not None else None
        if cached is None:
            outcome = self._baseline_outcome()
            cached = (outcome, self._welfare_of(outcome) if outcome is not None else {},
                      decile_of(outcome.pre_tax, self.economy.weights) if outcome is not None else None)
            if key is not None:
                _BASELINES[key] = cached
                while len(_BASELINES) > POPULATION_CACHE_SIZE:
                    _BASELINES.popitem(last=False)
        self.baseline, self.baseline_welfare, self.baseline_deciles = cached

    def _baseline_outcome(self) -> Outcome | None:
        eco = self.economy
        if self.settings["workers"] == "llm":
            return None  # taken from the first tax year once it has run
        ref = eco.base_schedule
        incomes = eco.policy.respond(eco, ref)
        lmin, lmax = eco.hours_bounds
        safe = np.where(eco.wages > 0, eco.wages, 1.0)
        hours = np.where(eco.wages > 0, incomes / safe, lmin)
        hours = eco.clip_hours(hours)
        return eco.evaluate(ref, hours)  # the economy's world and fiscal rule

    def _welfare_of(self, outcome: Outcome) -> dict[str, float]:
        obj = self.scenario_settings.planner.objective
        out = {}
        for name in SWF_NAMES:
            try:
                out[name] = float(social_welfare(name, outcome, **obj.params(name)))
            except ValueError:
                out[name] = float("nan")
        return out

    # ------------------------------------------------------------------ stepping
    def step(self) -> None:
        """One tax year of the economy; the DataCollector records its row."""
        self.economy.run_year()
        if self.baseline is None and self.economy.outcome is not None:
            o = self.economy.outcome
            self.baseline = Outcome(o.hours.copy(), o.pre_tax.copy(), o.tax.copy(), o.rebate,
                                    o.post_tax.copy(), o.utility.copy(), o.weights)
            self.baseline_welfare = self._welfare_of(self.baseline)
            self.baseline_deciles = decile_of(o.pre_tax, self.economy.weights)
        self.datacollector.collect(self)

    def run_years(self, years: int) -> None:
        """Run ``years`` tax years; a failure stops the run and is stored in :attr:`error`."""
        try:
            for _ in range(int(years)):
                self.step()
        except Exception as exc:  # an LLM server gone away, ...: shown, never raised into the page
            self.error = describe_error(exc)

    def apply(self, **changes: Any) -> str | None:
        """Change controls; returns (and stores in :attr:`error`) the message if rejected.

        A valid change rebuilds the economy from year 0 with the new settings (the
        population is reused unless its source, size or seed changed) and, without LLM
        agents, runs the first tax year at once.  A rejected one keeps everything.
        """
        t0 = time.perf_counter()
        new = {**self.settings, **changes}
        if "scenario" in changes and str(changes["scenario"]) != self.settings["scenario"]:
            try:
                new = {**default_settings(changes["scenario"]),
                       **{k: v for k, v in changes.items() if k != "scenario"},
                       "scenario": str(changes["scenario"])}
            except Exception as exc:
                self.error = describe_error(exc)
                return self.error
        unknown = sorted(set(new) - set(self.settings) - {"scenario"})
        if unknown and "scenario" not in changes:
            self.error = f"unknown control(s) {', '.join(unknown)}"
            return self.error
        old = (self.settings, self.scenario_settings, self.economy, self.baseline,
               self.baseline_welfare, self.baseline_deciles, self.datacollector, self.steps)
        try:
            sc = build_scenario(new)
            self._build(new, sc)
        except Exception as exc:  # validation (UserError) or anything the build raises
            (self.settings, self.scenario_settings, self.economy, self.baseline,
             self.baseline_welfare, self.baseline_deciles, self.datacollector, self.steps) = old
            self.settings_ref.clear()
            self.settings_ref.update(self.settings)
            # the page's rate controls are in percent: say so first (the scenario is in fractions)
            pct = [f"{k} = {float(v):g} % is outside 0-100 %" for k, v in sorted(changes.items())
                   if k.startswith("rate") and isinstance(v, int | float) and not 0 <= float(v) <= 100]
            self.error = "; ".join([*pct, describe_error(exc)])
            return self.error
        self.error = None
        self.last_apply_s = time.perf_counter() - t0
        return None

    # ------------------------------------------------------------------ views
    def last(self, key: str) -> float:
        """The last tax year's value of ``key`` (NaN before the first year or if absent)."""
        if not self.economy.history:
            return float("nan")
        v = self.economy.history[-1].get(key, float("nan"))
        return float(v) if v is not None else float("nan")

    def welfare_change(self, name: str) -> float:
        """Welfare function ``name`` this year, percent change against the starting schedule."""
        base = self.baseline_welfare.get(name, float("nan"))
        now = self.last(f"swf_{name}")
        if not np.isfinite(base) or not np.isfinite(now) or base == 0:
            return float("nan")
        return 100.0 * (now - base) / abs(base)

    @property
    def years(self) -> pd.DataFrame:
        """The economy's year records (one row per tax year)."""
        return self.economy.years_frame()

    @property
    def uses_llm(self) -> bool:
        return self.settings["workers"] == "llm" or self.settings["planner"] == "llm"

    def winners_losers(self) -> pd.DataFrame:
        """:func:`winners_losers` of the current year against the baseline (empty before)."""
        if self.baseline is None or self.economy.outcome is None:
            return pd.DataFrame()
        return winners_losers(self.baseline, self.economy.outcome, self.economy.weights,
                              self.baseline_deciles)

    def summary(self) -> dict[str, Any]:
        """The numbers the page's status card shows."""
        eco = self.economy
        return {
            "scenario": self.settings["scenario"],
            "workers": eco.n_workers,
            "policy": self.settings["workers"],
            "planner": self.settings["planner"],
            "years_run": len(eco.history),
            "revenue": self.last("revenue"),
            "rebate": self.last("rebate"),
            "mean_hours": self.last("mean_hours"),
            "gini_post_tax": self.last("gini_post_tax"),
            "schedule": eco.schedule,
        }
