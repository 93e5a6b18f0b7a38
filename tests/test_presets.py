"""The configuration presets: the article's setup (config/paper.yaml) plans its whole DAG here."""

from __future__ import annotations

import random
import re
import subprocess
import sys
from pathlib import Path

import pytest

from react.config.validate import ConfigError, load_config, validate_config
from react.data.hotpotqa import load_jsonl_files
from react.io import read_parquet
from react.schemas import SPLIT_SCHEMA
from react.search.sources.abstracts import ABSTRACTS_2017

PROJECT = Path(__file__).resolve().parent.parent
PAPER = PROJECT / "config" / "paper.yaml"


def snakemake(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "snakemake", *args, "-s", str(PROJECT / "workflow/Snakefile"), "-d", str(workdir),
         "--configfile", str(PAPER)],
        capture_output=True, text=True, timeout=600,
    )


def planned_jobs(output: str) -> list[dict[str, str]]:
    """Jobs of a dry run: rule, wildcards and resources of each."""
    jobs = []
    for block in re.split(r"\n(?=(?:local)?rule \w+:)", output):
        rule = re.match(r"(?:local)?rule (\w+):", block)
        if not rule:
            continue
        wildcards = re.search(r"wildcards: (.*)", block)
        resources = re.search(r"resources: (.*)", block)
        files = {key: re.search(rf"\n\s+{key}: (.*)", block) for key in ("input", "output")}
        jobs.append({
            "rule": rule.group(1),
            **{key: m.group(1).split(", ") if m else [] for key, m in files.items()},
            **dict(kv.split("=", 1) for kv in (wildcards.group(1).split(", ") if wildcards else [])),
            "resources": dict(kv.split("=", 1) for kv in resources.group(1).split(", ")) if resources else {},
        })
    return jobs


@pytest.fixture(scope="module")
def paper_plan(tmp_path_factory):
    result = snakemake(tmp_path_factory.mktemp("paper"), "results/table.csv", "-n")
    assert result.returncode == 0, result.stderr[-3000:] + result.stdout[-3000:]
    return planned_jobs(result.stdout)


def test_paper_preset_is_valid_and_follows_the_article():
    config = load_config(PAPER)
    assert config["evaluation"]["n_questions"] == 500 and config["evaluation"]["seed"] == 233
    assert {config["models"][m].get("hf_id") for m in ("mistral-7b", "llama2-7b", "llama2-13b", "llama2-70b")} == {
        "mistralai/Mistral-7B-v0.1", "meta-llama/Llama-2-7b-hf", "meta-llama/Llama-2-13b-hf",
        "meta-llama/Llama-2-70b-hf"}
    assert config["teachers"]["llama2-70b"]["model"] == "llama2-70b"
    # HotPotQA's own 2017 Wikipedia, offline, for the evaluation and the teacher; the live one is the alternative.
    abstracts = {"source": "hotpotqa-abstracts", "url": ABSTRACTS_2017["url"], "md5": ABSTRACTS_2017["md5"]}
    assert config["corpus"][config["evaluation"]["corpus"]] == abstracts
    assert config["teachers"]["llama2-70b"]["corpus"] == config["evaluation"]["corpus"]
    assert "live" in config["corpus"]["wikipedia"]
    assert {run["preset"] for run in config["finetune"].values()} == {"paper"}
    assert config["datasets"]["llama2-70b-half"]["fraction"] == 0.5
    assert config["datasets"]["llama2-70b-full"]["fraction"] == 1.0


def test_paper_dag_lists_every_stage(paper_plan):
    counts: dict[str, int] = {}
    for job in paper_plan:
        counts[job["rule"]] = counts.get(job["rule"], 0) + 1
    config = load_config(PAPER)
    assert counts == {
        "prepare_split": 2,
        "download_corpus": 1,
        "build_corpus": 1,
        "build_index": 1,
        "generate_trajectories": config["teachers"]["llama2-70b"]["shards"],
        "build_dataset": 2,
        "finetune": 4,
        "merge": 4,
        "rl": 2,
        "merge_rl": 2,
        "evaluate": len(config["evaluation"]["models"]),
        "table": 1,
    }
    # Hub models need no conversion.
    assert "convert_gguf" not in counts


def test_paper_dag_builds_the_2017_abstracts_and_searches_them_offline(paper_plan):
    """One download (checked), one corpus, one index; every evaluation and teacher job searches them."""
    config = load_config(PAPER)
    archive = "results/downloads/enwiki-20171001-pages-meta-current-withlinks-abstracts.tar.bz2"
    corpus, index = "results/data/wiki/enwiki-2017.parquet", "results/data/wiki/enwiki-2017.bm25s"
    by_rule: dict[str, list[dict]] = {}
    for job in paper_plan:
        by_rule.setdefault(job["rule"], []).append(job)
    (download,), (build,), (indexing,) = by_rule["download_corpus"], by_rule["build_corpus"], by_rule["build_index"]
    assert download["output"] == [archive] and download["input"] == []
    assert build["input"] == [archive] and build["output"] == [corpus]
    assert indexing["input"] == [corpus] and indexing["output"] == [index]
    searching = by_rule["evaluate"] + by_rule["generate_trajectories"]
    assert len(searching) == len(config["evaluation"]["models"]) + config["teachers"]["llama2-70b"]["shards"]
    for job in searching:
        assert {corpus, index} <= set(job["input"]), job
    # Nothing that runs searches the live Wikipedia: after the downloads the plan needs no network for search.
    used = {config["evaluation"]["corpus"], *(t["corpus"] for t in config["teachers"].values())}
    assert all("live" not in config["corpus"][name] for name in used)
    for job in paper_plan:
        if job["rule"] in ("download_corpus", "build_corpus", "build_index"):
            assert job["resources"].get("gpu", "0") == "0", job


def test_paper_jobs_ask_for_gpus_only_where_models_run(paper_plan):
    by_key = {(j["rule"], j.get("model") or j.get("run") or j.get("i")): j["resources"] for j in paper_plan}
    assert by_key[("evaluate", "llama2-70b")]["gpu"] == "4"
    assert by_key[("evaluate", "mistral-7b")]["gpu"] == "1"
    assert by_key[("evaluate", "mistral-7b-react-half")]["gpu"] == "1"  # a finetuned model runs like its base
    assert by_key[("finetune", "llama2-13b-react-full")]["gpu"] == "1"
    assert all(j["resources"]["gpu"] == "4" for j in paper_plan if j["rule"] == "generate_trajectories")
    for job in paper_plan:
        if job["rule"] in ("prepare_split", "build_dataset", "table", "merge", "merge_rl"):
            assert job["resources"].get("gpu", "0") == "0", job
            assert int(job["resources"]["mem_mb"]) >= 8000


def test_paper_rl_runs_grpo_at_search_r1s_scale_on_a_gpu_after_sft_and_from_the_base(paper_plan):
    config = load_config(PAPER)
    from react.rl.settings import grpo_settings

    runs = {name: grpo_settings(run) for name, run in config["rl"].items()}
    assert {(s.questions_per_step, s.group_size, s.learning_rate, s.beta, s.steps, s.rollout_backend)
            for s in runs.values()} == {(512, 5, 1e-6, 0.001, 1005, "vllm")}
    jobs = {(j["rule"], j.get("rl") or j.get("model")): j for j in paper_plan}
    after_sft = jobs[("rl", "mistral-7b-react-full-grpo")]
    assert after_sft["resources"]["gpu"] == "1" and int(after_sft["resources"]["runtime"]) >= 1440
    assert "results/models/mistral-7b-react-full" in after_sft["input"]  # RL starts from the merged SFT model
    assert {"results/data/wiki/enwiki-2017.parquet", "results/data/hotpotqa/train.parquet"} <= set(after_sft["input"])
    assert "results/models/mistral-7b-grpo" in jobs[("merge_rl", "mistral-7b-grpo")]["output"]
    assert "results/models/mistral-7b-react-full-grpo" in jobs[("evaluate", "mistral-7b-react-full-grpo")]["input"]
    table = jobs[("table", None)]
    assert {"results/rl/mistral-7b-grpo/run.json", "results/eval/mistral-7b-grpo.parquet"} <= set(table["input"])


def test_paper_sample_is_reacts_500_of_all_7405_dev_questions(tmp_path):
    result = snakemake(tmp_path, "results/data/hotpotqa/dev.parquet", "--cores", "1")
    assert result.returncode == 0, result.stderr[-3000:]
    from react.pipeline.evaluate import load_tasks

    table = read_parquet(tmp_path / "results/data/hotpotqa/dev.parquet", SPLIT_SCHEMA)
    assert table.num_rows == 7405
    tasks = load_tasks(tmp_path / "results/data/hotpotqa/dev.parquet", "dev", 500, 233)
    # ReAct's hotpotqa.ipynb: idxs = list(range(7405)); random.Random(233).shuffle(idxs); idxs[:500]
    idxs = list(range(7405))
    random.Random(233).shuffle(idxs)
    assert [t.index for t in tasks] == idxs[:500]
    official = {r["index"]: r for r in load_jsonl_files([PROJECT / "resources/hotpotqa/dev_questions_all.jsonl.gz"])}
    assert [(t.question, t.answer) for t in tasks] == [(official[i]["question"], official[i]["answer"]) for i in idxs[:500]]


def test_tensor_parallel_beyond_the_gpus_asked_for_is_an_error():
    config = load_config(PAPER)
    config["models"]["llama2-70b"]["resources"]["gpu"] = 2
    with pytest.raises(ConfigError, match=r"models.llama2-70b.tensor_parallel_size': 4 GPUs per engine"):
        validate_config(config)
