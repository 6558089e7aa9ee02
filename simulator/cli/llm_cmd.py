"""``econsim llm check``: probe a language-model backend.

Sends one request with a bounded-integer constraint (0..100) whose prompt asks for an
out-of-range value (250), and prints the model, latency, the reply and whether the
structured output held.  For the openai backend without ``--dialect``, tries each
dialect in turn and says which one to configure.  Exit 0 if a valid reply came back,
1 otherwise, 2 for a user error (unreachable server, missing key variable, ...).
"""

from __future__ import annotations

import argparse
import sys
import time

from simulator.errors import UserError

PROBE = (
    'Reply with only this JSON object and nothing else: {"n": 250}'
)
DIALECTS = ("openai_json_schema", "llamacpp_json_object", "grammar", "none")


class _BackendNames:
    """``--backend``'s choices: the names in :data:`simulator.llm.registry.BACKENDS`, read
    when the flag is parsed or its help shown, so that building the parser (every
    command, ``--help``) does not import the inference layer."""

    def _names(self) -> tuple[str, ...]:
        from simulator.llm.registry import BACKENDS  # deferred: fast --help

        return tuple(BACKENDS)

    def __contains__(self, name: object) -> bool:
        return name in self._names()

    def __iter__(self):
        return iter(self._names())


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("llm", help="language-model backend tools",
                              description="Language-model backend tools.")
    sub = p.add_subparsers(dest="llm_command", metavar="SUBCOMMAND")
    c = sub.add_parser("check", help="send a probe request and report whether structured output works")
    c.add_argument("--backend", choices=_BackendNames(), default="embedded",
                   help="backend to probe (default embedded)")
    c.add_argument("--base-url", help="openai backend: e.g. http://127.0.0.1:8000/v1")
    c.add_argument("--model", help="model id / alias / path")
    c.add_argument("--dialect", choices=DIALECTS, help="structured-output dialect (default: try each)")
    c.add_argument("--api-key-env", default="OPENAI_API_KEY", help="NAME of the env var holding the key")
    c.add_argument("--timeout", type=float, default=60.0, help="seconds per request")
    c.set_defaults(func=check)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def _probe(config) -> tuple[object, float]:
    from simulator.llm import (  # deferred: fast --help (importing simulator.llm takes ~1 s)
        Request,
        build_llm,
        integer_field,
        json_object_constraint,
    )

    llm = build_llm(config)
    try:
        req = Request.chat(
            PROBE,
            system="You are a helpful assistant.",
            constraint=json_object_constraint(n=integer_field(0, 100)),
            max_tokens=16,
            temperature=0.0,
            seed=1,
            tag="check",
        )
        t0 = time.perf_counter()
        resp = llm.generate([req])[0]
        return resp, time.perf_counter() - t0
    finally:
        llm.close()


def check(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from simulator.llm import LLMConfig  # deferred: fast --help (~1 s)

    base = {
        "backend": args.backend,
        "model": args.model,
        "base_url": args.base_url,
        "api_key_env": args.api_key_env,
        "timeout_s": args.timeout,
        "cache": "off",
        "max_retries": 1,
    }
    if args.backend == "openai" and not args.model:
        raise UserError("llm check --backend openai needs --model (the server's model name)")
    dialects = [args.dialect] if args.dialect else (list(DIALECTS) if args.backend == "openai" else [None])
    last = None
    for dialect in dialects:
        try:
            config = LLMConfig(**base, dialect=dialect)
        except ValidationError as exc:
            raise UserError(f"invalid option: {exc.errors()[0]['msg']}") from exc
        resp, wall = _probe(config)
        last = resp
        label = f" dialect={dialect}" if dialect else ""
        if resp.error_kind == "transport" and (resp.error or "").startswith("transport:"):
            raise UserError(f"cannot reach {args.base_url or 'the OpenAI API'}: {resp.error}")
        print(f"backend={args.backend} model={args.model or '(default)'}{label}")
        print(f"  latency: {wall:.2f} s  tokens: {resp.prompt_tokens} prompt, {resp.completion_tokens} completion")
        print(f"  reply: {resp.text!r}")
        if resp.ok:
            enforced = dialect != "none"
            how = "held (value within 0..100 although the prompt asked for 250)" if enforced else \
                "parsed and validated (no server-side constraint)"
            print(f"  structured output: {how}; value={resp.value}")
            if len(dialects) > 1:
                print(f"  -> set llm.dialect: {dialect}")
            return 0
        print(f"  structured output: FAILED ({resp.error})")
    if last is not None and last.error_kind == "request":
        print("  the server refused the request; check --model and --dialect", file=sys.stderr)
    return 1
