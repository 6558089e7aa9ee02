"""The validity report: a table of checks with verdicts, its text form and its files."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from simulator.config.validity_names import (
    FAMILIES,
    INFO,
    NOT_APPLICABLE,
    NOT_MEASURABLE,
    OUTSIDE,
    WITHIN,
)
from simulator.results import atomic_write_parquet, read_parquet_checked

TABLE_FILE = "validity.parquet"
REPLIES_FILE = "validity_replies.parquet"


def _num(x: float, fmt: str = "{:.3g}") -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    if isinstance(x, float) and math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return fmt.format(x)


def _range_text(lo: float, hi: float) -> str:
    if math.isnan(lo) and math.isnan(hi):
        return "-"
    if math.isinf(hi):
        return f">= {_num(lo)}"
    return f"{_num(lo)} to {_num(hi)}"


@dataclass
class ValidityReport:
    """Checks (``table``, one row per statistic) and the raw replies they were computed on."""

    table: pd.DataFrame
    replies: pd.DataFrame | None
    policy: str
    n_workers: int
    scenario: str = ""
    wall_seconds: float = 0.0

    def verdict(self, check: str) -> str:
        row = self.table[self.table["check"] == check]
        if row.empty:
            raise KeyError(check)
        return str(row["verdict"].iloc[0])

    def row(self, check: str) -> pd.Series:
        return self.table[self.table["check"] == check].iloc[0]

    @property
    def verdicts(self) -> dict[str, str]:
        t = self.table[self.table["verdict"] != INFO]
        return dict(zip(t["check"], t["verdict"], strict=True))

    def outside(self) -> list[str]:
        """The judged checks whose value lies outside their range (the ``--strict`` set)."""
        return [c for c, v in self.verdicts.items() if v == OUTSIDE]

    def verdict_line(self) -> str:
        """One line: how many judged checks lie outside their ranges, naming them."""
        judged = [v for v in self.verdicts.values() if v in (WITHIN, OUTSIDE)]
        bad = self.outside()
        if not bad:
            return f"verdict: all {len(judged)} judged checks within their ranges"
        shown = ", ".join(bad[:6]) + (f" and {len(bad) - 6} more" if len(bad) > 6 else "")
        return f"verdict: {len(bad)} of {len(judged)} judged checks outside their ranges ({shown})"

    def failing(self, checks: list[str]) -> list[str]:
        """Reasons why the given checks do not pass (within range or not applicable)."""
        out = []
        for c in checks:
            r = self.row(c)
            if r["verdict"] in (WITHIN, NOT_APPLICABLE):
                continue
            what = (f"{_num(r['value'])} (range {_range_text(r['range_low'], r['range_high'])})"
                    if r["verdict"] == OUTSIDE else r["detail"])
            out.append(f"{c} {r['verdict']}: {what}")
        return out

    def text(self) -> str:
        lines = [f"behavioural validity of {self.scenario!r}: worker policy {self.policy}, "
                 f"{self.n_workers} workers"]
        head = ("check", "value", "95% CI", "range", "rational", "verdict")
        for fam in FAMILIES:
            t = self.table[self.table["family"] == fam]
            if t.empty:
                continue
            rows = []
            for _, r in t.iterrows():
                ci = ("-" if math.isnan(r["ci_low"]) else f"{_num(r['ci_low'])} to {_num(r['ci_high'])}")
                name = r["check"] if r["check"] != "dispersion.band" else "  " + r["statistic"][9:]
                if r["verdict"] == INFO:
                    name = "  " + name.strip()
                rows.append((name, _num(r["value"]), ci, _range_text(r["range_low"], r["range_high"]),
                             _num(r["rational"]), "" if r["verdict"] == INFO else r["verdict"]))
            widths = [max(len(h), *(len(x[i]) for x in rows)) for i, h in enumerate(head)]
            lines += ["", fam.capitalize()]
            lines.append("  ".join(h.ljust(wd) for h, wd in zip(head, widths, strict=True)).rstrip())
            for x in rows:
                lines.append("  ".join(c.ljust(wd) for c, wd in zip(x, widths, strict=True)).rstrip())
            notes = [f"  {r['check']}: {r['detail']}" for _, r in t.iterrows()
                     if r["detail"] and r["verdict"] != INFO and r["check"] != "dispersion.band"]
            lines += notes
        counts = pd.Series(list(self.verdicts.values())).value_counts()
        lines += ["", "verdicts: " + ", ".join(f"{counts.get(v, 0)} {v}"
                                             for v in (WITHIN, OUTSIDE, NOT_MEASURABLE, NOT_APPLICABLE))]
        lines.append("ranges and sources: docs/validity.md")
        lines.append(self.verdict_line())
        return "\n".join(lines)

    def write(self, out_dir: str | Path) -> Path:
        """Write ``validity.parquet`` (and the replies) into ``out_dir``; returns the table path."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        table = self.table.assign(policy=self.policy, n_workers=self.n_workers)
        atomic_write_parquet(out / TABLE_FILE, table)
        if self.replies is not None:
            atomic_write_parquet(out / REPLIES_FILE, self.replies)
        return out / TABLE_FILE


def markdown_section(run_dir: str | Path) -> list[str]:
    """Report lines for a run directory's ``validity.parquet`` (none if it has none)."""
    path = Path(run_dir) / TABLE_FILE
    if not path.exists():
        return []
    t = read_parquet_checked(path)
    t = t[t["verdict"] != INFO]
    lines = ["## Behavioural validity", "",
             f"Worker policy {t['policy'].iloc[0] if 'policy' in t and len(t) else '?'}; "
             "ranges and sources in docs/validity.md.", "",
             "| check | value | 95% CI | range | rational | verdict |", "|---|---|---|---|---|---|"]
    for _, r in t.iterrows():
        ci = "-" if math.isnan(r["ci_low"]) else f"{_num(r['ci_low'])} to {_num(r['ci_high'])}"
        lines.append(f"| {r['check']} | {_num(r['value'])} | {ci} | "
                     f"{_range_text(r['range_low'], r['range_high'])} | {_num(r['rational'])} | "
                     f"**{r['verdict']}** |")
    return [*lines, ""]
