"""The ReAct trajectory text format: parsing it, and where the model wrote it.

A trajectory is what follows the question line:

    Thought 1: <thought>
    Action 1: <Search[..] | Lookup[..] | Finish[..]>
    Observation 1: <observation, may span lines>
    Thought 2: ...

The last step's action is ``Finish[...]``; its observation may be missing
(published sets often stop at the action). Training masks everything the
environment or the prompt wrote: only the thought, the action and the
``"\\nObservation i:"`` that makes generation stop are model-written.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from react.agent.parsing import parse_action

_MARKER = re.compile(r"(?:^|\n)(Thought|Action|Observation) (\d+):")
_EXPECTED = ("Thought", "Action", "Observation")


class TrajectoryFormatError(ValueError):
    """The text is not a well-formed ReAct trajectory; the message says where."""


@dataclass(frozen=True)
class Step:
    thought: str
    action: str
    observation: str | None
    # Character span [start, end) of what the model wrote in this step: from just
    # after "Thought i:" to the end of "\nObservation i:" (or of the action).
    written: tuple[int, int]


def parse_prefix(text: str) -> tuple[list[Step], str | None]:
    """The well-formed steps at the start of ``text``, and what is wrong after them (None: nothing).

    A step counts when its markers come in order and its action is valid; the
    whole text is a trajectory when nothing is wrong and the last action is Finish.
    """
    markers = list(_MARKER.finditer(text))
    if not markers or markers[0].start() > 0 and text[: markers[0].start()].strip():
        return [], "does not start with 'Thought 1:'"
    problem = None
    for k, marker in enumerate(markers):
        kind, number = marker.group(1), int(marker.group(2))
        expected_kind, expected_number = _EXPECTED[k % 3], k // 3 + 1
        if (kind, number) != (expected_kind, expected_number):
            problem = (f"expected '{expected_kind} {expected_number}:' but found '{kind} {number}:' "
                       f"at character {marker.start()}")
            markers = markers[:k]
            break
    fields = [
        text[m.end() : markers[k + 1].start() if k + 1 < len(markers) else len(text)]
        for k, m in enumerate(markers)
    ]
    steps: list[Step] = []
    for k in range(0, len(markers), 3):
        if k + 1 >= len(markers):
            return steps, problem or f"step {k // 3 + 1} has a thought but no action"
        thought, action = fields[k].strip(), fields[k + 1].strip()
        kind = parse_action(action).type
        if kind == "invalid":
            return steps, f"step {k // 3 + 1}: invalid action {action[:80]!r}"
        if steps and parse_action(steps[-1].action).type == "finish":
            return steps[:-1], f"step {len(steps)}: Finish must be the last action"
        observation = fields[k + 2].strip() if k + 2 < len(markers) else None
        end = markers[k + 2].end() if k + 2 < len(markers) else markers[k + 1].end() + len(fields[k + 1].rstrip())
        steps.append(Step(thought, action, observation, (markers[k].end(), end)))
    if problem is None and (not steps or parse_action(steps[-1].action).type != "finish"):
        problem = "the last action is not Finish[...]"
    return steps, problem


def parse_trajectory(text: str) -> list[Step]:
    """Parse a trajectory; raise TrajectoryFormatError unless it is well formed and ends in Finish."""
    steps, problem = parse_prefix(text)
    if problem:
        raise TrajectoryFormatError(problem)
    return steps


def format_step(i: int, thought: str, action: str, observation: str) -> str:
    """One step as the agent writes it into the prompt (and into trajectories)."""
    return f"Thought {i}: {thought}\nAction {i}: {action}\nObservation {i}: {observation}\n"


def final_answer(steps: list[Step]) -> str:
    return parse_action(steps[-1].action).argument


def training_text(instruction: str, question: str, trajectory: str) -> str:
    """The article's `prompt_format`: instruction, question, trajectory."""
    return f"{instruction}\nQuestion: {question.strip()}\n{trajectory}"


def model_written_spans(text: str, trajectory_start: int) -> list[tuple[int, int]]:
    """Character spans of ``text`` the model wrote, for a trajectory starting at ``trajectory_start``."""
    return [(trajectory_start + a, trajectory_start + b)
            for a, b in (step.written for step in parse_trajectory(text[trajectory_start:]))]
