"""Backend for any OpenAI-compatible server: ``/v1/completions``, and ``/v1/chat/completions`` for chats.

Servers: ``vllm serve``, llama.cpp, TGI. A chat prompt (react.inference.chat) is sent as
messages whose last, open assistant turn the server continues (vLLM's
``continue_final_message``); its tokens are counted as the server counts them: the
completion's ``usage``, and the prompt rendered with the model's own template (a local
tokenizer is needed for chats; the first chat checks that the server's ``/tokenize``
renders it to the same ids).

The model runs elsewhere (a GPU box, a shared server); this process only sends
prompts. One ``generate`` call sends its prompts in parallel, at most
``max_concurrency`` requests in flight, and returns them in prompt order with the
same stop semantics as the local backends (text cut at the first stop string,
stop excluded).

Plain ``httpx`` (react.http) rather than the ``openai`` client: the backend also needs the
servers' non-OpenAI endpoints (``/tokenize``, ``/props``) and vLLM's extra field
``max_model_len`` in ``/v1/models``, and it wants the project's retry policy and its own
error messages (URL, model, attempts, last error) instead of the client's.

Matching the offline vLLM backend: ``vllm serve`` applies the model's
``generation_config.json`` (e.g. a repetition penalty) to every request by default;
start it with ``--generation-config vllm`` (or send the neutral values through
``extra_body``) to get the outputs of ``LLM.generate``.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx

from react import http
from react.agent.parsing import truncate_at_stop
from react.inference.base import (
    EngineSettings,
    Generation,
    ModelLoadError,
    Sampling,
    common_options,
    count_tokens,
)
from react.inference.chat import Chat, Message, NoChatTemplate, Prompt, engine_template

log = logging.getLogger(__name__)

PROBE_TEXT = "Question: Which magazine was started first?"
PROBE_CHAT = Chat((Message("user", PROBE_TEXT), Message("assistant", "Thought 1:")))


class ServerError(RuntimeError):
    """A request to the server failed for good; the message names the URL, the model and the last error."""


@dataclass(frozen=True)
class OpenAISettings(EngineSettings):
    """``dtype`` and ``threads`` are ignored (the server decides them); ``quantization`` must be None
    (quantize when starting the server); ``trust_remote_code`` only applies to a local ``tokenizer``."""

    section = "openai"

    base_url: str  # e.g. http://gpu-node:8000/v1
    served_model: str | None  # None: the model's location
    api_key_env: str | None  # the environment variable holding the key
    tokenizer: str | None  # a folder or hub id to count tokens with; None: the server's /tokenize
    max_model_len: int | None  # None: what the server reports
    max_concurrency: int
    timeout_s: float
    connect_timeout_s: float
    max_retries: int
    backoff_s: float
    max_backoff_s: float

    @classmethod
    def from_config(cls, model: Mapping[str, Any], backends: Mapping[str, Any], threads: int | None) -> OpenAISettings:
        """The model entry's server (`url`, ...) and `backends.openai`; tokens counted with its hf_id or path if any."""
        return cls(**common_options(model, threads), base_url=model["url"], served_model=model.get("served_model"),
                   api_key_env=model.get("api_key_env"),
                   tokenizer=model.get("tokenizer") or model.get("hf_id") or model.get("path"),
                   max_model_len=model["max_model_len"], **backends["openai"])


class OpenAIBackend:
    """Completions from an OpenAI-compatible server (see the module docstring).

    ``model_path`` is the served model name (what the server lists in ``/v1/models``)
    unless the settings' ``served_model`` is given. ``extra_body`` is merged into every
    completion request.
    """

    name = "openai"
    settings_type = OpenAISettings

    def __init__(self, model_path: str, model_name: str, settings: OpenAISettings, *,
                 extra_body: dict[str, Any] | None = None) -> None:
        self.model_name = model_name
        self.served_model = settings.served_model or model_path
        self.base_url = settings.base_url.rstrip("/")
        # /tokenize and /props live at the server's root, next to /v1.
        self.root_url = self.base_url.removesuffix("/v1")
        self.completions_url = f"{self.base_url}/completions"
        self.chat_url = f"{self.base_url}/chat/completions"
        self.models_url = f"{self.base_url}/models"
        where = f"model {model_name!r} (served as {self.served_model!r} at {self.base_url})"
        if settings.quantization:
            raise ModelLoadError(
                f"{where}: backend 'openai' cannot quantize ({settings.quantization!r}); quantize when starting "
                "the server and set the model's quantization to none"
            )
        if settings.max_concurrency < 1 or settings.max_retries < 0 or settings.timeout_s <= 0:
            raise ValueError(f"{where}: need max_concurrency >= 1, max_retries >= 0, timeout_s > 0")
        if settings.dtype or settings.threads:
            log.debug("backend 'openai' ignores dtype=%s threads=%s: the server decides them", settings.dtype,
                      settings.threads)
        self.max_concurrency = settings.max_concurrency
        # 408, 429, 5xx and dropped connections; a Retry-After is capped like a backoff; +10 % jitter.
        self.retry = http.RetryPolicy(attempts=settings.max_retries + 1, base_delay=settings.backoff_s,
                                      max_delay=settings.max_backoff_s, jitter=0.1,
                                      statuses=frozenset({408, 429}), errors=(httpx.TransportError,))
        timeout_s, connect_timeout_s = settings.timeout_s, settings.connect_timeout_s
        self.probe_timeout = httpx.Timeout(min(connect_timeout_s, timeout_s))
        self.extra_body = dict(extra_body or {})
        headers = {}
        if settings.api_key_env:
            key = os.environ.get(settings.api_key_env)
            if not key:
                raise ModelLoadError(f"{where}: the API key variable {settings.api_key_env} is not set")
            headers["Authorization"] = f"Bearer {key}"
        self.client = http.client(
            timeout=timeout_s,
            connect_timeout=min(connect_timeout_s, timeout_s),
            headers=headers,
            follow_redirects=False,
            # Headroom over the pool's threads for probes and one-prompt calls made from the caller's thread.
            limits=httpx.Limits(max_connections=self.max_concurrency + 2,
                                max_keepalive_connections=self.max_concurrency),
        )
        self.pool = ThreadPoolExecutor(max_workers=self.max_concurrency, thread_name_prefix="openai-backend")
        self._down: str | None = None  # the last unreachable-server error, see _check_up
        self._lock = threading.Lock()
        try:
            self._start(where, settings.tokenizer, settings.max_model_len, settings.trust_remote_code)
        except BaseException:
            self.close()
            raise

    # -- construction -----------------------------------------------------------------

    def _start(self, where: str, tokenizer: str | None, max_model_len: int | None,
               trust_remote_code: bool) -> None:
        try:
            models = self._request("GET", self.models_url, None, retry_transport=False,
                                   timeout=self.probe_timeout)
        except ServerError as exc:
            raise ModelLoadError(f"{where}: {exc}") from exc
        entries = models.get("data") if isinstance(models, dict) else None
        if not isinstance(entries, list):
            raise ModelLoadError(f"{where}: GET {self.models_url} is not an OpenAI model list: "
                                 f"{_snippet(json.dumps(models))}")
        served = {m.get("id"): m for m in entries if isinstance(m, dict)}
        if self.served_model not in served:
            raise ModelLoadError(f"{where}: the server does not serve {self.served_model!r} "
                                 f"(it serves {sorted(map(str, served))}); set `served_model`")
        server_len = served[self.served_model].get("max_model_len")

        self.tokenizer = None
        self.chat_template = None
        self._chat_checked = False
        self._tokenize_dialect: str | None = None
        if tokenizer:
            from transformers import AutoTokenizer

            try:
                self.tokenizer = AutoTokenizer.from_pretrained(tokenizer, trust_remote_code=trust_remote_code)
            except Exception as exc:  # any loader failure names the tokenizer
                raise ModelLoadError(f"{where}: tokenizer {tokenizer!r} does not load: {exc}") from exc
            self.chat_template = engine_template(self.tokenizer, self.model_name)
        else:
            self._tokenize_dialect = self._find_tokenize_dialect()
            if self._tokenize_dialect is None:
                raise ModelLoadError(
                    f"{where}: cannot count tokens: POST {self.root_url}/tokenize answers none of the "
                    "vLLM, llama.cpp or TGI forms; set `tokenizer` (a model folder or hub id)"
                )

        if max_model_len:
            self.max_context = int(max_model_len)
            if server_len and int(server_len) < self.max_context:
                log.warning("%s: max_model_len %d is more than the server's %d", where, self.max_context,
                            server_len)
        elif server_len:
            self.max_context = int(server_len)
        else:
            n_ctx = self._llama_cpp_context()
            if not n_ctx:
                raise ModelLoadError(f"{where}: the server does not report its context length; "
                                     "set `max_model_len` in the backend options")
            self.max_context = n_ctx
        log.info("%s: context %d tokens, tokens counted by %s, %d requests at a time", where,
                 self.max_context, tokenizer or f"the server's /tokenize ({self._tokenize_dialect})",
                 self.max_concurrency)

    def _find_tokenize_dialect(self) -> str | None:
        for dialect in ("vllm", "llama.cpp", "tgi"):
            try:
                response = self.client.post(f"{self.root_url}/tokenize", json=self._tokenize_body(
                    dialect, PROBE_TEXT, True), timeout=self.probe_timeout)
                if response.is_success and _parse_token_count(dialect, response.json()) > 0:
                    return dialect
            except (httpx.HTTPError, ValueError, KeyError, TypeError):
                continue
        return None

    def _llama_cpp_context(self) -> int | None:
        try:
            response = self.client.get(f"{self.root_url}/props", timeout=self.probe_timeout)
            props = response.json() if response.is_success else {}
            n_ctx = props.get("default_generation_settings", {}).get("n_ctx") or props.get("n_ctx")
            return int(n_ctx) if n_ctx else None
        except (httpx.HTTPError, ValueError, AttributeError, TypeError):
            return None

    # -- the Backend protocol -------------------------------------------------------

    def generate(
        self, prompts: list[Prompt], stop: list[str], sampling: Sampling, seeds: list[int]
    ) -> list[Generation]:
        if len(seeds) != len(prompts):
            raise ValueError(f"{len(prompts)} prompts but {len(seeds)} seeds")
        self._check_up()
        if any(isinstance(p, Chat) for p in prompts):
            self._check_chat()
        greedy = sampling.temperature <= 0
        bodies = []
        for prompt, seed in zip(prompts, seeds):
            body: dict[str, Any] = {
                **self.extra_body,
                "model": self.served_model,
                "max_tokens": sampling.max_new_tokens,
                "temperature": 0.0 if greedy else sampling.temperature,
                "top_p": 1.0 if greedy else sampling.top_p,
                "stream": False,
            }
            if isinstance(prompt, Chat):
                # The server continues the open assistant turn rather than starting a new one.
                body.update(messages=prompt.as_dicts(), add_generation_prompt=False, continue_final_message=True)
            else:
                body["prompt"] = prompt
            if stop:
                body["stop"] = list(stop)
            if not greedy:
                body["seed"] = seed
            bodies.append(body)
        return self._map(lambda body: self._complete(body, stop), bodies)

    def count_tokens(self, prompts: list[Prompt]) -> list[int]:
        """Prompt lengths as the server sees them (special tokens included; a chat as its template renders it)."""
        texts = [p for p in prompts if isinstance(p, str)]
        counted = iter(self._count(texts, special=True) if texts else [])
        return [next(counted) if isinstance(p, str) else len(self._template().token_ids(p)) for p in prompts]

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)
        self.client.close()

    # -- requests ----------------------------------------------------------------------

    def _template(self):
        if self.chat_template is None:
            raise NoChatTemplate(f"model {self.model_name!r}: a chat prompt needs the model's chat template; give "
                                 "the model a `tokenizer` (or hf_id/path) that has one")
        return self.chat_template

    def _check_chat(self) -> None:
        """Once: the server renders a probe chat to the ids our template gives, or the run stops here.

        A server started with another template (``--chat-template``) or adding a BOS of its own
        would otherwise change every prompt silently. Servers without vLLM's chat ``/tokenize``
        cannot be checked (logged).
        """
        if self._chat_checked:
            return
        expected = self._template().token_ids(PROBE_CHAT)
        try:
            response = self.client.post(f"{self.root_url}/tokenize", timeout=self.probe_timeout, json={
                "model": self.served_model, "messages": PROBE_CHAT.as_dicts(), "add_generation_prompt": False,
                "continue_final_message": True, "add_special_tokens": False})
            served = response.json().get("tokens") if response.is_success else None
        except (httpx.HTTPError, ValueError, AttributeError) as exc:
            served = None
            log.debug("chat /tokenize probe failed: %s", exc)
        if served is None:
            log.warning("model %r: the server at %s cannot tokenize a chat (vLLM's /tokenize with messages); "
                        "its template is assumed to be the local tokenizer's", self.model_name, self.root_url)
        elif list(served) != expected:
            raise ModelLoadError(
                f"model {self.model_name!r}: the server at {self.base_url} renders a chat differently from the "
                f"model's own template ({len(served)} tokens, expected {len(expected)}: first ids {served[:8]} vs "
                f"{expected[:8]}); start it without --chat-template, or point `tokenizer` at what it serves")
        self._chat_checked = True

    def _complete(self, body: dict[str, Any], stop: list[str]) -> Generation:
        chat = "messages" in body
        url = self.chat_url if chat else self.completions_url
        answer = self._request("POST", url, body)
        try:
            choice = answer["choices"][0]
            text = (choice["message"]["content"] or "") if chat else choice["text"]
            if not isinstance(text, str):
                raise TypeError("text is not a string")
            usage = answer.get("usage") or {}
            n_tokens = usage.get("completion_tokens")
        except (KeyError, IndexError, TypeError, AttributeError) as exc:
            raise ServerError(f"POST {url} (model {self.served_model!r}) answered "
                              f"something that is not a completion ({exc}): {_snippet(json.dumps(answer))}"
                              ) from exc
        if not isinstance(n_tokens, int):  # one text: counted in this worker thread, not the pool
            n_tokens = self._count([text], special=False)[0]
        finish = "length" if choice.get("finish_reason") == "length" else "stop"
        return Generation(truncate_at_stop(text, stop), n_tokens, finish)

    def _count(self, texts: list[str], special: bool) -> list[int]:
        if self.tokenizer is not None:
            if special:
                return count_tokens(self.tokenizer, texts)
            return [len(ids) for ids in self.tokenizer(texts, add_special_tokens=False)["input_ids"]]
        self._check_up()
        dialect = self._tokenize_dialect
        url = f"{self.root_url}/tokenize"

        def one(text: str) -> int:
            answer = self._request("POST", url, self._tokenize_body(dialect, text, special))
            try:
                return _parse_token_count(dialect, answer)
            except (KeyError, TypeError, AttributeError) as exc:
                raise ServerError(f"POST {url} (model {self.served_model!r}) answered no token count: "
                                  f"{_snippet(json.dumps(answer))}") from exc

        return self._map(one, texts)

    def _tokenize_body(self, dialect: str | None, text: str, special: bool) -> dict[str, Any]:
        if dialect == "vllm":
            return {"model": self.served_model, "prompt": text, "add_special_tokens": special}
        if dialect == "llama.cpp":
            return {"content": text, "add_special": special}
        return {"inputs": text, "add_special_tokens": special}  # TGI

    def _map(self, fn, items: list) -> list:
        """``fn`` over ``items`` with at most ``max_concurrency`` in flight, results in order."""
        if len(items) <= 1 or self.max_concurrency == 1:
            return [fn(item) for item in items]
        futures: list[Future] = [self.pool.submit(fn, item) for item in items]
        try:
            return [f.result() for f in futures]
        except BaseException:
            for f in futures:
                f.cancel()
            raise

    def _check_up(self) -> None:
        """After the server stopped answering, one quick probe instead of a full retry cycle per prompt.

        The agent retries a failed batch prompt by prompt; without this, a dead server
        would cost every prompt all its retries and timeouts.
        """
        with self._lock:
            down = self._down
        if down is None:
            return
        try:
            self.client.get(self.models_url, timeout=self.probe_timeout).raise_for_status()
        except httpx.HTTPError as exc:
            raise ServerError(f"the server at {self.base_url} (model {self.served_model!r}) is still not "
                              f"answering ({type(exc).__name__}: {exc}); earlier: {down}") from exc
        with self._lock:
            self._down = None

    def _request(self, method: str, url: str, body: dict[str, Any] | None, retry_transport: bool = True,
                 timeout: httpx.Timeout | None = None) -> Any:
        """One JSON request with retries on 408, 429, 5xx and dropped connections; the parsed JSON answer."""
        what = f"{method} {url} (model {self.served_model!r})"

        def on_retry(failure: http.Transient, n: int, delay: float) -> None:
            log.warning("%s: %s; attempt %d of %d in %.1f s", what, failure.reason, n + 1, self.retry.attempts,
                        delay)

        try:
            return http.with_retries(lambda n: self._attempt(method, url, body, what, timeout, retry_transport),
                                     self.retry, on_retry=on_retry)
        except http.RetriesExhausted as exc:
            if exc.last.transport:
                with self._lock:
                    self._down = f"{what}: {exc.last.reason}"
            raise ServerError(f"{what} failed after {exc.attempts} attempt(s); last error: {exc.last.reason}"
                              ) from None

    def _attempt(self, method: str, url: str, body: dict[str, Any] | None, what: str,
                 timeout: httpx.Timeout | None, retry_transport: bool) -> Any:
        kwargs: dict[str, Any] = {"json": body} if body is not None else {}
        if timeout is not None:
            kwargs["timeout"] = timeout
        try:
            response = self.client.request(method, url, **kwargs)
        except httpx.ReadTimeout as exc:
            # Not retried: the server took the request and is still busy with it; sending it
            # again only adds load. Raise at once, naming the limit.
            with self._lock:
                self._down = f"{what}: no answer within the timeout"
            limit = (timeout or self.client.timeout).read
            raise ServerError(f"{what}: no answer within {limit} s (timeout_s): {exc}") from exc
        except httpx.HTTPError as exc:  # refused, reset, connect timeout, dropped mid-answer
            if not self.retry.retries_error(exc):
                raise
            reason = f"{type(exc).__name__}: {exc}"
            if not retry_transport:
                raise ServerError(f"{what} failed: {reason} (is the server running?)") from None
            raise http.Transient(reason, transport=True) from exc
        status = response.status_code
        if self.retry.retries_status(status):
            raise http.Transient(f"HTTP {status}: {_error_message(response)}", status,
                                 http.parse_retry_after(response.headers.get("retry-after")))
        if not response.is_success:
            raise ServerError(f"{what} was refused: HTTP {status}: {_error_message(response)}")
        try:
            return response.json()
        except ValueError as exc:
            raise ServerError(f"{what} answered HTTP {status} with a body that is not JSON: "
                              f"{_snippet(response.text)!r}") from exc


def _parse_token_count(dialect: str | None, answer: Any) -> int:
    if dialect == "vllm":
        return int(answer["count"]) if "count" in answer else len(answer["tokens"])
    if dialect == "llama.cpp":
        return len(answer["tokens"])
    if not isinstance(answer, list):  # TGI: a list of {id, text, start, stop}
        raise TypeError("not a token list")
    return len(answer)


def _error_message(response: httpx.Response) -> str:
    """The server's own words: OpenAI's {"error": {"message"}}, FastAPI's {"detail"}, or the raw body."""
    try:
        answer = response.json()
    except ValueError:
        return _snippet(response.text)
    if isinstance(answer, dict):
        error = answer.get("error")
        if isinstance(error, dict) and error.get("message"):
            return _snippet(str(error["message"]))
        for key in ("error", "message", "detail"):
            if answer.get(key):
                return _snippet(str(answer[key]))
    return _snippet(response.text)


def _snippet(text: str, limit: int = 300) -> str:
    return text if len(text) <= limit else text[:limit] + f"... ({len(text)} characters)"
