"""Scenario files: a YAML document validated by pydantic models.

Every field has a documented default (see ``docs/scenarios.md``); unknown keys are
errors.  :func:`load_scenario` turns any problem into a :class:`~simulator.errors.UserError`
with one line per problem naming the file, the dotted key and what is expected.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from simulator.config.planners import PLANNER_KINDS, SEARCH_OPTIMIZERS
from simulator.config.pooling import check_pooling_config
from simulator.config.validity_names import gate_checks
from simulator.economy.tax import FILING_STATUSES, TaxSchedule, TaxScheduleError
from simulator.economy.welfare import SWF_NAMES
from simulator.errors import UserError
from simulator.llm.config import LLMConfig

#: lower edges of the age bands (years) used by pooling cells and incidence tables
AGE_EDGES = (16, 25, 35, 45, 55, 65)


#: The registered planner kinds, as a type (one registry: simulator.config.planners).
PlannerKindName = Literal[tuple(PLANNER_KINDS)]  # type: ignore[valid-type]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CensusOptions(_Strict):
    """Options of the Census-calibrated persona generator (``source: census``)."""

    state: str | None = Field(None, description="two-letter state code to restrict to")
    age_range: tuple[int, int] | None = Field(None, description="[min, max] age in years")
    stratify: Literal["decile", "bracket"] | None = Field(
        None, description="guarantee a minimum count per income decile or tax bracket"
    )
    min_per_stratum: int = Field(0, ge=0, description="minimum workers per stratum")

    @field_validator("state")
    @classmethod
    def _state(cls, v: str | None) -> str | None:
        if v is None:
            return v
        from personas._tables import load_table

        codes = set(load_table("state_population_acs2024")["state"].astype(str))
        if v.upper() not in codes:
            raise ValueError("expected a 2-letter code of the 50 states or DC")
        return v.upper()

    @field_validator("age_range")
    @classmethod
    def _ages(cls, v: tuple[int, int] | None) -> tuple[int, int] | None:
        if v is not None and not 16 <= v[0] <= v[1]:
            raise ValueError("need 16 <= min <= max (workers are 16 and older)")
        return v


class ParticipationConfig(_Strict):
    """The extensive margin: people may choose not to work (``docs/economics.md``,
    "The extensive margin")."""

    enabled: bool = Field(
        False, description="draw working-age adults, employed or not, each with a fixed cost of "
        "working calibrated to CPS 2024 employment rates (census, gb2) or to the file's "
        "employment_target column; off: a population of workers only (the paper's)",
    )
    elasticity: float = Field(
        0.25, gt=0, le=2, description="target extensive-margin (participation) elasticity of the "
        "calibration: 0.25 is Chetty (2012)'s Hicksian extensive elasticity",
    )
    fixed_cost_scale: float = Field(
        1.0, ge=0, le=100, description="multiplies every calibrated fixed cost of working "
        "(sensitivity; 1 keeps the calibration, 0 makes working free)",
    )
    nonwork_income: float = Field(
        3492.0, ge=0, le=1_000_000, description="dollars a year a person has only when not working, "
        "outside the modelled taxes and credits (means-tested support, family); default: the SNAP "
        "maximum allotment for one person, FY2024 ($291 a month)",
    )


class PopulationConfig(_Strict):
    """Who the workers are."""

    size: int = Field(100, ge=1, le=10_000_000, description="number of workers")
    source: Literal["census", "gb2", "file"] = Field(
        "census",
        description="census: Census-calibrated personas; gb2: the reference's GB2 income "
        "fit (income at 40 h/week); file: a parquet/CSV table with a 'wage' column",
    )
    seed: int | None = Field(None, description="population seed; default: run.seed")
    census: CensusOptions = Field(default_factory=CensusOptions)
    path: Path | None = Field(None, description="table for source: file (relative to the scenario)")
    enrich: bool = Field(
        False, description="rewrite persona texts with the LLM (cached; template text kept as persona_template)"
    )
    participation: ParticipationConfig = Field(default_factory=ParticipationConfig)

    @model_validator(mode="after")
    def _file_needs_path(self) -> PopulationConfig:
        if self.source == "file" and self.path is None:
            raise ValueError("source 'file' needs population.path")
        return self


class UtilityConfig(_Strict):
    """Worker utility (see ``simulator.economy.utility``)."""

    form: Literal["isoelastic", "quasi_linear"] = Field(
        "isoelastic",
        description="isoelastic: CRRA consumption minus isoelastic labour disutility; "
        "quasi_linear: the reference's c - psi * l**delta",
    )
    eta: float = Field(1.0, ge=0, le=10, description="isoelastic: relative risk aversion (1 = log)")
    frisch: float = Field(0.5, gt=0, le=5, description="isoelastic: Frisch elasticity of hours")
    psi: float | None = Field(
        None, gt=0, description="labour disutility weight; default isoelastic: 40 h calibration, quasi_linear: 0.0005"
    )
    delta: float = Field(3.5, gt=1, le=10, description="quasi_linear: labour exponent")


class ReformConfig(_Strict):
    """Changes to current law outside the planner's brackets (us_current_law world)."""

    eitc_scale: float = Field(1.0, ge=0, le=5, description="every EITC amount times this")
    ctc_per_child: float | None = Field(
        None, ge=0, le=20_000, description="child tax credit per child under 17, dollars a year (default: the law)")
    actc_per_child: float | None = Field(
        None, ge=0, le=20_000, description="refundable CTC cap per child, dollars a year (default: the law)")
    payroll_tax: bool = Field(True, description="false: no employee or employer payroll tax")


class EconomyConfig(_Strict):
    """Hours bounds, utility, the tax-benefit world and the fiscal rule."""

    utility: UtilityConfig = Field(default_factory=UtilityConfig)
    hours_bounds: tuple[float, float] = Field((0.0, 100.0), description="[min, max] hours a week")
    rebate_share: float = Field(1.0, ge=0, le=1, description="share of revenue rebated lump-sum")
    world: Literal["income_tax_only", "us_current_law"] = Field(
        "income_tax_only",
        description="income_tax_only: the planner's bracket schedule is the whole tax system "
        "(the LLM Economist's world); us_current_law: every worker's tax unit faces the US "
        "system of the tax year (filing status, standard deductions, payroll tax, EITC, "
        "CTC/ACTC), with the planner's brackets and rates as the income tax",
    )
    fiscal_rule: Literal["rebate_all", "revenue_requirement"] = Field(
        "rebate_all",
        description="rebate_all: all revenue (times rebate_share) returned lump-sum (the "
        "paper's rule); revenue_requirement: the government spends revenue_requirement per "
        "person and only revenue above it is returned (a shortfall is collected lump-sum)",
    )
    revenue_requirement: float | None = Field(
        None, ge=0, le=1e7, description="dollars a year per person; default: the net revenue "
        "of current law (the starting schedule) from the same population at the hours rational "
        "workers choose with no transfer")
    reform: ReformConfig = Field(default_factory=ReformConfig)

    @field_validator("hours_bounds")
    @classmethod
    def _bounds(cls, v: tuple[float, float]) -> tuple[float, float]:
        if not 0 <= v[0] < v[1] <= 168:
            raise ValueError("need 0 <= min < max <= 168 hours a week")
        return v


class USFederalRef(_Strict):
    year: int = Field(2024, description="tax year 2023-2026")
    filing_status: str = Field("single", description=", ".join(FILING_STATUSES))
    standard_deduction: bool = Field(
        True, description="subtract the standard deduction first (the law); the LLM Economist "
        "reference taxes from the first dollar: false"
    )

    @field_validator("year")
    @classmethod
    def _year(cls, v: int) -> int:
        if v not in (2023, 2024, 2025, 2026):
            raise ValueError("federal brackets are available for 2023-2026")
        return v

    @field_validator("filing_status")
    @classmethod
    def _status(cls, v: str) -> str:
        if v not in FILING_STATUSES:
            raise ValueError(f"expected one of {', '.join(FILING_STATUSES)}")
        return v


class TaxConfig(_Strict):
    """The bracket structure the planner works with and the starting rates."""

    us_federal: USFederalRef | None = Field(
        default_factory=USFederalRef, description="take thresholds (and rates) from the US schedule"
    )
    thresholds: list[float] | None = Field(
        None, description="bracket lower edges in dollars a year (instead of us_federal)"
    )
    initial_rates: list[float] | None = Field(
        None, description="starting marginal rates, one per bracket (default: the US rates)"
    )

    @model_validator(mode="after")
    def _one_source(self) -> TaxConfig:
        if self.thresholds is None and self.us_federal is None:
            raise ValueError("give either tax.us_federal or tax.thresholds")
        if self.thresholds is not None:
            self.us_federal = None
            if self.initial_rates is None:
                raise ValueError("custom thresholds need initial_rates")
            try:
                TaxSchedule(self.thresholds, self.initial_rates)
            except TaxScheduleError as exc:
                raise ValueError(str(exc)) from None
        if self.initial_rates is not None:
            n = len(self.thresholds) if self.thresholds is not None else 7
            if len(self.initial_rates) != n:
                raise ValueError(f"initial_rates needs {n} rates, one per bracket")
            if any(not 0 <= r <= 1 for r in self.initial_rates):
                raise ValueError("initial_rates must lie in [0, 1]")
        return self


class ObjectiveConfig(_Strict):
    """The social welfare function the planner maximises."""

    swf: str = Field("utilitarian", description=f"one of {', '.join(SWF_NAMES)}")
    income_floor: float | None = Field(
        None, gt=0,
        description="income floor of the inverse-income objectives, $/yr "
        "(default: 1,000 for inverse_income, 1 for inverse_income_sum as in the reference)",
    )
    epsilon: float = Field(1.0, ge=0, description="atkinson: inequality aversion")

    @field_validator("swf")
    @classmethod
    def _swf(cls, v: str) -> str:
        if v not in SWF_NAMES:
            raise ValueError(f"expected one of {', '.join(SWF_NAMES)}")
        return v

    def floor_for(self, swf: str) -> float:
        """The income floor (dollars a year) for welfare function ``swf``."""
        if self.income_floor is not None:
            return self.income_floor
        return 1.0 if swf == "inverse_income_sum" else 1_000.0

    @property
    def floor(self) -> float:
        """The income floor in force for this objective (dollars a year)."""
        return self.floor_for(self.swf)

    def params(self, swf: str | None = None) -> dict[str, float]:
        """Parameters of ``swf`` (default: the objective itself)."""
        return {"income_floor": self.floor_for(swf or self.swf), "epsilon": self.epsilon}


class LLMPlannerOptions(_Strict):
    """Options of the in-context LLM planner (``kind: llm``)."""

    temperature: float = Field(0.7, ge=0, le=2)
    history: int = Field(8, ge=1, le=100, description="years of history shown")
    best_k: int = Field(3, ge=0, le=20, description="best schedules shown")
    action: Literal["absolute", "delta"] = Field("delta")
    max_step: float = Field(0.10, gt=0, le=1, description="max change of a rate per year")
    rate_bounds: tuple[float, float] = Field((0.0, 0.9), description="[min, max] allowed marginal rate")
    monotone: bool = Field(False, description="force non-decreasing (progressive) rates")
    revenue_floor: float | None = Field(None, ge=0, description="min revenue per person, $/yr")
    exploration_start: float = Field(1.0, ge=0, le=1)
    exploration_decay: float = Field(0.8, gt=0, le=1, description="per-year factor")
    histogram_bins: int = Field(7, ge=2, le=50)
    max_tokens: int = Field(96, ge=16, le=4096)

    @field_validator("rate_bounds")
    @classmethod
    def _rate_bounds(cls, v: tuple[float, float]) -> tuple[float, float]:
        if not 0.0 <= v[0] < v[1] <= 1.0:
            raise ValueError("need 0 <= min < max <= 1")
        return v


class SearchPlannerOptions(_Strict):
    """Options of the black-box schedule search (``kind: search``).

    Its constraints (rate range, maximum change per year, monotone, revenue floor) are
    the LLM planner's, read from ``planner.llm``, so the two compete under one rule set.
    """

    optimizer: str = Field(
        "cma", description="black-box optimiser: cma (CMA-ES from the package cma, "
        "a core dependency of econsim)",
    )
    evaluations_per_year: int = Field(
        1, ge=1, le=1_000,
        description="schedules evaluated per tax year: the real year plus (this - 1) "
        "counterfactual years on the current population, reported separately",
    )
    sigma0: float = Field(0.15, gt=0, le=1, description="initial CMA-ES step size, in rate units (0.15 = 15 points)")
    popsize: int = Field(5, ge=3, le=1_000, description="schedules per CMA-ES generation")

    @field_validator("optimizer")
    @classmethod
    def _optimizer(cls, v: str) -> str:
        if v not in SEARCH_OPTIMIZERS:
            raise ValueError(f"unknown optimiser {v!r} (available: {', '.join(SEARCH_OPTIMIZERS)})")
        return v


class PlannerConfig(_Strict):
    """Who sets taxes and how."""

    kind: PlannerKindName = Field(
        "us_federal", description="who sets taxes: " + ", ".join(PLANNER_KINDS)
        + " (simulator.config.planners)"
    )
    objective: ObjectiveConfig = Field(default_factory=ObjectiveConfig)
    rate: float = Field(0.2, ge=0, le=1, description="flat: the rate")
    rates: list[float] | None = Field(None, description="fixed: one rate per bracket")
    schedules: list[list[float]] | None = Field(None, description="grid: rate lists, cycled by year")
    elasticity: float | Literal["measured"] = Field(
        0.25, description="saez: elasticity of taxable income, or 'measured' from the workers "
        "(with the rebate held fixed)"
    )
    saez_weights: Literal["inverse_income", "revenue_max", "utilitarian_linear", "objective"] = Field(
        "inverse_income",
        description="saez welfare weights; 'objective' uses the marginal social value of "
        "consumption implied by the objective and utility",
    )
    saez_remeasure_every: int = Field(
        0, ge=0, description="saez with measured elasticity: re-measure every N years (0: once)"
    )
    optimum_max_agents: int | None = Field(
        None, ge=10, description="optimum: search on a random subsample of this many workers "
        "(default: the whole population; the schedule found is always evaluated on everyone)",
    )
    optimum_max_evaluations: int = Field(
        1_000, ge=10, description="optimum: candidate schedules evaluated in the search (at most)"
    )
    llm: LLMPlannerOptions = Field(default_factory=LLMPlannerOptions)
    search: SearchPlannerOptions = Field(default_factory=SearchPlannerOptions)


    @field_validator("elasticity")
    @classmethod
    def _elasticity(cls, v):
        if isinstance(v, float | int) and v <= 0:
            raise ValueError("the elasticity must be > 0 (or 'measured')")
        return v




class PoolingConfig(_Strict):
    """Archetype pooling of LLM workers (``workers.llm.pooling``; ``off`` or absent: one
    call per worker).  See docs/agents.md and :mod:`simulator.sim.workers.pool_plan`."""

    attributes: list[str] = Field(
        ["wage_band", "occupation", "hours_band", "age_band", "education", "sex"],
        description="cell attributes, most important first: population columns or the derived "
        "age_band, wage_band, hours_band (last year's hours); cells are merged from the last "
        "attribute up, never across the first",
    )
    budget: int = Field(
        500, ge=0, description="model calls per step for the hours question (representatives); "
        "the same budget applies to the satisfaction question and to each election",
    )
    check: int = Field(
        0, ge=0, description="each tax year also ask this many random non-representative workers "
        "one call each and record the pooled-vs-direct error (mean hours, revenue, objective)",
    )
    age_edges: list[float] = Field(list(AGE_EDGES), description="age_band lower edges (years)")
    wage_edges: list[float] = Field(
        [0, 900, 1_200, 1_600, 2_300, 3_600, 6_000, 12_000],
        description="wage_band lower edges ($/yr per weekly hour; about the Census deciles 1-9 and percentiles 95, 99)"
    )
    hours_edges: list[float] = Field([0, 20, 35, 45, 55], description="hours_band lower edges (hours a week)")
    cell_share: float = Field(
        0.5, gt=0, le=1, description="merge cells down to at most this share of the budget, so the "
        "rest of the calls can follow the spread of replies (Neyman allocation)",
    )
    prior_spread: float = Field(
        5.0, gt=0, description="assumed SD of reply deviations (hours a week) for cells not yet asked"
    )
    error_replicates: int = Field(
        16, ge=0, le=1_000, description="replicates of the pooling error model each deciding step: "
        "record pool_se_* (standard errors of pooled mean hours, revenue, objective and SD of hours "
        "against one call per worker, docs/agents.md); 0: off",
    )

    @field_validator("attributes")
    @classmethod
    def _attrs(cls, v: list[str]) -> list[str]:
        if not v:
            raise ValueError("need at least one attribute")
        if len(set(v)) != len(v):
            raise ValueError("attributes repeat")
        return v

    @field_validator("age_edges", "wage_edges", "hours_edges")
    @classmethod
    def _edges(cls, v: list[float]) -> list[float]:
        if not v or any(b <= a for a, b in zip(v, v[1:], strict=False)):
            raise ValueError("need increasing band edges")
        return v


class LLMWorkerOptions(_Strict):
    """Options of LLM workers (``policy: llm``)."""

    temperature: float = Field(0.7, ge=0, le=2)
    history: int = Field(3, ge=0, le=20, description="own past years shown")
    hour_levels: list[float] = Field([0, 20, 30, 40, 50, 60], description="rows of the take-home table")
    prompt_layout: Literal["compact", "verbose"] = Field(
        "compact", description="worker prompt layout. compact: what every worker shares first (instructions, "
        "reply format, schedule, rebate, then the year and cue), a take-home table of a few rows (0 hours "
        "where people may not work, last year's hours, and the first, middle and last of hour_levels less "
        "the one nearest to them), past years in one line; half the tokens of verbose or fewer. verbose: "
        "the layout of earlier releases (every hour_levels row, pre-tax and rebate columns), to reproduce "
        "their runs",
    )
    max_tokens: int = Field(16, ge=4, le=512)
    bounded: bool = Field(False, description="ask the yearly satisfaction question")
    satisfaction_scale: float = Field(0.9, gt=0, le=1, description="utility factor when dissatisfied")
    welfare_on: Literal["raw", "adjusted"] = Field("raw", description="planner welfare on raw or satisfaction-adjusted utility")
    pooling: PoolingConfig | None = Field(
        None, description="archetype pooling under a call budget (off/absent: one call per worker)"
    )

    @field_validator("pooling", mode="before")
    @classmethod
    def _pooling_off(cls, v):
        # YAML reads a bare `off` as False; `on`/true means the defaults
        if v is False or v == "off":
            return None
        if v is True or v == "on":
            return {}
        return v

    @field_validator("hour_levels")
    @classmethod
    def _levels(cls, v: list[float]) -> list[float]:
        if not v or any(not 0 <= h <= 168 for h in v):
            raise ValueError("need at least one level, each in [0, 168] hours a week")
        return v


class WorkersConfig(_Strict):
    """How workers choose hours."""

    policy: Literal["rational", "fixed", "llm"] = Field("rational")
    hours: float | None = Field(None, ge=0, le=168, description="fixed: hours a week (default: usual hours)")
    expectations: Literal["equilibrium", "adaptive"] = Field(
        "equilibrium",
        description="rational: solve for the self-consistent rebate, or take last step's rebate",
    )
    llm: LLMWorkerOptions = Field(default_factory=LLMWorkerOptions)


class DemocracyConfig(_Strict):
    """Elections of who sets taxes (paper's democratic scenario)."""

    enabled: bool = False
    election_every: int = Field(3, ge=1, description="tax years between elections")
    candidates: int = Field(3, ge=2, le=20)
    selection: Literal["random", "volunteer"] = "random"
    rule: Literal["plurality", "borda", "approval"] = "plurality"
    winner_mode: Literal["platform", "planner"] = Field(
        "platform", description="platform: keep the platform; planner: act as an in-context planner for its own utility"
    )
    voters: int | None = Field(None, ge=1, description="voters asked (default: every worker)")

    @model_validator(mode="after")
    def _borda_size(self) -> DemocracyConfig:
        if self.rule == "borda" and self.candidates > 5:
            raise ValueError("rule 'borda' asks for a full ranking: at most 5 candidates")
        return self


class RunConfig(_Strict):
    tax_years: int = Field(10, ge=1, le=10_000)
    steps_per_year: int = Field(1, ge=1, le=1_000)
    seed: int = Field(0, ge=0, strict=True, description="seed of every random stream of the run")
    mesa_agents: bool = Field(
        True, description="create a Mesa WorkerAgent per worker (about 10 us each; switch "
        "off for millions of workers when only the arrays are needed)",
    )
    seeds: list[int] | int | None = Field(
        None, description="experiment seeds: a list of seeds, or a count N (seeds seed..seed+N-1); "
        "every variant runs on each seed with the same population (paired); null: run.seed only",
    )

    @field_validator("seeds", mode="before")
    @classmethod
    def _seeds(cls, v):
        if v is None:
            return v
        bad = "run.seeds must be a count >= 2 or a list of distinct non-negative integers"
        # an interval over seeds needs 2 (docs/experiments.md: 5 or more for a reliable one)
        short = ("needs at least 2 seeds: one seed gives no interval over seeds "
                 "(5 or more for a reliable one); leave run.seeds out for a single run")
        if isinstance(v, bool) or not isinstance(v, int | list):
            raise ValueError(bad)
        if isinstance(v, int):
            if v < 1:
                raise ValueError(bad)
            if v < 2:
                raise ValueError(short)
            return v
        if not v or any(isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in v):
            raise ValueError(bad)
        if len(set(v)) != len(v):
            raise ValueError("run.seeds lists a seed twice")
        if len(v) < 2:
            raise ValueError(short)
        return v

    def seed_list(self) -> list[int]:
        """The seeds an experiment runs (``[seed]`` when ``seeds`` is not set)."""
        if self.seeds is None:
            return [self.seed]
        if isinstance(self.seeds, int):
            return list(range(self.seed, self.seed + self.seeds))
        return list(self.seeds)


class OutputConfig(_Strict):
    dir: Path | None = Field(None, description="run directory; default runs/<name>-<timestamp>")
    agents_table: bool = Field(True, description="write agents.parquet (one row per agent per year)")
    agents_sample: int | None = Field(
        None, ge=1,
        description="keep only this many workers (a fixed random sample drawn from the run seed, the same "
        "every year, with population and sample weights) in agents.parquet and the other per-agent tables "
        "(satisfaction, ballots); null or at least the population: every worker; aggregates always use all",
    )
    checkpoints: Literal["every_year", "last", "off"] = Field(
        "every_year",
        description="checkpoints/year-K.pkl written at the end of tax years: every_year (resume, "
        "and fork at any year), last (resume; fork at the last year only), off",
    )

    @field_validator("checkpoints", mode="before")
    @classmethod
    def _yaml_off(cls, v):
        # YAML 1.1 reads a bare `off` as False: accept it as the mode it names
        return "off" if v is False else v

    @field_validator("agents_sample", mode="before")
    @classmethod
    def _sample_not_bool(cls, v):
        if isinstance(v, bool):
            raise ValueError("output.agents_sample is a number of workers (or null), not true/false")
        return v


class ExperimentConfig(_Strict):
    """Statistics of a multi-seed experiment (see ``docs/experiments.md``)."""

    baseline: str | None = Field(None, description="variant the others are compared with (default: the first)")
    bootstrap: int = Field(2000, ge=100, le=1_000_000, description="bootstrap resamples of the seeds")
    confidence: float = Field(0.95, gt=0, lt=1, description="confidence level of the intervals")
    bootstrap_seed: int = Field(0, ge=0, description="seed of the bootstrap resampling")


class Scenario(_Strict):
    """A whole simulation: population, economy, taxes, planner, workers, run, output."""

    name: str = "scenario"
    description: str = ""
    population: PopulationConfig = Field(default_factory=PopulationConfig)
    economy: EconomyConfig = Field(default_factory=EconomyConfig)
    tax: TaxConfig = Field(default_factory=TaxConfig)
    planner: PlannerConfig = Field(default_factory=PlannerConfig)
    workers: WorkersConfig = Field(default_factory=WorkersConfig)
    democracy: DemocracyConfig = Field(default_factory=DemocracyConfig)
    run: RunConfig = Field(default_factory=RunConfig)
    output: OutputConfig = Field(default_factory=OutputConfig)
    llm: LLMConfig = Field(default_factory=LLMConfig)
    compare: list[dict[str, Any]] = Field(
        default_factory=list,
        description="variants run on the same population, each a 'label' plus the "
        "sections it changes (e.g. {label: flat, planner: {kind: flat, rate: 0.2}})",
    )
    sweep: dict[str, list[Any]] = Field(
        default_factory=dict,
        description="grid of overrides: dotted scenario key -> list of values; every "
        "combination is a variant (crossed with compare: variants if both are given)",
    )
    experiment: ExperimentConfig = Field(default_factory=lambda: ExperimentConfig())
    validity_gate: list[str] = Field(
        default_factory=list,
        description="behavioural validity checks (families or ids, see docs/validity.md) that "
        "must be within range before the first tax year, else the run stops with the reason",
    )

    @field_validator("validity_gate")
    @classmethod
    def _gate(cls, v: list[str]) -> list[str]:
        gate_checks(v)
        return v

    @property
    def uses_llm(self) -> bool:
        """Whether any agent (workers, planner, elections, persona enrichment) asks the LLM."""
        return (self.workers.policy == "llm" or PLANNER_KINDS[self.planner.kind].uses_llm
                or self.democracy.enabled or self.population.enrich)

    def variants(self, source: str = "<scenario>") -> list[tuple[str, Scenario]]:
        """The comparison variants as full scenarios (the base itself if none)."""
        if not self.compare:
            return [(self.name, self)]
        base = self.model_dump(mode="json", exclude={"compare", "sweep"}, exclude_unset=True)
        out = []
        labels = set()
        for i, variant in enumerate(self.compare):
            variant = dict(variant)
            label = str(variant.pop("label", f"variant{i}"))
            if not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", label) or label in (".", ".."):
                raise UserError(
                    f"{source}: compare[{i}].label: use letters, digits, '_', '-' or '.' "
                    f"(it names a folder), got {label!r}"
                )
            if label in labels:
                raise UserError(f"{source}: compare[{i}].label: duplicate label {label!r}")
            labels.add(label)
            merged = deep_merge(base, variant)
            merged["name"] = f"{self.name}-{label}"
            try:
                out.append((label, Scenario.model_validate(merged)))
            except ValidationError as exc:
                raise UserError(
                    *[format_error(source, {**e, "loc": ("compare", i, *e["loc"])}) for e in exc.errors()]
                ) from None
        return out

    @model_validator(mode="after")
    def _consistency(self) -> Scenario:
        n = len(self.tax.thresholds) if self.tax.thresholds is not None else 7
        kind = PLANNER_KINDS[self.planner.kind]
        if kind.check is not None:
            kind.check(self)
        if self.planner.rates is not None and len(self.planner.rates) != n:
            raise ValueError(f"planner.rates needs {n} rates, one per bracket")
        if self.planner.rates is not None and any(not 0 <= r <= 1 for r in self.planner.rates):
            raise ValueError(f"planner.rates must lie in [0, 1], got {self.planner.rates}")
        for i, s in enumerate(self.planner.schedules or []):
            if len(s) != n or any(not 0 <= r <= 1 for r in s):
                raise ValueError(f"planner.schedules[{i}] needs {n} rates in [0, 1]")
        lo, hi = self.economy.hours_bounds
        if self.workers.policy == "llm" and int(np.ceil(lo)) > int(np.floor(hi)):
            raise ValueError("LLM workers answer whole hours: economy.hours_bounds must contain one")
        if self.workers.llm.pooling is not None:
            check_pooling_config(self)
        return self


# --------------------------------------------------------------------------- loading
def deep_merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for k, v in update.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def format_error(source: str, err: dict[str, Any]) -> str:
    loc = ".".join(str(p) for p in err["loc"]) or "(top level)"
    msg = err["msg"]
    if err["type"] == "extra_forbidden":
        msg = "unknown key"
    elif msg.startswith("Value error, "):
        msg = msg[len("Value error, "):]
    got = err.get("input")
    shown = "" if err["type"] in ("extra_forbidden", "missing") or isinstance(got, dict) else f" (got {got!r})"
    return f"{source}: {loc}: {msg}{shown}"
