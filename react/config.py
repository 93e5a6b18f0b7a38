"""Configuration: JSON-schema validation with defaults, and checks the schema cannot express.

Every error names the offending key as a dotted path (``models.smollm2.backend``),
so a typo fails before any job runs, with a message that says where to look.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator, validators

PROJECT_DIR = Path(__file__).resolve().parent.parent
SCHEMA_PATH = PROJECT_DIR / "config" / "schema.yaml"
BUNDLED_DATA_DIR = PROJECT_DIR / "resources" / "hotpotqa"
MODEL_SOURCES = ("gguf", "path", "hf_id")


class ConfigError(ValueError):
    """The configuration is invalid; the message names every offending key."""


def _with_defaults(validator_class):
    """A validator that fills in `default` values while it validates (jsonschema FAQ recipe)."""
    validate_properties = validator_class.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for name, sub in properties.items():
                if isinstance(sub, dict) and "default" in sub and name not in instance:
                    instance[name] = copy.deepcopy(sub["default"])
        yield from validate_properties(validator, properties, instance, schema)

    return validators.extend(validator_class, {"properties": set_defaults})


_DefaultingValidator = _with_defaults(Draft202012Validator)


def load_schema(path: Path = SCHEMA_PATH) -> dict[str, Any]:
    return yaml.safe_load(path.read_text())


def key_path(parts: Iterable[Any]) -> str:
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "<top level>"


def _describe(error) -> str:
    path = list(error.absolute_path)
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        known = set(error.schema.get("properties", {}))
        unknown = sorted(k for k in error.instance if k not in known)
        return "; ".join(
            f"config key {key_path(path + [k])!r}: unknown key (allowed: {', '.join(sorted(known))})"
            for k in unknown
        )
    if error.validator == "oneOf" and len(path) == 2 and path[0] == "models":
        return (f"config key {key_path(path)!r}: give exactly one of {', '.join(MODEL_SOURCES)} "
                "to say where the model comes from")
    return f"config key {key_path(path)!r}: {error.message}"


def validate_config(config: dict[str, Any], schema: dict[str, Any] | None = None) -> dict[str, Any]:
    """Validate ``config`` in place (filling defaults) and return it; raise ConfigError naming keys."""
    schema = schema or load_schema()
    errors = sorted(_DefaultingValidator(schema).iter_errors(config), key=lambda e: list(map(str, e.absolute_path)))
    messages = [_describe(e) for e in errors]
    if not messages:
        messages = _cross_check(config)
    if messages:
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(messages))
    return config


def _cross_check(config: dict[str, Any]) -> list[str]:
    """References between sections, and files that must exist before anything runs."""
    problems = []
    evaluation = config["evaluation"]
    for i, name in enumerate(evaluation["models"]):
        if name not in config["models"]:
            problems.append(f"config key 'evaluation.models[{i}]': unknown model {name!r} "
                            f"(defined under 'models': {', '.join(sorted(config['models']))})")
    if evaluation["split"] not in config["data"]:
        problems.append(f"config key 'evaluation.split': unknown split {evaluation['split']!r} "
                        f"(defined under 'data': {', '.join(sorted(config['data']))})")
    if evaluation["corpus"] not in config["corpus"]:
        problems.append(f"config key 'evaluation.corpus': unknown corpus {evaluation['corpus']!r} "
                        f"(defined under 'corpus': {', '.join(sorted(config['corpus']))})")
    for corpus, spec in config["corpus"].items():
        for i, split in enumerate(spec["splits"]):
            if split not in config["data"]:
                problems.append(f"config key 'corpus.{corpus}.splits[{i}]': unknown split {split!r}")
    if not resolve_path(config["prompt"]).is_file():
        problems.append(f"config key 'prompt': file {config['prompt']} not found")
    for split, spec in config["data"].items():
        if spec["source"] == "bundled":
            for i, name in enumerate(spec["files"]):
                if not bundled_file(name).is_file():
                    problems.append(f"config key 'data.{split}.files[{i}]': file {name} not found "
                                    f"(looked in the working directory and {BUNDLED_DATA_DIR})")
    for name, spec in config["models"].items():
        if "path" in spec:
            path = resolve_path(spec["path"])
            if not (path / "config.json").is_file():
                problems.append(f"config key 'models.{name}.path': {path} is not a Hugging Face model folder "
                                "(no config.json)")
    published = config["report"]["published"]
    if published and not resolve_path(published).is_file():
        problems.append(f"config key 'report.published': file {published} not found")
    return problems


def resolve_path(path: str | Path) -> Path:
    """Relative paths: the working directory first, then the project folder."""
    path = Path(path)
    if path.is_absolute() or path.exists():
        return path
    in_project = PROJECT_DIR / path
    return in_project if in_project.exists() else path


def bundled_file(name: str) -> Path:
    path = resolve_path(name)
    return path if path.exists() else BUNDLED_DATA_DIR / name


def load_config(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    try:
        config = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})") from exc
    if not isinstance(config, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return validate_config(config)
