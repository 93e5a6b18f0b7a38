"""Fuzzing: more than 10,000 generated completions and actions at the parser, the offline and the
live environment and the agent. Nothing may raise; every case yields an observation and a recorded
reason. Counted per test (see the sum in test_the_fuzzing_adds_up_to_ten_thousand_cases)."""

from __future__ import annotations

import os

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from react.agent.loop import AgentConfig, Task, episode_row, run_agent
from react.agent.parsing import ACTION_TYPES, parse_action, split_completion
from react.environment.offline import WikiEnv
from react.schemas import EPISODE_SCHEMA
from react.search.index import Corpus

N_PARSER, N_ENV, N_LIVE, N_AGENT = 5000, 3000, 500, 1500

PAGES = {
    "Milhouse": ["Milhouse Mussolini Van Houten is a recurring character in The Simpsons.",
                 " Milhouse was named after U.S. president Richard Nixon, whose middle name was Milhous."],
    "Ünïcödé (band)": ["Ünïcödé is a band.", " It plays ☃ music."],
}
REASONS = {"ok", "empty_action", "invalid_action"}
STEP_STATUSES = {"ok", "no_action_line", "empty_action", "invalid_action", "context_limit", "crashed"}

ANY_TEXT = st.text(st.characters(exclude_categories=()), max_size=200)  # surrogates, controls, emoji
CONTROL = st.text(st.characters(min_codepoint=0, max_codepoint=31), max_size=20)
NAMES = st.sampled_from(["Search", "search", "SEARCH", "Lookup", "lookup", "Finish", "finish", "Think", "",
                         " Search", "Search ", "Sear ch"])
ARGS = st.one_of(ANY_TEXT, CONTROL, st.sampled_from([*PAGES, "", "[", "]", "[[x]]", "Milhouse]", "\n", "named after",
                                                     "\\u12", "C:\\Users", "\udcff", "😀" * 50]))
# One action: brackets missing, doubled, nested, or closed by trailing text.
ACTION = st.one_of(
    ANY_TEXT,
    st.builds(lambda n, a, c: f"{n}[{a}{c}", NAMES, ARGS, st.sampled_from(["]", "", "]]", "] x", "]\n", "[]"])),
    st.builds(lambda n, a: f"{n}[[{a}]]", NAMES, ARGS),
    st.builds(lambda n, a: f"{n}({a})", NAMES, ARGS),
)
# A completion: anything, several actions in one, kilobytes, a missing or repeated Action line.
COMPLETION = st.one_of(
    ANY_TEXT,
    st.text(max_size=5000),
    st.builds(lambda t, a: f"{t}\nAction 1: {a}", ANY_TEXT, ACTION),
    st.builds(lambda t, a, b: f"{t}\nAction 1: {a}\nAction 1: {b}", ANY_TEXT, ACTION, ACTION),
    st.builds(lambda a, b: f"x\nAction 1: {a}; {b}\nThought 2: y\nAction 2: {b}", ACTION, ACTION),
    st.builds(lambda n: "word " * n, st.integers(0, 2000)),
    st.sampled_from(["", "\n", " ", "\nAction 1: ", "Action 1: Finish[]", "\nAction 1: Finish[]", "\x00\x07\x1b",
                     "\nAction 1: Search[]", "\nAction 1: Lookup[]", "\nAction 1: [", "\nAction 1: ]"]),
)


@pytest.fixture(scope="module")
def corpus():
    return Corpus.from_paragraphs(PAGES)


@settings(max_examples=N_PARSER, deadline=None)
@given(COMPLETION, st.integers(1, 8))
@example("", 1)  # ReAct's webthink crashes on an empty action
@example("\nAction 1: ", 1)
@example("x\nAction 1: Search[\udcff]", 1)  # a lone surrogate
def test_parser_never_raises_and_always_gives_a_reason(text, step):
    completion = split_completion(text, step)
    assert isinstance(completion.thought, str)
    action = parse_action(completion.action if completion.action is not None else text)
    assert action.reason in REASONS
    assert action.type in (*ACTION_TYPES, "invalid")
    assert (action.type == "invalid") == (action.reason != "ok")


@settings(max_examples=N_ENV, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(ACTION, min_size=1, max_size=5))
@example([""])  # the original: IndexError on an empty action
@example(["Finish[]"])
@example(["Search[Ünïcödé (band)]", "Lookup[☃]", "Lookup[☃]", "Lookup[]"])
@example(["Search[\x00]", "Lookup[\udcff]", "Finish[\udcff]"])
def test_offline_environment_never_raises(corpus, actions):
    for protocol in ("react", "lenient"):
        env = WikiEnv(corpus, protocol)
        for text in actions:
            result = env.step(text)
            assert isinstance(result.observation, str)
            assert result.observation or protocol == "react"  # ReAct shows an empty page as ""
            assert result.action.reason in REASONS
            assert result.done == (result.answer is not None)


@pytest.fixture(scope="module")
def live_client(tmp_path_factory):
    """The live environment's client against a local server answering every search with a results page."""
    from test_wiki_live import make_client, page, recorded_wikipedia

    os.environ.setdefault("NO_PROXY", "127.0.0.1,localhost")
    server = recorded_wikipedia()
    server.default = page("search_Adam_Clayton_Powell.html")
    client = make_client(server.base_url, tmp_path_factory.mktemp("live-cache"), max_retries=0)
    yield client
    client.close()
    server.stop()


@settings(max_examples=N_LIVE, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(actions=st.lists(ACTION, min_size=1, max_size=3))
@example(actions=["Search[C:\\Users]"])  # the original's clean_str raised on a malformed escape
@example(actions=["Search[\udcff]", "Lookup[x]"])
@example(actions=["Search[" + "a" * 10000 + "]"])  # a URL too long for the server
def test_live_environment_never_raises_on_model_text(live_client, actions):
    """lenient never raises; react raises only ActionCrash, where the original would have crashed."""
    from react.agent.protocol import ActionCrash
    from react.environment.live import LiveWikiEnv

    for protocol in ("lenient", "react"):
        env = LiveWikiEnv(live_client, protocol)
        for text in actions:
            try:
                result = env.step(text[0].lower() + text[1:] if protocol == "react" and text else text)
            except ActionCrash as crash:
                assert protocol == "react" and "clean_str" in str(crash)
                continue
            assert isinstance(result.observation, str)
            assert result.observation or protocol == "react"
            assert result.action.reason in REASONS


@settings(max_examples=N_AGENT, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(outputs=st.lists(COMPLETION, min_size=1, max_size=4))
@example(outputs=["\ud800"])  # a lone surrogate (a server's JSON can carry one): Parquet cannot store it
@example(outputs=[" x\nAction 1: Search[\udcff]"])
def test_agent_turns_any_output_into_a_valid_row(corpus, scripted, outputs):
    task = Task("q1", "Who was Milhouse named after?", "Richard Nixon", "dev")
    for protocol in ("react", "lenient"):
        it = iter(outputs * 20)
        config = AgentConfig(max_steps=3, protocol=protocol)
        [episode] = run_agent([task], scripted(lambda p, s: next(it)), lambda protocol: WikiEnv(corpus, protocol),
                              "P\n", config)
        row = episode_row(episode, model="m", backend="scripted", config=config, prompt_sha256="p", corpus_sha256="c")
        [row] = pa.Table.from_pylist([row], schema=EPISODE_SCHEMA).to_pylist()
        assert row["finish_reason"] in {"finished", "step_limit", "parse_error", "crashed"}
        assert row["steps"] and all(s["status"] in STEP_STATUSES for s in row["steps"])
        if protocol == "lenient":
            assert all(s["observation"] for s in row["steps"])


def test_the_fuzzing_adds_up_to_ten_thousand_cases():
    assert N_PARSER + N_ENV + N_LIVE + N_AGENT >= 10_000
