"""GRPO settings: the presets (``cpu`` small, ``paper`` at Search-R1's scale) and a config's run over them.

A configuration's ``rl.<run>`` entry leaves unset what its preset decides; :func:`grpo_settings`
turns the validated entry into one frozen :class:`GRPOSettings`, the only thing the trainer
reads. The names follow trl's ``GRPOConfig`` where it has one (``beta``, ``learning_rate``,
``num_generations`` is ``group_size`` here, as the GRPO paper says G).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

REWARD_METRICS = ("em", "f1")
ROLLOUT_BACKENDS = ("transformers", "vllm")


class SettingsError(ValueError):
    """A GRPO setting that cannot work; ``key`` names it as the configuration spells it."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"{key}: {message}")
        self.key = key


@dataclass(frozen=True)
class LoraSettings:
    r: int
    alpha: float
    dropout: float
    target_modules: tuple[str, ...]


@dataclass(frozen=True)
class RewardSettings:
    metric: str  # em | f1, of the episode's answer, as its evaluation row scores it
    format_penalty: float  # subtracted when the episode does not end in a well-formed Finish[...]

    @property
    def binary(self) -> bool:
        """Every reward is 0 or 1 (EM without a penalty): proportions, with their own intervals."""
        return self.metric == "em" and not self.format_penalty


@dataclass(frozen=True)
class GRPOSettings:
    n_questions: int | None  # None: every question of the split
    steps: int
    questions_per_step: int
    group_size: int  # rollouts per question; the advantage is a reward minus its group's mean
    micro_batch_size: int | None  # rollouts per forward/backward pass (None: all of a step's at once)
    learning_rate: float
    beta: float  # KL coefficient against the start model; 0 runs no reference model
    temperature: float
    top_p: float
    save_steps: int
    save_total_limit: int
    lora: LoraSettings
    reward: RewardSettings
    rollout_backend: str  # transformers | vllm
    bf16: bool  # on a GPU only
    seed: int

    def __post_init__(self) -> None:
        if self.group_size < 2:
            raise SettingsError("group_size", f"{self.group_size}: GRPO's advantage is a reward minus its group's "
                                "mean, so in a group of one it is always 0 and nothing is learnt; use 2 or more")
        if self.micro_batch_size is not None and self.rollouts_per_step % self.micro_batch_size:
            raise SettingsError("micro_batch_size", f"{self.micro_batch_size} does not divide the "
                                f"{self.rollouts_per_step} rollouts of a step (questions_per_step "
                                f"{self.questions_per_step} x group_size {self.group_size})")
        if self.reward.metric not in REWARD_METRICS:
            raise SettingsError("reward.metric", f"{self.reward.metric!r} is not one of {list(REWARD_METRICS)}")
        if self.rollout_backend not in ROLLOUT_BACKENDS:
            raise SettingsError("rollout_backend", f"{self.rollout_backend!r} is not one of {list(ROLLOUT_BACKENDS)}")

    @property
    def rollouts_per_step(self) -> int:
        return self.questions_per_step * self.group_size

    @property
    def per_device_batch_size(self) -> int:
        return self.micro_batch_size or self.rollouts_per_step

    @property
    def gradient_accumulation_steps(self) -> int:
        return self.rollouts_per_step // self.per_device_batch_size

    def as_dict(self) -> dict[str, Any]:
        """JSON types, as provenance records them."""
        out = dataclasses.asdict(self)
        out["lora"]["target_modules"] = list(self.lora.target_modules)
        return out


_PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")

PRESETS: dict[str, GRPOSettings] = {
    # A run that a 135M model finishes on a laptop CPU in well under an hour (BENCHMARKS.md 11):
    # 1 question x 4 rollouts per step (a step of 2 x 4 took 140 s on 2 cores, 60 of them
    # rollouts), one update per step, micro-batches of 2 (8 rollouts of ~2,000 tokens at once
    # held 15 GB), no reference model (beta 0). Temperature 0.7 rather than 1.0: at 1.0 a
    # 135M model's episodes are mostly noise and nearly every group scores 0 everywhere.
    "cpu": GRPOSettings(
        n_questions=64, steps=24, questions_per_step=1, group_size=4, micro_batch_size=2, learning_rate=2e-5,
        beta=0.0, temperature=0.7, top_p=1.0, save_steps=4, save_total_limit=2,
        lora=LoraSettings(16, 32, 0.05, _PROJECTIONS), reward=RewardSettings("em", 0.0),
        rollout_backend="transformers", bf16=False, seed=0,
    ),
    # Search-R1's GRPO recipe (Jin et al. 2025, its train_grpo.sh): 512 questions per step,
    # 5 rollouts each, lr 1e-6, KL 0.001, temperature 1.0, 1005 steps; here with LoRA (r 64)
    # rather than full weights, and vLLM sampling the rollouts beside the trainer.
    "paper": GRPOSettings(
        n_questions=None, steps=1005, questions_per_step=512, group_size=5, micro_batch_size=16,
        learning_rate=1e-6, beta=0.001, temperature=1.0, top_p=1.0, save_steps=50, save_total_limit=3,
        lora=LoraSettings(64, 128, 0.05, _PROJECTIONS), reward=RewardSettings("em", 0.0),
        rollout_backend="vllm", bf16=True, seed=0,
    ),
}

_TOP_LEVEL = ("n_questions", "steps", "questions_per_step", "group_size", "micro_batch_size", "learning_rate", "beta",
              "temperature", "save_steps", "rollout_backend")


def grpo_settings(run: Mapping[str, Any]) -> GRPOSettings:
    """A validated ``rl.<run>`` entry over its preset (SettingsError naming the key that cannot work)."""
    preset = PRESETS[run["preset"]]
    changes = {key: run[key] for key in _TOP_LEVEL if run.get(key) is not None}
    lora = {k: v for k, v in run.get("lora", {}).items() if v is not None}
    if "target_modules" in lora:
        lora["target_modules"] = tuple(lora["target_modules"])
    reward = run.get("reward", {})
    return dataclasses.replace(
        preset, **changes, seed=run.get("seed", preset.seed),
        lora=dataclasses.replace(preset.lora, **lora),
        reward=RewardSettings(reward.get("metric", preset.reward.metric),
                              reward.get("format_penalty", preset.reward.format_penalty)),
    )
