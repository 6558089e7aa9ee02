"""benchmarks/vllm_gpu.py without a GPU: argument handling and the decode-limit arithmetic."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

_spec = importlib.util.spec_from_file_location(
    "vllm_gpu", Path(__file__).resolve().parents[1] / "benchmarks" / "vllm_gpu.py")
vllm_gpu = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(vllm_gpu)


def test_decode_limit_by_hand():
    # 8 B params in bf16 = 16 GB; at 3.35 TB/s one decode step reads them in 4.776 ms
    lim = vllm_gpu.decode_limit(8.0, "bf16", 3.35, batch=256, tokens_per_decision=4)
    assert lim["weight_bytes"] == 16e9
    assert lim["step_s"] == pytest.approx(16e9 / 3.35e12)
    assert lim["tokens_per_s"] == pytest.approx(256 * 3.35e12 / 16e9)   # ~53,600
    assert lim["decisions_per_s"] == pytest.approx(lim["tokens_per_s"] / 4)
    # int4 halves the bytes of int8 and doubles the ceiling
    a = vllm_gpu.decode_limit(70, "int4", 4.8, 1, 1)["tokens_per_s"]
    b = vllm_gpu.decode_limit(70, "int8", 4.8, 1, 1)["tokens_per_s"]
    assert a == pytest.approx(2 * b) and b == pytest.approx(4.8e12 / 70e9)
    with pytest.raises(ValueError):
        vllm_gpu.decode_limit(8, "bf16", 3.35, 0, 4)


def test_arguments():
    args = vllm_gpu.parse_args(["--model", "m", "--params", "8", "--gpu", "H200"])
    assert args.bandwidth_tbs == 4.8 and args.dtype == "bf16" and args.workers == 10_000
    args = vllm_gpu.parse_args(["--model", "m", "--params", "1.5", "--bandwidth-tbs", "1.2",
                                "--budget", "500", "--dtype", "fp8"])
    assert args.bandwidth_tbs == 1.2 and args.budget == 500
    for bad in (["--model", "m", "--params", "8"],                      # no GPU named
                ["--model", "m", "--params", "8", "--gpu", "tpu"],      # unknown GPU
                ["--model", "m", "--params", "-1", "--gpu", "h100"],
                ["--model", "m", "--params", "8", "--gpu", "h100", "--budget", "-3"],
                ["--params", "8", "--gpu", "h100"]):                    # no model
        with pytest.raises(SystemExit) as e:
            vllm_gpu.parse_args(bad)
        assert e.value.code == 2
