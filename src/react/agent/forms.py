"""How an episode's text reaches the model: raw text, or a conversation in the model's chat template.

Whatever the form, the agent writes the same ReAct text (react.agent.trajectory) and the
model continues it at the same places: after ``Thought i:`` and, in ReAct's fallback,
after ``Thought i: <thought>\\nAction i:``. The forms differ only in where the turns are:

``raw``
    ReAct's own prompt: the few-shot prefix, the question and the steps as one text.
``chat``
    The instruction, examples and question are the user's message; each step's thought
    and action are an assistant turn and its observation the next user turn
    (``Observation i: ...``). This is how chat models are trained to act in an
    environment (FireAct's chat data, the tool-use turns of the models' own templates),
    and how the project finetunes in chat form.
``chat-inline``
    The user's message as in ``chat``; the whole trajectory, observations included, is one
    assistant turn the model keeps continuing (Search-R1's rollout layout).

BENCHMARKS.md 10 measures ``chat`` against ``chat-inline`` and ``raw``.
"""

from __future__ import annotations

from react.agent.trajectory import Step
from react.inference.base import Chat, Message

FORMATS = ("raw", "chat", "chat-inline")
CHAT_FORMATS = ("chat", "chat-inline")


def step_text(i: int, thought: str, action: str) -> str:
    """What the model writes in step ``i`` (the assistant's turn in the ``chat`` form)."""
    return f"Thought {i}: {thought}\nAction {i}: {action}"


def observation_text(i: int, observation: str) -> str:
    """The environment's answer to step ``i`` (the user's turn in the ``chat`` form)."""
    return f"Observation {i}: {observation}"


def conversation(question: str, steps: list[Step] | list[dict[str, str]]) -> list[Message]:
    """The ``chat`` form's turns: the question message, then per step an assistant and a user turn.

    ``steps``: parsed trajectory steps or the agent's step records (thought, action, observation).
    A step without an observation (a trajectory's last Finish) ends on the assistant's turn.
    """
    messages = [Message("user", question)]
    for i, step in enumerate(steps, start=1):
        thought, action, observation = ((step["thought"], step["action"], step["observation"])
                                        if isinstance(step, dict) else (step.thought, step.action, step.observation))
        messages.append(Message("assistant", step_text(i, thought, action)))
        if observation is not None:
            messages.append(Message("user", observation_text(i, observation)))
    return messages


def model_input(form: str, question: str, trajectory: str, steps: list[dict[str, str]], tail: str) -> str | Chat:
    """What the model continues, ending in ``tail`` (``Thought i:`` or the fallback's ``... Action i:``).

    ``question``: the few-shot prefix (or instruction) and the question line; ``trajectory``:
    the ReAct text of the steps so far (``format_step`` of ``steps``).
    """
    if form == "raw":
        return question + trajectory + tail
    user = question.removesuffix("\n")  # the question line's newline ends the user's turn instead
    if form == "chat-inline":
        return Chat((Message("user", user), Message("assistant", trajectory + tail)))
    if form == "chat":
        return Chat((*conversation(user, steps), Message("assistant", tail)))
    raise ValueError(f"unknown prompt format {form!r} (expected one of {', '.join(FORMATS)})")
