"""The gold-path teacher: demonstrations built from HotPotQA's supporting facts, without a model.

For each question it searches the gold paragraphs' titles in order, looks up a
supporting sentence that the search did not show, and finishes with the gold
answer, stepping through the real environment so that every observation is the
one the agent would see. Its thoughts are templates, so it teaches the format
and the search strategy, not reasoning; it is labelled ``oracle`` wherever it
appears, and its episodes use backend ``oracle`` and ``n_calls`` 0.
"""

from __future__ import annotations

import re
from typing import Any

from react.agent.loop import (
    AgentConfig,
    Episode,
    Task,
    close_unfinished,
    hash_seed,
    question_prompt,
    take_step,
)
from react.agent.protocol import N_SEARCH_SENTENCES, paragraph_text
from react.environment.offline import WikiEnv

ORACLE_MODEL = "oracle"
ORACLE_LABEL = "oracle (gold supporting facts, model-free)"
_WORD = re.compile(r"[^\W_]+(?:[-'][^\W_]+)*")
_STOPWORDS = frozenset(
    "the a an and or of in on at to for from by with as is was were are be been his her its their this that "
    "which who whom whose what when where also after before into about than then there these those".split()
)


def gold_titles(supporting_facts: list[dict[str, Any]] | None) -> list[str]:
    """Titles of the supporting facts in order of first appearance."""
    return list(dict.fromkeys(fact["title"] for fact in supporting_facts or ()))


def lookup_keyword(sentences: list[str], target: int, answer: str) -> str | None:
    """A keyword whose first Lookup hit on the page is sentence ``target``, or None.

    The answer itself is preferred (it makes the demonstration point at the
    evidence); otherwise the longest content word of the sentence that works.
    """
    lowered = [s.lower() for s in sentences]

    def first_hit(keyword: str) -> int | None:
        return next((i for i, s in enumerate(lowered) if keyword.lower() in s), None)

    words = sorted({w for w in _WORD.findall(sentences[target]) if len(w) > 3 and w.lower() not in _STOPWORDS},
                   key=lambda w: (-len(w), w))
    for keyword in [answer, *words]:
        if keyword and first_hit(keyword) == target:
            return keyword
    return None


def _opening_thought(titles: list[str], question_type: str | None) -> str:
    if question_type == "comparison" and len(titles) >= 2:
        return f"I need to search {titles[0]} and {titles[1]}, and compare them to answer the question."
    return f"I need to search {titles[0]}, then find what the question asks about it."


def sentence_position(raw: list[str], sent_id: int, protocol: str) -> int:
    """Where raw sentence ``sent_id`` of a page starts among the sentences the environment shows.

    lenient: HotPotQA's sentences, empty ones dropped. react: the paragraph re-split at
    ``". "``, so a raw sentence can be several, or share one with its predecessor.
    """
    if protocol == "lenient":
        return sum(1 for s in raw[:sent_id] if s and s.strip())
    text = paragraph_text(raw[: sent_id + 1])
    start = len(paragraph_text(raw[:sent_id]))
    start += len(text[start:]) - len(text[start:].lstrip())  # the fact's first visible character
    # page_sentences' pieces with their end offsets: the fact starts in the first piece ending after it.
    position, offset = 0, 0
    for line in text.split("\n"):
        lead = len(line) - len(line.lstrip())
        piece_start = offset + lead
        for piece in line.strip().split(". "):
            piece_end = piece_start + len(piece)
            if piece.strip():
                if piece_end > start:
                    return position
                position += 1
            piece_start = piece_end + 2
        offset += len(line) + 1
    return position


def oracle_episode(task: Task, row: dict[str, Any], env: WikiEnv, prefix: str,
                   agent: AgentConfig | None = None) -> Episode:
    """Play the gold path for one split row (SPLIT_SCHEMA) through ``env`` (built for ``agent.protocol``)."""
    agent = agent or AgentConfig()
    env.reset()
    text = question_prompt(prefix, task.question)
    episode = Episode(task, env, text, len(prefix), len(text),
                      seed=hash_seed(task.id, task.sample, agent.seed))
    titles = gold_titles(row["supporting_facts"])
    facts = row["supporting_facts"] or []
    step = 0
    for k, title in enumerate(titles):
        step += 1
        thought = _opening_thought(titles, row.get("type")) if k == 0 else f"I need to search {title} next."
        take_step(episode, step, thought, f"Search[{title}]", agent.protocol)
        raw = env.corpus.page(title)
        facts_here = sorted({f["sent_id"] for f in facts if f["title"] == title and f["sent_id"] is not None})
        for sent_id in facts_here:
            if raw is None or sent_id >= len(raw) or not raw[sent_id].strip():
                continue
            target = sentence_position(raw, sent_id, agent.protocol)
            if target < N_SEARCH_SENTENCES or target >= len(env.sentences or ()):
                continue  # the search showed it already
            keyword = lookup_keyword(env.sentences, target, task.answer)
            if keyword is None:
                continue
            step += 1
            take_step(episode, step, f"The paragraph does not say it yet, maybe I can look up {keyword}.",
                      f"Lookup[{keyword}]", agent.protocol)
    step += 1
    take_step(episode, step, f"So the answer is {task.answer}.", f"Finish[{task.answer}]", agent.protocol)
    if not episode.done:  # cannot happen with a Finish action; kept as a guard
        close_unfinished(episode, "error")
    return episode
