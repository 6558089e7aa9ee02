"""Builders that turn a validated scenario into economic-core objects (no Mesa, no I/O)."""

from __future__ import annotations

from simulator.config.schema import Scenario
from simulator.economy.tax import TaxSchedule
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
