"""The lockstep ReAct loop, driven by scripted completions and by a real (tiny) model."""

import re

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from react.agent.loop import AgentConfig, Task, episode_row, run_agent
from react.config.settings import default_engine_settings
from react.environment.offline import WikiEnv
from react.inference.base import Sampling
from react.inference.transformers import TransformersBackend
from react.schemas import EPISODE_SCHEMA
from react.search.index import Corpus

PAGES = {
    "Milhouse": [
        "Milhouse Mussolini Van Houten is a recurring character in the Fox animated television series "
        "The Simpsons voiced by Pamela Hayden and created by Matt Groening.",
        " Milhouse was named after U.S. president Richard Nixon, whose middle name was Milhous.",
    ],
    "Arthur's Magazine": ["Arthur's Magazine (1844-1846) was an American literary periodical."],
}
MILHOUSE = Task("q1", "Who was Milhouse named after?", "Richard Nixon", "dev", index=7)


@pytest.fixture(scope="module")
def corpus():
    return Corpus.from_paragraphs(PAGES)


def run(tasks, backend, corpus, prefix="PREFIX\n", **config):
    return run_agent(tasks, backend, lambda protocol: WikiEnv(corpus, protocol), prefix, AgentConfig(**config))


def step_of(prompt: str) -> int:
    return prompt.count("\nObservation ") + 1


def rows_of(episodes, config=AgentConfig()):
    rows = [episode_row(e, model="m", backend="scripted", config=config, prompt_sha256="p", corpus_sha256="c")
            for e in episodes]
    return pa.Table.from_pylist(rows, schema=EPISODE_SCHEMA).to_pylist()


def test_replays_the_articles_milhouse_example(scripted, corpus):
    script = {
        1: " The question simplifies to who Milhouse is named after.\nAction 1: Search[Milhouse]",
        2: " The paragraph does not tell who Milhouse is named after, maybe I can look up \"named after\".\n"
           "Action 2: Lookup[named after]",
        3: " Milhouse was named after U.S. president Richard Nixon, so the answer is Richard Nixon.\n"
           "Action 3: Finish[Richard Nixon]",
    }
    backend = scripted(lambda prompt, stop: script[step_of(prompt)] + f"\nObservation {step_of(prompt)}: made up")
    [episode] = run([MILHOUSE], backend, corpus)
    [row] = rows_of([episode])
    assert row["em"] and row["f1"] == 1.0 and row["finish_reason"] == "finished"
    assert (row["n_steps"], row["n_calls"], row["n_bad_calls"], row["n_invalid_actions"]) == (3, 3, 0, 0)
    # ReAct's sentence split at ". " cuts the sentence after "U.S." (the prompt's example was edited).
    assert row["steps"][1]["observation"] == "(Result 1 / 1) Milhouse was named after U.S."
    assert row["trajectory"].startswith(
        "Question: Who was Milhouse named after?\n"
        "Thought 1: The question simplifies to who Milhouse is named after.\n"
        "Action 1: Search[Milhouse]\n"
        "Observation 1: Milhouse Mussolini Van Houten is a recurring character"
    )
    # ReAct's wrapper writes the reward into the last observation; its "\n" stays.
    assert row["trajectory"].endswith("Action 3: Finish[Richard Nixon]\nObservation 3: Episode finished, reward = 1\n\n")
    # The prompt of step 1 is the prefix, the question and "Thought 1:", as in ReAct.
    assert backend.calls[0] == ["PREFIX\nQuestion: Who was Milhouse named after?\nThought 1:"]


def test_missing_action_line_gets_a_second_call(scripted, corpus):
    def script(prompt, stop):
        if stop == ["\n"]:  # the fallback call for the action
            assert prompt.endswith("Thought 1: I should search Milhouse.\nAction 1:")
            return " Search[Milhouse]\nmore"
        if step_of(prompt) == 1:
            return " I should search Milhouse.\nI forgot the action line"
        return " Done.\nAction 2: Finish[Richard Nixon]"

    backend = scripted(script)
    [row] = rows_of(run([MILHOUSE], backend, corpus))
    assert row["n_calls"] == 3 and row["n_bad_calls"] == 1
    assert row["steps"][0]["status"] == "no_action_line"
    assert row["steps"][0]["action"] == "Search[Milhouse]"
    assert row["em"]


def test_empty_completions_crash_the_react_loop_and_count_wrong(scripted, corpus):
    # ReAct's `action[0]` raises on the fallback's empty action; the article's try/except scores it wrong.
    [row] = rows_of(run([MILHOUSE], scripted(lambda p, s: ""), corpus, max_steps=3))
    assert row["finish_reason"] == "crashed" and "IndexError" in row["error"]
    assert [s["status"] for s in row["steps"]] == ["crashed"]
    assert row["prediction"] == "" and not row["em"]
    assert (row["n_calls"], row["n_bad_calls"]) == (2, 1)
    assert row["trajectory"] == "Question: Who was Milhouse named after?\n"  # the crashed step is not written


def test_empty_completions_give_invalid_actions_and_a_step_limit_when_lenient(scripted, corpus):
    [row] = rows_of(run([MILHOUSE], scripted(lambda p, s: ""), corpus, max_steps=3, protocol="lenient"),
                    AgentConfig(protocol="lenient"))
    assert row["finish_reason"] == "parse_error"  # not one well-formed action in 3 steps
    assert [s["status"] for s in row["steps"]] == ["empty_action"] * 3
    assert row["steps"][0]["observation"] == "Invalid action:"
    assert row["prediction"] == "" and not row["em"]
    assert (row["n_calls"], row["n_bad_calls"]) == (6, 3)


def test_step_limit_forces_finish(scripted, corpus):
    backend = scripted(lambda p, s: f" Search again.\nAction {step_of(p)}: Search[Milhouse]")
    [row] = rows_of(run([MILHOUSE], backend, corpus, max_steps=7))
    assert row["finish_reason"] == "step_limit"
    assert row["n_steps"] == 7 and row["prediction"] == ""


def test_all_unfinished_questions_advance_in_one_call_per_step(scripted, corpus):
    # Question k finishes at step k: the batch shrinks by one each step.
    tasks = [Task(f"q{k}", f"Question number {k}?", "x", "dev") for k in range(1, 5)]

    def script(prompt, stop):
        k = int(re.search(r"Question number (\d)", prompt).group(1))
        i = step_of(prompt)
        return f" go\nAction {i}: " + ("Finish[x]" if i == k else "Search[Milhouse]")

    backend = scripted(script)
    rows = rows_of(run(tasks, backend, corpus, max_steps=7))
    assert [len(batch) for batch in backend.calls] == [4, 3, 2, 1]
    assert [r["n_steps"] for r in rows] == [1, 2, 3, 4]
    assert all(r["em"] for r in rows)


def test_prompt_longer_than_the_context_is_a_recorded_policy(scripted, corpus):
    backend = scripted(lambda p, s: " x\nAction 1: Search[Milhouse]", max_context=50)
    [row] = rows_of(run([MILHOUSE], backend, corpus, prefix="P" * 400))
    assert row["finish_reason"] == "context_limit"
    assert row["steps"][0]["status"] == "context_limit"
    assert "context" in row["steps"][0]["observation"]
    assert row["n_steps"] == 0 and backend.calls == []


def test_a_prompt_the_engine_refuses_fails_only_its_episode(scripted, corpus):
    tasks = [MILHOUSE, Task("q2", "POISON?", "x", "dev")]
    backend = scripted(lambda p, s: f" ok\nAction {step_of(p)}: Finish[Richard Nixon]",
                       fail=lambda prompt: "POISON" in prompt)
    rows = rows_of(run(tasks, backend, corpus))
    assert rows[0]["em"] and rows[0]["finish_reason"] == "finished"
    assert rows[1]["finish_reason"] == "error" and "engine refused" in rows[1]["error"]


def test_a_broken_engine_raises(scripted, corpus):
    backend = scripted(lambda p, s: "", fail=lambda prompt: True)
    with pytest.raises(RuntimeError, match="engine refused"):
        run([MILHOUSE], backend, corpus)


completions = st.one_of(
    st.text(max_size=300),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=3000),
    st.builds(lambda t, a: f"{t}\nAction 1: {a}", st.text(max_size=50), st.text(max_size=80)),
    st.sampled_from(["", "\n", "[]", "Finish[", "Search[[[", "\nAction 1: ", "\x00\x07\x1b", "Action 1: Finish[]"]),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(completions, min_size=1, max_size=6))
def test_any_model_output_yields_valid_rows(scripted, corpus, outputs):
    for protocol in ("react", "lenient"):
        it = iter(outputs * 20)
        config = AgentConfig(max_steps=3, protocol=protocol)
        rows = rows_of(run([MILHOUSE], scripted(lambda p, s: next(it)), corpus, max_steps=3, protocol=protocol),
                       config)
        assert rows[0]["finish_reason"] in {"finished", "step_limit", "parse_error", "crashed"}
        assert rows[0]["protocol"] == protocol
        if protocol == "lenient":
            assert all(step["observation"] for step in rows[0]["steps"])


def test_tiny_model_runs_end_to_end_with_transformers(tiny_model, corpus, prompt_prefix):
    backend = TransformersBackend(str(tiny_model), "tiny", default_engine_settings("transformers", batch_size=2))
    config = AgentConfig(max_steps=2, sampling=Sampling(max_new_tokens=16))
    tasks = [MILHOUSE, Task("q2", "Which magazine was started first?", "Arthur's Magazine", "dev")]
    episodes = run_agent(tasks, backend, lambda protocol: WikiEnv(corpus, protocol), prompt_prefix, config)
    rows = rows_of(episodes, config)
    for row in rows:
        assert row["finish_reason"] in {"finished", "step_limit", "parse_error", "crashed"}
        assert row["n_calls"] >= 1 and row["trajectory"].startswith("Question: ")
