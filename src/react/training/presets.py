"""Finetuning hyperparameters: the article's (``paper``) and a CPU-sized run (``cpu``), and a config's overrides.

A run's hyperparameters are a frozen :class:`Hyperparameters`, checked when made (each
error names its key); :meth:`Hyperparameters.from_preset` applies a config's
``finetune.<run>.hyperparameters`` to a preset. The names are those of peft's
``LoraConfig``, transformers' ``BitsAndBytesConfig`` and trl's ``SFTConfig``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

_CHOICES = {
    "method": ("lora", "qlora"),
    "bias": ("none", "all", "lora_only"),
    "bnb_4bit_quant_type": ("nf4", "fp4"),
    "bnb_4bit_compute_dtype": ("float32", "float16", "bfloat16"),
}
_POSITIVE_INTS = ("r", "num_train_epochs", "per_device_train_batch_size", "gradient_accumulation_steps",
                  "save_steps", "save_total_limit", "logging_steps", "max_length")  # fmt: skip
_NON_NEGATIVE = ("learning_rate", "lora_alpha", "max_grad_norm", "lora_dropout", "weight_decay", "warmup_steps")
_BOOLEANS = ("bf16", "fp16", "gradient_checkpointing", "mask_observations", "packing", "group_by_length",
             "bnb_4bit_use_double_quant")  # fmt: skip


@dataclass(frozen=True)
class Hyperparameters:
    """One finetune run's hyperparameters (fields in the order provenance has always listed them)."""

    method: str  # lora, or qlora: the base quantized to 4 bits
    r: int
    lora_alpha: float
    lora_dropout: float
    bias: str
    target_modules: tuple[str, ...]
    num_train_epochs: int
    max_steps: int  # -1: the epochs decide
    per_device_train_batch_size: int
    gradient_accumulation_steps: int
    optim: str
    learning_rate: float
    weight_decay: float
    max_grad_norm: float
    warmup_steps: int
    lr_scheduler_type: str
    bf16: bool  # bf16 and fp16 apply on a GPU only
    fp16: bool
    gradient_checkpointing: bool
    save_steps: int
    save_total_limit: int
    logging_steps: int
    max_length: int  # tokens; longer records are cut, keeping their start
    packing: bool
    group_by_length: bool
    bnb_4bit_quant_type: str
    bnb_4bit_compute_dtype: str  # on a CPU float32 is used instead
    bnb_4bit_use_double_quant: bool
    mask_observations: bool  # true: the loss on model-written tokens only; false: on every token (the article)
    seed: int

    def __post_init__(self) -> None:
        for key, allowed in _CHOICES.items():
            if getattr(self, key) not in allowed:
                raise ValueError(f"finetuning hyperparameter {key!r}: {getattr(self, key)!r} is not one of {list(allowed)}")
        for key in _POSITIVE_INTS:
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"finetuning hyperparameter {key!r}: expected a positive integer, got {value!r}")
        for key in _NON_NEGATIVE:
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise ValueError(f"finetuning hyperparameter {key!r}: expected a non-negative number, got {value!r}")
        if not isinstance(self.max_steps, int) or self.max_steps == 0 or self.max_steps < -1:
            raise ValueError(f"finetuning hyperparameter 'max_steps': expected -1 or a positive integer, got {self.max_steps!r}")
        if not isinstance(self.target_modules, list | tuple) or not self.target_modules:
            raise ValueError("finetuning hyperparameter 'target_modules': expected a non-empty list of module names")
        object.__setattr__(self, "target_modules", tuple(self.target_modules))  # a config gives a list
        for key in _BOOLEANS:
            if not isinstance(getattr(self, key), bool):
                raise ValueError(f"finetuning hyperparameter {key!r}: expected true or false, got {getattr(self, key)!r}")  # noqa: TRY004
        if self.bf16 and self.fp16:
            raise ValueError("finetuning hyperparameters 'bf16' and 'fp16' cannot both be true")
        if self.packing:
            # Packing would glue trajectories together across the loss mask; the article trains unpacked.
            raise ValueError("finetuning hyperparameter 'packing': only false is supported")

    @classmethod
    def from_preset(cls, preset: str, overrides: dict[str, Any] | None = None) -> Hyperparameters:
        """The preset's hyperparameters with ``overrides`` applied (and checked).

        Unknown preset or key -> ValueError naming it and listing the allowed ones.
        """
        if preset not in PRESETS:
            raise ValueError(f"unknown finetuning preset {preset!r}; choose one of {sorted(PRESETS)}")
        allowed = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(overrides or {}) - set(allowed))
        if unknown:
            raise ValueError(
                f"unknown finetuning hyperparameter{'s' if len(unknown) > 1 else ''} "
                f"{', '.join(map(repr, unknown))}; allowed: {', '.join(sorted(allowed))}"
            )
        return dataclasses.replace(PRESETS[preset], **(overrides or {}))

    def as_dict(self) -> dict[str, Any]:
        """The values as provenance records them (JSON types: target_modules a list)."""
        return {**dataclasses.asdict(self), "target_modules": list(self.target_modules)}


_LORA = {
    # peft LoraConfig names
    "r": 16,
    "lora_alpha": 32,
    "lora_dropout": 0.05,
    "bias": "none",
    "target_modules": ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"),
}

PRESETS: dict[str, Hyperparameters] = {
    # The article's values (its TrainingArguments, LoraConfig, BitsAndBytesConfig and
    # SFTTrainer(max_seq_length=1200, packing=False)), under today's names.
    "paper": Hyperparameters(
        method="qlora",
        **_LORA,
        num_train_epochs=1,
        max_steps=-1,  # -1: the epochs decide
        per_device_train_batch_size=2,
        gradient_accumulation_steps=1,
        optim="paged_adamw_32bit",
        learning_rate=5e-5,
        weight_decay=0.0,
        max_grad_norm=0.3,
        # With lr_scheduler_type "constant" transformers ignores warmup_steps (only
        # "constant_with_warmup" uses it); the article sets both, so both are kept as written.
        warmup_steps=100,
        lr_scheduler_type="constant",
        bf16=True,
        fp16=False,
        # The article's TrainingArguments left it at its default, off (trl's SFTConfig now defaults to on).
        gradient_checkpointing=False,
        save_steps=25,
        save_total_limit=3,
        logging_steps=25,
        max_length=1200,  # the article's max_seq_length
        packing=False,
        group_by_length=False,  # not among the article's arguments: transformers' default, random order
        bnb_4bit_quant_type="nf4",
        bnb_4bit_compute_dtype="float16",  # on a CPU float32 is used instead
        bnb_4bit_use_double_quant=False,
        # The article's SFTTrainer(dataset_text_field="text") puts the loss on every token of the text.
        mask_observations=False,
        seed=0,
    ),
    # A run that fits a laptop CPU: the same LoRA shape, short sequences, few steps.
    "cpu": Hyperparameters(
        method="lora",
        **_LORA,
        num_train_epochs=1,
        max_steps=-1,
        # 2 x 2 rather than 4 x 1: the same updates at half the activation memory (BENCHMARKS.md 4).
        per_device_train_batch_size=2,
        gradient_accumulation_steps=2,
        optim="adamw_torch",
        learning_rate=2e-4,
        weight_decay=0.0,
        max_grad_norm=0.3,
        warmup_steps=0,
        lr_scheduler_type="constant",
        bf16=False,  # fp32: bf16 is slower on CPUs without native bf16 matmul (BENCHMARKS.md 4)
        fp16=False,
        gradient_checkpointing=False,  # faster; costs activation memory (BENCHMARKS.md 4)
        save_steps=8,
        save_total_limit=3,
        logging_steps=1,
        max_length=1024,
        packing=False,  # benchmarks/train_throughput.py: trl packing was slower here and halves the steps
        # Length-grouped micro-batches: 1.16x the tokens/s, held-out loss within the seed-to-seed spread
        # (BENCHMARKS.md, "Training throughput").
        group_by_length=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_compute_dtype="float32",
        bnb_4bit_use_double_quant=False,
        # The loss on what the model writes (thoughts, actions, the stop marker) only: the
        # observations are the environment's, not behaviour to imitate. `false` is the article's.
        mask_observations=True,
        seed=0,
    ),
}
