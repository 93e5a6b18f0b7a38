"""react.data.imports: FireAct and xz56/react-llama trajectories as episode rows (real samples, no network)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import react.data.hotpotqa as hotpotqa
from react.agent.metrics import normalize_answer
from react.data.imports import (
    FIREACT_MODEL,
    REACT_LLAMA_MODEL,
    import_fireact,
    import_info,
    import_react_llama,
    write_import,
)
from react.data.training_sets import split_trajectory
from react.io import DataFileError, read_parquet, read_provenance, sha256_file, write_parquet
from react.schemas import EPISODE_SCHEMA, SPLIT_SCHEMA

DATA = Path(__file__).resolve().parent / "data"
FIREACT = DATA / "fireact_sample.jsonl"
REACT_LLAMA = DATA / "react_llama_sample.jsonl"


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _write_jsonl(path: Path, records: list) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def train_split(tmp_path_factory) -> Path:
    """The bundled HotPotQA train sample as a split Parquet (all 6 FireAct questions are in it)."""
    out = tmp_path_factory.mktemp("splits") / "train.parquet"
    spec = {"source": "bundled", "files": ["train_distractor.jsonl.gz"]}
    hotpotqa.prepare_split(spec, "train", out, {"rule": "test"}, out.parent)
    return out


# --- FireAct -------------------------------------------------------------------------------


def test_fireact_conversion_is_exact():
    [first, *_] = import_fireact(FIREACT).to_pylist()
    messages = _lines(FIREACT)[0]["messages"]
    question = messages[0]["content"]
    assert first["question"] == question
    assert first["trajectory"] == (
        f"Question: {question}\n"
        "Thought 1: I need to search for the best kick boxer in the world who has been involved in "
        "unsportsmanlike conducts and crimes of violence outside of the ring.\n"
        "Action 1: Search[best kick boxer in the world unsportsmanlike conducts crimes of violence]\n"
        "Observation 1: Badr Hari (born 8 December 1984) is a Moroccan-Dutch kickboxer. He is a former K-1 "
        "Heavyweight World Champion (2007\u20132008), It's Showtime Heavyweight World ...\n"
        "Thought 2: Badr Hari is the person who fits the description.\n"
        "Action 2: Finish[Badr Hari]\n"
        "Observation 2: Episode finished.\n"
    )
    assert [s["action"] for s in first["steps"]] == [
        "Search[best kick boxer in the world unsportsmanlike conducts crimes of violence]", "Finish[Badr Hari]"]
    assert [s["action_type"] for s in first["steps"]] == ["search", "finish"]
    assert first["steps"][0]["observation"] == messages[2]["content"].removeprefix("Observation: ")
    assert first["steps"][1]["observation"] == "Episode finished."
    assert {s["status"] for s in first["steps"]} == {"ok"}
    assert (first["prediction"], first["finish_reason"], first["n_steps"], first["n_calls"]) == (
        "Badr Hari", "finished", 2, 2)
    assert (first["model"], first["backend"], first["split"], first["sample"]) == (FIREACT_MODEL, "import", "train", 0)
    assert (first["prompt_sha256"], first["corpus_sha256"], first["seconds"]) == ("", "", 0.0)


def test_fireact_every_message_becomes_a_numbered_step():
    records = _lines(FIREACT)
    for record, row in zip(records, import_fireact(FIREACT).to_pylist()):
        replies = record["messages"][1::2]
        assert row["n_steps"] == len(replies)
        for i, (reply, step) in enumerate(zip(replies, row["steps"]), start=1):
            thought, action = reply["content"].split("\nAction: ")
            assert step["thought"] == thought.removeprefix("Thought: ")
            assert step["action"] == action[0].upper() + action[1:]
            assert f"\nAction {i}: {step['action']}\n" in row["trajectory"]
        assert row["trajectory"].endswith(f"Observation {len(replies)}: Episode finished.\n")
        assert split_trajectory(row)  # parses back as a ReAct trajectory


def test_fireact_without_gold_uses_the_source_verdict(tmp_path):
    rows = import_fireact(FIREACT).to_pylist()
    for row, record in zip(rows, _lines(FIREACT)):
        digest = re.fullmatch(r"fireact-([0-9a-f]{12})", row["id"])
        assert digest, row["id"]
        assert row["answer"] == row["prediction"] and (row["em"], row["f1"]) == (True, 1.0)
    record = _lines(FIREACT)[0]
    wrong = {"messages": record["messages"][:-1] + [{"role": "user", "content": "Observation: Episode finished, reward = False"}]}
    as_one = {"messages": record["messages"][:-1] + [{"role": "user", "content": "Observation: Episode finished, reward = 1"}]}
    rows = import_fireact(_write_jsonl(tmp_path / "verdicts.jsonl", [wrong, as_one])).to_pylist()
    assert [(r["em"], r["f1"], r["finish_reason"]) for r in rows] == [(False, 0.0, "finished"), (True, 1.0, "finished")]
    assert [r["sample"] for r in rows] == [0, 1]  # the same question twice: samples 0 and 1 of one id


def test_fireact_gold_answers_from_the_train_split(train_split, tmp_path):
    split = {normalize_answer(r["question"]): r for r in read_parquet(train_split, SPLIT_SCHEMA).to_pylist()}
    table = import_fireact(FIREACT, train_split)
    for row in table.to_pylist():
        gold = split[normalize_answer(row["question"])]
        assert (row["id"], row["answer"]) == (gold["id"], gold["answer"])
    assert table.column("id").to_pylist()[:2] == ["5a832c3455429954d2e2ec41", "5ade025e5542997dc790711e"]
    info = import_info(table)
    assert (info["n_gold_matched"], info["n_source_judged"]) == (6, 0)
    assert info["train_split"] == {"file": "train.parquet", "sha256": sha256_file(train_split)}

    # A split that lacks two of the questions: those two fall back to the source's verdict.
    keep = [r for r in read_parquet(train_split).to_pylist()
            if r["id"] not in ("5a832c3455429954d2e2ec41", "5ade025e5542997dc790711e")]
    partial = tmp_path / "partial.parquet"
    write_parquet(pa.Table.from_pylist(keep, schema=SPLIT_SCHEMA), partial)
    table = import_fireact(FIREACT, partial)
    assert (import_info(table)["n_gold_matched"], import_info(table)["n_source_judged"]) == (4, 2)
    assert [i.startswith("fireact-") for i in table.column("id").to_pylist()] == [True, True] + [False] * 4

    out = tmp_path / "fireact.parquet"
    write_import(table, out, {"rule": "import_fireact"})
    assert read_parquet(out, EPISODE_SCHEMA).num_rows == 6
    provenance = read_provenance(out)
    assert provenance["rule"] == "import_fireact"
    assert provenance["source"] == {"file": FIREACT.name, "sha256": sha256_file(FIREACT)}
    assert (provenance["n_gold_matched"], provenance["n_source_judged"]) == (4, 2)


def test_gold_answer_is_judged_by_exact_match(train_split, tmp_path):
    record = _lines(FIREACT)[0]  # gold answer "Badr Hari"
    messages = [dict(m) for m in record["messages"]]
    messages[3]["content"] = "Thought: He fits.\nAction: finish[Badr Hari the kickboxer]"
    row, = import_fireact(_write_jsonl(tmp_path / "partly.jsonl", [{"messages": messages}]), train_split).to_pylist()
    assert (row["answer"], row["prediction"], row["em"]) == ("Badr Hari", "Badr Hari the kickboxer", False)
    assert row["f1"] == pytest.approx(0.8)  # "badr hari kickboxer": precision 2/3, recall 1


def _conversation(*replies: str, end: str | None = "Observation: Episode finished, reward = True") -> dict:
    messages = [{"role": "user", "content": "Which city is the capital of France?"}]
    for k, reply in enumerate(replies):
        messages.append({"role": "assistant", "content": reply})
        if k + 1 < len(replies):
            messages.append({"role": "user", "content": f"Observation: result {k + 1}"})
    if end is not None:
        messages.append({"role": "user", "content": end})
    return {"messages": messages}


@pytest.mark.parametrize(
    ("record", "n_steps", "reason"),
    [
        (_conversation("Thought: Search it.\nAction: search[France]", "Thought: It is Paris, finish[Paris]"),
         1, "message 4: no 'Thought: ...' followed by an 'Action: ...' line"),
        (_conversation("Thought: Ask someone.\nAction: ask[capital of France]"), 0, "step 1: invalid action 'ask[capital of France]'"),
        (_conversation("Thought: Search it.\nAction: search[France]", "Thought: Again.\nAction: search[Paris]", end=None),
         2, "the last action is not Finish"),
        ({"messages": [{"role": "user", "content": "Q?"}, {"role": "user", "content": "Observation: x"}]},
         0, "message 2: expected an assistant message"),
        ({"messages": [{"role": "user", "content": "Q?"}]}, 0, "no assistant message"),
    ],
)
def test_malformed_fireact_trajectories_are_flagged_not_dropped(tmp_path, record, n_steps, reason):
    path = _write_jsonl(tmp_path / "bad.jsonl", [record, _lines(FIREACT)[0]])
    bad, good = import_fireact(path).to_pylist()
    assert good["finish_reason"] == "finished"
    assert (bad["finish_reason"], bad["em"], bad["f1"], bad["n_steps"]) == ("parse_error", False, 0.0, n_steps)
    assert bad["error"].startswith("TrajectoryFormatError: ") and reason in bad["error"]
    assert bad["trajectory"].startswith(f"Question: {record['messages'][0]['content']}\n")
    assert import_info(import_fireact(path))["finish_reasons"] == {"finished": 1, "parse_error": 1}


def test_bad_fireact_lines_name_file_line_and_key(tmp_path):
    good = FIREACT.read_text(encoding="utf-8").splitlines()[0]
    path = tmp_path / "broken.jsonl"
    path.write_text(good + "\n" + good[:-5] + "\n", encoding="utf-8")
    with pytest.raises(DataFileError, match=r"broken\.jsonl:2: invalid JSON"):
        import_fireact(path)
    _write_jsonl(path, [json.loads(good), {"conversation": []}])
    with pytest.raises(DataFileError, match=r"broken\.jsonl:2: missing key 'messages'"):
        import_fireact(path)
    _write_jsonl(path, [{"messages": [{"role": "user", "content": "Q?"}, {"role": "assistant"}]}])
    with pytest.raises(DataFileError, match=r"broken\.jsonl:1: message 2: missing key 'content'"):
        import_fireact(path)
    _write_jsonl(path, [{"messages": [{"role": "assistant", "content": "Thought: x\nAction: finish[y]"}]}])
    with pytest.raises(DataFileError, match=r"broken\.jsonl:1: message 1 should be the user's question"):
        import_fireact(path)


# --- xz56/react-llama ------------------------------------------------------------------------


def clean(text: str) -> str:
    return re.sub(" +\n", "\n", re.sub("[-â]?\x80\x93|–", "-", text))


def test_react_llama_jsonl(prompt_prefix):
    records = _lines(REACT_LLAMA)
    table = import_react_llama({"path": str(REACT_LLAMA)})
    assert table.schema.remove_metadata().equals(EPISODE_SCHEMA)
    rows = table.to_pylist()
    assert [r["id"] for r in rows] == [f"react-llama-{i}" for i in range(7)]
    for record, row in zip(records[:6], rows):
        assert row["trajectory"] == f"Question: {record['question']}\n{record['trajectory']}\n"
        # The article's examples: ReAct's prompt up to its trailing spaces and mis-encoded dashes.
        assert clean(row["trajectory"]) in clean(prompt_prefix) + "\n"
        assert (row["answer"], row["prediction"], row["em"], row["f1"]) == (
            record["correct_answer"], record["correct_answer"], True, 1.0)
        assert row["steps"][-1]["observation"] == ""  # the examples stop at Finish[...]
        assert row["n_calls"] == row["n_steps"] == row["trajectory"].count("\nAction ")
    assert [r["n_steps"] for r in rows[:6]] == [5, 3, 3, 3, 3, 3]
    assert rows[0]["steps"][1]["action"] == "Lookup[eastern sector]"
    assert {(r["model"], r["max_steps"], r["max_new_tokens"], r["temperature"]) for r in rows} == {
        (REACT_LLAMA_MODEL, 7, 100, 0.0)}
    bad = rows[6]
    assert (bad["finish_reason"], bad["em"], bad["prediction"], bad["n_steps"]) == ("parse_error", False, "", 1)
    assert bad["steps"][0]["action"] == "Search[Milhouse]"
    assert bad["error"] == "TrajectoryFormatError: step 2: invalid action 'Answer[Richard Nixon]'"
    assert import_info(table)["source"] == {"file": REACT_LLAMA.name, "sha256": sha256_file(REACT_LLAMA)}


def _as_parquet(folder: Path) -> Path:
    folder.mkdir()
    path = folder / "train-00000-of-00001.parquet"
    pq.write_table(pa.Table.from_pylist(_lines(REACT_LLAMA)), path)  # id int64, as on the hub
    return path


def test_react_llama_parquet_gives_the_same_rows(tmp_path):
    path = _as_parquet(tmp_path / "data")
    expected = import_react_llama({"path": REACT_LLAMA}).to_pylist()
    assert import_react_llama({"path": path}).to_pylist() == expected


@pytest.fixture
def hf_cache(tmp_path, monkeypatch):
    import datasets

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "hf_cache"))


def test_react_llama_from_a_hugging_face_dataset(hf_cache, tmp_path):
    folder = tmp_path / "react-llama"
    _as_parquet(folder)
    table = import_react_llama({"hf_id": str(folder), "split": "train"})
    assert table.to_pylist() == import_react_llama({"path": REACT_LLAMA}).to_pylist()
    assert import_info(table)["source"]["dataset"] == f"{folder}:train"
    out = tmp_path / "react_llama.parquet"
    write_import(table, out, {"rule": "import_react_llama"})
    assert read_provenance(out)["source"]["dataset"] == f"{folder}:train"
    with pytest.raises(DataFileError, match=f"Hugging Face dataset {tmp_path}/missing:train: cannot load"):
        import_react_llama({"hf_id": str(tmp_path / "missing"), "split": "train"})


def test_bad_react_llama_rows_name_file_line_and_key(tmp_path):
    records = _lines(REACT_LLAMA)
    del records[2]["correct_answer"]
    with pytest.raises(DataFileError, match=r"bad\.jsonl:3: missing key 'correct_answer'"):
        import_react_llama({"path": _write_jsonl(tmp_path / "bad.jsonl", records)})
    records = _lines(REACT_LLAMA)
    records[0]["trajectory"] = None
    with pytest.raises(DataFileError, match=r"bad\.jsonl:1: key 'trajectory' should be str, got NoneType"):
        import_react_llama({"path": _write_jsonl(tmp_path / "bad.jsonl", records)})
    with pytest.raises(ValueError, match="needs 'path' or 'hf_id'"):
        import_react_llama({"file": "x"})
