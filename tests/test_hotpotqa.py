"""react.data.hotpotqa: the three sources, bad input, and the ReAct question sample (real data, no network)."""

from __future__ import annotations

import gzip
import json
import random
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import react.data.hotpotqa as hotpotqa
from react.io import DataFileError, read_parquet, read_provenance, sha256_file
from react.schemas import SPLIT_SCHEMA

DATA = Path(__file__).resolve().parents[1] / "resources" / "hotpotqa"
DEV = DATA / "dev_distractor.jsonl.gz"
RECONSTRUCTED = DATA / "dev_distractor_reconstructed.jsonl.gz"
TRAIN = DATA / "train_distractor.jsonl.gz"
PROVENANCE = {"rule": "test"}


def _bundled_items(path: Path, n: int | None = None) -> list[dict]:
    items = []
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        for line in fh:
            items.append(json.loads(line))
            if n is not None and len(items) == n:
                break
    return items


def _as_official(item: dict) -> dict:
    """A bundled line back in the official file's format (no dev_index, no sources)."""
    return {k: v for k, v in item.items() if k not in ("dev_index", "sources")}


def _as_huggingface(item: dict) -> dict:
    return {
        "id": item["_id"],
        "question": item["question"],
        "answer": item["answer"],
        "type": item["type"],
        "level": item["level"],
        "supporting_facts": {
            "title": [t for t, _ in item["supporting_facts"]],
            "sent_id": [s for _, s in item["supporting_facts"]],
        },
        "context": {"title": [t for t, _ in item["context"]], "sentences": [s for _, s in item["context"]]},
    }


def _content(row: dict) -> dict:
    """What must agree whatever the source: everything but the source label."""
    return {k: v for k, v in row.items() if k != "source"}


@pytest.fixture(scope="module")
def dev_rows() -> list[dict]:
    return hotpotqa.load_jsonl_files([DEV])


@pytest.fixture(scope="module")
def dev_table(tmp_path_factory) -> tuple[pa.Table, Path]:
    out = tmp_path_factory.mktemp("split") / "dev.parquet"
    hotpotqa.prepare_split({"source": "bundled", "files": [str(DEV)]}, "dev", out, PROVENANCE, out.parent)
    return read_parquet(out, SPLIT_SCHEMA), out


# --- bundled ------------------------------------------------------------------------------


def test_bundled_dev_split(dev_table):
    table, path = dev_table
    assert table.num_rows == 1350
    dev_index = {item["dev_index"] for item in _bundled_items(DEV)}
    assert set(table.column("index").to_pylist()) == dev_index
    assert table.column("index").to_pylist() == sorted(dev_index)  # deterministic order
    assert set(table.column("source").to_pylist()) == {DEV.name}
    provenance = read_provenance(path)
    assert provenance["rule"] == "test" and provenance["split"] == "dev" and provenance["rows"] == 1350
    assert provenance["inputs"]["files"] == [{"file": DEV.name, "sha256": sha256_file(DEV)}]


def test_bundled_row_converted(dev_rows):
    item, row = _bundled_items(DEV, 1)[0], dev_rows[0]
    assert row["id"] == item["_id"] and row["index"] == item["dev_index"] == 0
    assert row["supporting_facts"] == [{"title": t, "sent_id": s} for t, s in item["supporting_facts"]]
    assert row["context"] == [{"title": t, "sentences": s} for t, s in item["context"]]


def test_reconstructed_has_null_sent_ids(tmp_path):
    out = tmp_path / "dev.parquet"
    spec = {"source": "bundled", "files": [str(DEV), str(RECONSTRUCTED)]}
    table = hotpotqa.prepare_split(spec, "dev", out, PROVENANCE, tmp_path)
    assert table.num_rows == 1350 + 326
    rows = [r for r in read_parquet(out, SPLIT_SCHEMA).to_pylist() if r["source"] == RECONSTRUCTED.name]
    assert len(rows) == 326
    first = _bundled_items(RECONSTRUCTED, 1)[0]
    row = next(r for r in rows if r["id"] == first["_id"])
    assert row["supporting_facts"] == [{"title": t, "sent_id": None} for t in first["supporting_titles"]]
    assert all(f["sent_id"] is None for r in rows for f in r["supporting_facts"])


def test_bundled_file_name_resolves_to_resources(tmp_path, monkeypatch):
    monkeypatch.chdir(DATA.parents[1])
    spec = {"source": "bundled", "files": [TRAIN.name]}
    table = hotpotqa.prepare_split(spec, "train", tmp_path / "train.parquet", {}, tmp_path)
    assert table.num_rows == 996


def test_bundled_train_has_no_index():
    rows = hotpotqa.load_jsonl_files([TRAIN])
    assert len(rows) == 996 and all(r["index"] is None for r in rows)


# --- official (served over local HTTP) ----------------------------------------------------


@pytest.fixture
def official_file(file_server):
    """The first 3 bundled dev items (dev_index 0-2) as an official JSON list: (URL, sha256, items)."""
    items = _bundled_items(DEV, 3)
    path = file_server.root / "hotpot_dev_distractor_v1.json"
    path.write_text(json.dumps([_as_official(i) for i in items]), encoding="utf-8")
    return f"{file_server.url}/{path.name}", sha256_file(path), items


def test_official_download(official_file, dev_rows, tmp_path):
    url, sha256, _ = official_file
    out, downloads = tmp_path / "dev.parquet", tmp_path / "downloads"
    spec = {"source": "official", "url": url, "sha256": sha256}
    hotpotqa.prepare_split(spec, "dev", out, PROVENANCE, downloads)
    rows = read_parquet(out, SPLIT_SCHEMA).to_pylist()
    assert [_content(r) for r in rows] == [_content(r) for r in dev_rows[:3]]
    assert sha256_file(downloads / "hotpot_dev_distractor_v1.json") == sha256
    assert read_provenance(out)["inputs"]["url"] == url
    # A second run finds the file in place and needs no server.
    dest = downloads / "hotpot_dev_distractor_v1.json"
    assert hotpotqa.download("http://127.0.0.1:9/unreachable", dest, sha256) == dest


def test_official_local_file(official_file, dev_rows, file_server, tmp_path):
    url, sha256, _ = official_file
    local = file_server.root / "hotpot_dev_distractor_v1.json"
    spec = {"source": "official", "url": "http://127.0.0.1:9/unused", "sha256": sha256, "file": str(local)}
    table = hotpotqa.prepare_split(spec, "dev", tmp_path / "dev.parquet", PROVENANCE, tmp_path / "dl")
    assert table.column("id").to_pylist() == [r["id"] for r in dev_rows[:3]]
    assert not (tmp_path / "dl").exists()
    with pytest.raises(DataFileError, match="sha256 mismatch"):
        hotpotqa.prepare_split({**spec, "sha256": "0" * 64}, "dev", tmp_path / "x.parquet", {}, tmp_path)


def test_official_wrong_sha256(official_file, tmp_path):
    url, sha256, _ = official_file
    wrong = "0" * 64
    downloads = tmp_path / "downloads"
    spec = {"source": "official", "url": url, "sha256": wrong}
    with pytest.raises(DataFileError) as err:
        hotpotqa.prepare_split(spec, "dev", tmp_path / "dev.parquet", {}, downloads)
    assert url in str(err.value) and wrong in str(err.value) and sha256 in str(err.value)
    assert list(downloads.iterdir()) == []  # neither the file nor its temporary copy
    assert not (tmp_path / "dev.parquet").exists()


def test_download_network_error_names_url(file_server, tmp_path):
    url = f"{file_server.url}/missing.json"
    with pytest.raises(DataFileError, match=f"{url}: download failed \\(HTTP Error 404: File not found\\)"):
        hotpotqa.download(url, tmp_path / "missing.json", "0" * 64, timeout=5)
    assert list(tmp_path.glob("*missing.json*")) == []


def test_official_json_errors(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('[{"_id": "a"}, {"_id": ', encoding="utf-8")
    with pytest.raises(DataFileError, match=r"broken\.json: invalid JSON .*line 1 column"):
        hotpotqa.load_official_json(path)
    path.write_text(json.dumps([_as_official(_bundled_items(DEV, 1)[0]), {"_id": "b"}]), encoding="utf-8")
    with pytest.raises(DataFileError, match=r"broken\.json: item 1: missing key 'question'"):
        hotpotqa.load_official_json(path)
    path.write_text('{"data": []}', encoding="utf-8")
    with pytest.raises(DataFileError, match="expected a JSON list"):
        hotpotqa.load_official_json(path)


# --- Hugging Face (a local folder of Parquet files is datasets' real code path) ------------


@pytest.fixture
def hf_cache(tmp_path, monkeypatch):
    import datasets

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "hf_cache"))


def test_huggingface(hf_cache, dev_rows, tmp_path):
    folder = tmp_path / "hotpot_qa"
    folder.mkdir()
    items = _bundled_items(DEV)[100:103]  # rows 0-2 here, dev_index 100-102 in the bundle
    table = pa.Table.from_pylist([_as_huggingface(i) for i in items])
    pq.write_table(table, folder / "train-00000-of-00001.parquet")
    out = tmp_path / "dev.parquet"
    spec = {"source": "huggingface", "name": str(folder), "config": None, "split": "train"}
    hotpotqa.prepare_split(spec, "dev", out, PROVENANCE, tmp_path)
    rows = read_parquet(out, SPLIT_SCHEMA).to_pylist()
    assert [r["index"] for r in rows] == [0, 1, 2]
    without_index = [{**_content(r), "index": None} for r in rows]
    assert without_index == [{**_content(r), "index": None} for r in dev_rows[100:103]]
    assert {r["source"] for r in rows} == {f"{folder}:train"}
    inputs = read_provenance(out)["inputs"]
    assert inputs["dataset"] == f"{folder}:train" and inputs["fingerprint"]


def test_huggingface_errors(hf_cache, tmp_path):
    missing = tmp_path / "no_such_dataset"
    with pytest.raises(DataFileError, match=f"Hugging Face dataset {missing}:train: cannot load"):
        hotpotqa.load_huggingface(str(missing), None, "train")
    row = _as_huggingface(_bundled_items(DEV, 1)[0])
    row["context"]["sentences"].pop()
    with pytest.raises(DataFileError, match=r"hf row 0: key 'context' has 10 title but 9 sentences"):
        hotpotqa.huggingface_rows([row], "hf")


# --- bad input -----------------------------------------------------------------------------


def _write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


@pytest.fixture
def good_lines() -> list[str]:
    return [json.dumps(item) for item in _bundled_items(DEV, 4)]


def test_broken_json_line(tmp_path, good_lines):
    path = _write_lines(tmp_path / "file.jsonl", good_lines[:2] + ['{"_id": '] + good_lines[3:])
    with pytest.raises(DataFileError, match=r"file\.jsonl:3: invalid JSON"):
        hotpotqa.load_jsonl_files([path])


def test_missing_key(tmp_path, good_lines):
    item = json.loads(good_lines[1])
    del item["answer"]
    path = _write_lines(tmp_path / "file.jsonl", [good_lines[0], json.dumps(item)])
    with pytest.raises(DataFileError, match=r"file\.jsonl:2: missing key 'answer'"):
        hotpotqa.load_jsonl_files([path])


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("context", [["T", "not a list"]], r"key 'context' item 0 should be \[title, \[sentence, ...\]\]"),
        ("context", {"title": []}, r"key 'context' should be a list of \[title, ...\] pairs"),
        ("supporting_facts", [["Title", "0"]], r"key 'supporting_facts' item 0 should be \[title, sent_id\]"),
        ("question", None, r"key 'question' should be a string"),
        ("dev_index", -1, r"key 'dev_index' should be a non-negative integer"),
    ],
)
def test_wrong_shape(tmp_path, good_lines, key, value, message):
    item = json.loads(good_lines[0])
    item[key] = value
    path = _write_lines(tmp_path / "file.jsonl", [json.dumps(item)])
    with pytest.raises(DataFileError, match=rf"file\.jsonl:1: {message}"):
        hotpotqa.load_jsonl_files([path])


def test_integer_id_is_an_error(tmp_path, good_lines):
    # The collection's copy once had integer ids; the shipped copy has the official ones.
    item = json.loads(good_lines[0])
    item["_id"] = 0
    path = _write_lines(tmp_path / "file.jsonl", [json.dumps(item)])
    with pytest.raises(DataFileError, match=r"file\.jsonl:1: key '_id' should be a string, got int"):
        hotpotqa.load_jsonl_files([path])


def test_bundled_ids_are_official_ids():
    rows = hotpotqa.load_jsonl_files([hotpotqa.bundled_file("dev_distractor.jsonl.gz")])
    assert all(len(r["id"]) == 24 and int(r["id"], 16) >= 0 for r in rows)


def test_duplicate_id_names_both_lines(tmp_path, good_lines):
    item = json.loads(good_lines[0])
    item["dev_index"] = 9999
    path = _write_lines(tmp_path / "file.jsonl", good_lines[:3] + [json.dumps(item)])
    message = rf"file\.jsonl:4: duplicate id '{item['_id']}' \(also at .*file\.jsonl:1\)"
    with pytest.raises(DataFileError, match=message):
        hotpotqa.load_jsonl_files([path])


def test_duplicate_across_files(tmp_path, good_lines):
    first = _write_lines(tmp_path / "a.jsonl", good_lines[:2])
    second = _write_lines(tmp_path / "b.jsonl", good_lines[1:3])
    with pytest.raises(DataFileError, match=r"b\.jsonl:1: duplicate id .*a\.jsonl:2"):
        hotpotqa.load_jsonl_files([first, second])


def test_non_utf8_line(tmp_path, good_lines):
    path = tmp_path / "file.jsonl"
    path.write_bytes(good_lines[0].encode() + b"\n" + b'{"_id": "\xff"}\n')
    with pytest.raises(DataFileError, match=r"file\.jsonl:2: not UTF-8"):
        hotpotqa.load_jsonl_files([path])


def test_truncated_gzip(tmp_path):
    path = tmp_path / "dev.jsonl.gz"
    data = DEV.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataFileError, match=r"dev\.jsonl\.gz: corrupt or truncated gzip"):
        hotpotqa.load_jsonl_files([path])


def test_missing_file(tmp_path):
    with pytest.raises(DataFileError, match=r"nope\.jsonl\.gz: file not found"):
        spec = {"source": "bundled", "files": [str(tmp_path / "nope.jsonl.gz")]}
        hotpotqa.prepare_split(spec, "dev", tmp_path / "o.parquet", {}, tmp_path)
    with pytest.raises(DataFileError, match=r"nope\.json: file not found"):
        hotpotqa.load_official_json(tmp_path / "nope.json")


def test_unknown_source(tmp_path):
    with pytest.raises(ValueError, match="unknown source 'ftp'"):
        hotpotqa.prepare_split({"source": "ftp"}, "dev", tmp_path / "o.parquet", {}, tmp_path)


# --- the question sample -------------------------------------------------------------------


def test_official_constants():
    assert hotpotqa.POPULATION == {"dev": 7405, "train": 90447}
    assert hotpotqa.OFFICIAL_FILES["dev"]["url"].endswith("hotpot_dev_distractor_v1.json")


def test_sample_follows_react_protocol(dev_table):
    table = dev_table[0]
    positions = hotpotqa.sample_questions(table, 500, seed=233, population=7405)
    index = table.column("index").to_pylist()
    assert [index[p] for p in positions[:5]] == [3522, 2825, 1720, 457, 1439]
    assert len(positions) == len(set(positions)) == 500
    # The sample of 500 is the head of the full protocol order, and the same every time.
    everything = hotpotqa.sample_questions(table, None, population=7405)
    assert everything[:500] == positions and sorted(everything) == list(range(1350))
    assert hotpotqa.sample_questions(table, 0, population=7405) == everything
    assert hotpotqa.sample_questions(table.to_pylist(), 500, population=7405) == positions
    assert hotpotqa.sample_questions(table, 500, seed=1, population=7405) != positions


def test_sample_too_large(dev_table):
    message = "question sample of 2000 is larger than the 1350 questions available in dev"
    with pytest.raises(ValueError, match=message):
        hotpotqa.sample_questions(dev_table[0], 2000, population=7405, split="dev")
    with pytest.raises(ValueError, match="got -1"):
        hotpotqa.sample_questions(dev_table[0], -1, population=7405)


def test_sample_needs_a_population(dev_table):
    with pytest.raises(ValueError, match="population is needed"):
        hotpotqa.sample_questions(dev_table[0], 10)
    with pytest.raises(ValueError, match="index 7390 is outside the population of 100"):
        hotpotqa.sample_questions(dev_table[0], 10, population=100)


def test_sample_without_index_falls_back_to_ids():
    rows = hotpotqa.load_jsonl_files([TRAIN])
    positions = hotpotqa.sample_questions(rows, 10, population=90447)
    ids = sorted(r["id"] for r in rows)
    order = list(range(len(ids)))
    random.Random(233).shuffle(order)
    assert [rows[p]["id"] for p in positions] == [ids[i] for i in order[:10]]
    # The sample depends on the ids only, not on the order the rows come in.
    shuffled = list(reversed(rows))
    again = hotpotqa.sample_questions(shuffled, 10)
    assert [shuffled[p]["id"] for p in again] == [rows[p]["id"] for p in positions]

