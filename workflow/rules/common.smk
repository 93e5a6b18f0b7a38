# Configuration checks and input functions shared by the rules.
import re
from pathlib import Path

from snakemake.exceptions import WorkflowError

import react.config.validate as react_config
from react import paths
from react.config.validate import ConfigError, bundled_file, validate_config
from react.paths import resolve_path, set_project_dir
from react.agent.prompts import prompt_files
from react.schemas import SCHEMA_VERSIONS
from react.search.sources.registry import corpus_source, downloads

# Relative paths in a config (bundled data, prompt files) are read from the working
# directory, else from the folder this workflow came with (set_project_dir also exports it
# as REACT_PROJECT_DIR, from where workflow/envs/*.post-deploy.sh install the library).
set_project_dir(Path(workflow.basedir).parent)

try:
    validate_config(config)
except ConfigError as exc:
    raise WorkflowError(str(exc)) from None

MODELS = config["models"]
RUNS = config["finetune"]
RL = config["rl"]
TEACHERS = config["teachers"]
IMPORTS = config["imports"]
DATASETS = config["datasets"]
EVAL = config["evaluation"]
PROMPT = [str(path) for path in prompt_files(config["prompt"])]
INSTRUCTION = str(resolve_path(config["instruction"]))
# The offline corpora, typed (live Wikipedias build no files), and the archives they download.
CORPORA = {name: corpus_source(spec) for name, spec in config["corpus"].items() if "live" not in spec}
DOWNLOADS = downloads(CORPORA)


def one_of(names):
    """A wildcard constraint matching exactly these names (or nothing)."""
    return "|".join(map(re.escape, sorted(names))) or "(?!)"


wildcard_constraints:
    split=one_of(config["data"]),
    corpus=one_of(CORPORA),
    archive=one_of(DOWNLOADS),
    model=one_of([*MODELS, *RUNS, *RL]),
    teacher=one_of(TEACHERS),
    run=one_of(RUNS),
    rl=one_of(RL),
    dataset=one_of(DATASETS),
    name=one_of(IMPORTS),
    i=r"\d+",
    n=r"\d+",


def split_files(wildcards):
    """Local files a split is read from, so that editing them re-runs the rule."""
    spec = config["data"][wildcards.split]
    if spec["source"] == "bundled":
        return [str(bundled_file(f)) for f in spec["files"]]
    if spec["source"] == "official" and spec.get("file"):
        return [str(resolve_path(spec["file"]))]
    return []


def corpus_inputs(wildcards):
    """What an offline corpus is built from: its splits, its downloaded archive, or its local files."""
    return CORPORA[wildcards.corpus].input_files()


def archive_spec(wildcards):
    """The corpus entry whose URL downloads to paths.DOWNLOAD; a dict, so that Snakemake sees it change."""
    return config["corpus"][DOWNLOADS[wildcards.archive]]


def wiki_files(corpus):
    """Corpus Parquet and index of an offline corpus; a live Wikipedia has no input files."""
    if corpus not in CORPORA:
        return {}
    return {"corpus": paths.CORPUS.format(corpus=corpus), "index": paths.INDEX.format(corpus=corpus)}


def model_spec(name):
    return react_config.model_spec(config, name)


def model_location(name):
    return react_config.model_location(config, name)


def files_of_model(name):
    """The model folder as an input when there is one (hub ids are fetched by the backend)."""
    spec = model_spec(name)
    return [] if "hf_id" in spec or spec["backend"] == "openai" else [model_location(name)]


def model_files(wildcards):
    return files_of_model(wildcards.model)


def teacher_shards(teacher):
    spec = TEACHERS[teacher]
    n = spec["shards"]
    return [paths.SHARD.format(teacher=teacher, split=spec["split"], i=i, n=n) for i in range(1, n + 1)]


def source_files(source):
    """Episode files of a dataset source: a teacher's shards or an import."""
    return teacher_shards(source) if source in TEACHERS else [paths.IMPORT.format(name=source)]


def dataset_sources(wildcards):
    return [f for source in DATASETS[wildcards.dataset]["sources"] for f in source_files(source)]


def teacher_model(wildcards):
    """The model a teacher runs, or None for the model-free oracle."""
    return TEACHERS[wildcards.teacher].get("model")


def teacher_model_files(wildcards):
    model = teacher_model(wildcards)
    return files_of_model(model) if model else []


def finetuned_model_info():
    """Per evaluated finetune run: base, dataset and the manifest that counts its examples."""
    return {
        name: {"base_model": RUNS[name]["base"], "dataset": RUNS[name]["dataset"],
               "manifest": paths.MANIFEST.format(dataset=RUNS[name]["dataset"]), "count": "n_examples",
               "method": "sft", "root_model": RUNS[name]["base"]}
        for name in EVAL["models"] if name in RUNS
    }


def rl_model_info():
    """Per evaluated RL run: its start model, questions, and the summary that counts them."""
    return {
        name: {"base_model": RL[name]["start"], "dataset": f"{RL[name]['split']} questions",
               "manifest": paths.RL_SUMMARY.format(rl=name), "count": "rl.n_questions",
               "method": "sft+grpo" if RL[name]["start"] in RUNS else "grpo",
               "root_model": RUNS[RL[name]["start"]]["base"] if RL[name]["start"] in RUNS else RL[name]["start"]}
        for name in EVAL["models"] if name in RL
    }


def rl_corpus(run):
    """The Wikipedia of a run's rollouts: its own corpus, else the evaluation's."""
    return RL[run]["corpus"] or EVAL["corpus"]


def rl_max_context(run):
    """The context the policy may fill: the start model's max_model_len, else the vLLM default."""
    return model_spec(run).get("max_model_len") or config["backends"]["vllm"]["max_model_len"]


def gguf_file(wildcards):
    from react.models import ModelLoadError, locate_packaged_gguf

    spec = MODELS[wildcards.model]["gguf"]
    try:
        return str(locate_packaged_gguf(spec["package"], spec["file"]))
    except ModelLoadError as exc:
        raise WorkflowError(f"model {wildcards.model!r}: {exc}") from None


# --------------------------------------------------------------------------- job resources
# resources.default < resources.<section> < the model's or finetune run's own `resources`.
# Snakemake wants the same resource names for every job of a rule, so a name that only
# some entries set gets a neutral value (0 or "", which the SLURM plugin treats as unset)
# elsewhere.
RESOURCES = config["resources"]
BASE_RESOURCES = {"mem_mb": 4000, "runtime": 60}
NEUTRAL = {"gpu": 0, "gpu_model": "", "slurm_partition": "", "slurm_account": "", "slurm_extra": ""}


def job_resources(section=None, entry=None):
    """Resources of a rule; ``entry(wildcards)`` gives the model's or run's own overrides."""
    entries = [*MODELS.values(), *RUNS.values(), *RL.values()] if entry else []
    names = {*BASE_RESOURCES, *RESOURCES["default"], *RESOURCES.get(section, {}),
             *(k for e in entries for k in e.get("resources", {}))} - {"threads"}

    def merged(wildcards):
        own = entry(wildcards) if entry else {}
        return {**BASE_RESOURCES, **RESOURCES["default"], **RESOURCES.get(section, {}), **own}

    return {name: (lambda wildcards, name=name: merged(wildcards).get(name, NEUTRAL.get(name, 0)))
            for name in sorted(names)}


def job_threads(section=None, entry=None):
    """Threads: as configured, else 1 for small rules and all cores (capped) for model rules."""

    def threads(wildcards):
        own = (entry(wildcards) if entry else {}).get("threads")
        configured = own or RESOURCES.get(section, {}).get("threads") or RESOURCES["default"].get("threads")
        if configured:
            return configured
        if section is None:
            return 1
        cores = workflow._cores  # None under a cluster executor without --cores, and for --report
        if cores is None:
            if RESOURCES["max_threads"] is not None:
                return RESOURCES["max_threads"]
            if workflow.executor_plugin is None:  # --report, --rulegraph: nothing runs
                return 1
            # Jobs are about to be submitted: the submitting snakemake and the one inside the
            # job (`--cores all`) must agree, and neither can know a node's CPUs.
            raise WorkflowError(
                    f"jobs of {section}: how many CPUs should they ask for? Set resources.max_threads "
                    f"or resources.{section}.threads (or a model's resources.threads) in the config, "
                    "or pass --cores N")
        return min(cores, RESOURCES["max_threads"] or cores)

    return threads


def model_resources(wildcards):
    return model_spec(wildcards.model).get("resources", {})


def teacher_resources(wildcards):
    model = teacher_model(wildcards)
    return MODELS[model].get("resources", {}) if model else {"gpu": 0, "threads": 1}


def run_resources(wildcards):
    return RUNS[wildcards.run].get("resources", {})


def rl_resources(wildcards):
    return RL[wildcards.rl].get("resources", {})
