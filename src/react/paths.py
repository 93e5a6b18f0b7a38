"""Where things are: every file the workflow writes (defined once, for rules, library and CLI alike),
the package's own data, and the folder of the workflow that runs.

Templates use Snakemake's wildcard syntax, so a rule names its output ``paths.EVAL`` and the
library fills the same template with ``paths.EVAL.format(model=name)``. This module imports
nothing heavy: job scripts import it before numpy sizes its thread pools.
"""

from __future__ import annotations

import os
from pathlib import Path

RESULTS = "results"
SPLIT = f"{RESULTS}/data/hotpotqa/{{split}}.parquet"
DOWNLOAD = f"{RESULTS}/downloads/{{archive}}"
DOWNLOAD_DIR = f"{RESULTS}/downloads"
CORPUS = f"{RESULTS}/data/wiki/{{corpus}}.parquet"
INDEX = f"{RESULTS}/data/wiki/{{corpus}}.bm25s"
WIKI_CACHE = f"{RESULTS}/wiki-cache/{{corpus}}"
MODEL = f"{RESULTS}/models/{{model}}"
SHARD = f"{RESULTS}/trajectories/{{teacher}}/{{split}}/shard-{{i}}-of-{{n}}.parquet"
IMPORT = f"{RESULTS}/imports/{{name}}.parquet"
DATASET = f"{RESULTS}/datasets/{{dataset}}.jsonl"
MANIFEST = f"{RESULTS}/datasets/{{dataset}}.manifest.json"
CHECKPOINTS = f"{RESULTS}/finetune/{{run}}/checkpoints"
LOSS = f"{RESULTS}/finetune/{{run}}/loss.parquet"
LOSS_PLOT = f"{RESULTS}/finetune/{{run}}/loss.png"
# A GRPO run: its checkpoints and per-step rollouts are not rule outputs, so that a killed job
# resumes from them (Snakemake removes a failed job's outputs); the rest are.
RL_DIR = f"{RESULTS}/rl/{{rl}}"
RL_CHECKPOINTS = f"{RL_DIR}/checkpoints"
RL_ROLLOUTS = f"{RL_DIR}/rollouts"
RL_ADAPTER = f"{RL_DIR}/adapter"
RL_METRICS = f"{RL_DIR}/steps.parquet"
RL_CURVES = f"{RL_DIR}/curves.png"
RL_SUMMARY = f"{RL_DIR}/run.json"
EVAL_DIR = f"{RESULTS}/eval"
EVAL = f"{EVAL_DIR}/{{model}}.parquet"
TABLE = f"{RESULTS}/table.csv"
DATABASE = f"{RESULTS}/results.duckdb"
PLOT = f"{RESULTS}/plots/{{name}}.{{ext}}"
TABLE_HTML = f"{RESULTS}/plots/table.html"
LOG_DIR = f"{RESULTS}/logs"
LOG = f"{LOG_DIR}/{{rule}}/{{job}}.log"

PACKAGE_PREFIX = "package:"  # a path inside the installed react package (its prompts)
PACKAGE_DIR = Path(__file__).resolve().parent
PROJECT_DIR_VARIABLE = "REACT_PROJECT_DIR"  # where the conda environments' post-deploy scripts find the library
_project_dir: Path | None = None  # the workflow's folder, told by the workflow (set_project_dir)


def set_project_dir(path: str | Path) -> None:
    """The folder the workflow lives in: relative paths missing from the working directory are read there.

    Exported to the environment too: Snakemake runs workflow/envs/*.post-deploy.sh, which install
    the library from this folder into a new conda environment, as children of the process that set it.
    """
    global _project_dir
    _project_dir = Path(path).resolve()
    os.environ[PROJECT_DIR_VARIABLE] = str(_project_dir)


def resolve_path(path: str | Path) -> Path:
    """``package:...``: a file shipped inside the package. Relative paths: the working directory
    first, then the workflow's folder (when a workflow has said where it is)."""
    if isinstance(path, str) and path.startswith(PACKAGE_PREFIX):
        return PACKAGE_DIR / path[len(PACKAGE_PREFIX):]
    path = Path(path)
    if path.is_absolute() or path.exists() or _project_dir is None:
        return path
    in_project = _project_dir / path
    return in_project if in_project.exists() else path
