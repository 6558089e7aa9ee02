"""The openai backend: any OpenAI-compatible chat-completions endpoint.

OpenAI itself, a ``vllm serve`` endpoint, llama.cpp's server, ...  The whole batch is
submitted concurrently (an ``asyncio.Semaphore`` bounds requests in flight) through the
official ``AsyncOpenAI`` client, whose own retries are disabled so this module controls
and counts them: HTTP 429, 5xx, timeouts and connection errors are retried with
exponential backoff and full jitter; other 4xx are recorded at once.  Nothing raises out
of :meth:`OpenAIModel.generate` for a failed request: it becomes ``Response.error``.

A dead or hung server fails fast, whatever the number of requests: a timeout is retried at
most ``read_timeout_retries`` times (default once), and one circuit breaker per backend
(:class:`~simulator.llm.wrappers.CircuitBreaker`, kept for the whole run) opens once
``breaker_after`` requests in a row (default: the concurrency bound, at least 2) have
ended in a transport failure with no reply in between.  Requests in flight are then
cancelled, and every request not yet sent, of this batch, of the next chunk or of a
later step, ends at once as a transport failure naming the server.  Before anything is
sent again, one cheap probe (a 1-token chat request with ``probe_timeout_s``, at most
once every ``probe_every_s``) decides: it answers, the breaker closes; it does not, the
breaker stays open.  So a dead or hung server is detected within 2 x ``timeout_s`` (plus
the retry backoff) and a step against it lasts at most that plus one probe timeout.

Structured output speaks the server's *dialect*:

- ``openai_json_schema``: ``response_format={"type": "json_schema", ...}`` (OpenAI, vLLM);
- ``llamacpp_json_object``: ``response_format={"type": "json_object", "schema": ...}``
  (llama.cpp's server answers HTTP 500 to json_schema: a 500 to a JSON-schema request
  says so when the health check found llama.cpp, from ``GET /models``: its ``owned_by``
  or the ``Server`` header);
- ``grammar``: ``extra_body={"grammar": GBNF}`` with integer ranges compiled exactly
  (llama.cpp's server);
- ``none``: no structured output; the reply is only parsed and validated.

:meth:`generate` is synchronous: the requests run on an event loop owned by a background
thread, so it also works when called from inside a running loop (Jupyter).
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import os
import random
import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from simulator.errors import UserError
from simulator.llm.constraints import choices_as_schema, parse_reply
from simulator.llm.grammar import compile_grammar
from simulator.llm.types import (
    Choices,
    JsonSchema,
    LanguageModel,
    ModelInfo,
    Request,
    Response,
)
from simulator.llm.wrappers import CircuitBreaker, RetryPolicy

if TYPE_CHECKING:
    from simulator.llm.config import LLMConfig

log = logging.getLogger(__name__)

#: placeholder key sent to servers on this machine when the key variable is unset
LOCAL_PLACEHOLDER_KEY = "sk-no-key-required"

_RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}


def is_local_url(url: str | None) -> bool:
    if not url:
        return False
    host = urlparse(url).hostname or ""
    if host in ("localhost",) or host.endswith(".localhost"):
        return True
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False
    return ip.is_loopback or ip.is_private


def resolve_api_key(api_key_env: str, base_url: str | None, *, required: bool = True) -> str:
    """The key from the environment variable *named* ``api_key_env``.

    Servers on this machine or a private network need no key: a placeholder is sent
    when the variable is unset (also when ``required`` is false: cache replay).  Otherwise a missing variable is a :class:`UserError`.
    """
    key = os.environ.get(api_key_env)
    if key:
        return key
    if is_local_url(base_url) or not required:
        return LOCAL_PLACEHOLDER_KEY
    where = base_url or "the OpenAI API"
    raise UserError(
        f"environment variable {api_key_env} is not set (the API key for {where}); "
        f"export it, or set llm.api_key_env to the variable that holds the key"
    )


def wire_schema(schema: Any) -> Any:
    """The schema as sent to servers: drops keywords OpenAI's strict mode rejects
    (``maxLength``; still validated locally)."""
    if not isinstance(schema, dict):
        return schema
    out = dict(schema)
    if isinstance(out.get("properties"), dict):
        out["properties"] = {
            name: {k: v for k, v in prop.items() if k != "maxLength"} if isinstance(prop, dict) else prop
            for name, prop in out["properties"].items()
        }
    return out


def structured_kwargs(request: Request, dialect: str) -> dict[str, Any]:
    """The ``response_format`` / ``extra_body`` arguments for ``request`` in ``dialect``."""
    c = request.constraint
    if c is None or dialect == "none":
        return {}
    if dialect == "grammar":
        return {"extra_body": {"grammar": compile_grammar(c).gbnf}}
    schema = c.schema if isinstance(c, JsonSchema) else choices_as_schema(c)
    schema = wire_schema(dict(schema))
    if dialect == "llamacpp_json_object":
        return {"response_format": {"type": "json_object", "schema": schema}}
    if dialect == "openai_json_schema":
        name = "choice" if isinstance(c, Choices) else "reply"
        return {
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": name, "schema": schema, "strict": True},
            }
        }
    raise ValueError(f"unknown dialect {dialect!r}")


def build_chat_kwargs(request: Request, model: str, dialect: str) -> dict[str, Any]:
    """All keyword arguments of ``chat.completions.create`` for one request (pure)."""
    kw: dict[str, Any] = {
        "model": model,
        "messages": [dict(m) for m in request.messages],
        "max_tokens": request.max_tokens,
        "temperature": request.temperature,
        "seed": request.seed,
    }
    kw.update(structured_kwargs(request, dialect))
    return kw


class _LoopThread:
    """An asyncio loop running forever in a daemon thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="econsim-llm-loop", daemon=True)
        self._thread.start()

    def run(self, coro: Any) -> Any:
        fut = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return fut.result()
        except BaseException:
            # Ctrl-C / SIGTERM in the caller: cancel the task so that it is not left
            # pending on the loop (asyncio prints "Task was destroyed but it is pending!")
            fut.cancel()
            raise

    def stop(self) -> None:
        if self.loop.is_running():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout=5)
        if not self.loop.is_running():
            self.loop.close()


class _MalformedBody(Exception):
    """A 200 answer whose body is not a chat completion (cut short, or not JSON)."""


def _check_body(completion: Any) -> None:
    """Raise :class:`_MalformedBody` unless ``completion`` is a parsed chat completion
    (the client returns the raw text when the body is not JSON, e.g. cut short)."""
    choices = getattr(completion, "choices", None)
    if not isinstance(choices, list) or not choices:
        excerpt = " ".join(str(completion).split())[:80] if completion is not None else "nothing"
        raise _MalformedBody(f"truncated or malformed response body ({excerpt!r})")


def _is_dialect_error(msg: str) -> bool:
    m = msg.lower()
    return any(w in m for w in ("json_schema", "response_format", "schema", "grammar"))


def _server_service_s(completion: Any) -> float | None:
    """Seconds the server spent on the request, where it says (llama.cpp's ``timings``:
    prompt and generation milliseconds); ``None`` otherwise."""
    timings = getattr(completion, "timings", None)
    if timings is None:
        extra = getattr(completion, "model_extra", None) or {}
        timings = extra.get("timings")
    if isinstance(timings, dict):
        try:
            ms = float(timings.get("prompt_ms", 0.0) or 0.0) + float(timings.get("predicted_ms", 0.0) or 0.0)
        except (TypeError, ValueError):
            return None
        return ms / 1000.0 if ms > 0 else None
    return None


def server_kind(server_header: str | None, models_body: str | None) -> str | None:
    """``"llama.cpp"`` when a ``GET /models`` answer comes from llama.cpp's server
    (``Server: llama.cpp``, ``owned_by: llamacpp``) or llama-cpp-python's (``owned_by:
    me`` with a ``permissions`` list); ``None`` otherwise."""
    if server_header and "llama" in server_header.lower():
        return "llama.cpp"
    try:
        data = json.loads(models_body or "").get("data") or []
    except (ValueError, AttributeError):
        return None
    for m in data if isinstance(data, list) else []:
        if not isinstance(m, dict):
            continue
        owner = str(m.get("owned_by", "")).lower()
        if "llama" in owner or (owner == "me" and isinstance(m.get("permissions"), list)):
            return "llama.cpp"
    return None


def _batch_bar(n: int) -> Any:
    """A tqdm bar over a large batch's replies on a terminal; ``None`` otherwise."""
    import sys

    if n < 64 or not sys.stderr.isatty():
        return None
    from tqdm import tqdm

    return tqdm(total=n, desc="LLM replies", unit="req", leave=False, file=sys.stderr)


class OpenAIModel(LanguageModel):
    """See module docstring.  ``api_key`` is held only inside the client (never in repr)."""

    def __init__(
        self,
        *,
        model: str,
        base_url: str | None = None,
        api_key: str,
        dialect: str = "openai_json_schema",
        concurrency: int = 16,
        timeout_s: float = 120.0,
        retry: RetryPolicy | None = None,
        connect_timeout_s: float = 5.0,
        health_check: bool = True,
        read_timeout_retries: int = 1,
        breaker_after: int | None = None,
        probe_timeout_s: float | None = None,
        probe_every_s: float = 30.0,
    ) -> None:
        try:
            import openai
        except ImportError as exc:  # pragma: no cover - a base dependency
            raise UserError("the openai backend needs the 'openai' package (pip install openai)") from exc
        self._openai = openai
        self.model = model
        self.base_url = base_url
        self.dialect = dialect
        self.concurrency = concurrency
        self.timeout_s = timeout_s
        self.connect_timeout_s = min(connect_timeout_s, timeout_s)
        self.health_check = health_check
        #: a timed-out request is sent again at most this many times (other transport
        #: failures follow ``retry``)
        self.read_timeout_retries = read_timeout_retries
        #: the backend stops sending after this many transport failures in a row (0: never)
        self.breaker_after = max(2, concurrency) if breaker_after is None else breaker_after
        #: read timeout of the probe sent before sending again after the breaker opened
        self.probe_timeout_s = min(timeout_s, 10.0) if probe_timeout_s is None else probe_timeout_s
        #: one breaker for the backend's whole life (every batch, chunk and step)
        self.breaker = CircuitBreaker(self.breaker_after, probe_every_s)
        #: "llama.cpp" when the health check found llama.cpp's server (or llama-cpp-python's)
        self.server_kind: str | None = None
        self._inflight: set[asyncio.Task] = set()
        self._healthy = False
        #: (status, message) pairs this server has already answered and will answer again:
        #: a dialect it does not speak; later requests failing the same way are not retried
        self._permanent: set[tuple[int, str]] = set()
        self.retry = retry or RetryPolicy()
        self._rng = random.Random()
        self._api_key = api_key
        self._loop: _LoopThread | None = None
        self._client: Any = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"OpenAIModel(model={self.model!r}, base_url={self.base_url!r}, dialect={self.dialect!r})"

    @property
    def info(self) -> ModelInfo:
        return ModelInfo("openai", self.model,
                         extra={"base_url": self.base_url or "", "dialect": self.dialect})

    def chunk_size(self) -> int:
        """A multiple of the in-flight limit."""
        return max(64, 16 * int(self.concurrency or 16))

    def _ensure(self) -> _LoopThread:
        if self._loop is None:
            self._loop = _LoopThread()

            async def make() -> Any:
                return self._openai.AsyncOpenAI(
                    api_key=self._api_key,
                    base_url=self.base_url,
                    # a dead server is found in seconds, a slow reply still has timeout_s
                    timeout=self._openai.Timeout(self.timeout_s, connect=self.connect_timeout_s),
                    max_retries=0,
                )

            self._client = self._loop.run(make())

            async def make_sem():
                return asyncio.Semaphore(self.concurrency)

            # one bound for the whole model, shared by batches from every thread
            self._sem = self._loop.run(make_sem())
        return self._loop

    def generate(self, requests: Sequence[Request]) -> list[Response]:
        if not requests:
            return []
        with self._lock:  # only creation is serialised; batches from threads run concurrently
            loop = self._ensure()
            if self.health_check and not self._healthy:
                loop.run(self._health())
                self._healthy = True
        return loop.run(self._batch(list(requests)))

    def where(self) -> str:
        return self.base_url or "the OpenAI API"

    async def _health(self) -> None:
        """One short request (``GET /models``) before the first batch: a server that does
        not answer at all is a :class:`UserError` naming the URL, found in seconds.  Any
        HTTP answer, even an error status, means the server is there."""
        o = self._openai
        try:
            raw = await self._client.with_options(timeout=self._health_timeout()).models.with_raw_response.list()
        except o.APIStatusError:
            return
        except (o.APITimeoutError, o.APIConnectionError) as exc:
            text, _ = self._classify(exc, timeout_s=self._health_timeout().read)
            raise UserError(
                f"cannot reach the model server at {self.where()}: it does not answer ({text}); "
                "start it, or fix llm.base_url"
            ) from None
        self.server_kind = server_kind(raw.headers.get("server"), raw.text)

    def _health_timeout(self) -> Any:
        return self._openai.Timeout(min(self.timeout_s, 30.0), connect=self.connect_timeout_s)

    async def _probe(self) -> tuple[bool, str]:
        """One 1-token chat request with the probe timeout: (the server answered, what it got).
        Any HTTP answer but 429/5xx counts as answering (the server is there)."""
        o = self._openai
        timeout = o.Timeout(self.probe_timeout_s, connect=self.connect_timeout_s)
        try:
            completion = await self._client.with_options(timeout=timeout).chat.completions.create(
                model=self.model, messages=[{"role": "user", "content": "Reply with OK."}],
                max_tokens=1, temperature=0.0)
            _check_body(completion)
        except o.APIStatusError as exc:
            code = exc.status_code
            return not (code == 429 or code >= 500), f"http {code}"
        except Exception as exc:  # noqa: BLE001 - every failure is a verdict
            text, _ = self._classify(exc, timeout_s=self.probe_timeout_s)
            return False, text.removeprefix("transport: ")
        return True, "answered"

    async def _batch(self, requests: list[Request]) -> list[Response]:
        breaker = self.breaker
        if breaker.open is not None and breaker.probe_due():
            answered, why = await self._probe()
            breaker.probed(answered, why)
            log.info("econsim: probe of %s: %s (%s)", self.where(),
                     "answering again" if answered else "still not answering", why)
        if breaker.open is not None:  # the server stopped answering: nothing is sent
            return [Response(error=breaker.open, error_kind="transport") for _ in requests]
        sem = self._sem
        bar = _batch_bar(len(requests))
        inflight = self._inflight

        async def one(r: Request) -> Response:
            async with sem:
                if breaker.open is not None:  # the server stopped answering: not sent
                    out = Response(error=breaker.open, error_kind="transport")
                else:
                    t0 = time.perf_counter()
                    task = asyncio.ensure_future(self._one(r, breaker))
                    inflight.add(task)
                    try:
                        out = await task
                        counted = True
                    except asyncio.CancelledError:
                        me = asyncio.current_task()
                        if (me is not None and me.cancelling()) or breaker.open is None:
                            raise  # Ctrl-C / SIGTERM in the caller, not the breaker
                        # in flight when the breaker opened: not waited for
                        out = Response(error=breaker.open, error_kind="transport",
                                       latency_s=time.perf_counter() - t0)
                        counted = False
                    finally:
                        inflight.discard(task)
                    if counted and breaker.ended(out.error_kind, out.error, self.where()):
                        log.info("econsim: %s", breaker.open)  # once per opening; the run's line quotes it
                        for t in list(inflight):  # the other requests in flight end now
                            t.cancel()
            if bar is not None:
                bar.update(1)
            return out

        try:
            return list(await asyncio.gather(*(one(r) for r in requests)))
        finally:
            if bar is not None:
                bar.close()

    def _classify(self, exc: BaseException, timeout_s: float | None = None,
                  schema: bool = False) -> tuple[str, bool]:
        """(error text, retryable).  ``schema``: the request sent a JSON schema
        (``openai_json_schema`` and a constraint)."""
        o = self._openai
        if isinstance(exc, o.APITimeoutError):
            return f"transport: timeout after {timeout_s or self.timeout_s:g} s", True
        if isinstance(exc, o.APIConnectionError):
            cause = exc.__cause__ or exc
            return f"transport: connection error ({type(cause).__name__}: {cause})", True
        if isinstance(exc, _MalformedBody):
            return f"transport: {exc}", True
        if isinstance(exc, o.APIStatusError):
            code = exc.status_code
            msg = " ".join(str(getattr(exc, "message", exc)).split())[:300]
            text = f"http {code}: {msg}"
            llamacpp = code == 500 and schema and self.server_kind == "llama.cpp"
            hint = (" (llama.cpp's server answers 500 to json_schema: try llm.dialect "
                    "llamacpp_json_object or grammar)" if llamacpp else
                    " (the server refuses this structured-output format: try another llm.dialect; "
                    "econsim llm check finds one)")
            if code == 500 and schema and _is_dialect_error(msg):
                # the dialect, not the load: the same request fails the same way again
                self._permanent.add((code, msg))
            if (code, msg) in self._permanent:
                return text + hint + " (permanent: not retried)", False
            if llamacpp:
                text += hint
            return text, code in _RETRY_STATUS or code >= 500
        if isinstance(exc, json.JSONDecodeError | UnicodeDecodeError):
            return f"transport: truncated or malformed response body ({type(exc).__name__}: {exc})", True
        return f"backend: {type(exc).__name__}: {exc}", False

    async def _one(self, r: Request, breaker: CircuitBreaker | None = None) -> Response:
        kwargs = build_chat_kwargs(r, self.model, self.dialect)
        schema = r.constraint is not None and self.dialect == "openai_json_schema"
        retries = timeouts = 0
        t0 = time.perf_counter()
        while True:
            try:
                completion = await self._client.chat.completions.create(**kwargs)
                _check_body(completion)
            except Exception as exc:  # noqa: BLE001 - every failure becomes a recorded error
                text, retryable = self._classify(exc, schema=schema)
                if isinstance(exc, self._openai.APITimeoutError):
                    # a hung server: waiting timeout_s again and again only delays the verdict
                    timeouts += 1
                    retryable = retryable and timeouts <= self.read_timeout_retries
                if breaker is not None and breaker.open is not None:
                    retryable = False  # the batch has given up on this server
                if retryable and retries < self.retry.max_retries:
                    await asyncio.sleep(self.retry.delay(retries, self._rng))
                    if breaker is None or breaker.open is None:
                        retries += 1
                        continue
                kind = ("transport" if text.startswith("transport") or (retryable and text.startswith("http"))
                        else "request" if text.startswith("http") else "backend")
                return Response(
                    error=text, error_kind=kind, retries=retries, latency_s=time.perf_counter() - t0
                )
            break
        latency = time.perf_counter() - t0
        service = _server_service_s(completion)
        try:
            content = completion.choices[0].message.content or ""
        except (AttributeError, IndexError, TypeError):
            content = ""
        usage = getattr(completion, "usage", None)
        pt = int(getattr(usage, "prompt_tokens", 0) or 0)
        ct = int(getattr(usage, "completion_tokens", 0) or 0)
        value, err = parse_reply(content, r.constraint)
        return Response(
            text=content,
            value=value,
            prompt_tokens=pt,
            completion_tokens=ct,
            latency_s=latency,
            service_s=service,
            retries=retries,
            error=None if err is None else f"invalid reply: {err}",
            error_kind=None if err is None else "invalid",
        )

    def close(self) -> None:
        with self._lock:
            if self._loop is not None:
                if self._client is not None:
                    try:
                        self._loop.run(self._client.close())
                    except Exception:  # noqa: BLE001
                        pass
                self._loop.stop()
            self._loop = None
            self._client = None


def check(config: LLMConfig) -> None:
    """What :func:`build` rejects about ``config``, without connecting (``econsim validate``)."""
    if not config.model:
        raise UserError("llm.model: the openai backend needs the server's model name "
                        "(e.g. --set llm.model=my-model)")
    resolve_api_key(config.api_key_env, config.base_url, required=config.cache != "replay")


def build(config: LLMConfig, script: object = None) -> OpenAIModel:
    """The openai backend of ``config`` (:data:`simulator.llm.registry.BACKENDS`)."""
    check(config)
    return OpenAIModel(
        model=config.model,
        base_url=config.base_url,
        api_key=resolve_api_key(config.api_key_env, config.base_url, required=config.cache != "replay"),
        dialect=config.dialect or "openai_json_schema",
        concurrency=config.concurrency,
        timeout_s=config.timeout_s,
        connect_timeout_s=config.connect_timeout_s,
        retry=RetryPolicy(max_retries=config.max_retries),
        read_timeout_retries=config.read_timeout_retries,
        breaker_after=config.breaker_after,
    )
