"""Freeze Tax-Calculator's answers for wage-only households into
``tests/data/taxcalc_frozen.csv.gz`` (checked by ``tests/test_taxbenefit.py`` on 3.11).

Runs under Python >= 3.12 with taxcalc installed, outside the project venv::

    /tmp/tcv/bin/python tests/taxcalc/build_frozen.py

Grid: household types x worker wages (a coarse grid plus every kink of every
component and $1 either side of it) x 2023-2026.  Take-up is switched off
(``eitc_claim_prob_scale`` and ``actc_claim_prob_scale`` = 9e99) so the statutory
amounts appear.  Qualifying children are under 17 and counted for both credits
(``n24 = nu18 = children``, ``EIC = min(children, 3)``, ``XTOT = adults + children``, so
no $500 other-dependent credit arises).
"""

from __future__ import annotations

import gzip
from importlib import metadata
from pathlib import Path

import numpy as np
import pandas as pd
import taxcalc as tc

YEARS = [2023, 2024, 2025, 2026]
OUT = Path(__file__).resolve().parents[1] / "data" / "taxcalc_frozen.csv.gz"

# (filing_status, children, age, spouse_age, spouse_wages)
TYPES = [
    (1, 0, 40, 0, 0.0), (1, 0, 22, 0, 0.0), (1, 0, 70, 0, 0.0), (1, 1, 30, 0, 0.0),
    (4, 1, 35, 0, 0.0), (4, 2, 35, 0, 0.0), (4, 3, 35, 0, 0.0), (4, 4, 35, 0, 0.0), (4, 2, 67, 0, 0.0),
    (2, 0, 40, 38, 0.0), (2, 0, 22, 70, 0.0), (2, 0, 22, 23, 0.0), (2, 2, 40, 38, 0.0),
    (2, 2, 40, 38, 20000.0), (2, 3, 40, 38, 0.0), (2, 3, 40, 38, 60000.0), (2, 0, 70, 68, 0.0),
    (2, 1, 66, 50, 120000.0), (3, 0, 40, 0, 0.0), (3, 1, 40, 0, 0.0),
]


def kinks(pol: tc.Policy) -> list[float]:
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


def run_year(year: int) -> pd.DataFrame:
    pol = tc.Policy()
    pol.implement_reform({"eitc_claim_prob_scale": {year: 9e99}, "actc_claim_prob_scale": {year: 9e99}})
    pol.set_year(year)
    base = sorted({float(x) for x in kinks(pol)})
    rows = []
    for (fs, kids, age, sage, sw) in TYPES:
        cand = set(np.arange(0.0, 700001.0, 10000.0).tolist())
        for k in base:
            for w in (k, k - sw):
                for d in (-1.0, 0.0, 1.0):
                    if 0.0 <= w + d <= 2e6:
                        cand.add(round(w + d, 2))
        for w in sorted(cand):
            rows.append((year, fs, kids, age, sage, sw, w))
    df = pd.DataFrame(rows, columns=["year", "filing_status", "children", "age", "spouse_age", "spouse_wages", "wages"])
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
    out = calc.dataframe(["taxbc", "c05800", "c07220", "c11070", "c59660", "iitax", "ptax_was", "ptax_amc", "standard", "c04800"])
    df["income_tax_before_credits"] = out["c05800"].to_numpy()
    df["regular_tax"] = out["taxbc"].to_numpy()
    df["ctc"] = out["c07220"].to_numpy()
    df["actc"] = out["c11070"].to_numpy()
    df["eitc"] = out["c59660"].to_numpy()
    df["income_tax"] = out["iitax"].to_numpy()
    df["payroll_tax"] = (0.5 * out["ptax_was"] + out["ptax_amc"]).to_numpy()
    df["taxable_income"] = out["c04800"].to_numpy()
    return df


def main() -> None:
    df = pd.concat([run_year(y) for y in YEARS], ignore_index=True)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(OUT, "wt", encoding="utf-8", mtime=0) as f:
        f.write(f"# Tax-Calculator (taxcalc {metadata.version('taxcalc')}, CC0) answers for wage-only households; "
                "take-up off; built by tests/taxcalc/build_frozen.py\n")
        df.to_csv(f, index=False, float_format="%.3f")
    print(f"wrote {len(df)} rows to {OUT}")


if __name__ == "__main__":
    main()
