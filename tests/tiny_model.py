"""A tiny random Llama with a locally trained byte-level BPE tokenizer: no downloads.

Its output is noise (random words, control characters, broken UTF-8), which is
what the robustness tests want; it is useless for accuracy.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent


def training_texts(n_questions: int = 200) -> list[str]:
    from react.agent.prompts import read_prompt
    from react.config.validate import load_schema

    texts = [read_prompt(load_schema()["properties"]["prompt"]["default"])]
    with gzip.open(PROJECT / "resources/hotpotqa/dev_distractor.jsonl.gz", "rt") as fh:
        for i, line in enumerate(fh):
            if i >= n_questions:
                break
            item = json.loads(line)
            paragraphs = " ".join("".join(sentences) for _, sentences in item["context"])
            texts.append(f"{item['question']} {item['answer']} {paragraphs}")
    return texts


def build_tiny_model(out_dir: Path, vocab_size: int = 1024, seed: int = 0, chat_template: str | None = None) -> Path:
    """The tiny model; with ``chat_template``, a chat model: ChatML's special tokens, EOS ``<|im_end|>``."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=["<|endoftext|>", *(["<|im_start|>", "<|im_end|>"] if chat_template else [])],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(training_texts(), trainer)
    eos = "<|im_end|>" if chat_template else "<|endoftext|>"
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, bos_token="<|endoftext|>", eos_token=eos, pad_token="<|endoftext|>"
    )
    if chat_template:
        fast.chat_template = chat_template
    config = LlamaConfig(
        vocab_size=len(fast),
        hidden_size=128,  # head_dim 64: a size vLLM's CPU attention supports
        intermediate_size=256,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=16384,  # the few-shot prompt is ~2.9k tokens with this vocabulary
        tie_word_embeddings=True,
        initializer_range=0.3,  # varied noise rather than one repeated token
        bos_token_id=0,
        eos_token_id=fast.convert_tokens_to_ids(eos),
        pad_token_id=0,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    model.save_pretrained(out_dir)
    fast.save_pretrained(out_dir)
    return out_dir
