"""Training in chat form: records as conversations, the loss on the assistant's turns only (trl).

A record (instruction, question, trajectory) becomes the conversation the agent has in the
``chat`` form (react.agent.forms): the instruction and question as the user's message, each
thought and action an assistant turn, each observation the next user turn; the observation
after the final ``Finish`` is dropped (nothing is learned from it). trl's
``assistant_only_loss`` keeps the loss on the assistant turns; it reads which tokens those are
from ``{% generation %}`` markers in the chat template. Templates without them get a
training variant: trl's own for the models it knows, ours (``templates/``, keyed by the
sha256 of the original) for the rest. A training variant renders exactly the text of the
original (tests/test_chat.py), so the model is trained on what it reads at evaluation; the
merged model keeps the original template (react.training.checkpoints takes the base's
tokenizer).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, replace
from importlib import resources
from pathlib import Path
from typing import Any

from react.agent.forms import conversation
from react.inference.chat import template_sha256, template_text
from react.training.tokenize import TrainingSet, read_records, record_trajectory

log = logging.getLogger(__name__)

# sha256 of a model's own chat template -> our training variant of it (package data in templates/)
TRAINING_TEMPLATES = {
    # SmolLM2 Instruct (ChatML with a default system message): the default model
    "872be49dbb638044ad01b60388f48d469ff2980e5f0dccdc22ec907db54d0788": "smollm2_training.jinja",
}


def training_chat_template(tokenizer: Any, model: str | Path) -> str:
    """The tokenizer's template with ``{% generation %}`` markers around the assistant's turns.

    Raises ValueError naming ``model`` when it has no template or none we can mark.
    """
    from trl.chat_template_utils import get_training_chat_template, has_generation_markers

    template = template_text(tokenizer)
    if template is None:
        raise ValueError(f"model {model}: no chat template, so it cannot be finetuned in chat form")
    if has_generation_markers(template):
        return template
    ours = TRAINING_TEMPLATES.get(template_sha256(template))
    if ours:
        return resources.files("react.training").joinpath("templates", ours).read_text(encoding="utf-8")
    try:
        patched = get_training_chat_template(tokenizer)
    except ValueError as exc:
        raise ValueError(f"model {model}: its chat template (sha256 {template_sha256(template)}) has no "
                         "{% generation %} markers and neither trl nor this project has a training variant of it; "
                         f"add one to react/training/templates/ and TRAINING_TEMPLATES ({exc})") from exc
    return patched or template


def record_messages(record: dict[str, Any]) -> list[dict[str, str]]:
    """A training record (id, text, trajectory) as the chat form's conversation.

    The user's message is the text before the trajectory without its last newline: the
    instruction and question exactly as the ``instruction`` prompt gives them at evaluation.
    """
    start, steps = record_trajectory(record)
    steps[-1] = replace(steps[-1], observation=None)
    return [asdict(m) for m in conversation(record["text"][:start].removesuffix("\n"), steps)]


def tokenize_conversation(tokenizer: Any, messages: list[dict[str, str]], template: str) -> tuple[list[int], list[int]]:
    """Token ids and assistant mask of a conversation, as trl's ``assistant_only_loss`` computes them."""
    encoded = tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True,
                                            return_assistant_tokens_mask=True, chat_template=template)
    return list(encoded["input_ids"]), list(encoded["assistant_masks"])


def load_chat_training_set(dataset_jsonl: str | Path, tokenizer: Any, template: str, max_length: int) -> TrainingSet:
    """The records of ``dataset_jsonl`` as conversations (column ``messages``), for trl to tokenize.

    Counted here as trl will tokenize them (``template``: the training variant): a conversation
    longer than ``max_length`` tokens is cut by trl keeping its start, and one whose assistant
    tokens all lie beyond the cut is left out (and logged), as in the raw form.
    """
    from datasets import Dataset

    records = read_records(dataset_jsonl)
    kept, left_out = [], []
    n_tokens = n_trainable = n_truncated = 0
    for record in records:
        messages = record_messages(record)
        ids, mask = tokenize_conversation(tokenizer, messages, template)
        n_truncated += len(ids) > max_length
        n_trainable += sum(mask)
        if sum(mask[:max_length]) == 0:
            left_out.append(str(record["id"]))
            continue
        n_tokens += min(len(ids), max_length)
        kept.append(messages)
    if n_truncated:
        log.warning("%d of %d conversations are longer than %d tokens and will be truncated (start kept)",
                    n_truncated, len(records), max_length)
    if left_out:
        log.warning("%d records have no assistant token within max_length=%d and are left out: %s",
                    len(left_out), max_length, ", ".join(left_out[:10]))
    if not kept:
        raise ValueError(f"{dataset_jsonl}: no record has an assistant token within max_length={max_length}")
    log.info("%d training conversations (%d tokens, %d on assistant turns, %d truncated) from %s", len(kept),
             n_tokens, n_trainable, n_truncated, dataset_jsonl)
    return TrainingSet(Dataset.from_dict({"messages": kept}), len(records), n_tokens, n_trainable, n_truncated,
                       tuple(left_out))
