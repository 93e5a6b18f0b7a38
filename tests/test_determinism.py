"""Two clean runs give the same numbers; when they do not, the provenance says why."""

from __future__ import annotations

import pytest
from test_workflow import snakemake, tiny_config

from react.cli import diff_files, main
from react.io import read_parquet
from react.schemas import EPISODE_SCHEMA


@pytest.fixture(scope="module")
def two_runs(project_dir, tiny_model, tmp_path_factory):
    runs = []
    for name in ("first", "second"):
        workdir = tmp_path_factory.mktemp(name)
        result = snakemake(project_dir, workdir, tiny_config(tiny_model))
        assert result.returncode == 0, result.stderr[-3000:]
        runs.append(workdir)
    return runs


@pytest.mark.slow
def test_two_clean_runs_give_byte_identical_tables_and_identical_rows(two_runs):
    first, second = two_runs
    assert (first / "results/table.csv").read_bytes() == (second / "results/table.csv").read_bytes()
    a, b = (read_parquet(d / "results/eval/tiny.parquet", EPISODE_SCHEMA) for d in two_runs)
    assert a.drop(["seconds"]).equals(b.drop(["seconds"]))
    same, lines = diff_files(first / "results/eval/tiny.parquet", second / "results/eval/tiny.parquet")
    assert same and lines[-1] == "provenance: identical"


@pytest.mark.slow
def test_a_changed_configuration_is_named_as_the_cause(two_runs, project_dir, tiny_model, tmp_path, capsys):
    config = tiny_config(tiny_model)
    config["agent"]["max_steps"] = 1
    result = snakemake(project_dir, tmp_path, config)
    assert result.returncode == 0, result.stderr[-3000:]
    code = main(["diff", str(two_runs[0] / "results/eval/tiny.parquet"), str(tmp_path / "results/eval/tiny.parquet")])
    out = capsys.readouterr().out
    assert code == 1
    assert "rows: DIFFERENT" in out
    assert "differs in: configuration" in out
    assert "config.agent.max_steps: 2 -> 1" in out


@pytest.mark.slow
def test_changed_input_data_is_named_as_the_cause(two_runs, project_dir, tiny_model, tmp_path, capsys):
    import gzip

    lines = gzip.open(project_dir / "resources/hotpotqa/dev_distractor.jsonl.gz", "rt").read().splitlines()
    edited = tmp_path / "dev.jsonl"
    edited.write_text("\n".join([lines[0].replace('"answer": "yes"', '"answer": "no"'), *lines[1:]]) + "\n")
    config = tiny_config(tiny_model, data={"dev": {"source": "bundled", "files": [str(edited)]}})
    result = snakemake(project_dir, tmp_path, config)
    assert result.returncode == 0, result.stderr[-3000:]
    main(["diff", str(two_runs[0] / "results/eval/tiny.parquet"), str(tmp_path / "results/eval/tiny.parquet")])
    out = capsys.readouterr().out
    assert any(line.startswith("differs in:") and "input data" in line for line in out.splitlines())
    assert "inputs.split.sha256" in out
