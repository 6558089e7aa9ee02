"""Golden runs: seeded runs on the scripted and rational paths, digested table by table.

``python tests/golden/record.py`` writes ``tests/data/golden.json`` from the code that
``simulator`` imports now (record with the layout you trust; ``tests/test_golden.py``
compares the current code with it bit for bit).  Only the public command line
(``simulator.cli.main.main``) is used, so the runs do not depend on module paths.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import re
import sys
from pathlib import Path

import pandas as pd

OUT = Path(__file__).resolve().parents[1] / "data" / "golden.json"
SCRIPTED = ["--set", "llm.backend=scripted", "--set", "llm.cache=off"]

#: name -> list of econsim commands ({out} and {tmp} are filled in); the last one's
#: --out (or the resumed directory) is the run digested
RUNS: dict[str, list[list[str]]] = {
    "rational_baselines": [["run", "rational_baselines", "--set", "population.size=400",
                            "--set", "run.tax_years=2", "--out", "{out}"]],
    "quickstart": [["run", "quickstart", *SCRIPTED, "--out", "{out}"]],
    "bounded": [["run", "bounded", *SCRIPTED, "--set", "population.size=24",
                 "--set", "run.tax_years=3", "--out", "{out}"]],
    "democratic": [["run", "democratic", *SCRIPTED, "--set", "population.size=24",
                    "--set", "run.tax_years=4", "--out", "{out}"]],
    "million": [["run", "million", *SCRIPTED, "--set", "run.tax_years=1",
                 "--set", "population.size=20000", "--out", "{out}"]],
    "experiment": [["run", "rational_baselines", "--set", "population.size=200",
                    "--set", "run.tax_years=2", "--set", "run.seeds=[1,2,3]", "--jobs", "1",
                    "--out", "{out}"]],
    "fork": [["run", "quickstart", *SCRIPTED, "--out", "{tmp}/parent"],
             ["fork", "{tmp}/parent", "--at-year", "1", "--set", "planner.kind=saez",
              "--out", "{out}"]],
}
#: columns that measure time, not the economy
VARIABLE = re.compile(r"(latency|_s$|seconds|wall|elapsed|service_p|queue_p|started|finished)")


def econsim(argv: list[str]) -> int:
    from simulator.cli.main import main

    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        try:
            return int(main(argv) or 0)
        except SystemExit as exc:
            return int(exc.code or 0)


def digest_dir(run_dir: Path) -> dict[str, dict[str, object]]:
    """Every parquet table under ``run_dir``: shape, columns and a sha256 per column."""
    out: dict[str, dict[str, object]] = {}
    for path in sorted(run_dir.rglob("*.parquet")):
        df = pd.read_parquet(path)
        cols = {}
        for c in df.columns:
            if VARIABLE.search(str(c)):
                continue
            h = pd.util.hash_pandas_object(df[c].astype(str) if df[c].dtype == object else df[c],
                                           index=False).to_numpy().tobytes()
            cols[str(c)] = hashlib.sha256(h).hexdigest()[:16]
        out[str(path.relative_to(run_dir))] = {"rows": len(df), "columns": list(map(str, df.columns)),
                                               "digest": cols}
    return out


def resume_case(tmp: Path) -> Path:
    """A run stopped after tax year 1 (its last checkpoint removed), then resumed."""
    out = tmp / "resume"
    assert econsim(["run", "quickstart", *SCRIPTED, "--out", str(out)]) == 0
    (out / "checkpoints" / "year-0002.pkl").unlink()
    man = json.loads((out / "manifest.json").read_text())
    man["status"] = "interrupted"
    (out / "manifest.json").write_text(json.dumps(man))
    assert econsim(["resume", str(out), "--no-progress"]) == 0
    return out


def record(tmp: Path) -> dict[str, dict]:
    result = {}
    for name, commands in RUNS.items():
        out = tmp / name
        for cmd in commands:
            code = econsim([a.format(out=out, tmp=tmp) for a in cmd])
            assert code in (0, 3), (name, cmd, code)
        result[name] = digest_dir(out)
    result["resume"] = digest_dir(resume_case(tmp))
    return result


if __name__ == "__main__":
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        data = record(Path(d))
    OUT.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    print(f"wrote {OUT} ({sum(len(v) for v in data.values())} tables)", file=sys.stderr)
