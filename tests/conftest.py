from __future__ import annotations

from pathlib import Path

import pytest
from tiny_model import PROJECT, build_tiny_model

from react.inference.backends import Generation, Sampling
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
        from react.agent.parsing import truncate_at_stop

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
