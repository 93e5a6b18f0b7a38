"""Chat prompts: a conversation whose last assistant turn the model continues, and the model's own template.

The agent hands a backend either raw text or a :class:`Chat`. A local engine renders
a chat with the model's own template (``apply_chat_template(continue_final_message=True)``,
what ``vllm serve`` does for ``/v1/chat/completions``) and tokenizes the text *without*
adding special tokens: the template writes its own BOS, so a tokenizer that also adds
one would send it twice (:meth:`ChatTemplate.token_ids`; tests/test_chat.py checks the
ids against ``apply_chat_template(tokenize=True)``). A server gets the messages.

Where a template can be found before any job runs (a model folder, a GGUF's metadata,
a cached hub model): :func:`find_chat_template`.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from react.inference.base import Chat, Message, ModelLoadError, Prompt

__all__ = ["Chat", "ChatTemplate", "Message", "NoChatTemplate", "Prompt", "find_chat_template", "gguf_chat_template"]


class NoChatTemplate(ModelLoadError):
    """A model asked for a chat prompt has no chat template; the message names it."""


def template_text(tokenizer: Any) -> str | None:
    """The tokenizer's chat template (the ``default`` one of named variants), or None."""
    template = getattr(tokenizer, "chat_template", None)
    if isinstance(template, dict):
        template = template.get("default")
    return template or None


def template_sha256(template: str) -> str:
    return hashlib.sha256(template.encode("utf-8")).hexdigest()


class ChatTemplate:
    """A model's chat template, rendered as the model's engine renders it."""

    def __init__(self, tokenizer: Any, model_name: str) -> None:
        template = template_text(tokenizer)
        if template is None:
            raise NoChatTemplate(f"model {model_name!r} has no chat template: use format raw for it, or give it a "
                                 "tokenizer with one")
        self.tokenizer = tokenizer
        self.template = template
        self.sha256 = template_sha256(template)

    def render(self, chat: Chat) -> str:
        """The text the model reads: the template over the messages, ending in the open assistant turn."""
        return self.tokenizer.apply_chat_template(chat.as_dicts(), tokenize=False, add_generation_prompt=False,
                                                  continue_final_message=True, chat_template=self.template)

    def token_ids(self, chat: Chat) -> list[int]:
        """The ids the engine reads: the rendered text, no special tokens added (the template wrote them)."""
        return list(self.tokenizer(self.render(chat), add_special_tokens=False)["input_ids"])


def prompt_token_ids(tokenizer: Any, template: ChatTemplate | None, prompts: list[Any]) -> list[list[int]]:
    """Token ids of raw prompts (special tokens added, as for any text) and chats (template only)."""
    texts = [p for p in prompts if isinstance(p, str)]
    encoded = iter(tokenizer(texts, add_special_tokens=True)["input_ids"] if texts else [])
    if template is None and len(texts) < len(prompts):
        raise NoChatTemplate("a chat prompt was sent to a model without a chat template")
    return [list(next(encoded)) if isinstance(p, str) else template.token_ids(p) for p in prompts]


def engine_template(tokenizer: Any, model_name: str) -> ChatTemplate | None:
    """The engine's chat template, or None when the model has none (then only raw prompts work)."""
    return ChatTemplate(tokenizer, model_name) if template_text(tokenizer) else None


def find_chat_template(location: str | Path) -> str | None:
    """A model's chat template found without loading it; None when it has none.

    ``location``: a model folder (``chat_template.jinja`` or ``tokenizer_config.json``) or a
    hub id, looked up in the local cache only. Raises FileNotFoundError when there is nothing
    to look in. A GGUF file: :func:`gguf_chat_template`.
    """
    folder = Path(location)
    if not folder.is_dir():
        folder = _cached_hub_folder(str(location))
    jinja = folder / "chat_template.jinja"
    if jinja.is_file():
        return jinja.read_text(encoding="utf-8")
    config = folder / "tokenizer_config.json"
    if config.is_file():
        template = json.loads(config.read_text(encoding="utf-8")).get("chat_template")
        if isinstance(template, list):  # named variants
            template = {t.get("name"): t.get("template") for t in template}.get("default")
        return template or None
    return None


def gguf_chat_template(path: str | Path) -> str | None:
    """The ``tokenizer.chat_template`` metadata of a GGUF file; None when it has none."""
    from gguf import GGUFReader

    field = GGUFReader(str(path)).fields.get("tokenizer.chat_template")
    if field is None:
        return None
    return bytes(field.parts[field.data[0]]).decode("utf-8") or None


def _cached_hub_folder(hub_id: str) -> Path:
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(hub_id, local_files_only=True,
                                      allow_patterns=["tokenizer_config.json", "chat_template.jinja"]))
    except Exception as exc:  # noqa: BLE001 - not cached (or no hub library): say where we looked
        raise FileNotFoundError(f"{hub_id} is neither a folder nor in the local Hugging Face cache") from exc
