"""Tax-Calculator on wage-only households: shared by ``build_frozen.py`` (the frozen table
``tests/data/taxcalc_frozen.csv.gz``) and ``tests/test_taxcalc_live.py`` (the live check,
``make test-taxcalc``).

Needs Python >= 3.12 with ``taxcalc`` installed.  Take-up is switched off
(``eitc_claim_prob_scale`` and ``actc_claim_prob_scale`` = 9e99) so the statutory amounts
appear.  Qualifying children are under 17 and counted for both credits
(``n24 = nu18 = children``, ``EIC = min(children, 3)``, ``XTOT = adults + children``, so
no $500 other-dependent credit arises).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import taxcalc as tc

YEARS = [2023, 2024, 2025, 2026]
#: a household type: (filing_status, children, age, spouse_age, spouse_wages)
HouseholdType = tuple[int, int, int, int, float]

#: Tax-Calculator outputs kept, and the column each becomes (``payroll_tax`` and
#: ``payroll_tax_employer`` are derived from ``ptax_was`` and ``ptax_amc``)
OUTPUTS = {
    "c05800": "income_tax_before_credits", "taxbc": "regular_tax", "c07220": "ctc",
    "c11070": "actc", "c59660": "eitc", "iitax": "income_tax", "c04800": "taxable_income",
    "c07200": "elderly_credit", "standard": "standard_deduction",
}


def policy(year: int) -> tc.Policy:
    """Current law for ``year``, take-up of the EITC and ACTC switched off."""
    pol = tc.Policy()
    pol.implement_reform({"eitc_claim_prob_scale": {year: 9e99}, "actc_claim_prob_scale": {year: 9e99}})
    pol.set_year(year)
    return pol


def kinks(pol: tc.Policy) -> list[float]:
    """Unit wages at which some component changes slope (for a unit without spouse
    wages), for the policy's current year: EITC phase-in end, phase-out start and end
    (with and without the joint addition), ACTC phase-in ends, the OASDI wage base (one
    and two earners), standard deduction (0, 1, 2 aged) plus every bracket edge, the
    additional Medicare, CTC and senior-deduction thresholds and phase-out ends."""
    pts = [0.0, pol.ACTC_Income_thd[0], pol.SS_Earnings_c[0], 2 * pol.SS_Earnings_c[0]]
    for j in range(4):
        rt, c, ps, prt = pol.EITC_rt[0][j], pol.EITC_c[0][j], pol.EITC_ps[0][j], pol.EITC_prt[0][j]
        for add in (0.0, pol.EITC_ps_addon_MarriedJ[0][j]):
            pts += [c / rt, ps + add, ps + add + c / prt]
    for n in range(1, 5):
        pts.append(pol.ACTC_Income_thd[0] + min(pol.ACTC_c[0], pol.CTC_c[0]) * n / pol.ACTC_rt[0])
    for m in range(4):
        std = pol.STD[0][m]
        for aged in (0, 1, 2):
            base = std + aged * pol.STD_Aged[0][m]
            pts.append(base)
            for b in range(1, 7):
                pts.append(base + getattr(pol, f"II_brk{b}")[0][m])
        pts += [pol.AMEDT_ec[0][m], pol.CTC_ps[0][m], pol.SeniorDed_ps[0][m]]
        if pol.SeniorDed_c[0] > 0:
            pts.append(pol.SeniorDed_ps[0][m] + pol.SeniorDed_c[0] / pol.SeniorDed_prt[0])
        for n in range(1, 5):
            pts.append(pol.CTC_ps[0][m] + pol.CTC_c[0] * n / pol.CTC_prt[0])
    return pts


def wage_points(base: list[float], spouse_wages: float, top: float = 700001.0,
                step: float = 10000.0) -> list[float]:
    """Worker wages to try for a type: a coarse grid 0, step, ... below ``top``, plus every
    kink of unit wages (``base``; as worker wages ``k - spouse_wages`` too) and $1 either
    side of it, within $0-$2,000,000."""
    cand = set(np.arange(0.0, top, step).tolist())
    for k in base:
        for w in (k, k - spouse_wages):
            for d in (-1.0, 0.0, 1.0):
                if 0.0 <= w + d <= 2e6:
                    cand.add(round(w + d, 2))
    return sorted(cand)


def grid(year: int, types: list[HouseholdType], pol: tc.Policy | None = None, **kw) -> pd.DataFrame:
    """Households of ``types`` x their wage points for ``year``: columns year,
    filing_status, children, age, spouse_age, spouse_wages, wages."""
    pol = pol or policy(year)
    base = sorted({float(x) for x in kinks(pol)})
    rows = [(year, fs, kids, age, sage, sw, w)
            for (fs, kids, age, sage, sw) in types for w in wage_points(base, sw, **kw)]
    return pd.DataFrame(rows, columns=["year", "filing_status", "children", "age", "spouse_age",
                                       "spouse_wages", "wages"])


def answers(df: pd.DataFrame, year: int, pol: tc.Policy | None = None) -> pd.DataFrame:
    """``df`` (one year, the columns of :func:`grid`) with Tax-Calculator's answers added:
    the :data:`OUTPUTS` columns, ``payroll_tax`` (employee share, both spouses: half of
    ``ptax_was`` plus ``ptax_amc``) and ``payroll_tax_employer`` (half of ``ptax_was``)."""
    pol = pol or policy(year)
    df = df.copy()
    num = np.where(df.filing_status == 2, 2, 1)
    rec_df = pd.DataFrame({
        "RECID": np.arange(1, len(df) + 1),
        "MARS": df.filing_status.astype(int),
        "e00200p": df.wages, "e00200s": df.spouse_wages,
        "e00200": df.wages + df.spouse_wages,
        "age_head": df.age.astype(int), "age_spouse": df.spouse_age.astype(int),
        "nu18": df.children.astype(int), "n24": df.children.astype(int),
        "EIC": np.minimum(df.children, 3).astype(int),
        "XTOT": (num + df.children).astype(int),
        "FLPDYR": year, "s006": 1.0,
    })
    rec = tc.Records(data=rec_df, start_year=year, gfactors=None, weights=None, adjust_ratios=None)
    calc = tc.Calculator(policy=pol, records=rec, verbose=False)
    calc.calc_all()
    out = calc.dataframe([*OUTPUTS, "ptax_was", "ptax_amc"])
    for src, name in OUTPUTS.items():
        df[name] = out[src].to_numpy()
    df["payroll_tax"] = (0.5 * out["ptax_was"] + out["ptax_amc"]).to_numpy()
    df["payroll_tax_employer"] = (0.5 * out["ptax_was"]).to_numpy()
    return df
