"""react.data.training_sets: filters, manifest, training text, leakage guard, sampling (episodes from the article's examples)."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pytest

import react.data.hotpotqa as hotpotqa
from react.agent.trajectory import format_step, parse_trajectory
from react.data.imports import episode_from_text, import_fireact, import_react_llama, write_import
from react.data.training_sets import build_dataset
from react.io import sha256_file, write_parquet
from react.schemas import EPISODE_SCHEMA, SPLIT_SCHEMA

PROJECT = Path(__file__).resolve().parents[1]
INSTRUCTION = PROJECT / "src/react/prompts/instruction.txt"
DATA = Path(__file__).resolve().parent / "data"


@pytest.fixture(scope="session")
def examples(prompt_prefix) -> list[tuple[str, str]]:
    """(question, trajectory from "Thought 1:") of the prompt's six examples, closed as the agent closes them."""
    out = []
    for block in prompt_prefix.split("Question: ")[1:]:
        question, trajectory = block.split("\n", 1)
        trajectory = trajectory.rstrip("\n") + "\n"
        out.append((question, trajectory + f"Observation {len(parse_trajectory(trajectory))}: Episode finished.\n"))
    return out


def episode(id: str, question: str, trajectory: str, sample: int = 0, **overrides) -> dict:
    """An episode row as the agent writes it (answer = the trajectory's final answer unless given)."""
    row = episode_from_text(id, question, "", trajectory, "test-model", sample=sample)
    row.update(answer=row["prediction"], em=True, f1=1.0, finish_reason="finished", error=None,
               backend="transformers", split="train")
    row.update(overrides)
    return row


@pytest.fixture
def rows(examples) -> dict[str, list[dict]]:
    """Rows of two sources covering each filter: 15 loaded, 7 left after deduplication."""
    good = [episode(f"q{i}", q, t) for i, (q, t) in enumerate(examples)]
    (q1, t1), (_, t2) = examples[1], examples[2]
    invalid_step = {"thought": "x", "action": "Jump[x]", "action_type": "invalid", "argument": "Jump[x]",
                    "observation": "Invalid action: Jump[x]", "status": "invalid_action"}
    finish_twice = format_step(1, "t", "Finish[a]", "Episode finished.") + "Thought 2: u\nAction 2: Finish[b]\n"
    teacher = good[:4] + [
        episode("u1", "Unfinished one?", t1, finish_reason="step_limit", em=False),
        episode("u2", "Unfinished two?", t1, finish_reason="context_limit", em=False),
        episode("w1", "Wrong one?", t2, answer="Something else", em=False, f1=0.0),
        episode("i1", "Invalid one?", t2, n_invalid_actions=1),
        episode("q1", q1, t1.replace("I only need", "I just need"), sample=1),  # same question, new path: kept
    ]
    other = good[4:] + [
        episode("i2", "Invalid two?", t2, steps=[invalid_step] + episode("x", "x?", t2)["steps"]),
        episode("m1", "Malformed one?", finish_twice),
        {**episode("m2", "Malformed two?", t2), "trajectory": f"Question: Another question?\n{t2}"},
        episode("q1-copy", q1.upper().replace('"', ""), t1),  # same normalised question and text as q1
    ]
    return {"teacher": teacher, "other": other}


def write_shards(folder: Path, rows: dict[str, list[dict]], reverse: bool = False) -> list[tuple[str, list[Path]]]:
    """Teacher rows in two shards, other rows in one; ``reverse`` flips every order."""
    folder.mkdir(parents=True, exist_ok=True)
    teacher, other = rows["teacher"], rows["other"]
    files = {"teacher-0.parquet": teacher[:5], "teacher-1.parquet": teacher[5:], "other.parquet": other}
    for name, part in files.items():
        part = part[::-1] if reverse else part
        write_parquet(pa.Table.from_pylist(part, schema=EPISODE_SCHEMA), folder / name, {"test": True})
    sources = [("teacher", [folder / "teacher-0.parquet", folder / "teacher-1.parquet"]),
               ("other", [folder / "other.parquet"])]
    if reverse:
        sources = [(name, paths[::-1]) for name, paths in sources[::-1]]
    return sources


@pytest.fixture(scope="session")
def dev_split(tmp_path_factory) -> Path:
    """The bundled HotPotQA dev sample: none of the article's examples are in it."""
    out = tmp_path_factory.mktemp("splits") / "dev.parquet"
    hotpotqa.prepare_split({"source": "bundled", "files": ["dev_distractor.jsonl.gz"]}, "dev", out, {}, out.parent)
    return out


def split_file(path: Path, questions: list[tuple[str, str]]) -> Path:
    rows = [{"id": i, "index": None, "question": q, "answer": "a", "type": None, "level": None,
             "supporting_facts": None, "context": None, "source": "test"} for i, q in questions]
    write_parquet(pa.Table.from_pylist(rows, schema=SPLIT_SCHEMA), path)
    return path


def build(sources, eval_split, out: Path, **kwargs) -> dict:
    return build_dataset(sources, INSTRUCTION, eval_split, out / "set.jsonl", out / "set.manifest.json", **kwargs)


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


# --- filters and manifest ----------------------------------------------------------------------


def test_each_filter_is_counted(rows, dev_split, tmp_path):
    manifest = build(write_shards(tmp_path / "in", rows), dev_split, tmp_path / "out")
    counts = [(f["filter"], f["remaining"], f["by_source"]) for f in manifest["filters"]]
    assert counts == [
        ("loaded", 15, {"other": 6, "teacher": 9}),
        ("finished", 13, {"other": 6, "teacher": 7}),  # u1 step_limit, u2 context_limit
        ("correct", 12, {"other": 6, "teacher": 6}),  # w1
        ("no_invalid_actions", 10, {"other": 5, "teacher": 5}),  # i1 (counted), i2 (a step)
        ("well_formed", 8, {"other": 3, "teacher": 5}),  # m1, m2
        ("deduplicated", 7, {"other": 2, "teacher": 5}),  # q1-copy
        ("fraction", 7, {"other": 2, "teacher": 5}),
        ("max_examples", 7, {"other": 2, "teacher": 5}),
    ]
    assert manifest["dropped_reasons"] == {
        "finished": {"context_limit": 1, "step_limit": 1},
        "well_formed": {"does not start with the line '…'": 1, "step N: Finish must be the last action": 1},
    }
    kept = [(e["id"], e["source"]) for e in read_jsonl(tmp_path / "out" / "set.jsonl")]
    assert kept == [("q0", "teacher"), ("q1", "teacher"), ("q1", "teacher"), ("q2", "teacher"),
                    ("q3", "teacher"), ("q4", "other"), ("q5", "other")]
    assert manifest["n_examples"] == 7


def test_manifest_records_inputs_and_output(rows, dev_split, tmp_path):
    sources = write_shards(tmp_path / "in", rows)
    manifest = build(sources, dev_split, tmp_path / "out", fraction=0.5, max_examples=3, seed=7, name="teacher-half")
    assert json.loads((tmp_path / "out" / "set.manifest.json").read_text(encoding="utf-8")) == manifest
    assert (tmp_path / "out" / "set.manifest.json").read_text(encoding="utf-8") == (
        json.dumps(manifest, sort_keys=True, indent=2) + "\n")
    assert manifest["dataset"] == "teacher-half"
    assert manifest["sources"] == [
        {"name": "other", "files": [{"file": "other.parquet", "sha256": sha256_file(sources[1][1][0])}]},
        {"name": "teacher", "files": [{"file": p.name, "sha256": sha256_file(p)} for p in sources[0][1]]},
    ]
    assert manifest["instruction"] == {"file": INSTRUCTION.name, "sha256": sha256_file(INSTRUCTION)}
    assert manifest["eval_split"] == {"file": "dev.parquet", "sha256": sha256_file(dev_split)}
    assert (manifest["fraction"], manifest["max_examples"], manifest["seed"]) == (0.5, 3, 7)
    assert [(f["filter"], f["remaining"]) for f in manifest["filters"][-3:]] == [
        ("deduplicated", 7), ("fraction", 4), ("max_examples", 3)]
    assert manifest["n_examples"] == 3
    assert manifest["output"] == {"file": "set.jsonl", "sha256": sha256_file(tmp_path / "out" / "set.jsonl")}


def test_jsonl_holds_the_articles_training_text(rows, examples, dev_split, tmp_path):
    build(write_shards(tmp_path / "in", rows), dev_split, tmp_path / "out")
    written = read_jsonl(tmp_path / "out" / "set.jsonl")
    instruction = INSTRUCTION.read_text(encoding="utf-8")
    assert instruction.endswith("finishes the task.\n")
    for example in written:
        assert list(example) == ["id", "question", "answer", "trajectory", "text", "source"]
        assert example["trajectory"].startswith("Thought 1: ")
        # The article: f"{prompt}\nQuestion: {example['question'].strip()}\n{example['trajectory']}"
        assert example["text"] == f"{instruction[:-1]}\nQuestion: {example['question'].strip()}\n{example['trajectory']}"
    question, trajectory = examples[1]
    q1 = written[1]
    assert (q1["id"], q1["question"], q1["answer"], q1["trajectory"]) == ("q1", question, "Richard Nixon", trajectory)
    assert ("finishes the task.\nQuestion: Musician and satirist Allie Goertz wrote a song about "
            'the "The Simpsons" character Milhouse, who Matt Groening named after who?\n'
            "Thought 1: The question simplifies to") in q1["text"]
    assert q1["text"].endswith("Action 3: Finish[Richard Nixon]\nObservation 3: Episode finished.\n")


# --- leakage guard -------------------------------------------------------------------------------


def test_leak_by_id_is_an_error(rows, tmp_path):
    sources = write_shards(tmp_path / "in", rows)
    split = split_file(tmp_path / "eval.parquet", [("q3", "A question not in the training set?")])
    with pytest.raises(ValueError, match=r"'set': 1 training examples overlap the evaluation split .*eval\.parquet.*q3"):
        build(sources, split, tmp_path / "out")
    assert not (tmp_path / "out" / "set.jsonl").exists()


def test_leak_by_normalised_question_is_an_error_even_when_sampling_would_drop_it(rows, examples, tmp_path):
    sources = write_shards(tmp_path / "in", rows)
    question = examples[3][0]  # "What profession does Nicholas Ray and Elia Kazan have in common?"
    variant = "  WHAT profession does Nicholas Ray, and Elia Kazan have in common "
    split = split_file(tmp_path / "eval.parquet", [("dev-1", variant)])
    assert question.startswith("What profession")
    for max_examples in (None, 1):
        with pytest.raises(ValueError, match=r"1 training examples overlap .*q3 \('What profession"):
            build(sources, split, tmp_path / "out", fraction=0.2, max_examples=max_examples)


def test_an_eval_question_only_in_dropped_episodes_is_no_leak(rows, dev_split, tmp_path):
    split = split_file(tmp_path / "eval.parquet", [("w1", "Wrong one?"), ("dev-2", "malformed ONE")])
    manifest = build(write_shards(tmp_path / "in", rows), split, tmp_path / "out")
    assert manifest["n_examples"] == 7


def test_many_leaks_are_counted_and_the_first_named(rows, examples, tmp_path):
    split = split_file(tmp_path / "eval.parquet", [(f"dev-{i}", q) for i, (q, _) in enumerate(examples)])
    with pytest.raises(ValueError, match=r"7 training examples overlap .*: q0 .*; q1 .*; q1 .*; q2 .*; q3 .* \.\.\.$"):
        build(write_shards(tmp_path / "in", rows), split, tmp_path / "out")


# --- empty sets, sampling, determinism -----------------------------------------------------------


def test_an_empty_dataset_names_the_filter(rows, dev_split, tmp_path):
    wrong = {name: [{**r, "em": False} for r in part] for name, part in rows.items()}
    with pytest.raises(ValueError, match=r"dataset 'set' is empty: filter 'correct' removed all 13 remaining "
                                         r"episodes \(sources: teacher: 2 files, other: 1 files\)"):
        build(write_shards(tmp_path / "in", wrong), dev_split, tmp_path / "out")
    with pytest.raises(ValueError, match="filter 'fraction' removed all 7 remaining"):
        build(write_shards(tmp_path / "in", rows), dev_split, tmp_path / "out", fraction=0.05)
    empty = tmp_path / "empty.parquet"
    write_parquet(pa.Table.from_pylist([], schema=EPISODE_SCHEMA), empty)
    with pytest.raises(ValueError, match="filter 'loaded' found no episodes"):
        build([("teacher", [empty])], dev_split, tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"fraction": 0}, "fraction must be in"), ({"fraction": 1.5}, "fraction must be in"),
    ({"max_examples": 0}, "max_examples must be"),
])
def test_bad_arguments(rows, dev_split, tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        build(write_shards(tmp_path / "in", rows), dev_split, tmp_path / "out", **kwargs)


def test_a_source_name_given_twice_is_an_error(rows, dev_split, tmp_path):
    sources = write_shards(tmp_path / "in", rows)
    with pytest.raises(ValueError, match="a source name is given twice"):
        build(sources + [("other", [])], dev_split, tmp_path / "out")


def _examples(path: Path) -> list[tuple[str, str]]:
    return [(e["id"], e["trajectory"]) for e in read_jsonl(path)]


def test_half_is_a_subset_of_full_for_the_same_seed(rows, dev_split, tmp_path):
    sources = write_shards(tmp_path / "in", rows)
    sets = {}
    for label, kwargs in {"full": {}, "half": {"fraction": 0.5}, "capped": {"fraction": 0.5, "max_examples": 2},
                          "half-seed-1": {"fraction": 0.5, "seed": 1}}.items():
        manifest = build(sources, dev_split, tmp_path / label, **kwargs)
        sets[label] = set(_examples(tmp_path / label / "set.jsonl"))
        assert manifest["n_examples"] == len(sets[label])
    assert (len(sets["full"]), len(sets["half"]), len(sets["capped"])) == (7, 4, 2)
    assert sets["capped"] < sets["half"] < sets["full"]
    assert sets["half-seed-1"] < sets["full"]


def test_output_does_not_depend_on_input_order(rows, dev_split, tmp_path):
    first = build(write_shards(tmp_path / "a", rows), dev_split, tmp_path / "out-a", fraction=0.5)
    second = build(write_shards(tmp_path / "b", rows, reverse=True), dev_split, tmp_path / "out-b", fraction=0.5)
    assert (tmp_path / "out-a" / "set.jsonl").read_bytes() == (tmp_path / "out-b" / "set.jsonl").read_bytes()
    assert first["filters"] == second["filters"] and first["output"] == second["output"]
    build(write_shards(tmp_path / "a", rows), dev_split, tmp_path / "out-c", fraction=0.5)  # rerun
    assert (tmp_path / "out-c" / "set.manifest.json").read_bytes() == (tmp_path / "out-a" / "set.manifest.json").read_bytes()


# --- imported sets ---------------------------------------------------------------------------------


def test_imported_trajectories_make_a_dataset(dev_split, tmp_path):
    llama, fireact = tmp_path / "react_llama.parquet", tmp_path / "fireact.parquet"
    write_import(import_react_llama({"path": DATA / "react_llama_sample.jsonl"}), llama, {})
    write_import(import_fireact(DATA / "fireact_sample.jsonl"), fireact, {})
    sources = [("react-llama", [llama]), ("fireact-gpt4", [fireact])]
    manifest = build(sources, dev_split, tmp_path / "out")
    assert [(f["filter"], f["remaining"]) for f in manifest["filters"][:3]] == [
        ("loaded", 13), ("finished", 12), ("correct", 12)]
    assert manifest["dropped_reasons"]["finished"] == {"parse_error": 1}  # the malformed react-llama row
    assert manifest["n_examples"] == 12
    texts = {e["id"]: e["text"] for e in read_jsonl(tmp_path / "out" / "set.jsonl")}
    assert texts["react-llama-5"].endswith("Action 3: Finish[yes]\n")

    # Four of the article's examples and all six FireAct questions are HotPotQA train questions:
    # evaluating on that split would be a leak.
    train = tmp_path / "train.parquet"
    hotpotqa.prepare_split({"source": "bundled", "files": ["train_distractor.jsonl.gz"]}, "train", train, {}, tmp_path)
    with pytest.raises(ValueError, match=r"10 training examples overlap the evaluation split"):
        build(sources, train, tmp_path / "leak")
