"""Multi-seed paired experiments: plan, executors, continuation, bad input, report numbers."""

import json
import re
import socket

import numpy as np
import pandas as pd
import pytest

from simulator.cli.main import main
from simulator.config.loading import scenario_from_dict
from simulator.errors import UserError
from simulator.experiments import load_experiment, plan_experiment, run_experiment
from simulator.experiments.summary import experiment_stats
from simulator.results import load_run
from simulator.run.runner import run_scenario

BASE = {"population": {"size": 80, "source": "census"}, "run": {"tax_years": 2, "seeds": 2},
        "compare": [{"label": "us"}, {"label": "flat30", "planner": {"kind": "flat", "rate": 0.3}}]}


def _years(root):
    idx = pd.read_parquet(root / "index.parquet")
    return {(r.variant, r.seed): pd.read_parquet(root / r.path / "years.parquet") for r in idx.itertuples()}


def test_plan_seeds_sweep_and_baseline(tmp_path):
    sc = scenario_from_dict({"run": {"seed": 5, "seeds": 3},
                             "planner": {"kind": "flat"},
                             "sweep": {"planner.rate": [0.1, 0.25], "economy.rebate_share": [0.5, 1.0]}})
    plan = plan_experiment(sc, tmp_path / "x")
    assert plan.seeds == [5, 6, 7]
    labels = [v.label for v in plan.variants]
    assert labels == ["rate-0.1_rebate_share-0.5", "rate-0.1_rebate_share-1.0",
                      "rate-0.25_rebate_share-0.5", "rate-0.25_rebate_share-1.0"]
    v = plan.variants[2].scenario
    assert (v.planner.rate, v.economy.rebate_share) == (0.25, 0.5)
    assert len(plan.tasks()) == 12 and plan.baseline == labels[0]
    assert {t.scenario.run.seed for t in plan.tasks()} == {5, 6, 7}
    assert plan_experiment(scenario_from_dict({"run": {"seeds": [3, 1]}}), tmp_path).seeds == [3, 1]
    import os

    from simulator.experiments.execute import auto_jobs

    assert auto_jobs(plan, 3) == min(os.cpu_count(), 3) and auto_jobs(plan, 0) == 1
    llm = plan_experiment(scenario_from_dict({"workers": {"policy": "llm"}, "run": {"seeds": 4}}), tmp_path)
    assert auto_jobs(llm, 4) == 1  # the embedded model already uses every core
    with pytest.raises(UserError, match="'planner.rat' is not a scenario field"):
        plan_experiment(scenario_from_dict({"sweep": {"planner.rat": [1]}}), tmp_path)
    with pytest.raises(UserError, match="'nope' is not a variant"):
        plan_experiment(scenario_from_dict(BASE), tmp_path, baseline="nope")
    with pytest.raises(UserError, match="sweep point planner.rate=2"):
        plan_experiment(scenario_from_dict({"sweep": {"planner.rate": [2]}}), tmp_path)


@pytest.mark.parametrize("args, message", [
    (["--set", "run.seeds=[1, -2]"], "run.seeds"),
    (["--set", "run.seeds=1.5"], "run.seeds"),
    (["--set", "run.seeds=0"], "run.seeds"),
    (["--set", "run.seeds=[1, 1]"], "twice"),
    (["--set", "sweep={planner.rat: [1, 2]}"], "not a scenario field"),
    (["--baseline", "nope"], "not a variant"),
    (["--ray", "127.0.0.1:{port}"], "cannot reach"),
    (["--jobs", "0"], "--jobs"),
])
def test_bad_input_one_line_exit_2_no_directory(tmp_path, capsys, args, message):
    f = tmp_path / "s.yaml"
    f.write_text(json.dumps(BASE))
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    args = [a.replace("{port}", str(port)) for a in args]
    out = tmp_path / "out"
    assert main(["run", str(f), "--out", str(out), "--no-progress", *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert not out.exists()


@pytest.mark.slow
def test_pool_equals_inline_paired_populations_and_continue(tmp_path, capsys):
    sc = scenario_from_dict(BASE)
    run_experiment(sc, tmp_path / "a")
    plan = run_experiment(sc, tmp_path / "b", jobs=2)
    assert plan.status == "completed"
    ya, yb = _years(tmp_path / "a"), _years(tmp_path / "b")
    assert set(ya) == {("us", 0), ("flat30", 0), ("us", 1), ("flat30", 1)}
    for k in ya:
        pd.testing.assert_frame_equal(ya[k], yb[k])
    pops = {(v, s): load_run(tmp_path / "a" / "runs" / v / f"seed-{s}").population for v, s in ya}
    pd.testing.assert_frame_equal(pops[("us", 0)], pops[("flat30", 0)])  # paired
    pd.testing.assert_frame_equal(pops[("us", 1)], pops[("flat30", 1)])
    assert not pops[("us", 0)]["wage"].equals(pops[("us", 1)]["wage"])  # seeds differ
    meta = json.loads((tmp_path / "b" / "experiment.json").read_text())
    assert meta["status"] == "completed" and meta["executor"] == {"kind": "pool", "jobs": 2}

    # continue: one run missing, one failed, the others kept as they are
    root = tmp_path / "a"
    kept = root / "runs" / "us" / "seed-1" / "manifest.json"
    before = kept.stat().st_mtime_ns
    import shutil

    shutil.rmtree(root / "runs" / "flat30" / "seed-0")
    man = root / "runs" / "us" / "seed-0" / "manifest.json"
    m = json.loads(man.read_text())
    m["status"] = "failed"
    man.write_text(json.dumps(m))
    # it failed after its first tax year: only that year's checkpoint is there to resume from
    (root / "runs" / "us" / "seed-0" / "checkpoints" / "year-0001.pkl").unlink()
    capsys.readouterr()
    plan = run_experiment(sc, root)
    out = capsys.readouterr().out
    assert "2 finished earlier, kept" in out and plan.status == "completed"
    assert kept.stat().st_mtime_ns == before
    idx = pd.read_parquet(root / "index.parquet")
    assert (idx["status"] == "completed").all() and len(idx) == 4
    for k, y in _years(root).items():
        pd.testing.assert_frame_equal(y, yb[k])
    assert json.loads((root / "experiment.json").read_text())["attempts"] == 2
    resumed = json.loads(man.read_text())
    assert resumed["status"] == "completed" and len(resumed["resumed"]) == 1  # resumed, not restarted

    # a changed variant cannot be continued into the same directory
    changed = scenario_from_dict({**BASE, "compare": [{"label": "us"},
                                  {"label": "flat30", "planner": {"kind": "flat", "rate": 0.4}}]})
    with pytest.raises(UserError, match="variant 'flat30' had other settings"):
        run_experiment(changed, root)


def test_runs_and_experiments_do_not_mix(tmp_path):
    one = scenario_from_dict({"population": {"size": 30, "source": "gb2"}, "run": {"tax_years": 1}})
    run_scenario(one, tmp_path / "single", progress=False)
    with pytest.raises(UserError, match="holds a single run"):
        run_experiment(scenario_from_dict(BASE), tmp_path / "single")
    run_experiment(scenario_from_dict({**BASE, "run": {"tax_years": 1}}), tmp_path / "exp")
    with pytest.raises(UserError, match="holds an experiment"):
        run_scenario(one, tmp_path / "exp", progress=False)
    assert main(["report", str(tmp_path / "exp"), "--baseline", "nope"]) == 2
    assert not (tmp_path / "exp" / "report").exists()


def test_stats_and_html_report_match_the_parquet_files(tmp_path):
    sc = scenario_from_dict({**BASE, "run": {"tax_years": 2, "seeds": [0, 3, 4]},
                             "economy": {"utility": {"eta": 1.0}}})
    run_experiment(sc, tmp_path / "e")
    exp = load_experiment(tmp_path / "e")
    st = experiment_stats(exp)
    final = st["final"]
    # CE of utilitarian welfare under log utility: exp(W_v - W_b) - 1, seed by seed
    ce = st["ce_runs"]
    for seed in (0, 3, 4):
        wb = final[(final.variant == "us") & (final.seed == seed)]["swf_utilitarian"].iloc[0]
        wv = final[(final.variant == "flat30") & (final.seed == seed)]["swf_utilitarian"].iloc[0]
        got = ce[(ce.variant == "flat30") & (ce.seed == seed) & (ce.metric == "swf_utilitarian")]["ce_pct"].iloc[0]
        assert got == pytest.approx(100 * np.expm1(wv - wb), abs=1e-6)
    inc = st["incidence"]
    groupings = set(inc["grouping"])
    assert {"income_decile", "occupation_name", "age_band", "sex", "education", "state"} <= groupings
    alls = inc[(inc.grouping == "sex") & (inc.group == "all")]["d_post_tax"].iloc[0]
    # mean change of post-tax income equals the difference of the runs' means
    d = final.groupby("variant")["mean_post_tax_income"].mean()
    assert alls == pytest.approx(d["flat30"] - d["us"], rel=1e-9)

    assert main(["report", str(tmp_path / "e")]) == 0
    html = (tmp_path / "e" / "report" / "report.html").read_text()
    assert "<script" not in html and "http" not in html.split("<pre>")[0]
    means = pd.read_parquet(tmp_path / "e" / "report" / "final.parquet").groupby("variant").mean(numeric_only=True)
    summary = html[html.index('id="summary-table"'):]
    summary = summary[:summary.index("</table>")]
    cells = re.findall(r'<td class="num[^"]*" data-col="([^"]+)" data-value="([^"]+)">([^<]*)</td>', summary)
    by_col = {}
    for col, value, _text in cells:
        by_col.setdefault(col, []).append(float(value))
    assert by_col["revenue $/person"] == pytest.approx([means.loc["us", "revenue"], means.loc["flat30", "revenue"]], rel=1e-12)
    assert by_col["utilitarian"] == pytest.approx([means.loc["us", "swf_utilitarian"], means.loc["flat30", "swf_utilitarian"]], rel=1e-12)
    diffs = pd.read_parquet(tmp_path / "e" / "report" / "differences.parquet")
    row = diffs[(diffs.variant == "flat30") & (diffs.metric == "revenue")].iloc[0]
    assert f'data-value="{float(row.ci_low)!r}"' in html and f'data-value="{float(row.ci_high)!r}"' in html
    assert "★" in html and "$609,350+" in html and "seeds (0, 3, 4)" in html


@pytest.mark.slow
def test_ray_gives_the_same_results(tmp_path):
    pytest.importorskip("ray", reason="Ray is not installed (pip install 'econsim[ray]')")
    sc = scenario_from_dict({**BASE, "run": {"tax_years": 1, "seeds": 2}})
    run_experiment(sc, tmp_path / "inline")
    plan = run_experiment(sc, tmp_path / "ray", ray=True, jobs=2)  # a local instance, num_cpus=2
    assert plan.status == "completed"
    meta = json.loads((tmp_path / "ray" / "experiment.json").read_text())
    assert meta["executor"] == {"kind": "ray", "address": "local", "num_cpus": 2}
    yi, yr = _years(tmp_path / "inline"), _years(tmp_path / "ray")
    assert set(yi) == set(yr) and len(yi) == 4
    for k in yi:
        pd.testing.assert_frame_equal(yi[k], yr[k])
    import ray

    assert not ray.is_initialized()  # the local instance was stopped


@pytest.mark.slow
def test_llm_runs_share_one_cache_from_a_pool(tmp_path):
    cache = tmp_path / "shared.sqlite"
    sc = scenario_from_dict({
        "population": {"size": 10, "source": "census"}, "workers": {"policy": "llm"},
        "llm": {"backend": "scripted", "cache_path": str(cache)},
        "run": {"tax_years": 2, "seeds": 2},
        "compare": [{"label": "us"}, {"label": "flat", "planner": {"kind": "flat", "rate": 0.25}}]})
    assert run_experiment(sc, tmp_path / "a", jobs=2).status == "completed"  # 2 processes write the cache
    assert run_experiment(sc, tmp_path / "b").status == "completed"
    ya, yb = _years(tmp_path / "a"), _years(tmp_path / "b")
    for k, y in yb.items():
        assert (y["llm_cache_hits"] == y["llm_requests"]).all() and y["llm_requests"].sum() > 0
        cols = [c for c in y.columns if not c.startswith("llm_")]
        pd.testing.assert_frame_equal(ya[k][cols], y[cols])
    # a relative cache path is one file per experiment, not one per run
    rel = scenario_from_dict({**sc.model_dump(mode="json", exclude={"experiment"}),
                              "llm": {"backend": "scripted", "cache_path": "c.sqlite"}})
    plan = plan_experiment(rel, tmp_path / "c")
    assert {str(v.scenario.llm.cache_path) for v in plan.variants} == {str((tmp_path / "c" / "c.sqlite").resolve())}


def test_failed_runs_are_recorded_and_run_again(tmp_path, capsys):
    pop = tmp_path / "pop.csv"
    pd.DataFrame({"wage": np.linspace(300, 3000, 20)}).to_csv(pop, index=False)
    f = tmp_path / "s.yaml"
    f.write_text(json.dumps({"population": {"source": "file", "path": str(pop)},
                             "run": {"tax_years": 1, "seeds": [0, 1]}}))
    from simulator.config.loading import load_scenario

    sc = load_scenario(f)
    pop.unlink()  # every run now fails when it reads the population
    plan = run_experiment(sc, tmp_path / "e")
    assert plan.status == "failed"
    idx = pd.read_parquet(tmp_path / "e" / "index.parquet")
    assert list(idx["status"]) == ["failed", "failed"] and idx["reason"].str.contains("pop.csv").all()
    assert "run the same command again" in capsys.readouterr().out
    pd.DataFrame({"wage": np.linspace(300, 3000, 20)}).to_csv(pop, index=False)
    assert main(["run", str(f), "--out", str(tmp_path / "e"), "--no-progress"]) == 0
    idx = pd.read_parquet(tmp_path / "e" / "index.parquet")
    assert list(idx["status"]) == ["completed", "completed"]


@pytest.mark.slow
def test_sigterm_stops_a_pool_experiment_promptly_and_it_continues(tmp_path):
    """SIGTERM to `econsim run` (pool of 2): it stops within seconds with exit 143, leaves
    no worker process behind, marks the experiment interrupted, and the same command
    resumes the interrupted runs from their checkpoints."""
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    scen = tmp_path / "s.yaml"
    scen.write_text(json.dumps({"population": {"size": 20000, "source": "census"},
                                "run": {"tax_years": 25, "seeds": 2},
                                "compare": [{"label": "us"}, {"label": "flat30", "planner": {"kind": "flat", "rate": 0.3}}]}))
    out = tmp_path / "e"
    cmd = [sys.executable, "-m", "simulator.cli.main", "run", str(scen), "--out", str(out), "--jobs", "2",
           "--no-progress"]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.Popen(cmd, env=env, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 240
        while not list(out.glob("runs/*/seed-*/checkpoints/year-0002.pkl")):
            assert proc.poll() is None and time.time() < deadline, "no run reached its third tax year"
            time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)  # to the main process only, as `kill PID` does
        rc = proc.wait(timeout=60)
        time.sleep(2)
        left = subprocess.run(["ps", "-o", "pid=,cmd=", "-g", str(proc.pid)], capture_output=True, text=True).stdout
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    assert rc == 128 + signal.SIGTERM, proc.stdout.read().decode()
    assert left.strip() == "", f"processes left running after the experiment stopped:\n{left}"
    assert json.loads((out / "experiment.json").read_text())["status"] == "interrupted"
    idx = pd.read_parquet(out / "index.parquet")
    assert not idx["status"].isin(["completed", "completed_with_warnings"]).all()
    stopped = [p for p in out.glob("runs/*/seed-*/manifest.json")
               if json.loads(p.read_text())["status"] == "interrupted"
               and json.loads(p.read_text())["years_completed"] >= 1]
    assert stopped, "no run was left interrupted with a checkpoint"

    assert main(["run", str(scen), "--out", str(out), "--jobs", "2", "--no-progress"]) == 0
    idx = pd.read_parquet(out / "index.parquet")
    assert (idx["status"] == "completed").all()
    for p in stopped:  # resumed from its checkpoint, not run again from scratch
        m = json.loads(p.read_text())
        assert m["status"] == "completed" and m.get("resumed") and m["years_completed"] == 25


def test_report_of_an_experiment_with_failed_and_degraded_runs_says_so_first(tmp_path, monkeypatch):
    """A failed run leaves means over fewer seeds and a degraded one is less reliable:
    both report pages name them first, with the experiment's status."""
    import simulator.llm as llm_mod
    from simulator.llm.scripted import ScriptedTransportError
    from simulator.report.markdown import write_report

    count = {"n": 0}

    def script(r):
        if r.tag == "worker":
            count["n"] += 1
            if count["n"] > 60:  # the second seed's model dies
                raise ScriptedTransportError("down")
            if count["n"] % 10 == 0:  # the first seed loses one reply in ten
                raise ScriptedTransportError("reset")
        return '{"hours": 35}'

    real = llm_mod.build_llm
    monkeypatch.setattr(llm_mod, "build_llm", lambda cfg, **k: real(cfg, **{**k, "script": script}))
    sc = scenario_from_dict({"population": {"size": 30, "source": "census"},
                             "workers": {"policy": "llm"}, "planner": {"kind": "flat", "rate": 0.2},
                             "run": {"tax_years": 2, "seed": 2, "seeds": 2},
                             "llm": {"backend": "scripted", "cache": "off", "max_retries": 0}})
    root = tmp_path / "exp"
    assert run_experiment(sc, root, jobs=1).status == "failed"
    page = write_report(root).read_text()
    assert "- **experiment failed: 1 of 2 runs did not finish" in page
    assert "scenario seed 2: completed_with_warnings: degraded run: 10.0% of worker replies fell back" in page
    assert "scenario seed 3: failed: " in page and "(left out of the statistics)" in page
    html = (root / "report" / "report.html").read_text()
    assert 'id="status"' in html and "scenario seed 3: failed" in html


def _holder(path):
    """Another process holding the lock of ``path`` (until killed); returns its Popen."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    code = ("import sys, time; from simulator.run.lock import lock_run_dir; "
            "lock = lock_run_dir(sys.argv[1]); print('held', flush=True); time.sleep(600)")
    proc = subprocess.Popen([sys.executable, "-c", code, str(path)], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_locked_experiment_or_run_directory_is_refused_at_once_and_left_untouched(tmp_path, capsys):
    """A second experiment into a directory whose experiment is running, or a rerun while
    one of its unfinished runs is being written by another process: one line naming the
    holder's pid, exit 2, within seconds, and not a file changed; free again, it continues."""
    import time

    from test_lifeline import tree_snapshot

    f = tmp_path / "s.yaml"
    f.write_text(json.dumps({**BASE, "run": {"tax_years": 1, "seeds": 2}}))
    root = tmp_path / "e"
    assert main(["run", str(f), "--out", str(root), "--no-progress"]) == 0
    man = root / "runs" / "us" / "seed-0" / "manifest.json"
    m = json.loads(man.read_text())
    m["status"] = "failed"  # to be run again by the next invocation
    man.write_text(json.dumps(m))
    def files():  # all but the experiment's own lock file (the rerun takes it while the run's is held)
        return {k: v for k, v in tree_snapshot(root).items() if k != ".lock"}

    for locked in (root, man.parent):
        holder = _holder(locked)
        try:
            before = files()
            capsys.readouterr()
            t0 = time.monotonic()
            assert main(["run", str(f), "--out", str(root), "--no-progress", "--jobs", "2"]) == 2
            assert time.monotonic() - t0 < 20
            err = capsys.readouterr().err.strip().splitlines()
            assert len(err) == 1 and f"is in use by process {holder.pid}" in err[0], err
            assert str(locked) in err[0]
            assert files() == before
        finally:
            holder.kill()
            holder.wait()
    assert main(["run", str(f), "--out", str(root), "--no-progress"]) == 0  # the locks died with it
    assert (pd.read_parquet(root / "index.parquet")["status"] == "completed").all()


@pytest.mark.slow
def test_kill_9_of_a_pool_experiment_ends_its_workers_and_the_rerun_continues(tmp_path):
    """SIGKILL of `econsim run` with a pool of 2: every process it started (the workers and
    multiprocessing's resource tracker, found through /proc before the kill) is gone within
    5 s, no file of the experiment changes afterwards, and the same command continues
    (killed runs resume from their checkpoints) to the results of an uninterrupted run."""
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    from test_checkpoint import assert_same_run
    from test_lifeline import descendants, gone_within, kill_tree, tree_snapshot

    from simulator.run.state import finished_years

    data = {"population": {"size": 600, "source": "census"}, "run": {"tax_years": 15, "seeds": 2},
            "compare": [{"label": "us"}, {"label": "flat30", "planner": {"kind": "flat", "rate": 0.3}}]}
    scen = tmp_path / "s.yaml"
    scen.write_text(json.dumps(data))
    out = tmp_path / "e"
    cmd = [sys.executable, "-m", "simulator.cli.main", "run", str(scen), "--out", str(out), "--jobs", "2",
           "--no-progress"]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    kids: set[int] = set()
    try:
        deadline = time.monotonic() + 300
        while not any(len(finished_years(p)) >= 2 for p in out.glob("runs/*/seed-*")):
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline, "no run finished two tax years"
            time.sleep(0.05)
        kids = descendants(proc.pid)
        assert len(kids) >= 2, kids  # the two workers (and the resource tracker)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        t0 = time.monotonic()
        left = gone_within(kids, 5.0)
        assert not left, f"processes {sorted(left)} outlived the killed experiment by 5 s"
        assert time.monotonic() - t0 < 5.0
        before = tree_snapshot(out)
        time.sleep(3.0)
        assert tree_snapshot(out) == before, "files changed after the experiment was killed"
    finally:
        kill_tree(proc.pid, kids)
    # a worker killed between creating its run directory and writing the manifest leaves
    # a directory without one: the rerun starts that run afresh (checked below: all complete)
    unfinished = [p for p in out.glob("runs/*/seed-*") if (p / "manifest.json").exists()
                  and json.loads((p / "manifest.json").read_text())["status"] == "running"
                  and finished_years(p)]
    assert unfinished, "no run was cut off with a checkpoint"

    assert main(["run", str(scen), "--out", str(out), "--jobs", "1", "--no-progress"]) == 0
    idx = pd.read_parquet(out / "index.parquet")
    assert (idx["status"] == "completed").all() and len(idx) == 4
    for p in unfinished:  # resumed from its checkpoint, not started again
        m = json.loads((p / "manifest.json").read_text())
        assert m["status"] == "completed" and m.get("resumed") and m["years_completed"] == 15
    # the resumed run equals an uninterrupted one
    resumed = unfinished[0]
    variant, seed = resumed.parent.name, int(resumed.name.split("-")[1])
    ref = next(t for t in plan_experiment(scenario_from_dict(data), tmp_path / "ref").tasks()
               if (t.variant, t.seed) == (variant, seed))
    run_scenario(ref.scenario, tmp_path / "ref-run", progress=False, stream=open(os.devnull, "w"))
    assert_same_run(resumed, tmp_path / "ref-run", drop=("wall", "latency", "elapsed", "seconds"))
