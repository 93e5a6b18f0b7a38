"""Resource safety: model text is data, never code; remote code only where a config asks for it by
model name; live Wikipedia requests only to the configured host, with timeouts (the host and
timeout tests live in test_wiki_live.py: test_requests_never_leave_the_configured_host,
test_server_that_never_answers_* and the retry tests)."""

from __future__ import annotations

import ast
from pathlib import Path

import yaml

from react.agent.loop import AgentConfig, Task, run_agent
from react.config.settings import engine_settings
from react.config.validate import validate_config
from react.environment.offline import WikiEnv
from react.search.index import Corpus

PROJECT = Path(__file__).resolve().parent.parent
CODE_RUNNERS = {"eval", "exec", "compile", "__import__"}
UNSAFE_LOADS = {("pickle", "loads"), ("pickle", "load"), ("marshal", "loads"), ("yaml", "load")}


def python_sources():
    return sorted([*(PROJECT / "src/react").rglob("*.py"), *(PROJECT / "workflow/scripts").glob("*.py")])


def test_no_code_ever_runs_text():
    """No eval/exec/compile/__import__, no pickle or unsafe YAML loading anywhere in the library or scripts."""
    found = []
    for path in python_sources():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call):
                func = node.func
                if isinstance(func, ast.Name) and func.id in CODE_RUNNERS:
                    found.append(f"{path.name}:{node.lineno} {func.id}()")
                if (isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name)
                        and (func.value.id, func.attr) in UNSAFE_LOADS):
                    found.append(f"{path.name}:{node.lineno} {func.value.id}.{func.attr}()")
    assert not found


def test_a_completion_that_is_code_stays_text(scripted, tmp_path):
    marker = tmp_path / "PWNED"
    payload = f"__import__('os').system('touch {marker}')"
    corpus = Corpus.from_paragraphs({"A": ["A is a page."]})
    outputs = iter([f" run it\nAction 1: Search[{payload}]", f" x\nAction 2: {payload}",
                    f" x\nAction 3: Finish[{payload}]"])
    [episode] = run_agent([Task("q", "q?", "a", "dev")], scripted(lambda p, s: next(outputs)),
                          lambda protocol: WikiEnv(corpus, protocol), "P\n", AgentConfig(max_steps=3))
    assert not marker.exists()
    assert episode.prediction == payload
    assert [s["action_type"] for s in episode.steps] == ["search", "invalid", "finish"]


def test_remote_code_only_for_the_model_whose_entry_turns_it_on(project_dir, tiny_model):
    config = yaml.safe_load((project_dir / "config/config.yaml").read_text())
    config["models"]["trusted"] = {"path": str(tiny_model), "backend": "transformers", "trust_remote_code": True}
    config["models"]["other"] = {"hf_id": "a/b", "backend": "transformers"}
    config = validate_config(config)
    for name, expected in (("smollm2-135m", False), ("other", False), ("trusted", True)):
        settings = engine_settings(config["models"][name], config["backends"], None)
        assert settings.trust_remote_code is expected, name


def test_remote_code_is_never_switched_on_in_code():
    for path in python_sources():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.keyword) and node.arg == "trust_remote_code":
                assert not (isinstance(node.value, ast.Constant) and node.value.value is True), (
                    f"{path.name}:{node.value.lineno}")


def test_schema_default_for_remote_code_is_off(project_dir):
    schema = yaml.safe_load((project_dir / "src/react/config/schema.yaml").read_text())
    assert schema["$defs"]["model"]["properties"]["trust_remote_code"]["default"] is False
