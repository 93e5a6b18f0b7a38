"""ReAct's Wikipedia environment (``WikiEnv.step``): Search, Lookup, Finish, Think and their observations.

One ``step`` for every Wikipedia: subclasses only say how an entity is found
(:meth:`ReActEnv.find`), offline in a corpus (react.environment.offline) or online (react.environment.live).
The observation strings and the action matching follow the episode's protocol
(react.agent.protocol). Nothing here raises on a model-written string.
"""

from __future__ import annotations

from dataclasses import dataclass

from react.agent.parsing import parse_action
from react.agent.protocol import (
    Action,
    check_protocol,
    finish_observation,
    invalid_observation,
    lookup_observation,
    no_more_results,
    parse_react_action,
    search_observation,
)


@dataclass(frozen=True)
class StepResult:
    observation: str
    done: bool
    action: Action
    answer: str | None


@dataclass(frozen=True)
class Found:
    """A page found by Search: its sentences as Lookup walks them."""

    sentences: list[str]


@dataclass(frozen=True)
class Missed:
    """No page: the observation to show (the current page stays, as online)."""

    observation: str


class ReActEnv:
    """The state machine of ReAct's ``WikiEnv``; ``find`` is the subclass's."""

    def __init__(self, protocol: str = "react"):
        self.protocol = check_protocol(protocol)
        self.reset()

    def reset(self) -> None:
        self.sentences: list[str] | None = None  # the current page's sentences, as Lookup sees them
        self.answer: str | None = None
        self._final: str | None = None  # observation repeated once the episode is done
        self._lookup_keyword: str | None = None
        self._lookup_hits: list[str] = []
        self._lookup_cnt = 0

    def find(self, entity: str) -> Found | Missed:
        raise NotImplementedError

    def parse(self, action_text: str) -> Action:
        return parse_react_action(action_text) if self.protocol == "react" else parse_action(action_text)

    def step(self, action_text: str) -> StepResult:
        action = self.parse(action_text)
        if self._final is not None:
            return StepResult(self._final, True, action, self.answer)
        if action.type == "search":
            observation = self._search(action.argument)
        elif action.type == "lookup":
            observation = self._lookup(action.argument)
        elif action.type == "finish":
            self.answer = action.argument
            # The environment's own text; the agent writes the reward in, as ReAct's HotPotQA wrapper does.
            self._final = observation = finish_observation(0, self.protocol)
            return StepResult(observation, True, action, self.answer)
        elif action.type == "think":
            observation = "Nice thought."
        else:
            observation = invalid_observation(action, self.protocol)
        return StepResult(observation, False, action, None)

    def _search(self, entity: str) -> str:
        result = self.find(entity)
        if isinstance(result, Missed):
            return result.observation
        self.sentences = result.sentences
        self._lookup_keyword, self._lookup_hits, self._lookup_cnt = None, [], 0
        return search_observation(self.sentences, self.protocol)

    def _lookup(self, keyword: str) -> str:
        if keyword != self._lookup_keyword:  # a new keyword restarts the walk
            self._lookup_keyword = keyword
            # As online, the empty keyword is "in" every sentence.
            self._lookup_hits = [s for s in self.sentences or () if keyword.lower() in s.lower()]
            self._lookup_cnt = 0
        if self._lookup_cnt >= len(self._lookup_hits):
            return no_more_results(self.protocol)
        self._lookup_cnt += 1
        return lookup_observation(self._lookup_cnt, len(self._lookup_hits), self._lookup_hits[self._lookup_cnt - 1])
