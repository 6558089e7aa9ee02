"""benchmarks/vllm_gpu.py's prefill bound and benchmarks/llm_step.py's token prefixes,
without a GPU (pure arithmetic, and the vLLM script on the fake engine of
tests/test_llm_vllm.py)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from test_llm_vllm import FakeLLM, fake_vllm  # noqa: F401  (fixture: a fake vllm package)

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


def _load(name):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


vllm_gpu = _load("vllm_gpu")


def test_prefill_bound_by_hand():
    # 8 B params: 16 GFLOP per prefilled token; 600 TFLOP/s prefill 37,500 tokens/s, so
    # 2,000 decisions/s leave at most 18.75 unshared tokens to each
    b = vllm_gpu.prefill_bound(8.0, 600.0, unshared_tokens=18.75)
    assert b["flop_per_token"] == 16e9
    assert b["tokens_per_s"] == pytest.approx(37_500)
    assert b["decisions_per_s"] == pytest.approx(2_000)
    assert vllm_gpu.prefill_bound(8.0, 600.0, 375)["decisions_per_s"] == pytest.approx(100)
    # twice the parameters halve it, twice the TFLOP/s double it
    assert vllm_gpu.prefill_bound(16, 600, 10)["tokens_per_s"] == pytest.approx(37_500 / 2)
    assert vllm_gpu.prefill_bound(8, 1200, 10)["tokens_per_s"] == pytest.approx(75_000)
    for bad in ((0, 600, 10), (8, 0, 10), (8, 600, 0)):
        with pytest.raises(ValueError):
            vllm_gpu.prefill_bound(*bad)


def test_unshared_tokens_and_the_printed_table():
    mean, unshared = vllm_gpu.unshared_tokens([[1, 2, 3, 4, 5], [1, 2, 3, 9], [1, 2, 3, 4, 7, 8]])
    assert mean == pytest.approx(5) and unshared == pytest.approx(2)  # common prefix [1, 2, 3]
    assert vllm_gpu.unshared_tokens([[4, 5]]) == (2.0, 0.0)
    lines = vllm_gpu.prefill_table(8.0, 600.0, {"verbose": 375.0, "compact": 187.5})
    assert lines[0] == ("prefill bound: 16.0 GFLOP per prefilled token (2 x 8 B params); "
                        "at 600 TFLOP/s 37,500 tokens/s")
    assert lines[2].split() == ["verbose", "375.0", "100"]
    assert lines[3].split() == ["compact", "187.5", "200"]


def test_prefill_arguments():
    args = vllm_gpu.parse_args(["--model", "m", "--params", "8", "--gpu", "H200"])
    assert args.tflops == 600.0 and args.layout == "compact" and args.token_sample == 1_000
    args = vllm_gpu.parse_args(["--model", "m", "--params", "8", "--bandwidth-tbs", "2", "--tflops", "300",
                                "--layout", "verbose"])
    assert args.tflops == 300.0 and args.layout == "verbose"
    assert vllm_gpu.parse_args(["--model", "m", "--params", "8", "--bandwidth-tbs", "2"]).tflops is None
    for bad in (["--tflops", "0"], ["--layout", "short"], ["--token-sample", "0"]):
        with pytest.raises(SystemExit):
            vllm_gpu.parse_args(["--model", "m", "--params", "8", "--gpu", "h100", *bad])


def test_vllm_gpu_prints_the_prefill_bound_per_layout_on_the_fake_engine(fake_vllm, capsys):  # noqa: F811
    rc = vllm_gpu.main(["--model", "/models/x", "--params", "8", "--gpu", "h200", "--workers", "30"])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "prefill bound: 16.0 GFLOP per prefilled token (2 x 8 B params); at 600 TFLOP/s 37,500 tokens/s" in out
    rows = {line.split()[0]: [float(x.replace(",", "")) for x in line.split()[1:]] for line in out.splitlines()
            if line.split()[:1] in (["verbose"], ["compact"]) and "prompts:" not in line}
    assert set(rows) == {"verbose", "compact"}
    assert 0 < rows["compact"][0] < rows["verbose"][0]
    for unshared, bound in rows.values():
        assert bound == pytest.approx(37_500 / unshared, rel=1e-3, abs=1)


def test_llm_step_prefix_statistics():
    llm_step = _load("llm_step")
    st = llm_step.prefix_stats([[1, 2, 3, 4], [1, 2, 5], [1, 2, 3, 6, 7]])
    assert st["tokens"] == pytest.approx(4) and st["common"] == 2 and st["unshared"] == pytest.approx(2)
    # sorted: [1,2,3,4], [1,2,3,6,7], [1,2,5]: shared with the previous 0, 3, 2
    assert st["prev"] == pytest.approx(5 / 3)
    assert llm_step.common_prefix([1, 2], [1, 2, 3]) == 2
    with pytest.raises(ValueError):
        llm_step.prefix_stats([])
