"""The bad-input catalogue: each bad input ends in a message that names the file, line, key or model.

Covered here through the workflow (the message as a user sees it, `Error in rule ...`), or by
the test named:
  unknown config key ............ test_workflow.py::test_invalid_config_fails_before_any_job
  wrong type .................... test_config.py::test_wrong_type_is_named
  unknown model ................. test_config.py::test_unknown_model_is_named
  model folder without weights .. test_model_folder_without_weights_is_named (here)
  default model package missing . test_workflow.py::test_missing_model_package_is_named_before_any_job
  corrupt Parquet ............... test_corrupt_parquet_is_named_by_the_rule_reading_it (here)
  JSONL line that does not parse  test_workflow.py::test_corrupt_data_file_is_named_with_its_line
  sample larger than the split .. test_sample_larger_than_the_split_is_named (here)
  prompt longer than the context  test_agent.py::test_prompt_longer_than_the_context_is_a_recorded_policy
                                  (a policy: the episode ends as `context_limit`, recorded, no crash)
  non-UTF-8 file ................ test_non_utf8_prompt_is_named_before_any_job (here),
                                  test_hotpotqa.py (a data line that is not UTF-8 names file:line)
"""

from __future__ import annotations

import shutil

import pytest
from test_workflow import snakemake, tiny_config

from react.io import DataFileError, read_parquet, read_text


@pytest.mark.slow
def test_model_folder_without_weights_is_named(project_dir, tiny_model, tmp_path):
    empty = tmp_path / "no-weights"
    shutil.copytree(tiny_model, empty)
    for weights in empty.glob("*.safetensors"):
        weights.unlink()
    config = tiny_config(tiny_model, models={"hollow": {"path": str(empty), "backend": "transformers"}})
    config["evaluation"]["models"] = ["hollow"]
    (tmp_path / "run").mkdir()
    result = snakemake(project_dir, tmp_path / "run", config)
    assert result.returncode != 0
    assert f"Error in rule evaluate: model 'hollow' ({empty}) does not load" in result.stderr
    assert not (tmp_path / "run/results/eval/hollow.parquet").exists()


@pytest.mark.slow
def test_corrupt_parquet_is_named_by_the_rule_reading_it(project_dir, tiny_model, tmp_path):
    config = tiny_config(tiny_model)
    first = snakemake(project_dir, tmp_path, config, target="results/data/hotpotqa/dev.parquet")
    assert first.returncode == 0, first.stderr[-3000:]
    split = tmp_path / "results/data/hotpotqa/dev.parquet"
    split.write_bytes(split.read_bytes()[:200])  # a truncated file, as a full disk leaves one
    result = snakemake(project_dir, tmp_path, config, target="results/data/wiki/distractor.parquet")
    assert result.returncode != 0
    assert "Error in rule build_corpus" in result.stderr
    assert f"{split.relative_to(tmp_path)}: not a readable Parquet file" in result.stderr
    with pytest.raises(DataFileError, match="not a readable Parquet file"):
        read_parquet(split)


@pytest.mark.slow
def test_sample_larger_than_the_split_is_named(project_dir, tiny_model, tmp_path):
    config = tiny_config(tiny_model)
    config["evaluation"]["n_questions"] = 5000
    result = snakemake(project_dir, tmp_path, config)
    assert result.returncode != 0
    assert "Error in rule evaluate" in result.stderr
    assert "question sample of 5000 is larger than the" in result.stderr and "questions available" in result.stderr


def test_non_utf8_prompt_is_named_before_any_job(project_dir, tiny_model, tmp_path):
    prompt = tmp_path / "latin1.txt"
    prompt.write_bytes("Caf\xe9 question\n".encode("latin-1"))
    config = tiny_config(tiny_model, prompt=str(prompt))
    result = snakemake(project_dir, tmp_path, config)
    assert result.returncode != 0
    assert f"config key 'prompt': {prompt}: not UTF-8 text (byte 0xe9 at offset 3" in result.stderr
    assert not (tmp_path / "results").exists()
    with pytest.raises(DataFileError, match=r"latin1\.txt: not UTF-8 text \(byte 0xe9 at offset 3"):
        read_text(prompt)
