"""Typed settings, built once from a validated configuration (react.config.validate).

The schema (schema.yaml) fills every default and checks every value; these
dataclasses only give the validated sections types, so code reads
``evaluation.n_questions`` rather than ``config["evaluation"]["n_questions"]``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from react.agent.loop import AgentConfig
from react.config.validate import ConfigError, DefaultingValidator, describe_error, load_schema
from react.inference.base import EngineSettings, Sampling
from react.inference.registry import ModelRef, settings_type


def agent_settings(agent: Mapping[str, Any]) -> AgentConfig:
    """The agent of the validated `agent` section."""
    return AgentConfig(
        max_steps=agent["max_steps"],
        sampling=Sampling(agent["max_new_tokens"], agent["temperature"], agent["top_p"]),
        seed=agent["seed"],
        protocol=agent["protocol"],
    )


@dataclass(frozen=True)
class EvaluationSettings:
    split: str
    corpus: str
    n_questions: int | None  # None: every question of the split
    seed: int  # of the paper's question sample
    models: tuple[str, ...]


def evaluation_settings(evaluation: Mapping[str, Any]) -> EvaluationSettings:
    """The validated `evaluation` section."""
    return EvaluationSettings(evaluation["split"], evaluation["corpus"], evaluation["n_questions"],
                              evaluation["seed"], tuple(evaluation["models"]))


@dataclass(frozen=True)
class TeacherSettings:
    name: str
    model: str | None  # None: the model-free oracle
    split: str
    corpus: str
    n_questions: int | None  # None: every question of the split
    samples: int  # episodes per question
    temperature: float | None  # None: the agent's
    shards: int
    seed: int


def teacher_settings(name: str, teacher: Mapping[str, Any]) -> TeacherSettings:
    """A validated entry of the `teachers` section."""
    return TeacherSettings(name, teacher.get("model"), teacher["split"], teacher["corpus"], teacher["n_questions"],
                           teacher["samples"], teacher["temperature"], teacher["shards"], teacher["seed"])


def teacher_agent(agent: AgentConfig, teacher: TeacherSettings) -> AgentConfig:
    """The agent a teacher runs: the configured one, at the teacher's temperature where it sets one."""
    if teacher.temperature is None:
        return agent
    return replace(agent, sampling=replace(agent.sampling, temperature=teacher.temperature))


def engine_settings(model: Mapping[str, Any], backends: Mapping[str, Any], threads: int | None) -> EngineSettings:
    """The settings of a model's engine, from its validated entry and the validated `backends` section.

    ``threads``: what the job may use (None: the engine's own choice).
    """
    return settings_type(model["backend"]).from_config(model, backends, threads)


def model_ref(name: str, location: str, model: Mapping[str, Any], backends: Mapping[str, Any],
              threads: int | None) -> ModelRef:
    """A validated model entry (react.config.validate.model_spec) as something to load from ``location``."""
    return ModelRef(name, location, model["backend"], engine_settings(model, backends, threads))


def schema_defaults(definition: str, instance: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """``instance`` (default empty) validated against one part of the schema, with its defaults filled in.

    ``definition``: a top-level property (``backends``) or a definition (``$defs/model``).
    """
    schema = load_schema()
    part = schema["$defs"][definition.removeprefix("$defs/")] if definition.startswith("$defs/") else \
        schema["properties"][definition]
    filled = dict(instance or {})
    errors = [describe_error(e) for e in DefaultingValidator({**part, "$defs": schema["$defs"]}).iter_errors(filled)]
    if errors:
        raise ConfigError(f"invalid {definition}:\n  " + "\n  ".join(errors))
    return filled


def default_engine_settings(backend: str, **fields: Any) -> EngineSettings:
    """Settings of an engine as the schema's defaults give them, ``fields`` replaced (tests, benchmarks).

    A server (openai) defaults to http://127.0.0.1:8000/v1; give ``base_url`` to change it.
    """
    model = schema_defaults("$defs/model", {"backend": backend, "url": "http://127.0.0.1:8000/v1"})
    return replace(engine_settings(model, schema_defaults("backends"), None), **fields)
