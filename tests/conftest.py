from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from tiny_model import PROJECT, build_tiny_model  # noqa: E402

from react.backends import Generation, Sampling  # noqa: E402


@pytest.fixture(scope="session")
def project_dir() -> Path:
    return PROJECT


@pytest.fixture(scope="session")
def prompt_prefix() -> str:
    from react.prompts import REACT_PROMPT, read_prompt

    return read_prompt(REACT_PROMPT)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("models") / "tiny-llama")


class ScriptedBackend:
    """Plays given completions: a stand-in for a model whose exact output a test needs.

    ``script(prompt, stop)`` returns the raw completion; the stop string is cut
    here exactly as the real backends do. ``fail`` makes chosen prompts raise.
    """

    name = "scripted"

    def __init__(self, script, max_context: int = 100_000, fail=None):
        self.script = script
        self.max_context = max_context
        self.fail = fail or (lambda prompt: False)
        self.calls: list[list[str]] = []

    def count_tokens(self, texts):
        return [len(t) // 4 for t in texts]

    def generate(self, prompts, stop, sampling: Sampling, seeds):
        from react.parsing import truncate_at_stop

        self.calls.append(list(prompts))
        if any(self.fail(p) for p in prompts):
            raise RuntimeError("engine refused the prompt")
        out = []
        for prompt in prompts:
            text = self.script(prompt, stop)
            out.append(Generation(truncate_at_stop(text, stop), len(text.split()), "stop"))
        return out

    def close(self):
        pass


@pytest.fixture
def scripted():
    return ScriptedBackend
