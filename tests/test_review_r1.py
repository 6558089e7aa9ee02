"""Defects found by the review of issues 9, 12, 14 and 15 (used as a new user would)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

import simulator.llm.factory as factory
from simulator.cli.main import main
from simulator.sim.model import EconomyModel

RATIONAL = {
    "name": "review",
    "population": {"size": 60},
    "workers": {"policy": "rational"},
    "planner": {"kind": "flat", "rate": 0.25},
    "run": {"tax_years": 4, "seed": 2},
}


def _write(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "scenario.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("econsim: error: "), err
    return err[0]


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _stop_in_year(monkeypatch, year: int) -> None:
    """SIGTERM-like stop (KeyboardInterrupt) at the start of tax year ``year``."""
    real = EconomyModel.step

    def step(self):
        if self.year == year:
            raise KeyboardInterrupt
        real(self)

    monkeypatch.setattr(EconomyModel, "step", step)


def test_resume_and_fork_with_a_damaged_population_file_is_one_line(tmp_path, capsys, monkeypatch):
    scen, run = _write(tmp_path, RATIONAL), tmp_path / "run"
    _stop_in_year(monkeypatch, 2)
    assert main(["run", str(scen), "--out", str(run), "--no-progress"]) == 130
    monkeypatch.undo()
    assert json.loads((run / "manifest.json").read_text())["status"] == "interrupted"
    _truncate(run / "population.parquet")
    capsys.readouterr()
    assert main(["resume", str(run), "--no-progress"]) == 2
    assert "population.parquet: damaged parquet file" in _one_error_line(capsys)
    new = tmp_path / "fork"
    assert main(["fork", str(run), "--at-year", "1", "--set", "planner.rate=0.3", "--out", str(new)]) == 2
    assert "population.parquet: damaged parquet file" in _one_error_line(capsys)
    assert not new.exists()


def test_report_with_a_damaged_validity_table_is_one_line(tmp_path, capsys):
    scen, run = _write(tmp_path, RATIONAL), tmp_path / "run"
    assert main(["run", str(scen), "--out", str(run), "--no-progress"]) == 0
    (run / "validity.parquet").write_bytes(b"PAR1 not really parquet")
    capsys.readouterr()
    assert main(["report", str(run)]) == 2
    assert "validity.parquet: damaged parquet file" in _one_error_line(capsys)


def test_resume_and_fork_exit_3_when_the_run_degraded(tmp_path, monkeypatch):
    """``econsim run`` exits 3 for completed_with_warnings; so must resume and fork."""
    data = {
        "name": "degraded",
        "population": {"size": 8},
        "workers": {"policy": "llm"},
        "planner": {"kind": "flat", "rate": 0.2},
        "run": {"tax_years": 3, "seed": 1},
        "llm": {"backend": "scripted", "cache": "off", "max_retries": 0, "max_failure_rate": 1.0},
    }
    scen = _write(tmp_path, data)
    real_demo = factory.demo_reply
    monkeypatch.setattr(factory, "demo_reply",
                        lambda r: real_demo(r) if r.seed % 2 == 0 else "garbage")
    assert main(["run", str(scen), "--out", str(tmp_path / "full"), "--no-progress"]) == 3
    run = tmp_path / "run"
    real_step = EconomyModel.step

    def step(self):
        if self.year == 2:
            raise KeyboardInterrupt
        real_step(self)

    monkeypatch.setattr(EconomyModel, "step", step)
    assert main(["run", str(scen), "--out", str(run), "--no-progress"]) == 130
    monkeypatch.setattr(EconomyModel, "step", real_step)
    assert main(["resume", str(run), "--no-progress"]) == 3
    assert json.loads((run / "manifest.json").read_text())["status"] == "completed_with_warnings"
    assert main(["fork", str(run), "--at-year", "0", "--set", "planner.rate=0.3",
                 "--out", str(tmp_path / "fork"), "--no-progress"]) == 3


def test_resume_without_checkpoint_says_how_to_start_again(tmp_path, capsys, monkeypatch):
    """The advice must work: ``econsim run --out`` refuses a directory that holds a run."""
    scen, run = _write(tmp_path, RATIONAL), tmp_path / "run"
    _stop_in_year(monkeypatch, 0)
    assert main(["run", str(scen), "--out", str(run), "--no-progress"]) == 130
    monkeypatch.undo()
    capsys.readouterr()
    assert main(["resume", str(run)]) == 2
    line = _one_error_line(capsys)
    assert "no checkpoint" in line and f"delete {run} first" in line
    assert main(["run", str(scen), "--out", str(run), "--no-progress"]) == 2
    assert "already holds a run" in _one_error_line(capsys)


def test_fork_to_a_search_planner_without_a_feasible_schedule_is_refused(tmp_path, capsys):
    """As ``econsim validate`` and ``run`` refuse it: one line, exit 2, nothing written."""
    scen, run = _write(tmp_path, RATIONAL), tmp_path / "run"
    assert main(["run", str(scen), "--out", str(run), "--no-progress"]) == 0
    new = tmp_path / "fork"
    capsys.readouterr()
    assert main(["fork", str(run), "--at-year", "1", "--set", "planner.kind=search",
                 "--set", "planner.llm.revenue_floor=10000000", "--out", str(new)]) == 2
    line = _one_error_line(capsys)
    assert "planner.llm.revenue_floor" in line and "no feasible schedule" in line
    assert not new.exists()


def test_ctrl_c_during_an_openai_batch_leaves_no_pending_task(caplog):
    """A SIGTERM/Ctrl-C while a batch waits on the server: closing the model must not
    print asyncio's "Task was destroyed but it is pending!" (with the task's repr)."""
    import gc
    import logging
    import signal

    from test_run_health import FaultServer, ask, model_for

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGALRM, interrupt)
    try:
        with caplog.at_level(logging.ERROR, logger="asyncio"), FaultServer(mode="hang") as srv:
            m = model_for(srv.base_url, timeout_s=20.0)
            signal.setitimer(signal.ITIMER_REAL, 0.5)
            with pytest.raises(KeyboardInterrupt):
                m.generate(ask(3))
            m.close()
            del m
            gc.collect()
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    assert "pending" not in caplog.text, caplog.text


def test_failed_run_names_the_servers_error(tmp_path, capsys):
    """A server that answers every request 404 (e.g. base_url without /v1): the one-line
    failure says what the server answered, not only "kinds: request"."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class NotFound(BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def _answer(self):
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            body = b'{"detail": "Not Found"}'
            self.send_response(404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = _answer

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), NotFound)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}"
        data = {**RATIONAL, "population": {"size": 4}, "workers": {"policy": "llm"}, "run": {"tax_years": 2},
                "llm": {"backend": "openai", "base_url": url, "model": "m", "api_key_env": "HOME",
                        "dialect": "none", "cache": "off", "max_retries": 0}}
        scen = _write(tmp_path, data)
        capsys.readouterr()
        assert main(["run", str(scen), "--out", str(tmp_path / "run"), "--no-progress"]) == 1
    finally:
        httpd.shutdown()
        httpd.server_close()
    err = [ln for ln in capsys.readouterr().err.splitlines() if "run failed" in ln]
    assert len(err) == 1 and "kinds: request" in err[0] and "first error: http 404" in err[0], err


def test_resume_on_the_root_of_an_interrupted_comparison_says_how_to_continue(tmp_path, capsys, monkeypatch):
    data = {**RATIONAL, "compare": [{"label": "flat", "planner": {"kind": "flat"}},
                                    {"label": "usf", "planner": {"kind": "us_federal"}}]}
    scen, root = _write(tmp_path, data), tmp_path / "cmp"
    real = EconomyModel.step

    def step(self):  # stop in the second variant's tax year 2
        if self.year == 2 and self.settings.planner.kind == "us_federal":
            raise KeyboardInterrupt
        real(self)

    monkeypatch.setattr(EconomyModel, "step", step)
    # --jobs 1: in this process, so the interruption above applies
    assert main(["run", str(scen), "--out", str(root), "--no-progress", "--jobs", "1"]) == 130
    monkeypatch.undo()
    capsys.readouterr()
    assert main(["resume", str(root)]) == 2
    line = _one_error_line(capsys)
    assert "an experiment, not one run" in line and "run the same `econsim run` command" in line
    # the interrupted run itself resumes from its checkpoint
    (run_dir,) = (root / "runs" / "usf").glob("seed-*")
    assert main(["resume", str(run_dir), "--no-progress"]) == 0


def test_checkpoints_off_written_bare_in_yaml(tmp_path, capsys):
    """YAML reads a bare ``off`` as False; ``output.checkpoints: off`` must still mean off
    (as ``llm.cache: off`` does), in a scenario file and in ``--set``."""
    data = yaml.safe_load(yaml.safe_dump(RATIONAL) + "output:\n  checkpoints: off\n")
    assert data["output"]["checkpoints"] is False
    scen, run = _write(tmp_path, data), tmp_path / "run"
    assert main(["validate", str(scen)]) == 0
    assert main(["run", str(scen), "--out", str(run), "--no-progress"]) == 0
    assert not (run / "checkpoints").exists() or not any((run / "checkpoints").iterdir())
    ref = tmp_path / "ref"
    assert main(["run", str(_write(tmp_path, RATIONAL)), "--out", str(ref), "--no-progress"]) == 0
    assert main(["fork", str(ref), "--at-year", "1", "--set", "output.checkpoints=off",
                 "--set", "planner.rate=0.3", "--out", str(tmp_path / "fork"), "--no-progress"]) == 0


def test_validity_of_a_model_that_never_answered_is_not_measurable():
    """With every reply a fallback, consistency was 'within range' (the fallbacks agree with
    themselves); past llm.max_failure_rate the LLM checks are not measurable (which a
    validity_gate treats as failing)."""
    from simulator.config.loading import scenario_from_dict
    from simulator.config.validity_names import NOT_MEASURABLE, OUTSIDE
    from simulator.llm import build_llm
    from simulator.llm.scripted import ScriptedTransportError
    from simulator.validity.collect import run_validity

    sc = scenario_from_dict({"name": "dead", "population": {"size": 20, "source": "census"},
                             "workers": {"policy": "llm"}, "planner": {"kind": "flat"},
                             "llm": {"backend": "scripted", "cache": "off", "max_retries": 0}}, "t")

    def dead(request):
        raise ScriptedTransportError("server down")

    t = run_validity(sc, llm=build_llm(sc.llm, script=dead), progress=False).table.set_index("check")
    assert t.loc["reliability.fallback", "value"] == 1.0
    assert t.loc["reliability.fallback", "verdict"] == OUTSIDE
    for check in ("consistency.seed", "consistency.order", "incentives.eti", "persona.wage"):
        assert t.loc[check, "verdict"] == NOT_MEASURABLE, check
        assert "100% of the replies fell back" in t.loc[check, "detail"], check


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(pytest.main([__file__, "-q"]))


def test_a_fork_that_adds_a_validity_gate_is_checked(tmp_path, capsys):
    """``fork --set validity_gate=[...]`` runs the gate on the forked state before the fork's
    first tax year (rational workers fail the dispersion checks by construction: everyone
    near one hours value), instead of ignoring it."""
    scen, parent = _write(tmp_path, RATIONAL), tmp_path / "parent"
    assert main(["run", str(scen), "--out", str(parent), "--no-progress"]) == 0
    capsys.readouterr()
    out = tmp_path / "gated"
    assert main(["fork", str(parent), "--at-year", "1", "--set", "validity_gate=[dispersion]",
                 "--out", str(out), "--no-progress"]) == 2
    line = _one_error_line(capsys)
    assert "validity gate failed" in line and "dispersion" in line
    assert (out / "validity.parquet").exists()
    assert json.loads((out / "manifest.json").read_text())["status"] == "failed"
    # the same fork without the gate runs
    assert main(["fork", str(parent), "--at-year", "1", "--out", str(tmp_path / "plain"),
                 "--no-progress"]) == 0


def test_validate_warns_when_starting_rates_break_the_planner_constraints(tmp_path, capsys):
    """Starting rates outside ``planner.llm.rate_bounds`` are stepped back at ``max_step`` a
    year, breaking the bounds meanwhile: ``validate`` says so, and how many years it takes
    (0.9 down to 0.2 at 0.05 a year: 14 years)."""
    data = {**RATIONAL, "tax": {"initial_rates": [0.9, 0.0, 0.1, 0.1, 0.1, 0.1, 0.1]},
            "planner": {"kind": "search", "llm": {"rate_bounds": [0.1, 0.2], "max_step": 0.05,
                                                   "monotone": True}}}
    assert main(["validate", str(_write(tmp_path, data))]) == 0
    warn = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("warning: ")]
    assert len(warn) == 2 and "needs 14 tax year(s)" in warn[0] and "monotone" in warn[1]
    for name in ("rational", "bounded", "democratic", "rational_baselines", "quickstart", "million"):
        assert main(["validate", name]) == 0
        assert "warning" not in capsys.readouterr().out, name
