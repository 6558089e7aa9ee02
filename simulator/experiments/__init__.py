"""Multi-seed, paired policy experiments (``compare:`` x ``sweep:`` x ``run.seeds``).

* :func:`plan_experiment`: the variants and seeds of a scenario, validated;
* :func:`run_experiment`: run them on a local process pool or Ray into one directory
  (``experiment.json``, ``index.parquet``, ``runs/<variant>/seed-<s>/``), continuing
  an earlier attempt;
* :func:`load_experiment` and :mod:`simulator.experiments.stats`: paired differences
  with bootstrap intervals, consumption equivalents, incidence, tax-rate curves.
"""

from simulator.experiments.execute import (
    comparison_table,
    final_years_table,
    run_comparison,
    run_experiment,
)
from simulator.experiments.plan import ExperimentPlan, is_experiment, plan_experiment
from simulator.experiments.summary import experiment_stats, load_experiment

__all__ = ["ExperimentPlan", "comparison_table", "experiment_stats", "final_years_table",
           "is_experiment", "load_experiment", "plan_experiment", "run_comparison", "run_experiment"]
