"""The exploration page: Mesa's ``SolaraViz`` around an :class:`ExploreModel`.

Layout (a Mesa user will recognise it): Mesa's own sidebar (Reset / play / Step, where
Step runs one tax year) plus an "Economy and tax design" card whose inputs are Mesa
``Slider`` objects rendered by Mesa's ``UserInputs``; the main area holds the views as
SolaraViz components, two of them Mesa ``make_plot_component`` plots of the
DataCollector's yearly rows.

Unlike stock Mesa parameters, a change in the card applies at once (it is validated by
the scenario schema first; a rejected combination keeps the last valid economy and the
message is shown).  Mesa's Reset rebuilds the economy at year 0 from the last valid
settings.
"""

from __future__ import annotations

import warnings
from typing import Any

import solara

# Solara's hook linter flags a line inside Mesa's own ComponentsView at import; not ours to fix
warnings.filterwarnings("ignore", message=r".*ComponentsView: `use_state` found despite early return")

from mesa.visualization import Slider, SolaraViz, make_plot_component  # noqa: E402
from mesa.visualization.solara_viz import UserInputs  # noqa: E402
from mesa.visualization.utils import force_update, update_counter  # noqa: E402

from simulator.config.loading import shipped_scenarios_dir  # noqa: E402
from simulator.config.planners import PLANNER_KINDS as REGISTERED_PLANNERS  # noqa: E402
from simulator.economy.welfare import SWF_NAMES  # noqa: E402
from simulator.explore import plots  # noqa: E402
from simulator.explore.model import (  # noqa: E402
    DEFAULT_SCENARIO,
    PLANNER_KINDS,
    POPULATION_SOURCES,
    WORKER_POLICIES,
    ExploreModel,
    control_range,
    describe_error,
)

#: the page's label of each planner kind it offers (from the planner registry)
PLANNER_LABELS = {k: REGISTERED_PLANNERS[k].explore_label for k in PLANNER_KINDS}


def shipped_scenarios() -> list[str]:
    return sorted(p.stem for p in shipped_scenarios_dir().glob("*.yaml"))


def _bracket_label(i: int, thresholds: tuple[float, ...]) -> str:
    """``rate_<i>, $lo-$hi``: the control's own name (as ``--param`` and ``apply`` take
    it, counted from 0 like the ``rate_<i>`` columns of the run tables) and its bracket."""
    lo = thresholds[i]
    span = f"${lo:,.0f}+" if i + 1 == len(thresholds) else f"${lo:,.0f}-${thresholds[i + 1]:,.0f}"
    return f"rate_{i}, {span}"


def _slider(label: str, name: str, settings: dict[str, Any], kind: type = float) -> Slider:
    """A Mesa ``Slider`` for control ``name`` over its :func:`control_range`."""
    lo, hi, step = control_range(name, settings)
    return Slider(label, kind(settings[name]), kind(lo), kind(hi), kind(step))


def economy_params(model: ExploreModel) -> dict[str, Any]:
    """Controls of who the workers are (Mesa ``Slider`` objects and input dicts)."""
    s = model.settings
    scenarios = shipped_scenarios()
    if s["scenario"] not in scenarios:
        scenarios = [s["scenario"], *scenarios]
    params: dict[str, Any] = {
        "scenario": {"type": "Select", "label": "scenario", "value": s["scenario"], "values": scenarios},
        "population_size": _slider(f"population size: {s['population_size']:,}", "population_size", s, int),
        "population_source": {"type": "Select", "label": "population source",
                              "value": s["population_source"], "values": list(POPULATION_SOURCES)},
    }
    if s["population_source"] == "file":
        params["population_path"] = {"type": "InputText", "label": "population file",
                                     "value": s["population_path"]}
    params["workers"] = {"type": "Select", "label": "workers", "value": s["workers"],
                         "values": list(WORKER_POLICIES)}
    if model.scenario_settings.economy.utility.form == "quasi_linear":
        params["delta"] = _slider(f"utility: labour exponent delta {s['delta']:g}", "delta", s)
    else:
        params["eta"] = _slider(f"utility: risk aversion eta {s['eta']:g}", "eta", s)
        params["frisch"] = _slider(f"utility: Frisch elasticity {s['frisch']:g}", "frisch", s)
    params["min_hours"] = _slider(f"min hours a week: {s['min_hours']:g}", "min_hours", s)
    params["max_hours"] = _slider(f"max hours a week: {s['max_hours']:g}", "max_hours", s)
    params["seed"] = _slider(f"seed: {s['seed']}", "seed", s, int)
    return params


def tax_params(model: ExploreModel) -> dict[str, Any]:
    """The tax design: planner kind, one slider per bracket rate (or the flat rate), rebate."""
    s = model.settings
    kinds = list(PLANNER_KINDS)
    params: dict[str, Any] = {
        "planner": {"type": "Select", "label": "planner", "value": s["planner"], "values": kinds},
    }
    if s["planner"] == "fixed":
        thr = model.economy.base_schedule.thresholds
        for i in range(len(thr)):
            params[f"rate_{i}"] = _slider(f"{_bracket_label(i, thr)}: {float(s[f'rate_{i}']):g} %", f"rate_{i}", s)
    elif s["planner"] == "flat":
        params["flat_rate"] = _slider(f"flat rate: {s['flat_rate']:g} %", "flat_rate", s)
    params["rebate_share"] = _slider(f"rebate share of revenue: {s['rebate_share']:g} %", "rebate_share", s)
    return params


# ---------------------------------------------------------------------------- views
def _figure(make, model) -> None:
    try:
        fig = make(model)
    except Exception as exc:  # a view must never put a traceback into the page
        solara.Error(label=f"cannot draw this view: {describe_error(exc)}")
        return
    solara.FigureMatplotlib(fig, format="png")  # constrained layout: no bbox_inches pass


@solara.component
def StatusView(model: ExploreModel):
    """What is being explored, this year's revenue and any rejected change."""
    update_counter.get()
    s = model.summary()
    with solara.Column(classes=["econsim-status"]):
        if model.error:
            solara.Error(label=f"Rejected, keeping the last valid settings: {model.error}",
                         classes=["econsim-error"])
        # plain text, not Markdown: Solara's Markdown fetches KaTeX from a CDN (offline here)
        solara.Text(
            f"{s['scenario']}: {s['workers']:,} {s['policy']} workers, planner "
            f"{PLANNER_LABELS.get(s['planner'], s['planner'])}; tax years run: {s['years_run']}",
            style={"font-weight": "bold"}, classes=["econsim-summary"],
        )
        rev = "n/a (press Step)" if s["years_run"] == 0 else f"${s['revenue']:,.0f}"
        solara.Text(f"Revenue per person: {rev} a year", classes=["econsim-revenue"])
        if s["years_run"]:
            solara.Text(
                f"Rebate ${s['rebate']:,.0f} a year; mean hours {s['mean_hours']:.1f} a week; "
                f"Gini of post-tax income {s['gini_post_tax']:.3f}"
            )
        solara.Text("Rates now: " + ", ".join(f"{r:.1%}" for r in s["schedule"].rates),
                    classes=["econsim-rates"])
        if model.last_apply_s == model.last_apply_s:  # not NaN
            solara.Text(f"Last change applied in {model.last_apply_s:.2f} s", style={"color": "#777"})


@solara.component
def ScheduleView(model: ExploreModel):
    update_counter.get()
    _figure(plots.schedule_figure, model)


@solara.component
def DistributionsView(model: ExploreModel):
    update_counter.get()
    _figure(plots.distributions_figure, model)


@solara.component
def WinnersLosersView(model: ExploreModel):
    update_counter.get()
    _figure(plots.winners_losers_figure, model)


@solara.component
def LLMView(model: ExploreModel):
    update_counter.get()
    _figure(plots.llm_figure, model)
    table = plots.llm_table(model)
    if table:
        solara.HTML(tag="div", unsafe_innerHTML=table)


def components() -> list:
    """The page's views as SolaraViz components, all on page 0."""
    welfare = [f"welfare_{n}" for n in SWF_NAMES]
    return [
        (StatusView, 0),
        (ScheduleView, 0),
        make_plot_component("revenue", post_process=plots.years_post_process(
            "Revenue by tax year (Step = tax year)", "$ per person a year")),
        make_plot_component(welfare, post_process=plots.years_post_process(
            "Every welfare function by tax year", "% change vs starting schedule", True)),
        (DistributionsView, 0),
        (WinnersLosersView, 0),
        (LLMView, 0),
    ]


# ---------------------------------------------------------------------------- controls
@solara.component
def DesignControls(model: solara.Reactive[ExploreModel]):
    """The sidebar card: economy and tax-design inputs, applied at once; run N years."""
    update_counter.get()
    m = model.value
    rejected = solara.use_reactive(0)  # remounts the inputs so they snap back to valid values
    years = solara.use_reactive(5)

    def on_change(name: str, value: Any) -> None:
        try:
            err = m.apply(**{name: value})
        except Exception as exc:  # apply() catches everything; belt and braces for the page
            m.error = err = describe_error(exc)
        if err:
            rejected.value += 1
        force_update()

    def run_years() -> None:
        m.run_years(years.value)
        force_update()

    key = f"{m.settings['scenario']}-{m.settings['planner']}-{m.settings['population_source']}-{rejected.value}"
    with solara.Card("Economy and tax design"):
        solara.Text("Changes apply at once (from year 0); Mesa's Step runs one tax year, "
                    "Reset restarts at year 0.")
        if m.error:
            solara.Error(label=m.error, dense=True, classes=["econsim-error"])
        UserInputs(economy_params(m), on_change=on_change).key(f"eco-{key}")
        solara.Text("Tax design", style={"font-weight": "bold"})
        UserInputs(tax_params(m), on_change=on_change).key(f"tax-{key}")
        with solara.Row():
            solara.SliderInt("years", value=years, min=1, max=50)
            solara.Button(f"Run {years.value} years", color="primary", on_click=run_years,
                          classes=["econsim-run-years"])


@solara.component
def ExplorePage(model: ExploreModel | None = None, scenario: str = DEFAULT_SCENARIO):
    """The whole page for ``model`` (or a new one for ``scenario``)."""
    initial = solara.use_memo(lambda: model if model is not None else ExploreModel(scenario), [])
    reactive = solara.use_reactive(initial)
    m = reactive.value
    with solara.Sidebar():
        DesignControls(reactive)
    SolaraViz(
        reactive,
        components=components(),
        # Mesa's Reset calls ExploreModel(settings=...): the last valid settings, year 0
        model_params={"settings": m.settings_ref},
        name=f"econsim explore: {m.settings['scenario']}",
    )


def explore_page(scenario: str = DEFAULT_SCENARIO, **params: Any):
    """The page for a notebook cell: ``explore_page("rational_baselines", population_size=5000)``.

    ``params`` are the controls' starting values (see
    :func:`simulator.explore.model.default_settings`); an invalid combination raises
    :class:`~simulator.errors.UserError` here, before anything is shown.
    """
    return ExplorePage(model=ExploreModel(scenario, **params))
