"""The engines by config name (`backend:` of a model entry), and starting one for a model.

An engine is a module with a class following `react.inference.base.Backend`, constructed
as ``Engine(model_path, model_name, settings)``, whose ``settings_type`` is its
`EngineSettings` subclass. Adding an engine = its module + one line here + its name in
the schema's ``backend`` enum. Modules are imported on first use: vLLM is heavy.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

from react.inference.base import Backend, EngineSettings

ENGINES = {
    "transformers": "react.inference.transformers:TransformersBackend",
    "vllm": "react.inference.vllm:VLLMBackend",
    "openai": "react.inference.openai:OpenAIBackend",  # an OpenAI-compatible server
}


def engine_class(name: str) -> Any:
    """The engine class registered as ``name``."""
    if name not in ENGINES:
        names = [repr(n) for n in ENGINES]
        raise ValueError(f"unknown backend {name!r} (expected {', '.join(names[:-1])} or {names[-1]})")
    module, _, attribute = ENGINES[name].partition(":")
    return getattr(importlib.import_module(module), attribute)


def settings_type(name: str) -> type[EngineSettings]:
    return engine_class(name).settings_type


@dataclass(frozen=True)
class ModelRef:
    """A model to load: its name (in results), where its weights are, its engine and that engine's settings."""

    name: str
    location: str  # a folder, a Hugging Face id, or the served model name
    backend: str  # a name in ENGINES
    settings: EngineSettings


def start_engine(model: ModelRef) -> Backend:
    """The model's engine, loaded (errors name the model)."""
    engine = engine_class(model.backend)
    if not isinstance(model.settings, engine.settings_type):
        raise TypeError(f"model {model.name!r}: backend {model.backend!r} takes {engine.settings_type.__name__}, "
                        f"not {type(model.settings).__name__}")
    return engine(model.location, model.name, model.settings)
