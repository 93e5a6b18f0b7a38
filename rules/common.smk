# Configuration checks and input functions shared by the rules.
import re

from snakemake.exceptions import WorkflowError

from react.config import ConfigError, bundled_file, resolve_path, validate_config

try:
    validate_config(config)
except ConfigError as exc:
    raise WorkflowError(str(exc)) from None

MODELS = config["models"]
EVAL = config["evaluation"]
PROMPT = str(resolve_path(config["prompt"]))


def one_of(names):
    """A wildcard constraint matching exactly these names (or nothing)."""
    return "|".join(map(re.escape, sorted(names))) or "(?!)"


wildcard_constraints:
    split=one_of(config["data"]),
    corpus=one_of(config["corpus"]),
    model=one_of(MODELS),


def split_files(wildcards):
    """Local files a split is read from, so that editing them re-runs the rule."""
    spec = config["data"][wildcards.split]
    if spec["source"] == "bundled":
        return [str(bundled_file(f)) for f in spec["files"]]
    if spec["source"] == "official" and spec.get("file"):
        return [str(resolve_path(spec["file"]))]
    return []


def corpus_splits(wildcards):
    return expand(
        "results/data/hotpotqa/{split}.parquet",
        split=config["corpus"][wildcards.corpus]["splits"],
    )


def model_location(name):
    """Folder (or Hugging Face id) the backend loads."""
    spec = MODELS[name]
    if "gguf" in spec:
        return f"results/models/{name}"
    if "path" in spec:
        return str(resolve_path(spec["path"]))
    return spec["hf_id"]


def model_files(wildcards):
    """The model folder as an input when there is one (hub ids are fetched by the backend)."""
    spec = MODELS[wildcards.model]
    return [] if "hf_id" in spec else [model_location(wildcards.model)]


def gguf_file(wildcards):
    from react.models import ModelLoadError, locate_packaged_gguf

    spec = MODELS[wildcards.model]["gguf"]
    try:
        return str(locate_packaged_gguf(spec["package"], spec["file"]))
    except ModelLoadError as exc:
        raise WorkflowError(f"model {wildcards.model!r}: {exc}") from None
