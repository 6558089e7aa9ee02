"""Run llama-cpp-python's OpenAI-compatible server with econsim's CPU workaround.

``python -m simulator.llm.llamacpp_server --model FILE --model_alias NAME --host 127.0.0.1
--port 8000`` takes exactly the arguments of ``python -m llama_cpp.server`` (needs the
``server`` extra).  The only difference: where llama.cpp's extra CPU buffer types (AMX
tiles) crash this machine (see :func:`simulator.llm.embedded.extra_buffer_types_ok`),
models are loaded without them.  ``--model smollm2`` serves the bundled SmolLM2 (Q4_0).
"""

from __future__ import annotations

import sys
from pathlib import Path

from simulator.llm.embedded import (
    _model_params,
    extra_buffer_types_ok,
    quantized_copy,
    resolve_gguf,
)


def main(argv: list[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    model = None
    for i, a in enumerate(args):
        if a == "--model" and i + 1 < len(args):
            if args[i + 1] == "smollm2":
                args[i + 1] = str(quantized_copy(resolve_gguf(None)))
            model = args[i + 1]
    ok = extra_buffer_types_ok(Path(model)) if model else True
    from llama_cpp.server.__main__ import main as server_main  # deferred: optional server extra

    sys.argv = ["llama_cpp.server", *args]
    with _model_params(ok):
        server_main()


if __name__ == "__main__":
    main()
