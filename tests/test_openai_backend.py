"""The OpenAI-compatible backend: against a real `vllm serve` of the tiny model, and a scripted fake
server for the failures a real one cannot be made to produce on demand."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from react.config.settings import default_engine_settings
from react.inference.base import ModelLoadError, Sampling
from react.inference.openai import OpenAIBackend, ServerError
from react.inference.registry import ModelRef, start_engine
from react.inference.transformers import TransformersBackend
from react.threads import affinity_cpu_ids

GREEDY = Sampling(max_new_tokens=24)
SERVER_START_LIMIT_S = 240


def openai_backend(base_url: str, name: str = "tiny", extra_body: dict | None = None, **fields) -> OpenAIBackend:
    """The backend for ``name`` served at ``base_url``, with the schema's default settings but ``fields``."""
    settings = default_engine_settings("openai", base_url=base_url, **fields)
    return OpenAIBackend(name, name, settings, extra_body=extra_body)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# -- a real server ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def prompts(prompt_prefix):
    return [f"{prompt_prefix}Question: {q}\nThought 1:" for q in
            ("Who is older?", "Which magazine was started first?", "Were they both American?")]


@pytest.fixture(scope="module")
def served_dir(tiny_chat_model):
    """What the real server serves: the tiny model with a chat template (raw prompts work on it too)."""
    return tiny_chat_model


@pytest.fixture(scope="module")
def hf(served_dir):
    return TransformersBackend(str(served_dir), "tiny", default_engine_settings("transformers", batch_size=3))


def server_command(model_dir, port: int) -> list[str]:
    return [
        sys.executable, "-m", "vllm.entrypoints.openai.api_server",
        "--model", str(model_dir), "--served-model-name", "tiny",
        "--host", "127.0.0.1", "--port", str(port),
        "--dtype", "float32", "--enforce-eager", "--max-model-len", "8192", "--seed", "0",
        # No sampling defaults from generation_config.json: the requests alone decide, as in LLM.generate.
        "--generation-config", "vllm",
    ]


@pytest.fixture(scope="module")
def vllm_server(served_dir, tmp_path_factory):
    """`vllm serve` of the tiny model on CPU; yields its base URL; the process group dies in teardown."""
    port = free_port()
    env = {
        **os.environ,
        "VLLM_CPU_OMP_THREADS_BIND": ",".join(map(str, affinity_cpu_ids())),
        "VLLM_CPU_NUM_OF_RESERVED_CPU": "0",
        "VLLM_CPU_KVCACHE_SPACE": "1",
        "HF_HUB_OFFLINE": "1",
    }
    log_path = tmp_path_factory.mktemp("vllm-server") / "server.log"
    started = time.perf_counter()
    with open(log_path, "wb") as log_file:
        proc = subprocess.Popen(server_command(served_dir, port), stdout=log_file, stderr=subprocess.STDOUT,
                                env=env, start_new_session=True)
    try:
        deadline = started + SERVER_START_LIMIT_S
        while True:
            if proc.poll() is not None:
                pytest.fail(f"vllm server exited with {proc.returncode}:\n{log_path.read_text()[-3000:]}")
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.perf_counter() > deadline:
                pytest.fail(f"vllm server not healthy after {SERVER_START_LIMIT_S} s:\n"
                            f"{log_path.read_text()[-3000:]}")
            time.sleep(0.5)
        print(f"\nvllm server healthy after {time.perf_counter() - started:.1f} s", file=sys.stderr)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
        except ProcessLookupError:
            pass


@pytest.fixture(scope="module")
def served(vllm_server):
    backend = openai_backend(vllm_server, max_concurrency=4)
    yield backend
    backend.close()


@pytest.mark.slow
@pytest.mark.vllm
@pytest.mark.skipif(importlib.util.find_spec("vllm") is None, reason="vllm is not installed")
class TestVLLMServer:
    def test_greedy_matches_transformers(self, served, hf, prompts):
        expected = hf.generate(prompts, [], GREEDY, [0, 0, 0])
        got = served.generate(prompts, [], GREEDY, [0, 0, 0])
        assert got == expected  # text, 24 tokens, "length"
        stop = expected[0].text[5:8]  # a string the model is known to produce
        expected_cut = hf.generate(prompts, [stop], GREEDY, [0, 0, 0])
        got_cut = served.generate(prompts, [stop], GREEDY, [0, 0, 0])
        assert [(g.text, g.finish) for g in got_cut] == [(g.text, g.finish) for g in expected_cut]
        assert got_cut[0].text == expected[0].text[: expected[0].text.index(stop)]
        assert got_cut[0].finish == "stop"

    def test_concurrency_does_not_change_results(self, vllm_server, served, prompts):
        many = [p + suffix for p in prompts for suffix in ("", " The")]
        one_at_a_time = openai_backend(vllm_server, max_concurrency=1)
        try:
            for sampling in (GREEDY, Sampling(max_new_tokens=12, temperature=1.0, top_p=0.9)):
                seeds = list(range(len(many)))
                serial = one_at_a_time.generate(many, ["\n"], sampling, seeds)
                assert served.generate(many, ["\n"], sampling, seeds) == serial
        finally:
            one_at_a_time.close()

    def test_count_tokens_matches_local_tokenizer(self, vllm_server, served, hf, served_dir, prompts):
        texts = [*prompts, "", "Question: x"]
        assert served.count_tokens(texts) == hf.count_tokens(texts)
        local = openai_backend(vllm_server, tokenizer=str(served_dir))
        try:
            assert local.count_tokens(texts) == hf.count_tokens(texts)
        finally:
            local.close()

    def test_chats_go_to_chat_completions_and_continue_the_assistant_turn(self, vllm_server, hf, served_dir,
                                                                           prompts):
        """The server renders the chat with the model's template, as the in-process engine does."""
        from react.inference.chat import Chat, Message

        chats = [Chat((Message("user", p.removesuffix("\nThought 1:")), Message("assistant", "Thought 1:")))
                 for p in prompts]
        backend = openai_backend(vllm_server, tokenizer=str(served_dir))
        try:
            got = backend.generate(chats, [], GREEDY, [0, 0, 0])
            assert got == hf.generate(chats, [], GREEDY, [0, 0, 0])
            assert backend.count_tokens(chats) == hf.count_tokens(chats)
            assert backend._chat_checked  # the server's /tokenize rendered the probe chat to our ids
        finally:
            backend.close()

    def test_a_chat_needs_the_template_locally(self, vllm_server, served):
        from react.inference.chat import Chat, Message, NoChatTemplate

        with pytest.raises(NoChatTemplate, match="tokenizer"):
            served.count_tokens([Chat((Message("user", "Q"), Message("assistant", "Thought 1:")))])

    def test_context_from_server_or_option(self, vllm_server, served):
        assert served.max_context == 8192
        capped = openai_backend(vllm_server, max_model_len=4096)
        assert capped.max_context == 4096
        capped.close()

    def test_too_long_prompt_is_refused_at_once(self, served, prompt_prefix):
        started = time.perf_counter()
        with pytest.raises(ServerError, match=r"(?s)/v1/completions \(model 'tiny'\).*HTTP 400.*context length"):
            served.generate([prompt_prefix * 3], [], GREEDY, [0])
        assert time.perf_counter() - started < 10  # a 400 is not retried

    def test_model_the_server_does_not_serve(self, vllm_server):
        with pytest.raises(ModelLoadError, match=r"does not serve 'smollm2'.*\['tiny'\]"):
            start_engine(ModelRef("smollm2", "smollm2", "openai",
                                  default_engine_settings("openai", base_url=vllm_server)))


# -- a scripted fake server ----------------------------------------------------------------

FAST = {"backoff_s": 0.01, "max_backoff_s": 0.05, "timeout_s": 2.0, "connect_timeout_s": 1.0, "max_retries": 2}
HANG = "hang"


def reply(status: int = 200, body=None, headers: dict | None = None, raw: bytes | None = None):
    data = raw if raw is not None else json.dumps(body if body is not None else {}).encode()
    return status, headers or {}, data


def completion(text: str, finish: str = "length", tokens: int | None = 5):
    body = {"object": "text_completion", "choices": [{"index": 0, "text": text, "finish_reason": finish}]}
    if tokens is not None:
        body["usage"] = {"completion_tokens": tokens, "prompt_tokens": 3}
    return reply(200, body)


def echo(request):
    """Answers the prompt reversed, after a delay that makes later prompts finish first."""
    prompt = request["prompt"]
    time.sleep(0.02 * (10 - len(prompt) % 10))
    return completion(prompt[::-1])


class FakeServer:
    """Each path answers its queued replies in turn, repeating the last; a reply may be a function of the
    request's JSON or HANG (no answer until teardown)."""

    def __init__(self) -> None:
        self.replies: dict[str, list] = {
            "/v1/models": [reply(200, {"object": "list", "data": [{"id": "tiny", "max_model_len": 2048}]})],
            "/tokenize": [lambda request: reply(200, {"count": len(request["prompt"].split())})],
            "/v1/completions": [echo],
        }
        self.requests: list[tuple[str, str, dict | None, dict]] = []
        self.release = threading.Event()
        self.lock = threading.Lock()
        self.in_flight = self.max_in_flight = 0
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                fake.handle(self)

            def do_POST(self) -> None:
                fake.handle(self)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_port}/v1"
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def handle(self, h: BaseHTTPRequestHandler) -> None:
        length = int(h.headers.get("content-length") or 0)
        raw = h.rfile.read(length) if length else b""
        try:
            request = json.loads(raw) if raw else None
        except ValueError:
            request = None
        with self.lock:
            self.requests.append((h.command, h.path, request, dict(h.headers)))
            queue = self.replies.get(h.path, [reply(404, {"error": {"message": "no such path"}})])
            answer = queue.pop(0) if len(queue) > 1 else queue[0]
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if answer == HANG:
                self.release.wait(30)
                return
            status, headers, data = answer(request) if callable(answer) else answer
        finally:
            with self.lock:  # before answering: the client may send its next request at once
                self.in_flight -= 1
        h.send_response(status)
        for key, value in {"Content-Type": "application/json", **headers}.items():
            h.send_header(key, value)
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        h.wfile.write(data)

    def calls(self, path: str) -> list[dict | None]:
        return [request for _, p, request, _ in self.requests if p == path]

    def stop(self) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def fake():
    server = FakeServer()
    yield server
    server.stop()


@pytest.fixture
def backend_for(fake):
    made = []

    def make(**options):
        backend = openai_backend(fake.url, **{**FAST, **options})
        made.append(backend)
        return backend

    yield make
    for backend in made:
        backend.close()


def test_requests_in_prompt_order_with_bounded_concurrency(fake, backend_for):
    backend = backend_for(max_concurrency=3)
    prompts = [f"prompt {i}" * (i + 1) for i in range(10)]
    gens = backend.generate(prompts, [], Sampling(max_new_tokens=7), list(range(10)))
    assert [g.text for g in gens] == [p[::-1] for p in prompts]
    assert 1 < fake.max_in_flight <= 3
    body = fake.calls("/v1/completions")[0]
    assert body["model"] == "tiny" and body["max_tokens"] == 7
    assert body["temperature"] == 0 and body["top_p"] == 1.0
    assert "seed" not in body and "stop" not in body  # greedy: no seed; no stop strings: none sent


def test_sampling_sends_each_prompts_seed_and_extra_body(fake, backend_for):
    backend = backend_for(extra_body={"repetition_penalty": 1.0, "max_tokens": 999})
    backend.generate(["a", "bb"], ["\nObservation"], Sampling(12, temperature=0.7, top_p=0.9), [11, 22])
    bodies = sorted(fake.calls("/v1/completions"), key=lambda b: b["prompt"])
    assert [b["seed"] for b in bodies] == [11, 22]
    assert all(b["temperature"] == 0.7 and b["top_p"] == 0.9 and b["stop"] == ["\nObservation"] for b in bodies)
    assert all(b["repetition_penalty"] == 1.0 and b["max_tokens"] == 12 for b in bodies)


def test_stop_cut_token_count_and_finish(fake, backend_for):
    fake.replies["/v1/completions"] = [
        completion("Search[x]\nObservation 1: y", finish="stop", tokens=9),  # a server that keeps the stop
        completion("a b c", finish="length", tokens=None),  # no usage: counted through /tokenize
    ]
    backend = backend_for(max_concurrency=1)
    first, second = backend.generate(["p", "q"], ["\nObservation"], GREEDY, [0, 0])
    assert (first.text, first.n_tokens, first.finish) == ("Search[x]", 9, "stop")
    assert (second.text, second.n_tokens, second.finish) == ("a b c", 3, "length")
    assert fake.calls("/tokenize")[-1]["add_special_tokens"] is False


def test_429_is_retried_after_retry_after(fake, backend_for):
    fake.replies["/v1/completions"] = [reply(429, {"error": {"message": "slow down"}}, {"Retry-After": "1"}),
                                       completion("ok")]
    backend = backend_for(max_backoff_s=5)
    started = time.perf_counter()
    assert backend.generate(["p"], [], GREEDY, [0])[0].text == "ok"
    assert 1.0 <= time.perf_counter() - started < 4
    assert len(fake.calls("/v1/completions")) == 2


def test_503_is_retried(fake, backend_for):
    fake.replies["/v1/completions"] = [reply(503, raw=b"busy"), reply(502, raw=b"gateway"), completion("ok")]
    assert backend_for().generate(["p"], [], GREEDY, [0])[0].text == "ok"
    assert len(fake.calls("/v1/completions")) == 3


def test_408_is_retried_and_a_long_retry_after_is_capped_like_a_backoff(fake, backend_for):
    fake.replies["/v1/completions"] = [reply(408, raw=b"timeout"),
                                       reply(429, raw=b"", headers={"Retry-After": "3600"}),
                                       reply(503, raw=b"", headers={"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}),
                                       completion("ok")]
    started = time.perf_counter()
    assert backend_for(max_retries=3).generate(["p"], [], GREEDY, [0])[0].text == "ok"
    assert time.perf_counter() - started < 2  # max_backoff_s (0.05 s), not an hour; a past date: no wait
    assert len(fake.calls("/v1/completions")) == 4


def test_persistent_500_names_url_model_attempts_and_error(fake, backend_for):
    fake.replies["/v1/completions"] = [reply(500, {"error": {"message": "engine died"}})]
    with pytest.raises(ServerError) as info:
        backend_for(max_retries=2).generate(["p"], [], GREEDY, [0])
    message = str(info.value)
    assert f"{fake.url}/completions" in message and "'tiny'" in message
    assert "after 3 attempt(s)" in message and "HTTP 500: engine died" in message
    assert len(fake.calls("/v1/completions")) == 3


def test_400_is_not_retried(fake, backend_for):
    fake.replies["/v1/completions"] = [reply(400, {"error": {"message": "prompt too long"}})]
    with pytest.raises(ServerError, match="refused: HTTP 400: prompt too long"):
        backend_for().generate(["p"], [], GREEDY, [0])
    assert len(fake.calls("/v1/completions")) == 1


def test_garbage_answers(fake, backend_for):
    backend = backend_for()
    fake.replies["/v1/completions"] = [reply(200, raw=b"<html>proxy error</html>")]
    with pytest.raises(ServerError, match=r"(?s)/v1/completions \(model 'tiny'\).*not JSON.*proxy error"):
        backend.generate(["p"], [], GREEDY, [0])
    fake.replies["/v1/completions"] = [reply(200, {"result": "no choices"})]
    with pytest.raises(ServerError, match="not a completion"):
        backend.generate(["p"], [], GREEDY, [0])
    fake.replies["/v1/models"] = [reply(200, raw=b"{truncated")]
    with pytest.raises(ModelLoadError, match=f"{fake.url}/models.*not JSON"):
        backend_for()


def test_server_down_fails_fast_naming_the_url():
    url = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    started = time.perf_counter()
    with pytest.raises(ModelLoadError, match=f"model 'tiny'.*{url}.*ConnectError.*is the server running"):
        start_engine(ModelRef("tiny", "tiny", "openai", default_engine_settings("openai", base_url=url)))
    assert time.perf_counter() - started < 3


def test_server_that_never_answers_times_out():
    with socket.socket() as sock:  # accepts connections (the kernel's backlog) and never answers
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        url = f"http://127.0.0.1:{sock.getsockname()[1]}/v1"
        started = time.perf_counter()
        with pytest.raises(ModelLoadError, match=f"{url}/models.*no answer within 1.0 s"):
            openai_backend(url, **FAST)
        assert time.perf_counter() - started < 5


def test_hanging_completion_times_out_and_the_next_call_works(fake, backend_for):
    fake.replies["/v1/completions"] = [HANG, completion("ok")]
    backend = backend_for(timeout_s=1.0)
    started = time.perf_counter()
    with pytest.raises(ServerError, match="no answer within 1.0 s"):
        backend.generate(["p"], [], GREEDY, [0])
    assert time.perf_counter() - started < 4
    assert backend.generate(["p"], [], GREEDY, [0])[0].text == "ok"  # the server answers again


def test_server_gone_mid_run_fails_fast_on_later_calls(fake, backend_for):
    backend = backend_for(max_concurrency=2)
    assert len(backend.generate(["a", "b"], [], GREEDY, [0, 0])) == 2
    fake.stop()
    with pytest.raises(ServerError, match="failed after 3 attempt"):
        backend.generate(["a", "b"], [], GREEDY, [0, 0])
    started = time.perf_counter()
    for _ in range(5):  # the agent retries prompt by prompt: each one fails at once
        with pytest.raises(ServerError, match=f"server at {fake.url} .*still not answering"):
            backend.generate(["a"], [], GREEDY, [0])
    assert time.perf_counter() - started < 1


def test_llama_cpp_tokenize_and_props(fake, backend_for):
    fake.replies["/v1/models"] = [reply(200, {"object": "list", "data": [{"id": "tiny"}]})]
    fake.replies["/tokenize"] = [
        lambda r: reply(200, {"tokens": [1] * len(r["content"])}) if "content" in r else reply(500, raw=b"")
    ]
    fake.replies["/props"] = [reply(200, {"default_generation_settings": {"n_ctx": 4096}})]
    backend = backend_for()
    assert backend.max_context == 4096
    assert backend.count_tokens(["abc", "de"]) == [3, 2]
    assert {"content": "de", "add_special": True} in fake.calls("/tokenize")
    assert backend_for(max_model_len=1024).max_context == 1024


def test_no_token_count_or_context_length_is_a_clear_error(fake, backend_for, tiny_model):
    fake.replies["/tokenize"] = [reply(404, {"detail": "Not Found"})]
    with pytest.raises(ModelLoadError, match=r"cannot count tokens.*/tokenize.*set `tokenizer`"):
        backend_for()
    fake.replies["/v1/models"] = [reply(200, {"object": "list", "data": [{"id": "tiny"}]})]
    with pytest.raises(ModelLoadError, match="does not report its context length; set `max_model_len`"):
        backend_for(tokenizer=str(tiny_model))


def chat_completion(request):
    """Answers the open assistant turn's text reversed, as a chat completion with its usage."""
    text = request["messages"][-1]["content"][::-1]
    return reply(200, {"object": "chat.completion", "usage": {"completion_tokens": 9, "prompt_tokens": 3},
                       "choices": [{"index": 0, "finish_reason": "stop",
                                    "message": {"role": "assistant", "content": text}}]})


def test_a_chat_is_sent_as_messages_continuing_the_assistant_turn(fake, backend_for, tiny_chat_model):
    from react.inference.chat import Chat, Message

    fake.replies["/v1/chat/completions"] = [chat_completion]
    backend = backend_for(tokenizer=str(tiny_chat_model))
    expected = backend.chat_template.token_ids(Chat((Message("user", "Question: Which magazine was started first?"),
                                                     Message("assistant", "Thought 1:"))))
    fake.replies["/tokenize"] = [lambda r: reply(200, {"count": len(expected), "tokens": expected})]
    chat = Chat((Message("user", "Q"), Message("assistant", "Thought 1:")))
    gens = backend.generate([chat, "raw"], ["\n"], Sampling(12), [0, 0])
    assert [(g.text, g.n_tokens) for g in gens] == [(":1 thguohT", 9), ("war", 5)]
    body = fake.calls("/v1/chat/completions")[0]
    assert body["messages"] == [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "Thought 1:"}]
    assert body["continue_final_message"] is True and body["add_generation_prompt"] is False
    assert body["stop"] == ["\n"] and "prompt" not in body
    assert fake.calls("/v1/completions")[0]["prompt"] == "raw"


def test_a_server_rendering_chats_differently_is_refused(fake, backend_for, tiny_chat_model):
    """E.g. a server started with another --chat-template, or one adding a BOS of its own."""
    from react.inference.chat import Chat, Message

    fake.replies["/v1/chat/completions"] = [chat_completion]
    fake.replies["/tokenize"] = [lambda r: reply(200, {"count": 3, "tokens": [0, 0, 1]})]
    backend = backend_for(tokenizer=str(tiny_chat_model))
    with pytest.raises(ModelLoadError, match="renders a chat differently from the model's own template"):
        backend.generate([Chat((Message("user", "Q"), Message("assistant", "Thought 1:")))], [], Sampling(4), [0])
    assert not fake.calls("/v1/chat/completions")


def test_api_key_from_the_named_variable(fake, backend_for, monkeypatch):
    with pytest.raises(ModelLoadError, match="REACT_TEST_KEY is not set"):
        backend_for(api_key_env="REACT_TEST_KEY")
    monkeypatch.setenv("REACT_TEST_KEY", "sekret")
    backend_for(api_key_env="REACT_TEST_KEY").generate(["p"], [], GREEDY, [0])
    sent = [{key.lower(): value for key, value in headers.items()} for _, _, _, headers in fake.requests[-3:]]
    assert [headers.get("authorization") for headers in sent] == ["Bearer sekret"] * 3


def test_options_of_local_backends(fake, backend_for):
    backend = backend_for(dtype="bfloat16", threads=2, trust_remote_code=False, quantization=None)
    assert backend.name == "openai" and backend.max_context == 2048
    with pytest.raises(ModelLoadError, match="cannot quantize"):
        backend_for(quantization="nf4")
    with pytest.raises(TypeError, match="batch_size"):
        backend_for(batch_size=8)


# -- the backend inside the workflow -----------------------------------------------------


@pytest.mark.slow
@pytest.mark.vllm
@pytest.mark.skipif(importlib.util.find_spec("vllm") is None, reason="vllm is not installed")
def test_workflow_evaluates_a_served_model_like_the_same_model_in_process(vllm_server, project_dir, served_dir,
                                                                          tmp_path):
    from test_workflow import snakemake, tiny_config

    from react.io import read_parquet
    from react.schemas import EPISODE_SCHEMA

    # The same engine in process: a random model's near-tied logits make transformers and
    # vLLM kernels part ways within a few steps, so the reference is vLLM itself.
    # Raw text and chats (the served chats through /v1/chat/completions).
    config = tiny_config(served_dir)
    local = {"path": str(served_dir), "backend": "vllm", "max_model_len": 8192}
    served = {"url": vllm_server, "backend": "openai", "served_model": "tiny", "path": str(served_dir)}
    config["models"] = {"tiny": local, "served": served,
                        "tiny-chat": {**local, "format": "chat"}, "served-chat": {**served, "format": "chat"}}
    config["backends"] = {"vllm": {"kv_cache_gib": 1}}
    config["evaluation"]["models"] = ["tiny", "served", "tiny-chat", "served-chat"]
    result = snakemake(project_dir, tmp_path, config)
    assert result.returncode == 0, result.stderr[-3000:]
    for name in ("tiny", "tiny-chat"):
        local = read_parquet(tmp_path / f"results/eval/{name}.parquet", EPISODE_SCHEMA)
        served = read_parquet(tmp_path / f"results/eval/{name.replace('tiny', 'served')}.parquet", EPISODE_SCHEMA)
        assert set(served.column("backend").to_pylist()) == {"openai"}
        assert served.column("trajectory").to_pylist() == local.column("trajectory").to_pylist()
        for column in ("format", "chat_template_sha256"):
            assert served.column(column).to_pylist() == local.column(column).to_pylist()
    assert set(local.column("format").to_pylist()) == {"chat"} and local.column("chat_template_sha256")[0].as_py()


@pytest.mark.slow
def test_workflow_with_a_server_that_is_down_names_the_rule_and_url(project_dir, tiny_model, tmp_path):
    from test_workflow import snakemake, tiny_config

    config = tiny_config(tiny_model)
    url = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    config["models"] = {"served": {"url": url, "backend": "openai", "path": str(tiny_model)}}
    config["evaluation"]["models"] = ["served"]
    started = time.perf_counter()
    result = snakemake(project_dir, tmp_path, config)
    assert result.returncode != 0
    assert "Error in rule evaluate" in result.stderr and url in result.stderr, result.stderr[-3000:]
    assert time.perf_counter() - started < 120
    assert not (tmp_path / "results/eval/served.parquet").exists()
