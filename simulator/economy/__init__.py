"""The economic core: small, pure, vectorised numpy functions over agents.

Units throughout: incomes and taxes in dollars a year; hours in hours a week; wages
(skill) in dollars a year per weekly hour, so that income = wage x hours.
"""

from simulator.economy.best_response import best_response, equilibrium
from simulator.economy.elasticity import ElasticityEstimate, estimate_elasticity
from simulator.economy.optimum import OptimumResult, optimal_schedule
from simulator.economy.outcome import evaluate
from simulator.economy.rebate import lump_sum_rebate
from simulator.economy.saez import SaezResult, saez_bracket_rates
from simulator.economy.tax import FILING_STATUSES, TaxSchedule, TaxScheduleError
from simulator.economy.utility import IsoelasticUtility, QuasiLinearUtility, Utility
from simulator.economy.welfare import (
    SWF_NAMES,
    Outcome,
    atkinson_ede,
    atkinson_index,
    equality_times_productivity,
    gini,
    inverse_income_sum,
    inverse_income_weighted,
    maxmin,
    social_welfare,
    utilitarian,
    utilitarian_sum,
)

__all__ = [
    "FILING_STATUSES",
    "SWF_NAMES",
    "ElasticityEstimate",
    "IsoelasticUtility",
    "OptimumResult",
    "Outcome",
    "QuasiLinearUtility",
    "SaezResult",
    "TaxSchedule",
    "TaxScheduleError",
    "Utility",
    "atkinson_ede",
    "atkinson_index",
    "best_response",
    "equality_times_productivity",
    "equilibrium",
    "estimate_elasticity",
    "evaluate",
    "gini",
    "inverse_income_sum",
    "inverse_income_weighted",
    "lump_sum_rebate",
    "maxmin",
    "optimal_schedule",
    "saez_bracket_rates",
    "social_welfare",
    "utilitarian",
    "utilitarian_sum",
]
