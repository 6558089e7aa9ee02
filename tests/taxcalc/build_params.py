"""Copy the 2023-2026 current-law parameters econsim's tax-benefit components need
from Tax-Calculator's ``policy_current_law.json`` (CC0) into
``simulator/economy/taxbenefit/data/current_law_2023_2026.json``, with provenance.

Needs Python >= 3.12 with ``taxcalc`` installed (not the project venv), e.g.::

    make venv-taxcalc
    .venv-taxcalc/bin/python tests/taxcalc/build_params.py

Values are read through ``taxcalc.Policy`` (so indexed values are the ones
Tax-Calculator itself uses for each year).  Filing-status-indexed values are
lists in taxcalc's MARS order [single, mjoint, mseparate, headhh, widow]; we keep
the first four.  EITC values are lists by qualifying children [0, 1, 2, 3+].
"""

from __future__ import annotations

import hashlib
import json
from importlib import metadata, resources
from pathlib import Path

import taxcalc as tc

YEARS = [2023, 2024, 2025, 2026]
MARS_INDEXED = [
    "STD", "STD_Aged", "SeniorDed_ps", "AMEDT_ec", "CTC_ps",
    *[f"II_brk{i}" for i in range(1, 8)],
]
EIC_INDEXED = ["EITC_rt", "EITC_c", "EITC_ps", "EITC_ps_addon_MarriedJ", "EITC_prt"]
SCALARS = [
    "SeniorDed_c", "SeniorDed_prt",
    "FICA_ss_trt_employee", "FICA_ss_trt_employer", "SS_Earnings_c",
    "FICA_mc_trt_employee", "FICA_mc_trt_employer", "AMEDT_rt",
    "EITC_MinEligAge", "EITC_MaxEligAge", "EITC_sep_filers_elig",
    "CTC_c", "CTC_prt", "ACTC_c", "ACTC_rt", "ACTC_Income_thd", "ACTC_ChildNum",
    *[f"II_rt{i}" for i in range(1, 9)],
]

OUT = Path(__file__).resolve().parents[2] / "simulator/economy/taxbenefit/data/current_law_2023_2026.json"


def _py(v):
    if hasattr(v, "item"):
        return v.item()
    return v


def main() -> None:
    src = resources.files("taxcalc").joinpath("policy_current_law.json")
    raw = src.read_bytes()
    doc = json.loads(raw)
    pol = tc.Policy()
    years: dict[str, dict] = {}
    for year in YEARS:
        pol.set_year(year)
        row: dict[str, object] = {}
        for name in MARS_INDEXED:
            row[name] = [float(x) for x in getattr(pol, name)[0][:4]]
        for name in EIC_INDEXED:
            row[name] = [float(x) for x in getattr(pol, name)[0]]
        for name in SCALARS:
            row[name] = _py(getattr(pol, name)[0])
        years[str(year)] = row
    out = {
        "provenance": {
            "source": "Tax-Calculator (PSLmodels/Tax-Calculator), taxcalc/policy_current_law.json",
            "taxcalc_version": metadata.version("taxcalc"),
            "licence": "CC0 1.0 (public domain)",
            "source_sha256": hashlib.sha256(raw).hexdigest(),
            "read_via": "taxcalc.Policy().set_year(year), current law, no reform",
            "built_by": "tests/taxcalc/build_params.py",
            "mars_order": ["single", "mjoint", "mseparate", "headhh"],
            "eic_order": ["0kids", "1kid", "2kids", "3+kids"],
            "parameters": {
                n: doc[n].get("title", "") for n in MARS_INDEXED + EIC_INDEXED + SCALARS
            },
        },
        "years": years,
    }
    OUT.write_text(json.dumps(out, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
