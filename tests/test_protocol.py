"""ReAct's protocol byte for byte: the prompt, action matching, observations and scoring.

``webthink`` below re-states the behaviour of ysymyth/ReAct's notebook loop, ``WikiEnv.step``
and the HotPotQA wrapper (written from their behaviour for this test, independent of the
project's code). The agent must send a scripted model exactly the prompts it sends, at
every step, on real questions of the bundled dev split (several with surrounding spaces).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import re
from pathlib import Path

import pytest

import react
from react.agent.loop import AgentConfig, Task, episode_row, run_agent
from react.agent.metrics import normalize_answer
from react.agent.prompts import read_prompt
from react.agent.protocol import ActionCrash, env_action, parse_react_action, prompt_observation
from react.config.validate import load_schema
from react.environment.offline import WikiEnv
from react.paths import resolve_path
from react.search.index import Corpus

PROJECT = Path(__file__).resolve().parents[1]

INSTRUCTION_SHA256 = "e876b72e2e1682222edbc4277ce1a0c32317363a0067c33f43b4dd6bdb756d85"
WEBTHINK_SIMPLE6_SHA256 = "eaaf8cea09f27f1080eba6df63bb8a744bb84be09acee6c7f81a9d2f9619fb12"
REACT_PROMPT = load_schema()["properties"]["prompt"]["default"]  # the shipped files, by the schema's default


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# --------------------------------------------------------------------------- the prompt


def test_the_default_prompt_is_the_notebooks_instruction_plus_webthink_simple6():
    instruction = resolve_path(REACT_PROMPT["instruction"]).read_text(encoding="utf-8")
    examples = json.loads(resolve_path(REACT_PROMPT["examples"]).read_text(encoding="utf-8"))["webthink_simple6"]
    assert sha256(instruction) == INSTRUCTION_SHA256
    assert sha256(examples) == WEBTHINK_SIMPLE6_SHA256
    prompt = read_prompt(REACT_PROMPT)
    assert prompt == instruction + examples
    # What the article's and this project's earlier copy lost: the blank line, trailing spaces,
    # and the dashes the original file carries mis-encoded (the paper's models saw these bytes).
    assert "Here are some examples.\n\nQuestion: What is the elevation range" in prompt
    assert "three types: \n(1)" in prompt and "\u00e2\u0080\u0093" in prompt
    assert resolve_path(REACT_PROMPT["instruction"]).is_relative_to(Path(react.__file__).parent)  # package data


# --------------------------------------------------------------------------- a reference webthink


def react_sentences(page: str) -> list[str]:
    """WikiEnv: paragraphs (lines, stripped), split at ". ", each stripped + "."."""
    out = []
    for p in page.split("\n"):
        if p.strip():
            out += p.strip().split(". ")
    return [s.strip() + "." for s in out if s.strip()]


class ReferenceEnv:
    """WikiEnv + HotPotQAWrapper, with page lookup and similar titles from a corpus instead of HTTP."""

    def __init__(self, corpus: Corpus, gold: str):
        self.corpus, self.gold = corpus, gold
        self.page = self.answer = self.lookup_keyword = self.lookup_list = self.lookup_cnt = None
        self.obs = ""

    def search(self, entity: str) -> None:
        raw = self.corpus.page(entity)
        if raw is None:
            self.obs = f"Could not find {entity}. Similar: {self.corpus.similar(entity)[:5]}."
            return
        self.page = "".join(raw) + "\n"  # one paragraph, as a <p> of the online page
        self.obs = " ".join(react_sentences(self.page)[:5])
        self.lookup_keyword = self.lookup_list = self.lookup_cnt = None

    def step(self, action: str):
        action = action.strip()
        if self.answer is not None:
            return self.obs, True
        done = False
        if action.startswith("search[") and action.endswith("]"):
            self.search(action[len("search["):-1])
        elif action.startswith("lookup[") and action.endswith("]"):
            keyword = action[len("lookup["):-1]
            if self.lookup_keyword != keyword:
                self.lookup_keyword = keyword
                sentences = react_sentences(self.page) if self.page is not None else []
                self.lookup_list = [s for s in sentences if keyword.lower() in s.lower()]
                self.lookup_cnt = 0
            if self.lookup_cnt >= len(self.lookup_list):
                self.obs = "No more results.\n"
            else:
                self.obs = f"(Result {self.lookup_cnt + 1} / {len(self.lookup_list)}) " + self.lookup_list[self.lookup_cnt]
                self.lookup_cnt += 1
        elif action.startswith("finish[") and action.endswith("]"):
            self.answer = action[len("finish["):-1]
            done = True
        elif action.startswith("think[") and action.endswith("]"):
            self.obs = "Nice thought."
        else:
            self.obs = f"Invalid action: {action}"
        if done:  # the wrapper: the reward is the EM of the answer
            reward = int(normalize_answer(self.gold) == normalize_answer(self.answer))
            self.obs = f"Episode finished, reward = {reward}\n"
        return self.obs, done

    def em(self) -> bool:
        return self.answer is not None and normalize_answer(self.gold) == normalize_answer(self.answer)


def webthink(question: str, gold: str, corpus: Corpus, prefix: str, llm) -> tuple[str, bool]:
    """The notebook's loop; a crash inside counts the question wrong, as the article's try/except."""
    env = ReferenceEnv(corpus, gold)
    prompt = prefix + "Question: " + question + "\n"
    try:
        done = False
        for i in range(1, 8):
            thought_action = llm(prompt + f"Thought {i}:", [f"\nObservation {i}:"])
            parts = thought_action.strip().split(f"\nAction {i}: ")
            if len(parts) == 2:
                thought, action = parts
            else:
                thought = thought_action.strip().split("\n")[0]
                action = llm(prompt + f"Thought {i}: {thought}\nAction {i}:", ["\n"]).strip()
            obs, done = env.step(action[0].lower() + action[1:])
            obs = obs.replace("\\n", "")
            prompt += f"Thought {i}: {thought}\nAction {i}: {action}\nObservation {i}: {obs}\n"
            if done:
                break
        if not done:
            env.step("finish[]")
        return prompt, env.em()
    except IndexError:
        return prompt, False


# --------------------------------------------------------------------------- real questions


@pytest.fixture(scope="module")
def dev_rows() -> list[dict]:
    with gzip.open(PROJECT / "resources/hotpotqa/dev_distractor.jsonl.gz", "rt", encoding="utf-8") as fh:
        rows = [json.loads(line) for line, _ in zip(fh, range(400))]
    spaced = [r for r in rows if r["question"] != r["question"].strip()][:3]
    plain = [r for r in rows if r["question"] == r["question"].strip()][:2]
    assert len(spaced) == 3
    return spaced + plain


@pytest.fixture(scope="module")
def dev_corpus(dev_rows) -> Corpus:
    pages = {title: sentences for row in dev_rows for title, sentences in row["context"]}
    pages["Backslash page"] = ["A page whose text holds a literal \\n from its markup.", " It goes on."]
    return Corpus.from_paragraphs(pages)


def episode_script(row: dict):
    """A model that writes an upper-case action, a space-led action, forgets an action line (the
    fallback call), searches a miss, a page with a literal backslash-n, looks up past the end, and finishes."""
    title = row["supporting_facts"][0][0]
    word = next(w for w in re.findall(r"[A-Za-z]{5,}", "".join(dict(row["context"])[title])))
    steps = {
        1: f" I need to search {title}.\nAction 1: SEARCH[{title}]",
        2: f" Again.\nAction 2:  Search[{title}]",
        3: " I forgot the action line.\nThe model rambles on.",
        4: f" Look it up.\nAction 4: Lookup[{word}]\nObservation 4: invented",
        5: " Nothing like that exists.\nAction 5: Search[Zzyzx nonexistent thing]",
        6: " A page with markup.\nAction 6: Search[Backslash page]",
        7: f" So the answer is {row['answer']}.\nAction 7: Finish[{row['answer']}]",
    }
    fallback = {3: f" Search[{title}]\nAction 4: more"}
    seen: list[tuple[str, tuple[str, ...]]] = []

    def script(prompt: str, stop: list[str]) -> str:
        seen.append((prompt, tuple(stop)))
        i = int(re.findall(r"(?:Thought|Action) (\d+):$", prompt)[-1])
        return fallback[i] if stop == ["\n"] else steps[i]

    return script, seen


def cut(text: str, stops) -> str:
    return text[: min([text.find(s) for s in stops if s in text], default=len(text))]


def test_every_prompt_equals_reacts_byte_for_byte(dev_rows, dev_corpus, scripted):
    prefix = read_prompt(REACT_PROMPT)
    for row in dev_rows:
        ours_script, ours = episode_script(row)
        ref_script, theirs = episode_script(row)
        backend = scripted(ours_script)
        task = Task(row["_id"], row["question"], row["answer"], "dev")
        [episode] = run_agent([task], backend, lambda p: WikiEnv(dev_corpus, p), prefix, AgentConfig())
        reference_prompt, reference_em = webthink(row["question"], row["answer"], dev_corpus, prefix,
                                                  lambda p, stop: cut(ref_script(p, stop), stop))
        assert ours == theirs  # every call: prompt and stop strings
        assert len(ours) == 8  # 7 steps + the fallback call
        assert ours[0][0] == prefix + "Question: " + row["question"] + "\nThought 1:"
        assert episode.prompt == reference_prompt
        record = episode_row(episode, model="m", backend="scripted", config=AgentConfig(), prompt_sha256="p",
                             corpus_sha256="c")
        assert record["em"] == reference_em is True and record["finish_reason"] == "finished"
        steps = record["steps"]
        assert steps[0]["observation"] == f"Invalid action: sEARCH[{row['supporting_facts'][0][0]}]"
        assert steps[1]["observation"] == f"Invalid action: Search[{row['supporting_facts'][0][0]}]"
        assert steps[1]["action"] == f" Search[{row['supporting_facts'][0][0]}]"  # as the model wrote it
        assert steps[2]["status"] == "no_action_line" and steps[2]["action_type"] == "search"
        assert steps[4]["observation"].startswith("Could not find Zzyzx nonexistent thing. Similar: [")
        assert "\\n" not in steps[5]["observation"]  # the loop's obs.replace('\\n', '')
        assert episode.prompt.endswith("Observation 7: Episode finished, reward = 1\n\n")


def test_a_crash_of_the_original_loop_scores_wrong_and_a_step_limit_scores_the_empty_answer(dev_rows, dev_corpus,
                                                                                             scripted):
    prefix, row = read_prompt(REACT_PROMPT), dev_rows[0]
    task = Task(row["_id"], row["question"], row["answer"], "dev")

    def empty(prompt, stop):  # no action line, and an empty fallback: action[0] raises
        return "" if stop == ["\n"] else " hmm"

    [crashed] = run_agent([task], scripted(empty), lambda p: WikiEnv(dev_corpus, p), prefix, AgentConfig())
    assert webthink(row["question"], row["answer"], dev_corpus, prefix, empty) == (crashed.prompt, False)
    assert crashed.finish_reason == "crashed" and crashed.prediction == ""

    def wander(prompt, stop):
        i = int(re.findall(r"Thought (\d+):$", prompt)[-1])
        return f" Think.\nAction {i}: think[still thinking]"

    [limit] = run_agent([task], scripted(wander), lambda p: WikiEnv(dev_corpus, p), prefix, AgentConfig())
    reference_prompt, reference_em = webthink(row["question"], row["answer"], dev_corpus, prefix, wander)
    assert limit.prompt == reference_prompt and "Observation 7: Nice thought.\n" in limit.prompt
    record = episode_row(limit, model="m", backend="s", config=AgentConfig(), prompt_sha256="p", corpus_sha256="c")
    assert record["finish_reason"] == "step_limit" and record["em"] == reference_em is False


def test_the_instruction_prompt_strips_the_question_as_the_training_text_does(dev_rows, dev_corpus, scripted):
    row = dev_rows[0]
    backend = scripted(lambda p, s: " x\nAction 1: Finish[x]")
    run_agent([Task("q", row["question"], "x", "dev")], backend, lambda p: WikiEnv(dev_corpus, p), "I\n",
              AgentConfig(), strip_question=True)
    assert backend.calls[0] == [f"I\nQuestion: {row['question'].strip()}\nThought 1:"]


# --------------------------------------------------------------------------- actions and observations


@pytest.mark.parametrize(
    ("written", "sent", "kind", "argument"),
    [
        ("Search[x]", "search[x]", "search", "x"),
        ("SEARCH[x]", "sEARCH[x]", "invalid", "sEARCH[x]"),
        (" Search[x]", " Search[x]", "invalid", "Search[x]"),  # `Action 1:  Search[x]`: two spaces
        ("Lookup[a b]", "lookup[a b]", "lookup", "a b"),
        ("Finish[]", "finish[]", "finish", ""),
        ("Think[hmm]", "think[hmm]", "think", "hmm"),
        ("search[x] ", "search[x] ", "search", "x"),  # the environment strips
        ("Search[x]\nThought 2: more", "search[x]\nThought 2: more", "invalid", "search[x]\nThought 2: more"),
        ("Search[[x]]", "search[[x]]", "search", "[x]"),
        ("Search x", "search x", "invalid", "search x"),
    ],
)
def test_actions_go_through_the_originals_two_operations(written, sent, kind, argument):
    assert env_action(written, "react") == sent
    action = parse_react_action(sent)
    assert (action.type, action.argument) == (kind, argument)


def test_an_empty_action_is_the_originals_crash():
    with pytest.raises(ActionCrash, match="IndexError"):
        env_action("", "react")
    assert env_action("", "lenient") == ""


def test_observations_reach_the_prompt_as_the_loop_writes_them():
    assert prompt_observation("a\\nb", "react") == "ab"  # a literal backslash-n, not a newline
    assert prompt_observation("No more results.\n", "react") == "No more results.\n"
    assert prompt_observation("a\\nb", "lenient") == "a\\nb"


def test_the_protocol_is_recorded_in_every_row(dev_corpus, scripted):
    backend = scripted(lambda p, s: " x\nAction 1: Finish[x]")
    for protocol in ("react", "lenient"):
        config = AgentConfig(protocol=protocol)
        [episode] = run_agent([Task("q", "Q?", "x", "dev")], backend, lambda p: WikiEnv(dev_corpus, p), "P\n", config)
        row = episode_row(episode, model="m", backend="s", config=config, prompt_sha256="p", corpus_sha256="c")
        assert row["protocol"] == protocol and row["em"]
