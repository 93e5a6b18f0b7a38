"""The transformers engine: batched `model.generate` on CPU or GPU, with a few-shot prefix cache."""

from __future__ import annotations

import logging
import os
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from react.agent.parsing import truncate_at_stop
from react.inference.base import EngineSettings, Generation, ModelLoadError, Sampling
from react.inference.chat import Prompt, engine_template, prompt_token_ids

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TransformersSettings(EngineSettings):
    section = "transformers"

    device: str  # auto, cpu, cuda, cuda:1, ...
    batch_size: int
    prefix_cache: bool


class TransformersBackend:
    """Batched `model.generate` with left padding and stop strings (CPU or GPU).

    Prefix cache (``prefix_cache=True``): the prompts of one call share a long
    prefix (the few-shot prompt). Its key/value states are computed once, kept in
    a small LRU of recent prefixes, and reused for every prompt of the call and of
    later calls. The shared prefix is found on token ids, not on text: each prompt
    is tokenized exactly as the uncached path tokenizes it, the prefix is the
    longest common run of token ids, so the model reads the same ids at the same
    positions either way. A batch is laid out as ``[prefix][pads][suffix]``: the
    prefix's states are expanded to the batch, suffixes are left-padded after it,
    the pads are masked out, and `generate` takes position ids from the mask
    (cumsum - 1), so every real token attends to exactly the tokens it attends to
    in the uncached layout ``[pads][prefix][suffix]`` at the same positions. A
    one-prompt call caches the whole prompt but its last token, so the next step
    of a sequential episode (whose prompt extends it) only computes the new tokens.
    An entry that shares only part of a new prefix is cropped and extended.
    Models whose cache is not a plain full-attention `DynamicCache` (sliding
    windows, hybrids) fall back to the uncached path.
    """

    name = "transformers"
    settings_type = TransformersSettings

    def __init__(self, model_path: str, model_name: str, settings: TransformersSettings, *,
                 prefix_cache_entries: int = 4) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        dtype, device, quantization = settings.dtype, settings.device, settings.quantization
        trust_remote_code = settings.trust_remote_code
        if settings.threads:
            torch.set_num_threads(settings.threads)
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = device
        self.batch_size = settings.batch_size
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
        self.chat_template = engine_template(self.tokenizer, model_name)
        self.prefix_cache = settings.prefix_cache
        self.prefix_cache_entries = max(1, prefix_cache_entries)
        # token ids of a cached prefix -> per layer (keys, values), each [1, kv_heads, len, head_dim]
        self._prefixes: OrderedDict[tuple[int, ...], list[tuple[Any, Any]]] = OrderedDict()
        # Counters for benchmarks and tests: prompt tokens whose states were reused / computed.
        self.stats = {"calls": 0, "cached_calls": 0, "prefix_tokens_reused": 0, "prefix_tokens_computed": 0}

    def count_tokens(self, prompts: list[Prompt]) -> list[int]:
        return [len(ids) for ids in prompt_token_ids(self.tokenizer, self.chat_template, prompts)]

    def generate(
        self, prompts: list[Prompt], stop: list[str], sampling: Sampling, seeds: list[int]
    ) -> list[Generation]:
        import torch

        self.stats["calls"] += 1
        results: list[Generation | None] = [None] * len(prompts)
        # Raw text with the tokenizer's special tokens, a chat as its template renders it.
        token_ids = prompt_token_ids(self.tokenizer, self.chat_template, prompts)
        shared = 0
        if self.prefix_cache and prompts:
            shared = self._shared_prefix_length(token_ids)
            if shared > 0:
                self.stats["cached_calls"] += 1
        # Similar lengths together: less padding, fewer wasted FLOPs.
        order = sorted(range(len(prompts)), key=lambda i: len(token_ids[i]))
        for start in range(0, len(order), self.batch_size):
            batch = order[start : start + self.batch_size]
            if sampling.temperature > 0:
                # One generator per batch: reproducible for the same batch composition.
                torch.manual_seed(seeds[batch[0]])
            if shared > 0:
                gens = self._generate_batch_cached([token_ids[i] for i in batch], shared, stop, sampling)
            else:
                gens = self._generate_batch([token_ids[i] for i in batch], stop, sampling)
            for i, gen in zip(batch, gens):
                results[i] = gen
        return [r for r in results if r is not None]

    def _generation_kwargs(self, sampling: Sampling) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"max_new_tokens": sampling.max_new_tokens}
        if sampling.temperature > 0:
            kwargs.update(do_sample=True, temperature=sampling.temperature, top_p=sampling.top_p)
        else:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        return kwargs

    def _generate_batch(self, token_ids: list[list[int]], stop: list[str], sampling: Sampling) -> list[Generation]:
        import torch

        enc = self.tokenizer.pad({"input_ids": token_ids}, return_tensors="pt", padding=True).to(self.device)
        with torch.inference_mode():
            out = self.model.generate(
                **enc,
                **self._generation_kwargs(sampling),
                stop_strings=stop or None,
                tokenizer=self.tokenizer,
                pad_token_id=self.tokenizer.pad_token_id,
            )
        return self._decode(out[:, enc["input_ids"].shape[1] :], stop, sampling)

    def _decode(self, new_tokens: Any, stop: list[str], sampling: Sampling) -> list[Generation]:
        gens = []
        for row in new_tokens:
            ids = [t for t in row.tolist() if t != self.tokenizer.pad_token_id]
            # vLLM's incremental detokenizer holds back text ending in U+FFFD (a character whose
            # bytes are not all generated yet) and so never ends a completion with one: nor do we.
            text = self.tokenizer.decode(ids, skip_special_tokens=True).rstrip("\ufffd")
            cut = truncate_at_stop(text, stop)
            finish = "stop" if len(cut) < len(text) or len(ids) < sampling.max_new_tokens else "length"
            gens.append(Generation(cut, len(ids), finish))
        return gens

    # --- prefix cache -------------------------------------------------------------------------

    def _shared_prefix_length(self, token_ids: list[list[int]]) -> int:
        """Tokens whose states are taken from the prefix cache (0 = uncached path).

        Several prompts: their longest common run of token ids. One prompt: all of it.
        Always at least one token of every prompt is left for `generate` to read, which
        yields the first new token's logits.
        """
        if not self._cacheable():
            return 0
        shortest = min(len(ids) for ids in token_ids)
        common = len(os.path.commonprefix(token_ids)) if len(token_ids) > 1 else shortest
        return max(0, min(common, shortest - 1))

    def _cacheable(self) -> bool:
        if not hasattr(self, "_cache_supported"):
            from transformers import DynamicCache
            from transformers.cache_utils import DynamicLayer

            probe = DynamicCache(config=self.model.config)
            layers = getattr(probe, "layers", [])
            # Only full attention: sliding-window layers drop old states, which a shared prefix needs.
            self._cache_supported = bool(layers) and all(type(layer) is DynamicLayer for layer in layers)
            if not self._cache_supported:
                log.info("prefix cache off for this model: its cache is not a plain full-attention DynamicCache")
        return self._cache_supported

    def _takes_logits_to_keep(self) -> bool:
        if not hasattr(self, "_logits_to_keep"):  # asked once: inspect is slow for a per-call check
            import inspect

            self._logits_to_keep = "logits_to_keep" in inspect.signature(self.model.forward).parameters
        return self._logits_to_keep

    def _prefix_states(self, prefix: tuple[int, ...]) -> list[tuple[Any, Any]]:
        """The prefix's per-layer key/value states: from the LRU, or computed (extending the best entry)."""
        import torch
        from transformers import DynamicCache

        best, reuse = None, 0
        for ids in self._prefixes:
            n = len(os.path.commonprefix([ids, prefix]))
            if n > reuse:
                best, reuse = ids, n
        n_prefix = len(prefix)
        if best is not None:
            self._prefixes.move_to_end(best)
        self.stats["prefix_tokens_reused"] += reuse
        if best is not None and reuse == n_prefix:
            return [(k[:, :, :n_prefix], v[:, :, :n_prefix]) for k, v in self._prefixes[best]]
        past = None
        if reuse:
            past = DynamicCache(ddp_cache_data=[(k[:, :, :reuse], v[:, :, :reuse]) for k, v in self._prefixes[best]],
                                config=self.model.config)
        new = torch.tensor([prefix[reuse:]], dtype=torch.long, device=self.device)
        positions = torch.arange(reuse, n_prefix, dtype=torch.long, device=self.device).unsqueeze(0)
        extra = {"logits_to_keep": 1} if self._takes_logits_to_keep() else {}  # skip the prefix's logits
        with torch.inference_mode():
            out = self.model(input_ids=new, position_ids=positions, past_key_values=past, use_cache=True, **extra)
        self.stats["prefix_tokens_computed"] += n_prefix - reuse
        states = [(layer.keys, layer.values) for layer in out.past_key_values.layers]
        # An entry that the new one extends is redundant: the new one, cropped, serves it.
        for ids in [ids for ids in self._prefixes if len(ids) <= n_prefix and prefix[: len(ids)] == ids]:
            del self._prefixes[ids]
        self._prefixes[prefix] = states
        while len(self._prefixes) > self.prefix_cache_entries:
            self._prefixes.popitem(last=False)
        return states

    def _generate_batch_cached(self, token_ids: list[list[int]], shared: int, stop: list[str],
                               sampling: Sampling) -> list[Generation]:
        """Generate from ``[prefix][pads][suffix]`` with the prefix's states expanded to the batch."""
        import torch
        from transformers import DynamicCache

        states = self._prefix_states(tuple(token_ids[0][:shared]))
        pad = self.tokenizer.pad_token_id
        suffixes = [ids[shared:] for ids in token_ids]
        width = max(len(s) for s in suffixes)
        input_ids = [token_ids[0][:shared] + [pad] * (width - len(s)) + s for s in suffixes]
        mask = [[1] * shared + [0] * (width - len(s)) + [1] * len(s) for s in suffixes]
        rows = len(token_ids)
        # `update` concatenates, so these new tensors are the batch's own: the LRU entry is never written.
        past = DynamicCache(ddp_cache_data=[(k.expand(rows, -1, -1, -1), v.expand(rows, -1, -1, -1))
                                            for k, v in states], config=self.model.config)
        input_tensor = torch.tensor(input_ids, dtype=torch.long, device=self.device)
        with torch.inference_mode():
            out = self.model.generate(
                input_ids=input_tensor,
                attention_mask=torch.tensor(mask, dtype=torch.long, device=self.device),
                past_key_values=past,
                **self._generation_kwargs(sampling),
                stop_strings=stop or None,
                tokenizer=self.tokenizer,
                pad_token_id=pad,
            )
        return self._decode(out[:, input_tensor.shape[1] :], stop, sampling)

    def clear_prefix_cache(self) -> None:
        self._prefixes.clear()

    def close(self) -> None:
        self._prefixes.clear()
        del self.model
