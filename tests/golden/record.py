"""Golden runs: seeded runs on the scripted and rational paths, digested table by table.

``python tests/golden/record.py`` runs every case of :data:`CASES` with the code that
``simulator`` imports in a fresh interpreter and writes ``tests/data/golden.json``;
``tests/test_golden.py`` re-runs the same cases and compares, bit for bit.  Record with
the code you trust, e.g. the 0.1 layout checked out in a worktree::

    cd /tmp && PYTHONPATH=/path/to/worktree /path/to/.venv/bin/python \\
        /path/to/repo/tests/golden/record.py --twice

Only the command line is used (``python -m simulator.cli.main``, in subprocesses whose
working directory is an empty temporary one) and the files of the run directories
(parquet tables, ``manifest.json``, ``experiment.json``), never a module path, so the
cases survive a re-layout of the package.  ``--check`` compares with the golden file
instead of writing it; ``--twice`` records twice and writes nothing unless both
recordings agree (determinism).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

GOLDEN = Path(__file__).resolve().parents[1] / "data" / "golden.json"
FORMAT = 2

SCRIPTED = ["--set", "llm.backend=scripted", "--set", "llm.cache=off"]

#: the resume case's scenario (written to ``{tmp}/golden_resume.yaml``): bounded LLM
#: workers, an LLM planner, elections whose winner plans, two steps a year, so that
#: the checkpoint carries planner memory, election state and worker histories
RESUME_SCENARIO = {
    "name": "golden_resume",
    "population": {"size": 40, "source": "census"},
    "workers": {"policy": "llm", "llm": {"bounded": True, "history": 2}},
    "planner": {"kind": "llm"},
    "democracy": {"enabled": True, "election_every": 2, "winner_mode": "planner"},
    "run": {"tax_years": 4, "seed": 3, "steps_per_year": 2},
    "llm": {"backend": "scripted", "cache": "off"},
}

#: name -> steps run in order; a step is econsim's argv (``--no-progress`` is added to
#: run, resume and fork), or ``["@interrupt", DIR, K]``: delete the checkpoints after tax
#: year K and mark the run interrupted (what Ctrl-C after year K leaves, made
#: deterministic).  ``{tmp}`` is the temporary directory; ``{out}``
#: (``{tmp}/runs/<name>``) is the case's run directory, the one digested.
CASES: dict[str, list[list[str]]] = {
    "rational_baselines": [
        ["run", "rational_baselines", "--set", "population.size=300", "--jobs", "1", "--out", "{out}"],
    ],
    "quickstart": [["run", "quickstart", *SCRIPTED, "--out", "{out}"]],
    "bounded": [
        ["run", "bounded", *SCRIPTED, "--set", "run.tax_years=3", "--jobs", "1", "--out", "{out}"],
    ],
    "democratic": [
        ["run", "democratic", *SCRIPTED, "--set", "run.tax_years=4", "--jobs", "1", "--out", "{out}"],
    ],
    "million": [["run", "million", *SCRIPTED, "--set", "run.tax_years=1", "--out", "{out}"]],
    "experiment_3_seeds": [
        ["run", "rational_baselines", "--set", "population.size=200", "--set", "run.tax_years=2",
         "--set", "planner.optimum_max_evaluations=100", "--set", "run.seeds=3", "--jobs", "1",
         "--out", "{out}"],
    ],
    "resume": [
        ["run", "{tmp}/golden_resume.yaml", "--out", "{out}"],
        ["@interrupt", "{out}", "1"],
        ["resume", "{out}"],
    ],
    "fork": [
        ["run", "quickstart", *SCRIPTED, "--out", "{tmp}/fork_parent"],
        ["fork", "{tmp}/fork_parent", "--at-year", "1", "--set", "planner.kind=saez", "--out", "{out}"],
    ],
}
#: the slowest cases, started first so that the workers finish together
SLOWEST = ("million", "rational_baselines", "democratic", "bounded")

#: table columns left out of the digests, in any table of any run: found by recording
#: twice and diffing (the latency columns are kept: the scripted backend reports 0.0)
EXCLUDED_COLUMNS: dict[str, str] = {
    "wall_seconds": "wall-clock duration of each run of an experiment (index.parquet)",
}
#: keys of manifest.json / experiment.json left out, at any depth: the first five differ
#: between two recordings, the others between two checkouts or environments
EXCLUDED_KEYS: dict[str, str] = {
    "started": "a timestamp",
    "finished": "a timestamp",
    "at": "a timestamp (resumed[].at)",
    "wall_seconds": "a duration",
    "pid": "the process id",
    "host": "the host name",
    "command": "sys.argv: names the path of simulator/cli/main.py (and resumed[].command)",
    "versions": "package versions of the environment",
    "git_revision": "the commit the code was at",
}
#: files not digested
EXCLUDED_FILES: dict[str, str] = {
    "checkpoints/*.pkl": "pickles of the model's objects: their layout is what a re-layout changes",
}


# --------------------------------------------------------------------------- running
def _fill(arg: str, tmp: Path, out: Path) -> str:
    return arg.replace("{out}", str(out)).replace("{tmp}", str(tmp))


def _interrupt(run_dir: Path, year: int) -> None:
    for ckpt in sorted((run_dir / "checkpoints").glob("*.pkl")):
        if int(ckpt.stem.split("-")[-1]) > year:
            ckpt.unlink()
    man = json.loads((run_dir / "manifest.json").read_text())
    man.update(status="interrupted", reason=f"golden: stopped after tax year {year}")
    (run_dir / "manifest.json").write_text(json.dumps(man, indent=2))


def econsim(argv: list[str], cwd: Path, env: dict[str, str] | None = None) -> None:
    """``econsim ARGV`` in a fresh interpreter; raises with its stderr unless it exits 0."""
    cmd = [sys.executable, "-m", "simulator.cli.main", *argv]
    if argv[0] in ("run", "resume", "fork"):
        cmd.append("--no-progress")
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise RuntimeError(f"econsim {' '.join(argv)}: exit {done.returncode}\n{done.stderr[-4000:]}")


def _env(tmp: Path) -> dict[str, str]:
    return {**os.environ, "ECONSIM_CACHE_DIR": str(tmp / "econsim-cache")}


def run_case(name: str, tmp: Path) -> tuple[Path, float]:
    """Run the steps of ``CASES[name]`` under ``tmp``; its run directory and seconds."""
    out = tmp / "runs" / name
    cwd = tmp / "cwd"  # empty: a scenario name is never taken for a directory of that name
    cwd.mkdir(exist_ok=True)
    t0 = time.perf_counter()
    for step in CASES[name]:
        args = [_fill(a, tmp, out) for a in step]
        if args[0] == "@interrupt":
            _interrupt(Path(args[1]), int(args[2]))
        else:
            econsim(args, cwd=cwd, env=_env(tmp))
    return out, time.perf_counter() - t0


def simulator_location() -> str:
    """Where ``import simulator`` leads in the subprocesses the cases run in."""
    with tempfile.TemporaryDirectory() as cwd:
        done = subprocess.run([sys.executable, "-c", "import simulator; print(simulator.__file__)"],
                              cwd=cwd, capture_output=True, text=True, check=True)
    return str(Path(done.stdout.strip()).parent)


def _portable(location: str) -> str:
    """``location`` without this machine's paths: relative to the checkout when inside
    it, else only its last two parts (e.g. ``site-packages/simulator``)."""
    path, root = Path(location).resolve(), Path(__file__).resolve().parents[2]
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(Path(*path.parts[-2:]))


# --------------------------------------------------------------------------- digests
def _sha(*parts: bytes) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(len(p).to_bytes(8, "little"))
        h.update(p)
    return h.hexdigest()[:20]


def column_digest(col: pa.ChunkedArray) -> str:
    """A digest of a column's values, independent of chunking and buffer layout: the null
    mask, then the values' bits (numbers, widened to 64 bits exactly; booleans), lengths
    and UTF-8 bytes (strings; dictionaries decoded) or exact JSON (lists and anything
    else; floats keep every bit through repr).  The Arrow type is compared apart."""
    arr = col.combine_chunks() if col.num_chunks != 1 else col.chunk(0)
    if pa.types.is_dictionary(arr.type):
        arr = arr.dictionary_decode()
    t = arr.type
    nulls = np.asarray(arr.is_null().to_numpy(zero_copy_only=False), dtype=bool).tobytes()
    if pa.types.is_null(t):
        return _sha(nulls)
    if pa.types.is_integer(t) or pa.types.is_floating(t):
        wide = pa.float64() if pa.types.is_floating(t) else pa.int64() if pa.types.is_signed_integer(t) \
            else pa.uint64()
        vals = arr.cast(wide)  # exact; the type itself is compared apart
        vals = vals.fill_null(pa.scalar(0, wide)) if vals.null_count else vals
        return _sha(nulls, np.ascontiguousarray(vals.to_numpy(zero_copy_only=False)).tobytes())
    if pa.types.is_boolean(t):
        vals = arr.fill_null(False) if arr.null_count else arr
        return _sha(nulls, np.asarray(vals.to_numpy(zero_copy_only=False), dtype=bool).tobytes())
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_binary(t):
        vals = arr.cast(pa.large_binary())
        vals = vals.fill_null(b"") if vals.null_count else vals
        vals = pa.concat_arrays([vals])  # a fresh array at offset 0
        offsets = np.frombuffer(vals.buffers()[1], dtype=np.int64, count=len(vals) + 1)
        data = vals.buffers()[2]
        data = b"" if data is None else data.to_pybytes()[offsets[0]:offsets[-1]]
        return _sha(nulls, np.diff(offsets).tobytes(), data)
    text = json.dumps(arr.to_pylist(), default=repr, allow_nan=True, separators=(",", ":"))
    return _sha(nulls, text.encode())


def _clean(obj: Any, tmp: str) -> Any:
    if isinstance(obj, dict):
        return {k: _clean(v, tmp) for k, v in obj.items() if k not in EXCLUDED_KEYS}
    if isinstance(obj, list):
        return [_clean(v, tmp) for v in obj]
    if isinstance(obj, str):
        return obj.replace(tmp, "{tmp}")
    return obj


def json_digest(path: Path, tmp: Path) -> dict[str, Any]:
    """A run's JSON file, excluded keys dropped at any depth and the temporary directory
    written ``{tmp}``, by key two levels deep (``scenario.llm``): short values as they
    are, longer ones digested."""
    data = _clean(json.loads(path.read_text()), str(tmp))
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict) and value:
            flat.update({f"{key}.{k}": v for k, v in value.items()})
        else:
            flat[key] = value
    out = {}
    for key, value in flat.items():
        text = json.dumps(value, sort_keys=True, separators=(",", ":"))
        out[key] = value if len(text) <= 120 else "sha256:" + _sha(text.encode())
    return out


def digest_run(run_dir: Path, tmp: Path) -> dict[str, Any]:
    """Every parquet table under ``run_dir`` (experiment sub-runs included): rows,
    columns, Arrow types and a digest per column; and its manifest/experiment JSON."""
    tables: dict[str, Any] = {}
    for path in sorted(run_dir.rglob("*.parquet")):
        table = pq.read_table(path)
        tables[path.relative_to(run_dir).as_posix()] = {
            "rows": table.num_rows,
            "columns": table.column_names,
            "types": [str(f.type) for f in table.schema],
            "digest": {c: column_digest(table.column(c)) for c in table.column_names
                       if c not in EXCLUDED_COLUMNS},
        }
    files = {p.relative_to(run_dir).as_posix(): json_digest(p, tmp)
             for p in sorted(run_dir.rglob("*.json")) if p.name in ("manifest.json", "experiment.json")}
    return {"tables": tables, "json": files}


def record_case(name: str, tmp: Path) -> dict[str, Any]:
    out, seconds = run_case(name, tmp)
    return {"commands": CASES[name], "seconds": round(seconds, 1), **digest_run(out, tmp)}


def record(tmp: Path, names: list[str] | None = None, jobs: int = 2,
           keep_going: bool = False) -> dict[str, Any]:
    """Run the cases under ``tmp``, ``jobs`` at a time (each in its own subprocesses);
    with ``keep_going`` a case that fails is returned as its exception."""
    names = list(CASES) if names is None else names
    (tmp / "golden_resume.yaml").write_text(json.dumps(RESUME_SCENARIO))  # JSON is YAML

    def one(name: str) -> Any:
        try:
            return record_case(name, tmp)
        except Exception as exc:
            if not keep_going:
                raise
            return exc

    order = sorted(names, key=lambda n: SLOWEST.index(n) if n in SLOWEST else len(SLOWEST))
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        done = dict(zip(order, pool.map(one, order), strict=True))
    return {n: done[n] for n in names}


# --------------------------------------------------------------------------- comparing
def differences(want: dict[str, Any], got: dict[str, Any]) -> list[str]:
    """What differs between a golden case and a fresh one: one line per table or file,
    naming the columns (or JSON keys) that differ."""
    out = []
    if want.get("commands") != got.get("commands"):
        out.append(f"commands changed since recording: {want.get('commands')} -> "
                   f"{got.get('commands')} (re-record: tests/golden/record.py)")
    for kind in ("tables", "json"):
        w, g = want.get(kind, {}), got.get(kind, {})
        out += [f"{f}: missing (the golden run has it)" for f in sorted(set(w) - set(g))]
        out += [f"{f}: new (the golden run has no such file)" for f in sorted(set(g) - set(w))]
        for f in sorted(set(w) & set(g)):
            a, b = w[f], g[f]
            if kind == "json":
                bad = sorted(k for k in set(a) | set(b) if a.get(k, "<absent>") != b.get(k, "<absent>"))
                if bad:
                    out.append(f"{f}: keys differ: " + "; ".join(
                        f"{k}: {a.get(k, '<absent>')!r} -> {b.get(k, '<absent>')!r}" for k in bad))
                continue
            if a["columns"] != b["columns"]:
                out.append(f"{f}: columns {a['columns']} -> {b['columns']}")
            if a["rows"] != b["rows"]:
                out.append(f"{f}: {b['rows']} rows, golden {a['rows']}")
            ta = dict(zip(a["columns"], a["types"], strict=True))
            tb = dict(zip(b["columns"], b["types"], strict=True))
            typ = [f"{c} {ta[c]} -> {tb[c]}" for c in a["columns"] if c in tb and ta[c] != tb[c]]
            if typ:
                out.append(f"{f}: types differ: {', '.join(typ)}")
            bad = [c for c in a["digest"] if c in b["digest"] and a["digest"][c] != b["digest"][c]]
            if bad:
                out.append(f"{f}: values differ in columns: {', '.join(bad)}")
    return out


def golden_document(runs: dict[str, Any], recorded_from: str) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "about": "digests of the golden runs of tests/golden/record.py; tests/test_golden.py compares",
        "recorded_from": recorded_from,
        "recorded_with": {"python": sys.version.split()[0], "pyarrow": pa.__version__, "numpy": np.__version__},
        "excluded": {"columns": EXCLUDED_COLUMNS, "json_keys": EXCLUDED_KEYS, "files": EXCLUDED_FILES},
        "runs": runs,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=GOLDEN, help="the golden file (default: %(default)s)")
    ap.add_argument("--check", action="store_true", help="compare with --out instead of writing it")
    ap.add_argument("--twice", action="store_true", help="record twice; fail unless both agree")
    ap.add_argument("--jobs", type=int, default=2, help="cases run at a time (default 2)")
    ap.add_argument("cases", nargs="*", help=f"only these cases (default: all): {', '.join(CASES)}")
    args = ap.parse_args(argv)
    if set(args.cases) - set(CASES):
        ap.error(f"unknown cases {sorted(set(args.cases) - set(CASES))}; the cases: {', '.join(CASES)}")
    where = simulator_location()
    print(f"simulator: {where}", file=sys.stderr)
    rounds = []
    for _ in range(2 if args.twice else 1):
        with tempfile.TemporaryDirectory(prefix="econsim-golden-") as d:
            t0 = time.perf_counter()
            rounds.append(record(Path(d), args.cases or None, jobs=args.jobs))
            print(f"recorded in {time.perf_counter() - t0:.1f} s: " + ", ".join(
                f"{n} {r['seconds']} s" for n, r in rounds[-1].items()), file=sys.stderr)
    runs = rounds[0]
    bad = []
    if args.twice:
        bad += [f"{n} (second recording): {d}" for n in runs for d in differences(runs[n], rounds[1][n])]
    if args.check:
        golden = json.loads(args.out.read_text())["runs"]
        bad += [f"{n}: {d}" for n in runs for d in differences(golden.get(n, {}), runs[n])]
    elif not bad:
        if args.cases and args.out.exists():  # only some cases: keep the others
            runs = {**json.loads(args.out.read_text())["runs"], **runs}
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(golden_document(runs, _portable(where)), indent=1) + "\n")
        print(f"wrote {args.out}: {len(runs)} cases, "
              f"{sum(len(r['tables']) for r in runs.values())} tables", file=sys.stderr)
    for line in bad:
        print(line, file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
