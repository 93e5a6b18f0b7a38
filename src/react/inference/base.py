"""What every inference engine shares: the request and answer types, the `Backend` interface, settings.

Every engine returns the completion cut at the first stop string (stop excluded,
vLLM's semantics), so the agent sees the same text whichever engine wrote it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

from react.threads import job_threads


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


@dataclass(frozen=True)
class Message:
    role: str  # system | user | assistant
    content: str


@dataclass(frozen=True)
class Chat:
    """A conversation that ends with the assistant turn the model continues (its start is prefilled)."""

    messages: tuple[Message, ...]

    def __post_init__(self) -> None:
        if not self.messages or self.messages[-1].role != "assistant":
            raise ValueError("a chat prompt ends with the assistant turn the model continues")

    def as_dicts(self) -> list[dict[str, str]]:
        return [{"role": m.role, "content": m.content} for m in self.messages]


Prompt = str | Chat  # what a backend's generate and count_tokens take


class Template(Protocol):
    """A model's chat template as its engine applies it (react.inference.chat.ChatTemplate)."""

    sha256: str

    def render(self, chat: Chat) -> str: ...

    def token_ids(self, chat: Chat) -> list[int]: ...


class ModelLoadError(RuntimeError):
    """A configured model could not be loaded; the message names the model."""


@dataclass(frozen=True)
class EngineSettings:
    """Constructor options every engine takes; each engine's settings add its own fields.

    No field has a default: the configuration schema is the single source of defaults,
    and settings are built once from a validated model entry and the config's
    ``backends`` section (`from_config`).
    """

    # The key of this engine's options in the config's `backends` section (None: it has none).
    section: ClassVar[str | None] = None

    dtype: str
    threads: int | None  # None: the engine's own choice
    quantization: str | None  # None: the weights as stored; nf4: 4-bit bitsandbytes
    trust_remote_code: bool

    @classmethod
    def from_config(cls, model: Mapping[str, Any], backends: Mapping[str, Any], threads: int | None) -> EngineSettings:
        """From a validated model entry and the validated `backends` section; ``threads`` as the job may use."""
        options = backends[cls.section] if cls.section else {}
        return cls(**common_options(model, threads), **options)


def common_options(model: Mapping[str, Any], threads: int | None) -> dict[str, Any]:
    """The `EngineSettings` fields of a validated model entry."""
    if threads:  # `--cores 8` on a 2-core laptop: more threads than CPUs only thrash (react.threads)
        threads = job_threads(threads).threads
    return {"dtype": model["dtype"], "threads": threads,
            "quantization": None if model["quantization"] == "none" else model["quantization"],
            "trust_remote_code": model["trust_remote_code"]}


class Backend(Protocol):
    """An engine. A prompt is raw text or a chat (react.inference.chat), which the engine renders
    with ``chat_template`` (None: the model has none, and a chat prompt is refused)."""

    name: str
    max_context: int  # prompt + completion tokens the model can attend to
    chat_template: Template | None

    def generate(
        self, prompts: list[Prompt], stop: list[str], sampling: Sampling, seeds: list[int]
    ) -> list[Generation]: ...

    def count_tokens(self, prompts: list[Prompt]) -> list[int]: ...

    def close(self) -> None: ...


def count_tokens(tokenizer: Any, texts: list[str]) -> list[int]:
    """Lengths of raw prompts as the engine sees them (special tokens included)."""
    return [len(ids) for ids in tokenizer(texts, add_special_tokens=True)["input_ids"]]
