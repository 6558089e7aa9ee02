"""Loader for the US current-law tax-benefit parameters, 2023-2026.

The values live in ``data/current_law_2023_2026.json``, copied from Tax-Calculator's
``policy_current_law.json`` (CC0) by ``tests/taxcalc/build_params.py``; the file records
its provenance (source file, taxcalc version, sha256, parameter titles).

Filing-status-indexed parameters are length-4 arrays in ``MARS`` order (index
``MARS - 1``): 1 single, 2 married filing jointly, 3 married filing separately, 4 head of
household.  EITC parameters are length-4 arrays by qualifying children 0, 1, 2, 3+.
Dollar amounts are dollars a year; rates are fractions.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache, lru_cache
from importlib import resources

import numpy as np

SINGLE, MARRIED_JOINT, MARRIED_SEPARATE, HEAD_OF_HOUSEHOLD = 1, 2, 3, 4
FILING_STATUS_CODES = {
    "single": SINGLE,
    "married_filing_jointly": MARRIED_JOINT,
    "married_filing_separately": MARRIED_SEPARATE,
    "head_of_household": HEAD_OF_HOUSEHOLD,
}


class TaxBenefitParamsError(ValueError):
    """A year without parameters."""


@dataclass(frozen=True)
class TaxBenefitParams:
    """Current-law parameters for one tax year (names as in Tax-Calculator)."""

    year: int
    STD: np.ndarray  # standard deduction by MARS, IRC 63(c)
    STD_Aged: np.ndarray  # additional standard deduction per person 65+, IRC 63(f)
    SeniorDed_c: float  # senior deduction per person 65+, 2025-2028 (P.L. 119-21)
    SeniorDed_ps: np.ndarray
    SeniorDed_prt: float
    FICA_ss_trt_employee: float  # IRC 3101(a)
    FICA_ss_trt_employer: float  # IRC 3111(a)
    SS_Earnings_c: float  # OASDI wage base, IRC 3121(a)(1)
    FICA_mc_trt_employee: float  # IRC 3101(b)(1)
    FICA_mc_trt_employer: float  # IRC 3111(b)
    AMEDT_rt: float  # additional Medicare tax, IRC 3101(b)(2)
    AMEDT_ec: np.ndarray
    EITC_rt: np.ndarray  # IRC 32(b)
    EITC_c: np.ndarray
    EITC_ps: np.ndarray
    EITC_ps_addon_MarriedJ: np.ndarray
    EITC_prt: np.ndarray
    EITC_MinEligAge: int  # IRC 32(c)(1)(A)(ii)(II)
    EITC_MaxEligAge: int
    EITC_sep_filers_elig: bool  # IRC 32(d)(2) as amended by ARPA 2021 s.9621
    CTC_c: float  # IRC 24(h)(2)
    CTC_ps: np.ndarray  # IRC 24(b), 24(h)(3)
    CTC_prt: float
    ACTC_c: float  # IRC 24(h)(5)
    ACTC_rt: float  # IRC 24(d)(1)(B)(i)
    ACTC_Income_thd: float  # IRC 24(h)(6)
    ACTC_ChildNum: int  # IRC 24(d)(1)(B)(ii): payroll-tax alternative at 3+ children
    II_brk: np.ndarray  # shape (7, 4): upper bracket edges of taxable income by MARS, IRC 1(j)
    II_rt: np.ndarray  # shape (8,): bracket rates


@lru_cache(maxsize=1)
def _raw() -> dict:
    path = resources.files("simulator.economy.taxbenefit").joinpath("data").joinpath(
        "current_law_2023_2026.json"
    )
    with path.open(encoding="utf-8") as f:
        return json.load(f)


def provenance() -> dict:
    """The provenance block of the parameter file."""
    return dict(_raw()["provenance"])


def available_years() -> list[int]:
    return sorted(int(y) for y in _raw()["years"])


@cache
def load(year: int) -> TaxBenefitParams:
    """Parameters for ``year``; raises :class:`TaxBenefitParamsError` for a year without them."""
    years = _raw()["years"]
    if str(year) not in years:
        raise TaxBenefitParamsError(
            f"no tax-benefit parameters for {year} (have {', '.join(map(str, available_years()))})"
        )
    r = years[str(year)]
    arr = lambda n: np.asarray(r[n], dtype=float)  # noqa: E731
    return TaxBenefitParams(
        year=int(year),
        STD=arr("STD"),
        STD_Aged=arr("STD_Aged"),
        SeniorDed_c=float(r["SeniorDed_c"]),
        SeniorDed_ps=arr("SeniorDed_ps"),
        SeniorDed_prt=float(r["SeniorDed_prt"]),
        FICA_ss_trt_employee=float(r["FICA_ss_trt_employee"]),
        FICA_ss_trt_employer=float(r["FICA_ss_trt_employer"]),
        SS_Earnings_c=float(r["SS_Earnings_c"]),
        FICA_mc_trt_employee=float(r["FICA_mc_trt_employee"]),
        FICA_mc_trt_employer=float(r["FICA_mc_trt_employer"]),
        AMEDT_rt=float(r["AMEDT_rt"]),
        AMEDT_ec=arr("AMEDT_ec"),
        EITC_rt=arr("EITC_rt"),
        EITC_c=arr("EITC_c"),
        EITC_ps=arr("EITC_ps"),
        EITC_ps_addon_MarriedJ=arr("EITC_ps_addon_MarriedJ"),
        EITC_prt=arr("EITC_prt"),
        EITC_MinEligAge=int(r["EITC_MinEligAge"]),
        EITC_MaxEligAge=int(r["EITC_MaxEligAge"]),
        EITC_sep_filers_elig=bool(r["EITC_sep_filers_elig"]),
        CTC_c=float(r["CTC_c"]),
        CTC_ps=arr("CTC_ps"),
        CTC_prt=float(r["CTC_prt"]),
        ACTC_c=float(r["ACTC_c"]),
        ACTC_rt=float(r["ACTC_rt"]),
        ACTC_Income_thd=float(r["ACTC_Income_thd"]),
        ACTC_ChildNum=int(r["ACTC_ChildNum"]),
        II_brk=np.asarray([r[f"II_brk{i}"] for i in range(1, 8)], dtype=float),
        II_rt=np.asarray([r[f"II_rt{i}"] for i in range(1, 9)], dtype=float),
    )
