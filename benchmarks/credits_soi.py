"""EITC and child tax credit recipients and amounts of the simulated population, scaled to
the US, next to IRS Statistics of Income totals.

    .venv/bin/python benchmarks/credits_soi.py [--workers 200000] [--year 2023] [--seed 0]
                                               [--quick] [--json]

The simulation: a Census population of ``--workers`` workers (``build_population``,
seed ``--seed``) in ``economy.world: us_current_law`` with the revenue-requirement fiscal
rule, planner ``us_federal`` at the statutory schedule of tax year ``--year``, rational
workers with equilibrium expectations; one tax year of ``EconomyModel`` gives the hours,
and the household budget's components at those hours give each worker's unit's EITC,
nonrefundable CTC and ACTC.

Scaling: the Census generator draws *employed people*: the ACS 2024 resident population
by sex and single year of age times the CPS 2024 employment-population ratio of its group
(``personas.model.calibration().worker_mass``, 166.3 M people).  An unstratified
population has weight 1 per worker, so each worker stands for ``166.3 M / (sum of
weights)`` US workers.  Tax units are counted once: a worker of a two-earner couple
carries half its unit (``HouseholdBudget.share``, 1 / ``unit_earners``), so a credit's
recipient units are the scaled sum of ``share`` over workers whose unit receives it, and
its amount the scaled sum of ``share x credit``.  The IRS figures are in
``benchmarks/data/soi_credits.csv`` (source, table, cells, URL, the copy they were read
from, universe).  ``--quick``: 2,000 workers.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.append(str(Path(__file__).resolve().parent))  # _provenance
from _provenance import footer, header  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SOI_CSV = Path(__file__).resolve().parent / "data" / "soi_credits.csv"

#: the columns every row of the SOI file fills
SOI_REQUIRED = ("source_id", "credit", "children", "tax_year", "returns", "source", "table",
                "cells", "url", "universe")

UNIVERSES = """\
Why the two columns differ (the universes are not the same):
- Who is counted. The simulation's units are the tax units of employed people with wage
  earnings, one unit per worker (half a unit for each earner of a two-earner couple). SOI
  counts every return filed: retirees, the unemployed, students, people living on
  investment income or benefits, dependants filing for a refund. Units without an
  earner get no EITC and no ACTC, so most of the credits' recipients are in both
  universes, but the CTC of units whose income is not wages is not simulated.
- What income is. Simulated income is wages only, at the hours rational workers choose
  under current law. Filers' AGI adds self-employment income (which earns the EITC and
  the ACTC), investment income (which can disqualify from the EITC above $11,000 in
  2023), pensions, benefits, capital gains. No AMT, no itemised deductions, no other
  credits that limit the nonrefundable CTC (child care, education, foreign tax).
- Who is in a unit. Households come from Tax-Calculator's CPS tax-unit file (children
  under 17 for the CTC, EITC qualifying children 0-3+) matched on age and earnings; the
  worker's own earnings come from the persona generator, its hours from the model. SOI's
  qualifying children are those claimed. The SOI 'child and other dependent credit'
  includes the $500 credit for other dependents, which econsim does not compute.
- Take-up and compliance. The simulation pays every credit a unit is statutorily
  eligible for (no take-up modelling): the IRS estimates EITC participation at about
  four in five eligible; ineligible claims and math errors are in SOI's counts.
- Years and dollars. Law of the simulated tax year (default 2023: EITC and ACTC amounts
  indexed about 7 percent above 2022's; CTC $2,000 both years, ACTC cap $1,600 against
  $1,500); earnings at the generator's 2024-2025 level (OEWS May 2025, CPS tax units
  uprated to 2024), against tax year 2022 returns.
- Sampling. The simulated figures are a sample of --workers workers (sampling error of
  a share p is about sqrt(p(1-p)/n)); the SOI state data are tabulated from every
  return, Publication 1304 from SOI's sample, EITC Central's figure is rounded.
"""


def load_soi(path: Path = SOI_CSV) -> list[dict]:
    """The IRS rows, with ``returns`` and ``amount`` (dollars) as numbers; raises
    ``ValueError`` when a row lacks a required field."""
    rows = []
    with open(path, newline="") as f:
        for r in csv.DictReader(f):
            missing = [k for k in SOI_REQUIRED if not (r.get(k) or "").strip()]
            if missing:
                raise ValueError(f"{path.name}: row {r.get('source_id')}/{r.get('credit')} lacks {missing}")
            r["returns"] = float(r["returns"])
            a = (r.get("amount_thousand_usd") or "").strip()
            r["amount"] = float(a) * 1000.0 if a else None
            rows.append(r)
    return rows


def soi(rows: list[dict], source_id: str, credit: str, children: str = "all") -> dict | None:
    for r in rows:
        if r["source_id"] == source_id and r["credit"] == credit and r["children"] == children:
            return r
    return None


def us_workers() -> float:
    """The number of US workers the Census generator's population stands for."""
    from personas.model import calibration  # deferred: the persona tables load on use

    return float(calibration().worker_mass.sum())


def source_households() -> dict:
    """Tax units with an earner and their children under 17 in the household source
    (Tax-Calculator's CPS tax-unit file, 2024 weights; ``personas.households``)."""
    from personas.households import unit_table  # deferred: the persona tables load on use

    u = unit_table()
    w = u["weight"].to_numpy(dtype=float)
    kids = u["children"].to_numpy(dtype=float)
    return {"units": float(w.sum()), "ctc_children": float(np.dot(w, kids)),
            "units_with_children": float(w[kids > 0].sum())}


def simulate(n: int, year: int, seed: int) -> dict:
    """One tax year of the us_current_law world: scaled recipients and amounts."""
    # deferred: keep --help and argument errors fast
    from simulator.config.loading import scenario_from_dict
    from simulator.sim.model import EconomyModel
    from simulator.sim.population import build_population

    sc = scenario_from_dict({
        "name": "credits-soi",
        "population": {"size": n, "source": "census"},
        "economy": {"world": "us_current_law", "fiscal_rule": "revenue_requirement"},
        "tax": {"us_federal": {"year": year}},
        "planner": {"kind": "us_federal"},
        "workers": {"policy": "rational", "expectations": "equilibrium"},
        "run": {"seed": seed, "mesa_agents": False, "steps_per_year": 1},
        "output": {"agents_table": False},
    })
    t0 = time.perf_counter()
    pop = build_population(sc.population, np.random.default_rng(seed))
    m = EconomyModel(sc, pop, agent_objects=False)
    rec = m.run_year()
    seconds = time.perf_counter() - t0
    b = m.budget(m.schedule)
    c = b.components(m.outcome.pre_tax)
    share = np.asarray(b.share, dtype=float)
    w = m.population["weight"].to_numpy(dtype=float)
    workers_us = us_workers()
    scale = workers_us / w.sum()
    unit_w = w * share * scale  # US tax units each worker's share stands for
    kids = np.minimum(np.asarray(b.households.eitc_children), 3)
    ctc_kids = np.asarray(b.households.children, dtype=float)

    def count(mask) -> float:
        return float(np.sum(unit_w * mask))

    def amount(x) -> float:
        return float(np.sum(unit_w * x))

    eitc, ctc, actc = (np.asarray(c[k], dtype=float) for k in ("eitc", "ctc", "actc"))
    out = {
        "workers": n, "year": year, "seed": seed, "seconds": seconds,
        "us_workers": workers_us, "scale": scale,
        "units": amount(np.ones(n)), "ctc_children": amount(ctc_kids),
        "units_with_children": count(ctc_kids > 0), "source": source_households(), "mean_hours": rec["mean_hours"], "transfer": rec["rebate"],
        "hours_in_bounds": bool(np.all((m.hours >= m.hours_bounds[0]) & (m.hours <= m.hours_bounds[1]))),
        "eitc": {"all": (count(eitc > 0), amount(eitc))},
        "ctc_nonrefundable": {"all": (count(ctc > 0), amount(ctc))},
        "actc": {"all": (count(actc > 0), amount(actc))},
        "ctc_any": {"all": (count((ctc + actc) > 0), amount(ctc + actc))},
        # sampling error of the EITC recipient share of units (binomial, weights 1)
        "eitc_share_se": float(np.sqrt(max(np.mean(eitc > 0) * (1 - np.mean(eitc > 0)), 0) / n)),
    }
    for k, label in ((0, "0"), (1, "1"), (2, "2"), (3, "3+")):
        sel = kids == k
        out["eitc"][label] = (count((eitc > 0) & sel), amount(eitc * sel))
    return out


def _m(x: float | None) -> str:
    return "-" if x is None else f"{x / 1e6:,.2f}"


def _b(x: float | None) -> str:
    return "-" if x is None else f"{x / 1e9:,.2f}"


def _ratio(a: float | None, b: float | None) -> str:
    return "-" if a is None or not b else f"{a / b:.2f}"


def table(sim: dict, rows: list[dict]) -> list[str]:
    lines = [f"{'credit':<26} {'':<9} {'simulated':>10} {'SOI state':>10} {'sim/SOI':>8} "
             f"{'SOI T2.5':>9} {'EITC Ctr':>9}",
             f"{'':<26} {'':<9} {'TY' + str(sim['year']):>10} {'TY2022':>10} {'':>8} {'TY2022':>9} "
             f"{'TY2022':>9}"]
    spec = [("EITC, all", "eitc", "all"), ("EITC, no child", "eitc", "0"),
            ("EITC, 1 child", "eitc", "1"), ("EITC, 2 children", "eitc", "2"),
            ("EITC, 3+ children", "eitc", "3+"),
            ("CTC nonrefundable", "ctc_nonrefundable", "all"), ("ACTC (refundable CTC)", "actc", "all")]
    for label, credit, kids in spec:
        s_units, s_amt = sim[credit][kids]
        st = soi(rows, "soi_state_2022", credit, kids)
        p = soi(rows, "soi_p1304_t25_2022", credit, kids)
        e = soi(rows, "eitc_central_2022", credit, kids)
        for what, sv, key, fmt in (("returns M", s_units, "returns", _m), ("amount $B", s_amt, "amount", _b)):
            sval = st[key] if st else None
            lines.append(f"{label:<26} {what:<9} {fmt(sv):>10} {fmt(sval):>10} {_ratio(sv, sval):>8} "
                         f"{fmt(p[key]) if p else '-':>9} {fmt(e[key]) if e else '-':>9}")
    s_units, s_amt = sim["ctc_any"]["all"]
    st_n = soi(rows, "soi_state_2022", "ctc_nonrefundable")
    st_a = soi(rows, "soi_state_2022", "actc")
    lines.append(f"{'CTC + ACTC':<26} {'returns M':<9} {_m(s_units):>10} {'-':>10} {'-':>8} {'-':>9} {'-':>9}"
                 "   (SOI: no count of returns with either)")
    both = st_n["amount"] + st_a["amount"]
    lines.append(f"{'CTC + ACTC':<26} {'amount $B':<9} {_b(s_amt):>10} {_b(both):>10} "
                 f"{_ratio(s_amt, both):>8} {'-':>9} {'-':>9}")
    allr = soi(rows, "soi_state_2022", "all_returns")
    lines.append(f"{'tax units / all returns':<26} {'returns M':<9} {_m(sim['units']):>10} "
                 f"{_m(allr['returns']):>10} {_ratio(sim['units'], allr['returns']):>8} {'-':>9} {'-':>9}")
    return lines


def sources(rows: list[dict]) -> list[str]:
    seen, out = set(), []
    names = {"soi_state_2022": "SOI state", "soi_p1304_t25_2022": "SOI T2.5", "eitc_central_2022": "EITC Ctr"}
    for r in rows:
        if r["source_id"] in seen:
            continue
        seen.add(r["source_id"])
        out.append(f"{names.get(r['source_id'], r['source_id'])}: {r['source']}, {r['table']}; {r['url']}"
                   f"; universe: {r['universe']}")
    return out


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, default=200_000)
    ap.add_argument("--year", type=int, default=2023, help="tax year of the law (2023-2026)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--quick", action="store_true", help="2,000 workers (a smoke test)")
    ap.add_argument("--json", action="store_true", help="also print the figures as JSON")
    args = ap.parse_args(argv)
    if args.quick:
        args.workers = 2_000
    if args.workers < 1:
        ap.error("--workers must be >= 1")
    if not 2023 <= args.year <= 2026:
        ap.error("--year must be 2023-2026")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    print(header(__file__, argv), flush=True)
    rows = load_soi()
    sim = simulate(args.workers, args.year, args.seed)
    print(f"simulated: {sim['workers']:,} Census workers (seed {sim['seed']}), us_current_law {sim['year']} at "
          f"the statutory schedule, revenue requirement (transfer ${sim['transfer']:,.0f}/yr), rational hours "
          f"(mean {sim['mean_hours']:.1f} h/week); one tax year in {sim['seconds']:.1f} s")
    print(f"scaling: each worker stands for {sim['scale']:,.0f} of {sim['us_workers'] / 1e6:,.1f} M US workers "
          "(ACS 2024 population x CPS 2024 employment-population ratio, the generator's universe); "
          "a two-earner couple's unit counted once")
    src = sim["source"]
    print(f"households: {sim['units'] / 1e6:,.1f} M tax units, {sim['units_with_children'] / 1e6:,.1f} M with "
          f"children under 17, {sim['ctc_children'] / 1e6:,.1f} M such children (the CPS tax-unit source "
          f"file, 2024 weights: {src['units'] / 1e6:,.1f} M units with an earner, "
          f"{src['units_with_children'] / 1e6:,.1f} M with children, {src['ctc_children'] / 1e6:,.1f} M children)")
    print(f"EITC recipient share of simulated units {sim['eitc']['all'][0] / sim['units']:.3f} "
          f"(sampling s.e. about {sim['eitc_share_se']:.3f})"
          + ("" if sim["hours_in_bounds"] else "; WARNING: hours outside their bounds"))
    print()
    for line in table(sim, rows):
        print(line)
    print()
    for line in sources(rows):
        print(line)
    print()
    print(UNIVERSES, end="")
    print(footer(started))
    if args.json:
        print(json.dumps({"simulated": sim, "soi": rows}, indent=2, default=str))
    return 0 if sim["hours_in_bounds"] else 1


if __name__ == "__main__":
    sys.exit(main())
