"""US federal tax-benefit components, one small pure vectorised function each.

Written in the style of Tax-Calculator's ``calcfunctions.py`` and checked against it
(``tests/test_taxbenefit.py``, frozen answers in ``tests/data/taxcalc_frozen.csv``).
Every function takes numpy arrays (or scalars) over households and a
:class:`~simulator.economy.taxbenefit.params.TaxBenefitParams` for one year, and returns
dollars a year.

Filing status codes (``filing_status``), as Tax-Calculator's ``MARS``:
1 single, 2 married filing jointly, 3 married filing separately, 4 head of household.

Scope: a household's only income is wages (the worker's and, for married filing jointly,
a spouse's), so AGI = earned income = total wages; the standard deduction is taken; no
AMT (checked: it does not bind on the frozen grid), no other dependents (the $500 ODC), no blindness, no investment income.  A spouse's
wages and age count only under married filing jointly (they are ignored otherwise).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from .params import MARRIED_JOINT, MARRIED_SEPARATE, TaxBenefitParams


def _f(x: ArrayLike) -> np.ndarray:
    return np.asarray(x, dtype=float)


def _mars_index(filing_status: ArrayLike) -> np.ndarray:
    fs = np.asarray(filing_status, dtype=int)
    if np.any((fs < 1) | (fs > 4)):
        raise ValueError("filing_status codes must be 1 (single), 2 (joint), 3 (separate), 4 (head of household)")
    return fs - 1


def _spouse(filing_status: ArrayLike, x: ArrayLike) -> np.ndarray:
    """``x`` where married filing jointly, else 0."""
    return np.where(np.asarray(filing_status) == MARRIED_JOINT, _f(x), 0.0)


def payroll_tax_employee(wages, spouse_wages, filing_status, params: TaxBenefitParams):
    """Employee payroll tax on wages, both spouses.

    Social Security (OASDI) at ``FICA_ss_trt_employee`` (6.2 %) on each spouse's wages up
    to ``SS_Earnings_c`` (IRC 3101(a), 3121(a)(1); wage base under 42 U.S.C. 430), Medicare
    (HI) at ``FICA_mc_trt_employee`` (1.45 %) on all wages (IRC 3101(b)(1)), and the
    additional Medicare tax at ``AMEDT_rt`` (0.9 %) on the unit's wages above ``AMEDT_ec``
    for its filing status (IRC 3101(b)(2), Form 8959; joint wages for married couples).
    """
    w_p = _f(wages)
    w_s = _spouse(filing_status, spouse_wages)
    return oasdi_hi_employee(w_p, w_s, params) + additional_medicare_tax(
        w_p + w_s, filing_status, params
    )


def oasdi_hi_employee(wages, spouse_wages, params: TaxBenefitParams):
    """Employee OASDI + HI (no additional Medicare tax), IRC 3101(a), 3101(b)(1)."""
    w_p, w_s = _f(wages), _f(spouse_wages)
    cap = params.SS_Earnings_c
    ss = params.FICA_ss_trt_employee * (np.minimum(w_p, cap) + np.minimum(w_s, cap))
    mc = params.FICA_mc_trt_employee * (w_p + w_s)
    return ss + mc


def additional_medicare_tax(unit_wages, filing_status, params: TaxBenefitParams):
    """Additional Medicare tax, 0.9 % above the filing-status threshold, IRC 3101(b)(2)."""
    thd = params.AMEDT_ec[_mars_index(filing_status)]
    return params.AMEDT_rt * np.maximum(0.0, _f(unit_wages) - thd)


def payroll_tax_employer(wages, spouse_wages, filing_status, params: TaxBenefitParams):
    """Employer payroll tax (reported separately), IRC 3111(a), 3111(b)."""
    w_p = _f(wages)
    w_s = _spouse(filing_status, spouse_wages)
    cap = params.SS_Earnings_c
    ss = params.FICA_ss_trt_employer * (np.minimum(w_p, cap) + np.minimum(w_s, cap))
    return ss + params.FICA_mc_trt_employer * (w_p + w_s)


def standard_deduction(filing_status, age, spouse_age, params: TaxBenefitParams):
    """Basic standard deduction by filing status (IRC 63(c)(2), (c)(7); Rev. Proc. 2023-34,
    2024-40, 2025-32) plus the additional amount per person 65 and over (IRC 63(f); the
    spouse counts only for married filing jointly)."""
    i = _mars_index(filing_status)
    n_aged = (_f(age) >= 65).astype(float) + (_spouse(filing_status, spouse_age) >= 65)
    return params.STD[i] + n_aged * params.STD_Aged[i]


def senior_deduction(agi, filing_status, age, spouse_age, params: TaxBenefitParams):
    """Senior deduction, 2025-2028: ``SeniorDed_c`` ($6,000) per person 65 and over, each
    reduced by ``SeniorDed_prt`` (6 %) of MAGI above ``SeniorDed_ps`` ($75,000; $150,000
    joint); none for married filing separately (IRC 151(d)(5)(C) as added by P.L. 119-21
    s.70103; Schedule 1-A Part V)."""
    i = _mars_index(filing_status)
    n_seniors = (_f(age) >= 65).astype(float) + (_spouse(filing_status, spouse_age) >= 65)
    per = np.maximum(0.0, params.SeniorDed_c - params.SeniorDed_prt * np.maximum(0.0, _f(agi) - params.SeniorDed_ps[i]))
    ded = n_seniors * per
    return np.where(np.asarray(filing_status) == MARRIED_SEPARATE, 0.0, ded)


def bracket_tax(taxable_income, filing_status, params: TaxBenefitParams):
    """Regular income tax on taxable income, ordinary brackets by filing status (IRC 1(j)
    as amended by P.L. 119-21; Rev. Proc. 2023-34 s.3.01, 2024-40 s.3.01, 2025-32 s.4.01).
    Married filing jointly uses the joint schedule on joint income."""
    ti, fs = np.broadcast_arrays(_f(taxable_income), np.asarray(filing_status))
    shape = ti.shape
    ti, i = ti.ravel(), _mars_index(fs.ravel())
    edges = params.II_brk[:, i]  # (7, n) upper edges
    lower = np.vstack([np.zeros((1, ti.size)), edges])  # (8, n)
    upper = np.vstack([edges, np.full((1, ti.size), np.inf)])
    width = np.clip(ti[None, :] - lower, 0.0, upper - lower)
    tax = np.sum(params.II_rt[:, None] * width, axis=0)
    return tax.reshape(shape) if shape else float(tax[0])


def income_tax_before_credits(agi, filing_status, age, spouse_age, params: TaxBenefitParams):
    """Regular income tax before credits (Form 1040 line 16): brackets applied to
    taxable income = AGI - standard deduction - senior deduction (IRC 63; not below 0)."""
    agi = _f(agi)
    fs = np.asarray(filing_status)
    ded = standard_deduction(fs, age, spouse_age, params) + senior_deduction(agi, fs, age, spouse_age, params)
    taxable = np.maximum(0.0, agi - ded)
    return bracket_tax(taxable, fs, params)


def eitc(earnings, agi, filing_status, eitc_children, age, spouse_age, params: TaxBenefitParams):
    """Earned income tax credit (IRC 32; Rev. Proc. 2023-34 s.3.07, 2024-40 s.2.06,
    2025-32 s.4.06), worksheet formula as Tax-Calculator computes it (not the $50 table):
    min(phase-in rate x earnings, max credit), reduced by the phase-out rate times
    max(earnings, AGI) above the phase-out start (plus the married-filing-jointly
    addition).  Childless units need the worker (or, if joint, either spouse) aged
    ``EITC_MinEligAge``-``EITC_MaxEligAge`` (25-64).  Married filing separately eligible
    when ``EITC_sep_filers_elig`` (2021 on, IRC 32(d)(2)).  ``eitc_children`` is capped at 3."""
    k = np.clip(np.asarray(eitc_children, dtype=int), 0, 3)
    fs = np.asarray(filing_status)
    _mars_index(fs)
    earn, agi = _f(earnings), _f(agi)
    rt, mx, prt = params.EITC_rt[k], params.EITC_c[k], params.EITC_prt[k]
    ps = params.EITC_ps[k] + np.where(fs == MARRIED_JOINT, params.EITC_ps_addon_MarriedJ[k], 0.0)
    credit = np.minimum(rt * earn, mx)
    phased = np.maximum(0.0, mx - prt * np.maximum(0.0, np.maximum(earn, agi) - ps))
    credit = np.where((earn > ps) | (agi > ps), np.minimum(credit, phased), credit)
    lo, hi = params.EITC_MinEligAge, params.EITC_MaxEligAge
    a, sa = _f(age), _f(spouse_age)
    age_ok = ((a >= lo) & (a <= hi)) | ((fs == MARRIED_JOINT) & (sa >= lo) & (sa <= hi))
    credit = np.where((k == 0) & ~age_ok, 0.0, credit)
    if not params.EITC_sep_filers_elig:
        credit = np.where(fs == MARRIED_SEPARATE, 0.0, credit)
    return credit


# IRC 22(c)(2) initial amounts and 22(d) AGI thresholds (statutory, not indexed).
_SCHR_BASE = np.array([5000.0, 5000.0, 3750.0, 5000.0])  # MFJ both 65+: 7500
_SCHR_THD = np.array([7500.0, 10000.0, 5000.0, 7500.0])


def elderly_credit(agi, income_tax_before, filing_status, age, spouse_age):
    """Credit for the elderly (IRC 22; Schedule R, no disability, no nontaxable Social
    Security or pensions in this model): 15 % of the initial amount ($5,000; $7,500 for a
    joint couple both 65+; $3,750 separate) less half of AGI above $7,500 ($10,000 joint;
    $5,000 separate), limited by income tax before credits.  Tax-Calculator computes it,
    so it is needed to match ``iitax`` for low-income people 65 and over."""
    fs = np.asarray(filing_status)
    i = _mars_index(fs)
    a, sa = _f(age), _spouse(fs, spouse_age)
    eligible = (a >= 65) | (sa >= 65)
    base = np.where((fs == MARRIED_JOINT) & (a >= 65) & (sa >= 65), 7500.0, _SCHR_BASE[i])
    line19 = np.maximum(0.0, base - 0.5 * np.maximum(0.0, _f(agi) - _SCHR_THD[i]))
    credit = np.minimum(0.15 * line19, np.maximum(0.0, _f(income_tax_before)))
    return np.where(eligible, credit, 0.0)


def ctc_and_actc(children, agi, earnings, income_tax_before, employee_oasdi_hi, eitc_amount,
                 filing_status, params: TaxBenefitParams):
    """Child tax credit, nonrefundable part and refundable additional CTC (IRC 24; Sch. 8812).

    Tentative credit ``CTC_c`` per qualifying child under 17, less ``CTC_prt`` (5 %) of
    AGI above ``CTC_ps`` ($200,000; $400,000 joint) (IRC 24(b), 24(h)(3)); the
    nonrefundable part is limited by income tax before credits.  The refundable part
    (IRC 24(d), 24(h)(5)-(6)) is the smaller of the unused credit and ``ACTC_c`` per child,
    and of ``ACTC_rt`` (15 %) of earnings above ``ACTC_Income_thd`` ($2,500) - or, with 3+
    children, of the larger of that and employee OASDI+HI less the EITC (Sch. 8812 Part
    II-B).  Phase-out is the smooth one Tax-Calculator uses (not rounded to $1,000).
    Returns ``(ctc, actc)``."""
    n = np.maximum(0, np.asarray(children, dtype=int)).astype(float)
    i = _mars_index(filing_status)
    agi, earn = _f(agi), _f(earnings)
    line5 = params.CTC_c * n
    line12 = np.maximum(0.0, line5 - params.CTC_prt * np.maximum(0.0, agi - params.CTC_ps[i]))
    ctc = np.minimum(line12, np.maximum(0.0, _f(income_tax_before)))
    unused = line12 - ctc
    line17 = np.minimum(unused, min(params.ACTC_c, params.CTC_c) * n)
    line20 = params.ACTC_rt * np.maximum(0.0, earn - params.ACTC_Income_thd)
    line26 = np.maximum(0.0, _f(employee_oasdi_hi) - _f(eitc_amount))
    alt = np.where(n >= params.ACTC_ChildNum, np.maximum(line20, line26), line20)
    actc = np.where(line17 > 0.0, np.minimum(line17, alt), 0.0)
    return ctc, actc


def net_tax(wages, spouse_wages, filing_status, children, age, spouse_age,
            params: TaxBenefitParams, eitc_children=None) -> dict[str, np.ndarray]:
    """Every component for wage-only households, and the total.

    ``children``: qualifying children under 17 (counted for the CTC and, unless
    ``eitc_children`` is given, for the EITC).  Returns a dict of arrays:
    ``payroll_tax`` (employee, both spouses), ``payroll_tax_employer``,
    ``income_tax_before_credits``, ``elderly_credit`` (Schedule R), ``ctc``, ``actc``, ``eitc``, ``income_tax`` (after all
    credits; negative when refundable credits exceed tax) and
    ``net_tax = income_tax + payroll_tax``."""
    fs = np.asarray(filing_status, dtype=int)
    w_p = _f(wages)
    w_s = _spouse(fs, spouse_wages)
    unit = w_p + w_s
    s_age = _spouse(fs, spouse_age)
    payroll = payroll_tax_employee(w_p, w_s, fs, params)
    oasdi_hi = oasdi_hi_employee(w_p, w_s, params)
    itax_bc = income_tax_before_credits(unit, fs, age, s_age, params)
    k = children if eitc_children is None else eitc_children
    e = eitc(unit, unit, fs, k, age, s_age, params)
    elderly = elderly_credit(unit, itax_bc, fs, age, s_age)
    ctc, actc = ctc_and_actc(children, unit, unit, itax_bc - elderly, oasdi_hi, e, fs, params)
    income_tax = itax_bc - elderly - ctc - actc - e
    return {
        "payroll_tax": payroll,
        "payroll_tax_employer": payroll_tax_employer(w_p, w_s, fs, params),
        "income_tax_before_credits": itax_bc,
        "elderly_credit": elderly,
        "ctc": ctc,
        "actc": actc,
        "eitc": e,
        "income_tax": income_tax,
        "net_tax": income_tax + payroll,
    }
