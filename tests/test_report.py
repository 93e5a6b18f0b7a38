"""The comparison table and results database, from evaluation files made by the agent."""

import csv
import math

import duckdb
import pytest

from react.agent.loop import AgentConfig, Task, episode_row, run_agent
from react.environment.offline import WikiEnv
from react.io import DataFileError, write_parquet
from react.results.tables import build_results
from react.schemas import EPISODE_SCHEMA
from react.search.index import Corpus


def eval_file(path, scripted, model, answers):
    """An evaluation file where question i is answered answers[i] (gold is 'a1')."""
    corpus = Corpus.from_paragraphs({"A": ["A is a page."]})
    # Not "a": an article normalises to "", and ReAct scores the forced `finish[]` by that EM.
    tasks = [Task(f"q{i}", f"Question {i}?", "a1", "dev", index=i) for i in range(len(answers))]

    def script(prompt, stop):
        i = int(prompt.split("Question ")[-1].split("?")[0])
        return f" think\nAction 1: {answers[i]}"

    config = AgentConfig()
    episodes = run_agent(tasks, scripted(script), lambda protocol: WikiEnv(corpus, protocol), "P\n", config)
    rows = [episode_row(e, model=model, backend="scripted", config=config, prompt_sha256="p",
                        corpus_sha256="c") for e in episodes]
    import pyarrow as pa

    write_parquet(pa.Table.from_pylist(rows, schema=EPISODE_SCHEMA), path, {"step": "test"})
    return path


def wilson(k, n, z=1.959964):
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return round(100 * max(centre - half, 0), 1), round(100 * min(centre + half, 1), 1)


@pytest.fixture
def results(tmp_path, scripted, project_dir):
    a = eval_file(tmp_path / "zeta.parquet", scripted, "zeta", ["Finish[a1]"] * 3 + ["Finish[b]"] * 7)
    b = eval_file(tmp_path / "alpha.parquet", scripted, "alpha", ["Finish[a1]", "Bogus[x]", "Finish[b]", "Finish[a1]"])
    table, db = tmp_path / "table.csv", tmp_path / "results.duckdb"
    build_results([a, b], project_dir / "config/published.csv", table, db)
    return list(csv.DictReader(table.open())), db


def test_table_rows_and_order(results):
    rows, _ = results
    assert [(r["kind"], r["model"]) for r in rows] == [
        ("measured", "alpha"), ("measured", "zeta"),
        ("published", "GPT-3 text-davinci-002 (ReAct)"), ("published", "PaLM-540B (ReAct)"),
    ]
    assert list(rows[0]) == ["kind", "model", "method", "base_model", "dataset", "n_train", "backend", "prompt", "format", "n", "em",
                             "em_ci_low", "em_ci_high", "em_diff", "n_paired", "p_value", "f1", "mean_steps",
                             "finished_pct", "invalid_action_pct", "source"]


def test_em_interval_finished_and_invalid_rates(results):
    rows, _ = results
    alpha, zeta = rows[0], rows[1]
    assert (zeta["n"], zeta["em"]) == ("10", "30.0")
    assert (float(zeta["em_ci_low"]), float(zeta["em_ci_high"])) == wilson(3, 10)
    assert (alpha["n"], alpha["em"], alpha["finished_pct"]) == ("4", "50.0", "75.0")
    # alpha's second question writes an invalid action at each of its 7 steps: 7 of 10 actions.
    assert alpha["invalid_action_pct"] == "70.0"


def test_published_rows_are_flagged_and_carry_no_measurements(results):
    rows, _ = results
    for row in rows[2:]:
        assert row["kind"] == "published" and row["source"].startswith("ReAct README")
        assert row["em_ci_low"] == row["f1"] == row["backend"] == ""
    assert {r["em"] for r in rows[2:]} == {"29.4", "30.4"}


def test_database_views_work_without_the_parquet_files(results, tmp_path):
    _, db = results
    for parquet in tmp_path.glob("*.parquet"):
        parquet.unlink()
    with duckdb.connect(str(db), read_only=True) as con:
        assert con.execute("select count(*) from episodes").fetchall() == [(14,)]
        assert con.sql("select model from summary where kind = 'measured'").fetchall() == [("alpha",), ("zeta",)]


def test_corrupt_eval_file_is_named(tmp_path):
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"PAR1 not really")
    with pytest.raises(DataFileError, match="bad.parquet: not a readable Parquet file"):
        build_results([bad], None, tmp_path / "t.csv", tmp_path / "r.duckdb")
    assert not (tmp_path / "t.csv").exists() and not (tmp_path / "r.duckdb").exists()


def mcnemar_exact(gained, lost):
    n = gained + lost
    return min(1.0, 2 * sum(math.comb(n, k) for k in range(min(gained, lost) + 1)) / 2**n)


def test_finetuned_rows_sit_under_their_base_with_a_paired_test(tmp_path, scripted):
    # 12 questions: base right on 0-2; finetuned right on 0-1 and 3-9 -> gained 7, lost 1.
    base = eval_file(tmp_path / "base.parquet", scripted, "base",
                     ["Finish[a1]"] * 3 + ["Finish[b]"] * 9)
    tuned = eval_file(tmp_path / "tuned.parquet", scripted, "tuned",
                      ["Finish[a1]"] * 2 + ["Finish[b]"] + ["Finish[a1]"] * 7 + ["Finish[b]"] * 2)
    other = eval_file(tmp_path / "aaa.parquet", scripted, "aaa", ["Finish[a1]"] * 4)
    table = tmp_path / "table.csv"
    build_results([base, tuned, other], None, table, tmp_path / "r.duckdb",
                  finetuned=[("tuned", "base", "oracle-train", 128)])
    rows = list(csv.DictReader(table.open()))
    assert [r["model"] for r in rows] == ["aaa", "base", "tuned"]
    tuned_row = rows[2]
    assert (tuned_row["base_model"], tuned_row["dataset"], tuned_row["n_train"]) == ("base", "oracle-train", "128")
    assert (tuned_row["em"], tuned_row["em_diff"], tuned_row["n_paired"]) == ("75.0", "50.0", "12")
    assert float(tuned_row["p_value"]) == pytest.approx(mcnemar_exact(7, 1), abs=1e-4)
    assert rows[1]["em_diff"] == rows[1]["p_value"] == ""


def test_rl_after_sft_sits_in_its_family_paired_against_the_sft_model(tmp_path, scripted):
    # base right on 0; SFT right on 0-3; SFT+GRPO right on 0-5 (gained 2 vs SFT); GRPO from base right on 0-1.
    answers = {"base": 1, "sft": 4, "sft-grpo": 6, "grpo": 2}
    files = [eval_file(tmp_path / f"{m}.parquet", scripted, m, ["Finish[a1]"] * k + ["Finish[b]"] * (8 - k))
             for m, k in answers.items()]
    table = tmp_path / "table.csv"
    build_results(files, None, table, tmp_path / "r.duckdb",
                  finetuned=[("sft", "base", "oracle-train", 64), ("sft-grpo", "sft", "train questions", 32,
                                                                    "sft+grpo", "base"),
                             ("grpo", "base", "train questions", 32, "grpo", "base")])
    rows = list(csv.DictReader(table.open()))
    assert [(r["model"], r["method"], r["base_model"], r["em_diff"], r["n_paired"]) for r in rows] == [
        ("base", "base", "", "", ""), ("grpo", "grpo", "base", "12.5", "8"), ("sft", "sft", "base", "37.5", "8"),
        ("sft-grpo", "sft+grpo", "sft", "25.0", "8")]
    assert float(rows[3]["p_value"]) == pytest.approx(mcnemar_exact(2, 0), abs=1e-4)


def test_no_discordant_pairs_gives_p_value_one(tmp_path, scripted):
    base = eval_file(tmp_path / "base.parquet", scripted, "base", ["Finish[a1]", "Finish[b]"])
    same = eval_file(tmp_path / "same.parquet", scripted, "same", ["Finish[a1]", "Finish[b]"])
    table = tmp_path / "table.csv"
    build_results([base, same], None, table, tmp_path / "r.duckdb", finetuned=[("same", "base", "d", 2)])
    row = list(csv.DictReader(table.open()))[1]
    assert (row["em_diff"], row["p_value"]) == ("0.0", "1.0")
