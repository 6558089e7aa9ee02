"""Builders that turn a validated scenario into economic-core objects (no Mesa, no I/O)."""

from __future__ import annotations

from simulator.config.schema import Scenario
from simulator.economy.tax import TaxSchedule
from simulator.economy.taxbenefit.system import Households, Reform, USTaxBenefit
from simulator.economy.utility import IsoelasticUtility, QuasiLinearUtility, Utility


def build_utility(scenario: Scenario) -> Utility:
    """The workers' utility of ``economy.utility`` (quasi-linear psi defaults to 0.0005)."""
    u = scenario.economy.utility
    if u.form == "quasi_linear":
        return QuasiLinearUtility(psi=u.psi if u.psi is not None else 0.0005, delta=u.delta)
    return IsoelasticUtility(eta=u.eta, frisch=u.frisch, psi=u.psi)


def build_base_schedule(scenario: Scenario) -> TaxSchedule:
    """The starting schedule of ``tax``: custom brackets, or the US federal brackets of a
    year and filing status with ``initial_rates`` if given (dollars a year)."""
    t = scenario.tax
    if t.thresholds is not None:
        return TaxSchedule(t.thresholds, t.initial_rates, name="custom")
    ref = t.us_federal
    sched = TaxSchedule.us_federal(ref.year, ref.filing_status, ref.standard_deduction)
    return sched.with_rates(t.initial_rates) if t.initial_rates is not None else sched


def build_world(scenario: Scenario, population):
    """The tax-benefit world: None for ``income_tax_only``, else the US system of the
    tax year (``tax.us_federal.year``, 2024 with custom brackets) for ``population``'s tax
    units with ``economy.reform``."""
    eco = scenario.economy
    if eco.world == "income_tax_only":
        return None
    year = scenario.tax.us_federal.year if scenario.tax.us_federal is not None else 2024
    r = eco.reform
    reform = Reform(eitc_scale=r.eitc_scale, ctc_per_child=r.ctc_per_child,
                    actc_per_child=r.actc_per_child, payroll_tax=r.payroll_tax)
    return USTaxBenefit(Households.from_frame(population), year, reform)
