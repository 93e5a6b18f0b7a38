"""ReAct's protocol as its code runs it (ysymyth/ReAct: hotpotqa.ipynb ``webthink``, wikienv.py, wrappers.py).

Two protocols are implemented; every episode row records which one produced it.

``react`` (the default) is the original, character for character:

* the question goes into the prompt exactly as the data has it (``"Question: " + q + "\\n"``);
* the loop sends ``action[0].lower() + action[1:]`` to the environment, which
  ``strip()``s it and matches ``search[``, ``lookup[``, ``finish[`` and ``think[``
  case-sensitively, with a closing ``]``; so ``SEARCH[x]`` arrives as the invalid
  ``sEARCH[x]`` and a space-led `` Search[x]`` as the invalid ``Search[x]``; anything
  else observes ``Invalid action: `` + the action after those two operations;
* an empty action makes the original's ``action[0]`` raise: the article's loop
  catches it and counts the question as wrong (``finish_reason`` ``crashed``);
* observations keep their endings (``No more results.\\n``, ``Episode finished,
  reward = r\\n``; an empty page observes ``""``) and go into the prompt through the
  loop's ``obs.replace('\\\\n', '')`` (a literal backslash-n, not a newline);
* pages are split into sentences as ``WikiEnv`` does (lines, then ``". "``, each
  stripped and given a ``"."``) and a Search shows the first five.

``lenient`` is this project's earlier, forgiving variant: action names match in any
case after ``strip()``, a ``Finish`` observes ``Episode finished.``, observations
carry no trailing newline, an empty page observes ``(This page is empty.)``, an
offline page keeps HotPotQA's own sentence segmentation and a miss reports
``Could not find [entity]``.
"""

from __future__ import annotations

from dataclasses import dataclass

PROTOCOLS = ("react", "lenient")
DEFAULT_PROTOCOL = "react"
N_SEARCH_SENTENCES = 5  # wikienv.get_page_obs: ' '.join(sentences[:5])
N_SIMILAR = 5  # wikienv.search_step: result_titles[:5]
EMPTY_PAGE = "(This page is empty.)"  # lenient only


@dataclass(frozen=True)
class Action:
    type: str  # search | lookup | finish | think (react only) | invalid
    argument: str
    reason: str  # ok | empty_action | invalid_action


class ActionCrash(Exception):
    """The original loop would raise on this action (``action[0]`` of an empty string)."""


def check_protocol(protocol: str) -> str:
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r} (expected one of {PROTOCOLS})")
    return protocol


def question_line(question: str, exact: bool = True) -> str:
    """``Question: ...\\n``: the data's text as is (ReAct), or stripped (the article's training format)."""
    return f"Question: {question if exact else question.strip()}\n"


def env_action(action: str, protocol: str) -> str:
    """What the loop hands the environment: ReAct's ``action[0].lower() + action[1:]``."""
    if protocol == "lenient":
        return action
    if not action:
        raise ActionCrash("IndexError: string index out of range (ReAct's action[0] on an empty action)")
    return action[0].lower() + action[1:]


_REACT_ACTIONS = ("search", "lookup", "finish", "think")


def parse_react_action(text: str) -> Action:
    """``WikiEnv.step``'s matching: ``strip()``, then case-sensitive ``name[`` ... ``]``."""
    text = text.strip()
    for name in _REACT_ACTIONS:
        if text.startswith(f"{name}[") and text.endswith("]"):
            return Action(name, text[len(name) + 1 : -1], "ok")
    return Action("invalid", text, "empty_action" if not text else "invalid_action")


def invalid_observation(action: Action, protocol: str) -> str:
    if protocol == "lenient":
        return f"Invalid action: {action.argument}".rstrip()
    return f"Invalid action: {action.argument}"


def finish_observation(reward: int | None, protocol: str) -> str:
    """The observation after ``Finish``; ReAct's wrapper writes the episode's reward (EM) into it."""
    if protocol == "lenient":
        return "Episode finished."
    return f"Episode finished, reward = {reward or 0}\n"


def no_more_results(protocol: str) -> str:
    return "No more results." if protocol == "lenient" else "No more results.\n"


def lookup_observation(k: int, n: int, sentence: str) -> str:
    return f"(Result {k} / {n}) {sentence}"


def miss_observation(entity: str, similar: list[str]) -> str:
    return f"Could not find {entity}. Similar: {similar[:N_SIMILAR]}."


def prompt_observation(observation: str, protocol: str) -> str:
    """The observation as the loop writes it into the prompt: ``obs.replace('\\\\n', '')`` in ReAct."""
    return observation if protocol == "lenient" else observation.replace("\\n", "")


def page_sentences(page: str) -> list[str]:
    """``WikiEnv``'s sentences: lines, stripped, split at ``". "``, each stripped and given a ``"."``."""
    sentences: list[str] = []
    for paragraph in page.split("\n"):
        if paragraph.strip():
            sentences += paragraph.strip().split(". ")
    return [s.strip() + "." for s in sentences if s.strip()]


def search_observation(sentences: list[str], protocol: str) -> str:
    """``WikiEnv.get_page_obs``: the first five sentences joined by a space."""
    text = " ".join(sentences[:N_SEARCH_SENTENCES])
    return (text or EMPTY_PAGE) if protocol == "lenient" else text


def paragraph_text(sentences: list[str]) -> str:
    """One paragraph from pre-split sentences, as the page text the online environment would see.

    HotPotQA's sentences carry their leading space (``["A.", " B."]``), so joining
    them restores the abstract; a sentence without one is joined with a space.
    """
    parts: list[str] = []
    for s in sentences:
        if parts and s and not s[0].isspace() and not parts[-1][-1:].isspace():
            parts.append(" ")
        parts.append(s)
    return "".join(parts)
