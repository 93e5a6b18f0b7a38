"""Parsing model completions into thoughts and actions, as ysymyth/ReAct's `webthink` does.

Nothing here raises on model output: every string, however broken, yields a
thought, an action (possibly invalid) and a reason that is recorded per step.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from react.agent.protocol import Action

ACTION_TYPES = ("search", "lookup", "finish")
# `Name[argument]` filling the whole (stripped) action; the argument may hold
# brackets itself (`Search[Foo [bar]]` searches "Foo [bar]"), as in ReAct's
# startswith/endswith test.
_ACTION_RE = re.compile(r"^(\w+)\[(.*)\]$", re.DOTALL)


def parse_action(text: str) -> Action:
    """Parse `Search[x]`, `Lookup[x]` or `Finish[x]` leniently; anything else is an invalid action.

    Action names match case-insensitively after ``strip()``. This is the ``lenient``
    protocol's matching, and what trajectory files are checked with; the ``react``
    protocol's environment matches as ReAct does (:func:`react.agent.protocol.parse_react_action`).
    """
    text = text.strip()
    if not text:
        return Action("invalid", "", "empty_action")
    match = _ACTION_RE.match(text)
    if match and match.group(1).lower() in ACTION_TYPES:
        return Action(match.group(1).lower(), match.group(2), "ok")
    return Action("invalid", text, "invalid_action")


@dataclass(frozen=True)
class Completion:
    thought: str
    action: str | None  # None: no `Action i:` line, the agent must ask for it


def split_completion(text: str, step: int) -> Completion:
    """Split a `Thought i:` completion into thought and action like ReAct's webthink.

    ReAct does ``thought, action = text.strip().split(f"\\nAction {i}: ")`` and, when
    that does not give exactly two parts, keeps the first line as the thought and
    makes a second call for the action.
    """
    parts = text.strip().split(f"\nAction {step}: ")
    if len(parts) == 2:
        return Completion(parts[0], parts[1])
    return Completion(text.strip().split("\n")[0], None)


def truncate_at_stop(text: str, stops: list[str]) -> str:
    """Cut ``text`` at the first occurrence of any stop string (vLLM's semantics: stop excluded)."""
    cut = len(text)
    for stop in stops:
        pos = text.find(stop)
        if pos != -1:
            cut = min(cut, pos)
    return text[:cut]
