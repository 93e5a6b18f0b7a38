"""The ReAct agent loop of the article (ysymyth/ReAct `webthink`), run in lockstep.

Per step ``i`` every unfinished episode sends ``prompt + "Thought i:"`` in one
batched call that stops at ``"\\nObservation i:"``. Completions without an
``Action i:`` line get ReAct's fallback: the first line is kept as the thought
and a second (batched) call writes ``Action i:`` up to the end of the line.
After ``max_steps`` an unfinished episode is closed with ``finish[]``, as in
ReAct. How actions reach the environment and observations the prompt is the
episode's protocol (react.agent.protocol). Model output never raises: each step
records what happened, and what would have crashed the original loop ends the
question as wrong (``crashed``), as the article's ``try/except`` does.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from react.agent.forms import model_input
from react.agent.metrics import exact_match, f1_score
from react.agent.parsing import split_completion
from react.agent.protocol import (
    DEFAULT_PROTOCOL,
    ActionCrash,
    env_action,
    finish_observation,
    prompt_observation,
    question_line,
)
from react.agent.trajectory import format_step
from react.inference.base import Backend, Generation, Prompt, Sampling

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AgentConfig:
    max_steps: int = 7
    sampling: Sampling = Sampling()
    seed: int = 0
    protocol: str = DEFAULT_PROTOCOL  # react | lenient (react.agent.protocol)


@dataclass(frozen=True)
class Task:
    id: str
    question: str
    answer: str
    split: str
    index: int | None = None
    sample: int = 0  # k-th sample of the same question (teacher generation)


@dataclass
class Episode:
    task: Task
    env: Any  # a WikiEnv: step(action_text) -> StepResult
    prompt: str  # few-shot prefix + everything so far, as ReAct text
    prefix_len: int
    question_len: int  # prompt[:question_len]: the prefix and the question line; then the steps
    form: str = "raw"  # how the text reaches the model (react.agent.forms)
    steps: list[dict[str, str]] = field(default_factory=list)
    n_calls: int = 0
    n_bad_calls: int = 0
    seconds: float = 0.0
    seed: int = 0
    prediction: str | None = None
    finish_reason: str | None = None
    error: str | None = None

    @property
    def done(self) -> bool:
        return self.finish_reason is not None

    def model_input(self, tail: str) -> Prompt:
        """What the model continues: everything so far in the episode's form, ending in ``tail``."""
        return model_input(self.form, self.prompt[:self.question_len], self.prompt[self.question_len:], self.steps,
                           tail)


def hash_seed(task_id: str, sample: int, base: int = 0) -> int:
    """A per-(question, sample) seed that does not depend on batch composition."""
    digest = hashlib.sha256(f"{base}:{task_id}:{sample}".encode()).digest()
    return int.from_bytes(digest[:4], "little")


def question_prompt(prefix: str, question: str, strip: bool = False) -> str:
    """ReAct: ``prompt += question + "\\n"`` with the question as the data has it; ``strip``: the training format."""
    return prefix + question_line(question, exact=not strip)


def run_agent(
    tasks: list[Task],
    backend: Backend,
    make_env: Callable[[str], Any],
    prefix: str,
    config: AgentConfig,
    on_step: Callable[[int, list[Episode]], None] | None = None,
    strip_question: bool = False,
    form: str = "raw",
) -> list[Episode]:
    """Run every task to the end; all unfinished episodes advance together.

    ``make_env(protocol)`` gives a fresh environment; ``strip_question`` writes the
    question stripped, as the article's training text does (the instruction prompt);
    ``form``: raw text or a chat (react.agent.forms).
    """
    episodes = []
    for task in tasks:
        env = make_env(config.protocol)
        env.reset()
        text = question_prompt(prefix, task.question, strip_question)
        episodes.append(Episode(task, env, text, len(prefix), len(text), form,
                                seed=hash_seed(task.id, task.sample, config.seed)))
    for step in range(1, config.max_steps + 1):
        active = [e for e in episodes if not e.done]
        active = _stop_at_context_limit(active, backend, config, step)
        if not active:
            break
        completions = _call(backend, active, [e.model_input(f"Thought {step}:") for e in active],
                            [f"\nObservation {step}:"], config.sampling)
        thoughts, actions, missing = {}, {}, []
        for e, gen in zip(active, completions):
            if gen is None:
                continue  # the call failed for this episode; it is closed with finish_reason=error
            e.n_calls += 1
            parsed = split_completion(gen.text, step)
            thoughts[id(e)] = parsed.thought
            if parsed.action is None:
                e.n_bad_calls += 1
                missing.append(e)
            else:
                actions[id(e)] = parsed.action
        if missing:
            prompts = [e.model_input(f"Thought {step}: {thoughts[id(e)]}\nAction {step}:") for e in missing]
            for e, gen in zip(missing, _call(backend, missing, prompts, ["\n"], config.sampling)):
                if gen is not None:
                    e.n_calls += 1
                    actions[id(e)] = gen.text.strip()
        for e in active:
            if id(e) in actions:
                take_step(e, step, thoughts[id(e)], actions[id(e)], config.protocol, fallback=e in missing)
        if on_step:
            on_step(step, episodes)
    for e in episodes:
        if not e.done:
            close_unfinished(e, "step_limit")
    return episodes


def valid_unicode(text: str) -> str:
    """``text`` with anything UTF-8 cannot encode (lone surrogates) replaced by U+FFFD."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogatepass").decode("utf-8", "replace")


def _call(backend: Backend, episodes: list[Episode], prompts: list[Prompt], stop: list[str],
          sampling: Sampling) -> list[Generation | None]:
    """One batched call; on failure retry one by one so one bad prompt cannot sink the batch."""
    seeds = [e.seed for e in episodes]
    start = time.perf_counter()
    try:
        gens: list[Generation | None] = list(backend.generate(prompts, stop, sampling, seeds))
    except Exception as exc:  # noqa: BLE001 - isolate the failing prompt(s) below
        log.warning("batched call of %d prompts failed (%s); retrying one by one", len(prompts), exc)
        gens, errors = [], []
        for prompt, seed in zip(prompts, seeds):
            try:
                gens.append(backend.generate([prompt], stop, sampling, [seed])[0])
                errors.append(None)
            except Exception as single_exc:  # noqa: BLE001
                gens.append(None)
                errors.append(single_exc)
        if all(error is not None for error in errors):
            raise errors[0] from exc  # systemic: the engine itself is broken, not one prompt
        for e, error in zip(episodes, errors):
            if error is not None:
                e.error = f"{type(error).__name__}: {error}"
                close_unfinished(e, "error")
    share = (time.perf_counter() - start) / max(1, len(prompts))
    for e in episodes:
        e.seconds += share
    # A server's JSON can carry lone surrogates ("\ud800"), which Parquet cannot store: U+FFFD instead.
    gens = [None if g is None else replace(g, text=valid_unicode(g.text)) for g in gens]
    return gens


def take_step(e: Episode, step: int, thought: str, action: str, protocol: str = DEFAULT_PROTOCOL,
              fallback: bool = False) -> None:
    """Send ``action`` to the episode's environment and append the step to its record and prompt.

    ``action`` is as the model wrote it: it goes into the prompt so, and reaches the
    environment through the protocol (ReAct lowercases its first character).
    """
    start = time.perf_counter()
    try:
        result = e.env.step(env_action(action, protocol))
    except ActionCrash as exc:  # the original loop raises here; the article's try/except scores it wrong
        e.seconds += time.perf_counter() - start
        e.steps.append({"thought": thought, "action": action, "action_type": "invalid", "argument": action,
                        "observation": "", "status": "crashed"})
        e.error = str(exc)
        close_unfinished(e, "crashed")
        return
    e.seconds += time.perf_counter() - start
    observation = result.observation
    if result.done:  # ReAct's HotPotQA wrapper writes the reward (EM) into the final observation
        observation = finish_observation(int(exact_match(result.answer or "", e.task.answer)), protocol)
    observation = prompt_observation(observation, protocol)
    status = result.action.reason if result.action.type == "invalid" else ("no_action_line" if fallback else "ok")
    e.steps.append({
        "thought": thought,
        "action": action,
        "action_type": result.action.type,
        "argument": result.action.argument,
        "observation": observation,
        "status": status,
    })
    e.prompt += format_step(step, thought, action, observation)
    if result.done:
        e.prediction = result.answer or ""
        e.finish_reason = "finished"


# Reasons whose episode the original scores by its answer: ``finish[]`` after the step limit gives
# the EM of the empty answer. A crash, a refused prompt or a full context score as wrong.
SCORED_REASONS = ("finished", "step_limit", "parse_error")


def close_unfinished(e: Episode, reason: str) -> None:
    """ReAct closes an unfinished episode with `finish[]`: an empty answer."""
    e.env.step("finish[]")
    e.prediction = ""
    if reason == "step_limit" and e.steps and all(s["action_type"] == "invalid" for s in e.steps):
        reason = "parse_error"  # the model never wrote a single well-formed action
    e.finish_reason = reason


def _stop_at_context_limit(active: list[Episode], backend: Backend, config: AgentConfig,
                           step: int) -> list[Episode]:
    """Policy for prompts that outgrow the model: close the episode (context_limit), never crash.

    A step needs room for the prompt and up to two completions (thought, then the
    fallback's action), so the prompt may use the context minus two completions.
    """
    if not active:
        return active
    budget = backend.max_context - 2 * config.sampling.max_new_tokens
    lengths = backend.count_tokens([e.model_input(f"Thought {step}:") for e in active])
    keep = []
    for e, n in zip(active, lengths):
        if n > budget:
            e.steps.append({"thought": "", "action": "", "action_type": "invalid", "argument": "",
                            "observation": f"Prompt of {n} tokens leaves no room for {config.sampling.max_new_tokens} "
                                           f"new tokens in the model's {backend.max_context}-token context.",
                            "status": "context_limit"})
            close_unfinished(e, "context_limit")
        else:
            keep.append(e)
    return keep


def episode_row(e: Episode, *, model: str, backend: str, config: AgentConfig,
                prompt_sha256: str, corpus_sha256: str, prompt: str | None = "few-shot",
                chat_template_sha256: str | None = None) -> dict[str, Any]:
    """One row of the episode contract (react.schemas.EPISODE_SCHEMA)."""
    prediction = e.prediction or ""
    model_steps = [s for s in e.steps if s["status"] != "context_limit"]
    return {
        "id": e.task.id,
        "index": e.task.index,
        "split": e.task.split,
        "sample": e.task.sample,
        "question": e.task.question,
        "answer": e.task.answer,
        "prediction": prediction,
        "em": exact_match(prediction, e.task.answer) if e.finish_reason in SCORED_REASONS else False,
        "f1": f1_score(prediction, e.task.answer)[0] if e.finish_reason in SCORED_REASONS else 0.0,
        "finish_reason": e.finish_reason,
        "n_steps": len(model_steps),
        "n_invalid_actions": sum(s["action_type"] == "invalid" for s in model_steps),
        "steps": e.steps,
        "trajectory": e.prompt[e.prefix_len:],
        "n_calls": e.n_calls,
        "n_bad_calls": e.n_bad_calls,
        "error": e.error,
        "model": model,
        "backend": backend,
        "temperature": config.sampling.temperature,
        "top_p": config.sampling.top_p,
        "max_new_tokens": config.sampling.max_new_tokens,
        "max_steps": config.max_steps,
        "seed": e.seed,
        "prompt": prompt,
        "format": e.form,
        "chat_template_sha256": chat_template_sha256,
        "protocol": config.protocol,
        "prompt_sha256": prompt_sha256,
        "corpus_sha256": corpus_sha256,
        "seconds": round(e.seconds, 6),
    }
