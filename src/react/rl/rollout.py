"""trl's GRPOTrainer ``rollout_func``: each group of rollouts played by the project's own agent loop.

trl hands ``rollout_func`` the prompts of a generation batch, each question repeated
``num_generations`` times in a row (trl 1.16 ``RepeatSampler``), and expects one rollout per
entry, in order: ``prompt_ids`` (the episode's first prompt), ``completion_ids`` (everything
after it), ``logprobs`` and ``env_mask`` (1 on the tokens the policy wrote, which alone carry the
loss). Extra fields (``em``, ``f1``, ``finish_reason``, ...) reach the reward functions as
keyword arguments (react.rl.rewards).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from react.agent.loop import SCORED_REASONS, AgentConfig, Task, run_agent
from react.agent.metrics import exact_match, f1_score
from react.rl.policy import PolicyBackend
from react.rl.tokens import EpisodeTokens


def make_rollout_func(tasks: dict[str, Task], make_env: Callable[[str], Any], prefix: str, agent: AgentConfig,
                      max_context: int, strip_question: bool = True) -> Callable[[list[str], Any], dict[str, list]]:
    """A ``rollout_func`` for questions given as the dataset's ``prompt`` column (``tasks``: by that text).

    Each generation batch samples with seeds of its own (the agent's seed plus the trainer's
    step), so a rerun of the same step gives the same rollouts.
    """

    def rollout_func(prompts: list[str], trainer: Any) -> dict[str, list]:
        unknown = [p for p in prompts if p not in tasks]
        if unknown:
            raise KeyError(f"rollout for a question not in the training questions: {unknown[0][:80]!r}")
        seen: dict[str, int] = {}
        batch = []
        for prompt in prompts:
            batch.append(replace(tasks[prompt], sample=seen.get(prompt, 0)))
            seen[prompt] = seen.get(prompt, 0) + 1
        step_agent = replace(agent, seed=agent.seed + trainer.state.global_step)
        policy = PolicyBackend(trainer.model, trainer.processing_class, max_context)
        episodes = run_agent(batch, policy, make_env, prefix, step_agent, strip_question=strip_question)
        out: dict[str, list] = {key: [] for key in ("prompt_ids", "completion_ids", "logprobs", "env_mask", "em",
                                                    "f1", "finish_reason", "n_steps", "dropped_tokens")}
        for e in episodes:
            rollout = policy.finish(e.seed, e.prompt) if e.seed in policy.rollouts else \
                EpisodeTokens.start(policy.tokenizer, e.prompt)
            completion, mask, logprobs = rollout.completion_ids, rollout.env_mask, rollout.logprobs
            if not completion:  # trl reads each completion's last token: one masked end-of-sequence token
                completion, mask, logprobs = [policy.tokenizer.eos_token_id], [0], [0.0]
            scored = e.finish_reason in SCORED_REASONS
            out["prompt_ids"].append(rollout.prompt_ids)
            out["completion_ids"].append(completion)
            out["logprobs"].append(logprobs)
            out["env_mask"].append(mask)
            out["em"].append(bool(scored and exact_match(e.prediction or "", e.task.answer)))
            out["f1"].append(f1_score(e.prediction or "", e.task.answer)[0] if scored else 0.0)
            out["finish_reason"].append(e.finish_reason)
            out["n_steps"].append(len(e.steps))
            out["dropped_tokens"].append(rollout.dropped)
        return out

    return rollout_func


def exact_match_reward(completions: list[Any], em: list[bool], **kwargs: Any) -> list[float]:
    """The answer's exact match (the episode's own EM, as its evaluation row scores it)."""
    return [float(x) for x in em]
