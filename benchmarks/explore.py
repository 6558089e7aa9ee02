"""How fast the exploration page responds to a slider change, by population size.

    .venv/bin/python benchmarks/explore.py [--sizes 10000 100000] [--changes 5]

For each size (Census population, rational workers with the self-consistent rebate, the
default log utility, the ``rational_baselines`` scenario) it reports:

* ``build s``: ``ExploreModel(...)`` the first time (drawing the population, which is
  then cached, plus the first tax year);
* ``apply s``: ``model.apply(rate_6=...)``, what a rate slider change runs: validate the
  controls as a scenario, rebuild the economy on the cached population, solve the first
  tax year at the new schedule (median and worst over ``--changes`` different rates);
* ``draw s``: drawing the page's four matplotlib views to PNG, as Solara sends them, and
  the two Mesa ``make_plot_component`` plots (emulated: the same matplotlib calls);
* ``respond s``: apply + draw, the time from a slider change to new pictures (the
  browser round trip, a few milliseconds on 127.0.0.1, is not included);
* ``respond cpu s``: the CPU time of the same work (this process, all threads).  Below
  131,072 workers the work is single-threaded, so on a machine shared with other jobs
  this is what the wall time would be on an idle core.
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.append(str(ROOT / "benchmarks"))

from _provenance import footer, header  # noqa: E402
from core import machine_info  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from simulator.explore import plots  # noqa: E402
from simulator.explore.model import ExploreModel  # noqa: E402

VIEWS = (plots.schedule_figure, plots.distributions_figure, plots.winners_losers_figure,
         plots.llm_figure)


def draw_all(model: ExploreModel) -> tuple[float, float]:
    """Wall and CPU seconds to draw the page's matplotlib views to PNG."""
    t, c = time.perf_counter(), time.process_time()
    for view in VIEWS:
        view(model).savefig(io.BytesIO(), format="png")
    df = model.datacollector.get_model_vars_dataframe()
    for measure in (["revenue"], [c for c in df if c.startswith("welfare_")]):
        fig = Figure()
        ax = fig.subplots()
        for m in measure:
            ax.plot(df.loc[:, m], label=m)
        ax.legend(loc="best")
        fig.savefig(io.BytesIO(), format="png", bbox_inches="tight")
    return time.perf_counter() - t, time.process_time() - c


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    ap.add_argument("--changes", type=int, default=5, help="slider changes timed per size")
    args = ap.parse_args(argv)
    started = time.perf_counter()
    print(header(__file__, argv))
    print(machine_info())
    print()
    head = (f"{'workers':>9}  {'build s':>8}  {'apply s':>8}  {'apply cpu s':>11}  "
              f"{'draw s':>7}  {'draw cpu s':>10}  {'respond s':>9}  {'respond cpu s':>13}")
    print(head)
    print("-" * len(head))
    for n in args.sizes:
        t = time.perf_counter()
        model = ExploreModel("rational_baselines", population_size=n)
        build = time.perf_counter() - t
        draw_all(model)  # warm-up: fonts, caches
        applies, draws, cpus, apply_cpus, draw_cpus = [], [], [], [], []
        for k in range(args.changes):
            rate = 40.0 + 10.0 * k
            t, c = time.perf_counter(), time.process_time()
            err = model.apply(rate_6=rate)
            applies.append(time.perf_counter() - t)
            apply_cpu = time.process_time() - c
            assert err is None and abs(model.economy.schedule.rates[-1] - rate / 100) < 1e-12
            wall, cpu = draw_all(model)
            draws.append(wall)
            apply_cpus.append(apply_cpu)
            draw_cpus.append(cpu)
            cpus.append(apply_cpu + cpu)
        respond = [a + d for a, d in zip(applies, draws, strict=True)]
        med = statistics.median
        print(f"{n:>9,}  {build:>8.2f}  {med(applies):>8.3f}  {med(apply_cpus):>11.3f}  "
              f"{med(draws):>7.3f}  {med(draw_cpus):>10.3f}  {med(respond):>9.3f}  {med(cpus):>13.3f}")
    print("\nmedians over the changes; cpu: this process's CPU time (single-threaded below "
          "131,072 workers, so the wall time on an idle core)")
    print(footer(started))
    return 0


if __name__ == "__main__":
    sys.exit(main())
