"""trl's GRPOTrainer ``rollout_func``: each group of rollouts played by the project's own agent loop.

trl hands ``rollout_func`` the prompts of a generation batch, each question repeated
``num_generations`` times in a row (trl 1.16 ``RepeatSampler``), and expects one rollout per
entry, in order: ``prompt_ids`` (the episode's first prompt), ``completion_ids`` (everything
after it), ``logprobs`` and ``env_mask`` (1 on the tokens the policy wrote, which alone carry the
loss). Here a "prompt" is a question id (the training dataset's ``prompt`` column). Extra fields
(``em``, ``f1``, ``finish_reason``, ...) reach the reward functions as keyword arguments; they
are the episode's evaluation row's own values (react.agent.loop.episode_row).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from react.agent.loop import AgentConfig, Task, episode_row, run_agent
from react.rl.policy import PolicyBackend
from react.rl.settings import RewardSettings
from react.rl.tokens import EpisodeTokens

ROW_FIELDS = ("em", "f1", "finish_reason", "n_steps", "n_invalid_actions")


@dataclass(frozen=True)
class Rollouts:
    """What the agent plays and how its episodes are recorded (the fields of their episode rows)."""

    tasks: dict[str, Task]  # by question id
    make_env: Callable[[str], Any]  # protocol -> a fresh environment
    prefix: str  # the prompt every question is appended to
    agent: AgentConfig
    max_context: int
    strip_question: bool  # the instruction prompt strips the question, as evaluation does
    model: str  # the run's name, in the rows
    prompt_kind: str  # few-shot | instruction
    prompt_sha256: str
    corpus_sha256: str


# (step, episode rows, the rollouts trl receives): where a run records and logs each step's rollouts.
OnRollouts = Callable[[int, list[dict[str, Any]], dict[str, list]], None]


def make_rollout_func(setup: Rollouts, on_rollouts: OnRollouts | None = None,
                      sampler: Callable[[Any], Any] | None = None) -> Callable[[list[str], Any], dict[str, list]]:
    """A ``rollout_func`` over ``setup.tasks``.

    Each generation batch samples with seeds of its own (the agent's seed plus the trainer's
    step), so a rerun of the same step gives the same rollouts. ``sampler(trainer)`` gives
    the backend's sampling engine (default: the policy itself, react.rl.policy).
    """

    def rollout_func(prompts: list[str], trainer: Any) -> dict[str, list]:
        unknown = [p for p in prompts if p not in setup.tasks]
        if unknown:
            raise KeyError(f"rollout for a question id not among the training questions: {unknown[0]!r}")
        seen: dict[str, int] = {}
        batch = []
        for prompt in prompts:
            batch.append(replace(setup.tasks[prompt], sample=seen.get(prompt, 0)))
            seen[prompt] = seen.get(prompt, 0) + 1
        step = trainer.state.global_step
        step_agent = replace(setup.agent, seed=setup.agent.seed + step)
        policy = PolicyBackend(trainer.model, trainer.processing_class, setup.max_context,
                               sampler(trainer) if sampler else None)
        # Played in a canonical order and handed back in trl's: batched sampling draws from one
        # generator, so a step's rollouts then depend on its questions alone, not on the sampler's
        # order (which differs after a resume).
        order = sorted(range(len(batch)), key=lambda k: (batch[k].id, batch[k].sample))
        played = run_agent([batch[k] for k in order], policy, setup.make_env, setup.prefix, step_agent,
                           strip_question=setup.strip_question)
        episodes = [None] * len(batch)
        for k, episode in zip(order, played, strict=True):
            episodes[k] = episode
        out: dict[str, list] = {key: [] for key in ("prompt_ids", "completion_ids", "logprobs", "env_mask",
                                                    *ROW_FIELDS, "dropped_tokens")}
        rows = []
        for e in episodes:
            rollout = policy.finish(e.seed, e.prompt) if e.seed in policy.rollouts else \
                EpisodeTokens.start(policy.tokenizer, e.prompt)
            completion, mask, logprobs = rollout.completion_ids, rollout.env_mask, rollout.logprobs
            if not completion:  # trl reads each completion's last token: one masked end-of-sequence token
                completion, mask, logprobs = [policy.tokenizer.eos_token_id], [0], [0.0]
            row = episode_row(e, model=setup.model, backend=policy.name, config=step_agent, prompt=setup.prompt_kind,
                              prompt_sha256=setup.prompt_sha256, corpus_sha256=setup.corpus_sha256)
            rows.append(row)
            out["prompt_ids"].append(rollout.prompt_ids)
            out["completion_ids"].append(completion)
            out["logprobs"].append(logprobs)
            out["env_mask"].append(mask)
            for key in ROW_FIELDS:
                out[key].append(row[key])
            out["dropped_tokens"].append(rollout.dropped)
        if on_rollouts is not None:
            on_rollouts(step + 1, rows, out)
        return out

    return rollout_func


def episode_reward(reward: RewardSettings, em: bool, f1: float, finish_reason: str) -> float:
    """The reward of one episode: its EM (or F1), less the format penalty unless it finished well-formed."""
    score = float(em) if reward.metric == "em" else float(f1)
    return score - (reward.format_penalty if finish_reason != "finished" else 0.0)


def make_reward_func(reward: RewardSettings) -> Callable[..., list[float]]:
    """trl's reward function for ``reward`` (trl logs it as rewards/<metric>_reward)."""

    def reward_func(completions: list[Any], em: list[bool], f1: list[float], finish_reason: list[str],
                    **kwargs: Any) -> list[float]:
        return [episode_reward(reward, *row) for row in zip(em, f1, finish_reason, strict=True)]

    reward_func.__name__ = f"{reward.metric}_reward"
    return reward_func
