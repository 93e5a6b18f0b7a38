"""Configuration: JSON-schema validation with defaults, and checks the schema cannot express.

Every error names the offending key as a dotted path (``models.smollm2.backend``),
so a typo fails before any job runs, with a message that says where to look.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator, validators

from react import paths
from react.agent.prompts import read_prompt
from react.io import DataFileError
from react.paths import resolve_path
from react.search.sources.registry import corpus_problems
from react.training.presets import Hyperparameters

SCHEMA_PATH = Path(__file__).resolve().parent / "schema.yaml"
BUNDLED_DATA_DIR = "resources/hotpotqa"  # the workflow's bundled sample of HotPotQA
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


DefaultingValidator = _with_defaults(Draft202012Validator)


def load_schema(path: Path = SCHEMA_PATH) -> dict[str, Any]:
    return yaml.safe_load(path.read_text())


def key_path(parts: Iterable[Any]) -> str:
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "<top level>"


def describe_error(error) -> str:
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
                "to say where the model comes from (or a server `url` with `backend: openai`)")
    alternatives = error.validator_value if error.validator in ("oneOf", "anyOf") else None
    if alternatives and all(isinstance(a, dict) and list(a) == ["required"] for a in alternatives):
        keys = ", ".join(k for a in alternatives for k in a["required"])
        how = "exactly one" if error.validator == "oneOf" else "one"
        return f"config key {key_path(path)!r}: give {how} of {keys}"
    return f"config key {key_path(path)!r}: {error.message}"


def validate_config(config: dict[str, Any], schema: dict[str, Any] | None = None) -> dict[str, Any]:
    """Validate ``config`` in place (filling defaults) and return it; raise ConfigError naming keys."""
    schema = schema or load_schema()
    errors = sorted(DefaultingValidator(schema).iter_errors(config), key=lambda e: list(map(str, e.absolute_path)))
    messages = [describe_error(e) for e in errors]
    if not messages:
        messages = _cross_check(config)
    if messages:
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(messages))
    return config


def _cross_check(config: dict[str, Any]) -> list[str]:
    """References between sections, and files that must exist before anything runs."""
    problems = []
    evaluation = config["evaluation"]
    known_models = [*config["models"], *config["finetune"], *config["rl"]]
    for i, name in enumerate(evaluation["models"]):
        if name not in known_models:
            problems.append(f"config key 'evaluation.models[{i}]': unknown model {name!r} "
                            f"(defined under 'models', 'finetune' and 'rl': {', '.join(sorted(known_models))})")
    problems += _check_finetuning(config)
    problems += _check_rl(config)
    problems += _check_chat_templates(config)
    if evaluation["split"] not in config["data"]:
        problems.append(f"config key 'evaluation.split': unknown split {evaluation['split']!r} "
                        f"(defined under 'data': {', '.join(sorted(config['data']))})")
    if evaluation["corpus"] not in config["corpus"]:
        problems.append(f"config key 'evaluation.corpus': unknown corpus {evaluation['corpus']!r} "
                        f"(defined under 'corpus': {', '.join(sorted(config['corpus']))})")
    for corpus, spec in config["corpus"].items():
        for i, split in enumerate(spec.get("splits", [])):
            if split not in config["data"]:
                problems.append(f"config key 'corpus.{corpus}.splits[{i}]': unknown split {split!r}")
    problems += corpus_problems(config["corpus"])
    for key in ("prompt", "instruction"):
        try:  # a missing file, one that is not UTF-8, or a JSON without the key: named before any job
            read_prompt(config[key])
        except DataFileError as exc:
            problems.append(f"config key '{key}': {exc}")
    for split, spec in config["data"].items():
        if spec["source"] == "bundled":
            for i, name in enumerate(spec["files"]):
                if not bundled_file(name).is_file():
                    problems.append(f"config key 'data.{split}.files[{i}]': file {name} not found "
                                    f"(looked in the working directory and {BUNDLED_DATA_DIR})")
    for name, spec in config["models"].items():
        if ("url" in spec) != (spec["backend"] == "openai"):
            problems.append(f"config key 'models.{name}.url': a server URL goes with `backend: openai` and "
                            f"`backend: openai` needs a url (got backend {spec['backend']!r}"
                            f"{', url ' + spec['url'] if 'url' in spec else ', no url'})")
        gpus = spec.get("resources", {}).get("gpu")
        if spec.get("tensor_parallel_size") and gpus is not None and spec["tensor_parallel_size"] > gpus:
            problems.append(f"config key 'models.{name}.tensor_parallel_size': {spec['tensor_parallel_size']} GPUs "
                            f"per engine, but models.{name}.resources.gpu asks the scheduler for {gpus}")
        if "path" in spec:
            path = resolve_path(spec["path"])
            if not (path / "config.json").is_file():
                problems.append(f"config key 'models.{name}.path': {path} is not a Hugging Face model folder "
                                "(no config.json)")
    published = config["report"]["published"]
    if published and not resolve_path(published).is_file():
        problems.append(f"config key 'report.published': file {published} not found")
    return problems


def _unknown(config: dict[str, Any], value: str, section: str, key: str, what: str) -> list[str]:
    """The problem of a reference to a name that ``section`` does not define (none if it does)."""
    if value in config[section]:
        return []
    return [f"config key {key!r}: unknown {what} {value!r} "
            f"(defined under '{section}': {', '.join(sorted(config[section])) or 'none'})"]


def _served_only(spec: dict[str, Any]) -> bool:
    """A model entry that is only a server URL: no weights here to train."""
    return "url" in spec and not ({"hf_id", "path"} & set(spec))


def _check_finetuning(config: dict[str, Any]) -> list[str]:
    """Teachers, imports, datasets and finetune runs refer to each other and to models and splits."""
    problems = []

    def known(value: str, section: str, key: str, what: str) -> None:
        problems.extend(_unknown(config, value, section, key, what))

    for name, teacher in config["teachers"].items():
        if "model" in teacher:
            known(teacher["model"], "models", f"teachers.{name}.model", "model")
            temperature = teacher["temperature"] if teacher["temperature"] is not None else config["agent"]["temperature"]
            if teacher["samples"] > 1 and temperature <= 0:
                problems.append(f"config key 'teachers.{name}.samples': {teacher['samples']} samples of a greedy "
                                f"teacher are all the same; set teachers.{name}.temperature > 0")
        known(teacher["split"], "data", f"teachers.{name}.split", "split")
        known(teacher["corpus"], "corpus", f"teachers.{name}.corpus", "corpus")
        if "oracle" in teacher and "live" in config["corpus"].get(teacher["corpus"], {}):
            problems.append(f"config key 'teachers.{name}.corpus': the oracle teacher looks up the split's own "
                            f"paragraphs; give it an offline corpus (with `splits`), not the live {teacher['corpus']!r}")
    for name, spec in config["imports"].items():
        if "path" in spec and not resolve_path(spec["path"]).is_file():
            problems.append(f"config key 'imports.{name}.path': file {spec['path']} not found")
        if spec["format"] == "fireact" and "hf_id" in spec:
            problems.append(f"config key 'imports.{name}.hf_id': the fireact format is read from a local file (path)")
        if spec["gold_split"] is not None:
            known(spec["gold_split"], "data", f"imports.{name}.gold_split", "split")
    clash = set(config["teachers"]) & set(config["imports"])
    if clash:
        problems.append(f"config keys 'teachers' and 'imports': names used twice: {', '.join(sorted(clash))}")
    for name, dataset in config["datasets"].items():
        for i, source in enumerate(dataset["sources"]):
            if source not in config["teachers"] and source not in config["imports"]:
                problems.append(f"config key 'datasets.{name}.sources[{i}]': unknown source {source!r} "
                                f"(teachers: {', '.join(sorted(config['teachers'])) or 'none'}; "
                                f"imports: {', '.join(sorted(config['imports'])) or 'none'})")
    for name, run in config["finetune"].items():
        if name in config["models"]:
            problems.append(f"config key 'finetune.{name}': the name is also a model under 'models'")
        known(run["base"], "models", f"finetune.{name}.base", "model")
        if _served_only(config["models"].get(run["base"], {})):
            problems.append(f"config key 'finetune.{name}.base': {run['base']!r} is only a server URL; "
                            "finetuning needs its weights (give the model an hf_id or path)")
        known(run["dataset"], "datasets", f"finetune.{name}.dataset", "dataset")
        if run["hyperparameters"]:
            try:
                Hyperparameters.from_preset(run["preset"], run["hyperparameters"])
            except ValueError as exc:
                problems.append(f"config key 'finetune.{name}.hyperparameters': {exc}")
    return problems


def _check_rl(config: dict[str, Any]) -> list[str]:
    """RL runs start from a model with weights, practise on other questions than the evaluation's, and can learn."""
    from react.rl.settings import SettingsError, grpo_settings

    problems = []
    for name, run in config["rl"].items():
        if name in config["models"] or name in config["finetune"]:
            problems.append(f"config key 'rl.{name}': the name is also a model under 'models' or 'finetune'")
        start = run["start"]
        if start in config["rl"]:
            problems.append(f"config key 'rl.{name}.start': {start!r} is an RL run; start from a model or a "
                            "finetune run")
        elif start not in config["models"] and start not in config["finetune"]:
            known = sorted([*config["models"], *config["finetune"]])
            problems.append(f"config key 'rl.{name}.start': unknown model {start!r} "
                            f"(defined under 'models' and 'finetune': {', '.join(known)})")
        elif _served_only(config["models"].get(start, {})):
            problems.append(f"config key 'rl.{name}.start': {start!r} is only a server URL; training needs its "
                            "weights (give the model an hf_id or path)")
        elif (form := model_spec(config, start)["format"]) != "raw":
            problems.append(f"config key 'rl.{name}.start': {start!r} takes the {form} format; RL rollouts are raw "
                            "text for now (start from a raw-format model)")
        split_problems = _unknown(config, run["split"], "data", f"rl.{name}.split", "split")
        problems += split_problems
        if not split_problems and run["split"] == config["evaluation"]["split"]:
            problems.append(f"config key 'rl.{name}.split': {run['split']!r} is the evaluation split; the policy "
                            "would practise on the questions it is scored on (use a training split)")
        if run["corpus"] is not None:
            problems += _unknown(config, run["corpus"], "corpus", f"rl.{name}.corpus", "corpus")
        try:
            grpo_settings(run)
        except SettingsError as exc:
            problems.append(f"config key 'rl.{name}.{exc.key}': {str(exc).removeprefix(exc.key + ': ')}")
    return problems


def _check_chat_templates(config: dict[str, Any]) -> list[str]:
    """Every model asked for a chat format, itself or as a chat finetune's base, has a chat template.

    Looked up without loading the model: a GGUF's metadata, a folder's files, the hub cache. A hub
    model that is not cached cannot be checked here; its engine refuses the format when it starts.
    """
    wanted: dict[str, str] = {}
    for name, spec in config["models"].items():
        if spec["format"] != "raw":
            wanted.setdefault(name, f"models.{name}.format")
    for name, run in config["finetune"].items():
        if run["format"] != "raw" and run["base"] in config["models"]:
            wanted.setdefault(run["base"], f"finetune.{name}.format")
    problems = []
    for name, key in wanted.items():
        spec = config["models"][name]
        try:
            template = _model_chat_template(spec)
        except FileNotFoundError:
            continue
        except ValueError as exc:
            problems.append(f"config key {key!r}: model {name!r}: {exc}")
            continue
        if template is None:
            problems.append(f"config key {key!r}: model {name!r} has no chat template, so it cannot take a chat "
                            "format (use format raw for it)")
    return problems


def _model_chat_template(spec: dict[str, Any]) -> str | None:
    """The chat template of a model entry (None: it has none); FileNotFoundError: cannot tell before the job."""
    from react.inference.chat import find_chat_template
    from react.models import ModelLoadError, locate_packaged_gguf

    if "gguf" in spec:
        try:
            return _gguf_template(str(locate_packaged_gguf(spec["gguf"]["package"], spec["gguf"]["file"])))
        except ModelLoadError as exc:
            raise FileNotFoundError(str(exc)) from exc  # the convert rule names the missing package
    if spec["backend"] == "openai":
        local = spec.get("tokenizer") or spec.get("path") or spec.get("hf_id")
        if local is None:
            raise ValueError("a served model renders chats with its own template, which must be known here: give "
                             "it a `tokenizer` (a folder or hub id with the template it serves)")
    else:
        local = spec.get("path") or spec["hf_id"]
    folder = resolve_path(local)
    return find_chat_template(folder if folder.exists() else local)


@functools.lru_cache(maxsize=8)
def _gguf_template(path: str) -> str | None:
    """Read once per process: parsing a GGUF's metadata takes seconds."""
    from react.inference.chat import gguf_chat_template

    return gguf_chat_template(path)


def bundled_file(name: str) -> Path:
    path = resolve_path(name)
    return path if path.exists() else resolve_path(f"{BUNDLED_DATA_DIR}/{name}")


def load_config(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    try:
        config = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset {exc.start})") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})") from exc
    if not isinstance(config, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return validate_config(config)


# --------------------------------------------------------------------------- models by name

SERVED_KEYS = ("url", "served_model", "api_key_env", "tokenizer")


def model_spec(config: dict[str, Any], name: str) -> dict[str, Any]:
    """A model entry of a validated config; a finetune or RL run is its base's entry pointing at the merged folder."""
    if name in config.get("rl", {}):
        run = config["rl"][name]
        start = model_spec(config, run["start"])
        spec = {k: v for k, v in start.items() if k not in ("gguf", "path", "hf_id", "revision", *SERVED_KEYS)}
        spec.update(path=paths.MODEL.format(model=name), quantization="none", prompt=run["prompt"] or start["prompt"])
        spec["backend"] = run["backend"] or ("vllm" if start["backend"] == "openai" else start["backend"])
        return spec
    runs = config["finetune"]
    if name not in runs:
        return config["models"][name]
    run = runs[name]
    base = config["models"][run["base"]]
    spec = {k: v for k, v in base.items() if k not in ("gguf", "path", "hf_id", "revision", *SERVED_KEYS)}
    spec.update(path=paths.MODEL.format(model=name), quantization="none", prompt=run["prompt"], format=run["format"])
    # The merged weights run in process: the base's own engine, unless that was a server.
    spec["backend"] = run["backend"] or ("vllm" if base["backend"] == "openai" else base["backend"])
    return spec


def model_location(config: dict[str, Any], name: str) -> str:
    """Folder (or Hugging Face id, or served model name) the backend loads."""
    spec = model_spec(config, name)
    if spec["backend"] == "openai":
        return spec.get("served_model") or spec.get("hf_id") or spec.get("path") or name
    if "gguf" in spec or name in config["finetune"] or name in config.get("rl", {}):
        return paths.MODEL.format(model=name)
    if "path" in spec:
        return str(resolve_path(spec["path"]))
    return spec["hf_id"]
