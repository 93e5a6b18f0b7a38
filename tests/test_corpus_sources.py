"""Offline Wikipedias from other sources: HotPotQA's 2017 abstracts, FlashRAG JSONL, title + text files."""

from __future__ import annotations

import bz2
import copy
import dataclasses
import hashlib
import io
import json
import re
import tarfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

import react.download as download
import react.search.sources.abstracts as abstracts
from react.config.settings import schema_defaults
from react.config.validate import ConfigError, load_schema, validate_config
from react.environment.offline import WikiEnv
from react.environment.wikis import LiveSettings, wiki_settings
from react.io import DataFileError, read_parquet, read_provenance
from react.schemas import CORPUS_SCHEMA
from react.search.corpus import corpus_sha256
from react.search.index import Corpus, build_index
from react.search.sources.abstracts import ABSTRACTS_2017, download_archive, iter_abstracts
from react.search.sources.base import split_passage
from react.search.sources.registry import SOURCES, build_corpus, corpus_source, downloads, source_class
from react.search.sources.splits import Splits

ROOT = "enwiki-20171001-pages-meta-current-withlinks-abstracts"

# (folder, file) -> abstracts (title, sentences as HotPotQA writes them: leading spaces after the first).
ABSTRACTS = {
    ("AA", "wiki_00.bz2"): [
        ("Arthur's Magazine", ["Arthur's Magazine (1844\u20131846) was an American literary periodical published "
                               "in Philadelphia in the 19th century.",
                               " Edited by T.S. Arthur, it featured work by Edgar A. Poe, J.H. Ingraham, "
                               "Sarah Josepha Hale, Thomas G. Spear, and others."]),
        ("First for Women", ["First for Women is a woman's magazine published by Bauer Media Group in the USA.",
                             " The magazine was started in 1989.",
                             " It is based in Englewood Cliffs, New Jersey."]),
        ("Empty page", []),
    ],
    ("AA", "wiki_01.bz2"): [
        ("Adam Clayton Powell (film)", ["Adam Clayton Powell is a 1989 American documentary film directed by "
                                        "Richard Kilberg.",
                                        " It is about the rise and fall of the Harlem politician."]),
        ("Milhouse Van Houten", ["Milhouse Mussolini Van Houten is a recurring character in the Fox animated "
                                 "television series \"The Simpsons\"."]),
    ],
    ("AB", "wiki_00.bz2"): [
        ("Adam Clayton Powell Jr.", ["Adam Clayton Powell Jr. was an American Baptist pastor and politician.",
                                     " He represented Harlem, New York City, in the House of Representatives."]),
        ("Café Zoë", ["Café Zoë is a fictional caf\u00e9 in a film about Harlem."]),
    ],
}
N_ABSTRACTS = sum(map(len, ABSTRACTS.values()))


def abstract_line(i: int, title: str, sentences: list[str]) -> str:
    """A line as the dump writes it: json.dumps defaults (ASCII escapes), every key of the real format."""
    offsets, start = [], 0
    for s in sentences:
        offsets.append([[start + m.start(), start + m.end()] for m in re.finditer(r"\S+", s)])
        start += len(s)
    links = [re.sub(r"Harlem", '<a href="Harlem">Harlem</a>', s) for s in sentences]
    return json.dumps({"id": str(i), "url": f"https://en.wikipedia.org/wiki?curid={i}", "title": title,
                       "text": sentences, "charoffset": offsets, "text_with_links": links,
                       "charoffset_with_links": offsets})


def write_unpacked(folder: Path, files: dict[tuple[str, str], list] = ABSTRACTS,
                   raw: dict[tuple[str, str], bytes] | None = None) -> Path:
    """The unpacked archive: ROOT/AA/wiki_00.bz2 ... (``raw`` replaces a file's bytes)."""
    i = 0
    for (sub, name), rows in files.items():
        path = folder / ROOT / sub / name
        path.parent.mkdir(parents=True, exist_ok=True)
        lines = []
        for title, sentences in rows:
            i += 1
            lines.append(abstract_line(i, title, sentences))
        data = ("\n".join(lines) + "\n").encode()
        path.write_bytes((raw or {}).get((sub, name), bz2.compress(data)))
    return folder / ROOT


def make_archive(tmp: Path, name: str = "abstracts.tar.bz2", **kwargs) -> Path:
    """The .tar.bz2 of the unpacked folder: tar.add walks folders in sorted order."""
    unpacked = write_unpacked(tmp / f"{name}.unpacked", **kwargs)
    archive = tmp / name
    with tarfile.open(archive, "w:bz2") as tar:
        tar.add(unpacked, arcname=ROOT)
    return archive


def entry(spec: dict):
    """A `corpus` entry typed as the workflow types it: the schema fills its defaults, then it is built once."""
    return corpus_source(schema_defaults("corpus", {"x": spec})["x"])


def expected_rows() -> list[tuple[str, list[str]]]:
    return [row for key in sorted(ABSTRACTS) for row in ABSTRACTS[key]]


def corpus_rows(path: Path) -> list[tuple[str, list[str]]]:
    table = read_parquet(path, CORPUS_SCHEMA)
    return list(zip(table.column("title").to_pylist(), table.column("sentences").to_pylist(), strict=True))


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def no_leftovers(folder: Path, name: str) -> bool:
    """Nothing under the final name, and no temporary file of it."""
    return not [p for p in folder.iterdir() if name in p.name]


@pytest.fixture
def archive(tmp_path) -> Path:
    return make_archive(tmp_path)


# --------------------------------------------------------------------------- the 2017 abstracts


def test_archive_and_unpacked_folder_give_the_same_corpus(archive, tmp_path):
    spec = {"source": "hotpotqa-abstracts", "path": str(archive), "md5": md5(archive)}
    build_corpus(entry(spec), tmp_path / "a.parquet", {"step": "test"})
    build_corpus(entry({"source": "hotpotqa-abstracts", "path": str(tmp_path / "abstracts.tar.bz2.unpacked")}),
                 tmp_path / "b.parquet", {})
    assert corpus_rows(tmp_path / "a.parquet") == corpus_rows(tmp_path / "b.parquet") == expected_rows()
    assert corpus_sha256(tmp_path / "a.parquet") == corpus_sha256(tmp_path / "b.parquet")
    provenance = read_provenance(tmp_path / "a.parquet")
    assert provenance["step"] == "test" and provenance["source"] == "hotpotqa-abstracts"
    assert provenance["archive"] == {"file": archive.name, "bytes": archive.stat().st_size, "md5": md5(archive),
                                     "sha256": sha256(archive)}
    assert provenance["n_rows"] == N_ABSTRACTS and provenance["n_empty_pages"] == 1
    # The unpacked folder ROOT itself, or the folder holding it, both work.
    build_corpus(entry({"source": "hotpotqa-abstracts",
                        "path": str(tmp_path / "abstracts.tar.bz2.unpacked" / ROOT)}),
                 tmp_path / "c.parquet", {})
    assert corpus_rows(tmp_path / "c.parquet") == expected_rows()


def test_rows_follow_the_archive_members_in_order(tmp_path):
    files = {("AB", "wiki_00.bz2"): [("Zeta", ["z."])], ("AA", "wiki_00.bz2"): [("Beta", ["b."]), ("Alpha", ["a."])]}
    unpacked = write_unpacked(tmp_path / "u", files)
    archive = tmp_path / "unsorted.tar.bz2"
    with tarfile.open(archive, "w:bz2") as tar:  # members added in another order than the sorted walk's
        for sub in ("AB", "AA"):
            tar.add(unpacked / sub, arcname=f"{ROOT}/{sub}")
    assert [t for t, _ in iter_abstracts(archive)] == ["Zeta", "Beta", "Alpha"]
    assert [t for t, _ in iter_abstracts(unpacked)] == ["Beta", "Alpha", "Zeta"]


def test_abstracts_serve_search_lookup_and_similar(archive, tmp_path):
    out, index = tmp_path / "wiki.parquet", tmp_path / "wiki.bm25s"
    build_corpus(entry({"source": "hotpotqa-abstracts", "path": str(archive)}), out, {})
    build_index(out, index)
    corpus = Corpus.load(out, index)
    assert len(corpus) == N_ABSTRACTS
    assert corpus.page("first for women") == ABSTRACTS[("AA", "wiki_00.bz2")][1][1]
    assert corpus.page("Empty page") == []
    assert corpus.page("CAFÉ ZOË") == ["Café Zoë is a fictional café in a film about Harlem."]
    assert corpus.similar("Adam Clayton Powell")[:2] == ["Adam Clayton Powell (film)", "Adam Clayton Powell Jr."]

    env = WikiEnv(corpus)
    found = env.step("search[Arthur's Magazine]").observation
    assert found.startswith("Arthur's Magazine (1844\u20131846) was an American literary periodical")
    assert "Edited by T.S" in found
    hit = env.step("lookup[Poe]").observation
    assert hit.startswith("(Result 1 / 1)") and "Poe" in hit
    env.reset()
    env.step("search[First for Women]")
    assert "started in 1989" in env.step("lookup[magazine]").observation + env.step("lookup[magazine]").observation
    missed = env.step("search[Adam Clayton Powell]").observation
    assert missed.startswith("Could not find") and "'Adam Clayton Powell (film)'" in missed
    assert "Harlem" not in missed  # a miss lists titles, it shows no page
    empty = WikiEnv(corpus).step("search[Empty page]").observation
    assert "Could not find" not in empty and "Similar" not in empty


def test_download_checks_the_checksum_and_is_cached(archive, file_server, tmp_path):
    root, base = file_server.root, file_server.url
    (root / archive.name).write_bytes(archive.read_bytes())
    url, dest = f"{base}/{archive.name}", tmp_path / "downloads" / archive.name
    spec = {"source": "hotpotqa-abstracts", "url": url, "md5": md5(archive)}
    assert download_archive(entry(spec), dest) == {"md5": md5(archive), "sha256": sha256(archive)}
    assert dest.read_bytes() == archive.read_bytes()
    (root / archive.name).unlink()  # a second run finds the file in place
    assert download_archive(entry({**spec, "sha256": sha256(archive)}), dest)["md5"] == md5(archive)
    build_corpus(entry(spec), tmp_path / "wiki.parquet", {}, download_dir=tmp_path / "downloads")
    assert corpus_rows(tmp_path / "wiki.parquet") == expected_rows()
    assert read_provenance(tmp_path / "wiki.parquet")["archive"]["md5"] == md5(archive)


@pytest.mark.parametrize("algorithm", ["md5", "sha256"])
def test_download_with_a_wrong_checksum_names_both_hashes(archive, file_server, tmp_path, algorithm):
    root, base = file_server.root, file_server.url
    (root / archive.name).write_bytes(archive.read_bytes())
    wrong = "0" * (32 if algorithm == "md5" else 64)
    right = md5(archive) if algorithm == "md5" else sha256(archive)
    downloads = tmp_path / "downloads"
    with pytest.raises(DataFileError) as err:
        download_archive(entry({"source": "hotpotqa-abstracts", "url": f"{base}/{archive.name}",
                                algorithm: wrong}), downloads / archive.name)
    message = str(err.value)
    assert f"{algorithm} mismatch" in message and wrong in message and right in message
    assert archive.name in message
    assert list(downloads.iterdir()) == []  # neither the file nor its partial copy


def test_local_archive_with_a_wrong_checksum_leaves_no_corpus(archive, tmp_path):
    out = tmp_path / "out" / "wiki.parquet"
    with pytest.raises(DataFileError) as err:
        build_corpus(entry({"source": "hotpotqa-abstracts", "path": str(archive), "sha256": "f" * 64}), out, {})
    assert str(archive) in str(err.value) and "f" * 64 in str(err.value) and sha256(archive) in str(err.value)
    assert no_leftovers(out.parent, "wiki.parquet")


def serve(server, files: dict[str, bytes], ranges: bool = True, cuts: list[int | None] = ()) -> str:
    """Put ``files`` (name -> bytes) on the file server; its base URL."""
    for name, data in files.items():
        (server.root / name).write_bytes(data)
    server.ranges, server.cuts = ranges, list(cuts)
    return server.url


def test_interrupted_download_leaves_no_final_file_and_resumes(archive, file_server, tmp_path):
    data = archive.read_bytes()
    server, base = file_server, serve(file_server, {"a.tar.bz2": data}, cuts=[1000])
    dest = tmp_path / "dl" / "a.tar.bz2"
    with pytest.raises(DataFileError, match="the next run resumes"):
        download.download(f"{base}/a.tar.bz2", dest, {"md5": md5(archive)}, resumes=0)
    assert not dest.exists()
    (part,) = dest.parent.iterdir()
    assert part.name.startswith(".a.tar.bz2.") and part.stat().st_size == 1000
    # The next call asks for the rest only, and the file takes its name once its checksum matches.
    download.download(f"{base}/a.tar.bz2", dest, {"md5": md5(archive)}, resumes=0)
    assert dest.read_bytes() == data and list(dest.parent.iterdir()) == [dest]
    assert server.requests == [None, "bytes=1000-"]


def test_lost_connections_are_resumed_within_one_call(archive, file_server, tmp_path):
    data = archive.read_bytes()
    server, base = file_server, serve(file_server, {"a.tar.bz2": data}, cuts=[100, 200])
    dest = tmp_path / "a.tar.bz2"
    hashes = download.download(f"{base}/a.tar.bz2", dest, {"sha256": sha256(archive)}, sleep=lambda s: None)
    assert hashes["sha256"] == sha256(archive) and dest.read_bytes() == data
    assert server.requests == [None, "bytes=100-", "bytes=300-"]


def test_a_server_without_ranges_sends_the_file_again(archive, file_server, tmp_path):
    data = archive.read_bytes()
    server, base = file_server, serve(file_server, {"a.tar.bz2": data}, ranges=False, cuts=[500])
    dest = tmp_path / "dl" / "a.tar.bz2"
    download.download(f"{base}/a.tar.bz2", dest, {"md5": md5(archive)}, sleep=lambda s: None)
    assert dest.read_bytes() == data and list(dest.parent.iterdir()) == [dest]
    assert server.requests == [None, "bytes=500-", None]  # the 200 to the Range request is dropped: from 0


def test_hotpotqa_download_keeps_its_interface(archive, file_server, tmp_path):
    import react.data.hotpotqa as hotpotqa

    base = serve(file_server, {"a.json": b"[]"})
    dest = tmp_path / "a.json"
    assert hotpotqa.download(f"{base}/a.json", dest, hashlib.sha256(b"[]").hexdigest()) == dest


# --------------------------------------------------------------------------- bad abstracts


def _build_error(tmp_path: Path, path: Path) -> str:
    out = tmp_path / "out" / "wiki.parquet"
    with pytest.raises(DataFileError) as err:
        build_corpus(entry({"source": "hotpotqa-abstracts", "path": str(path)}), out, {})
    assert no_leftovers(out.parent, "wiki.parquet") if out.parent.exists() else True
    return str(err.value)


def test_a_line_that_does_not_parse_names_archive_member_and_line(tmp_path):
    good = "\n".join(abstract_line(i, f"T{i}", ["x."]) for i in range(3))
    broken = bz2.compress((good + '\n{"id": "9", "title": "Broken", "text": ["x.\n').encode())
    archive = make_archive(tmp_path, raw={("AA", "wiki_01.bz2"): broken})
    message = _build_error(tmp_path, archive)
    assert f"{archive}: {ROOT}/AA/wiki_01.bz2:4: invalid JSON" in message
    message = _build_error(tmp_path, tmp_path / "abstracts.tar.bz2.unpacked")
    assert f"{ROOT}/AA/wiki_01.bz2:4: invalid JSON" in message


def test_a_line_without_title_or_text_names_the_keys_it_has(tmp_path):
    line = json.dumps({"id": "1", "url": "u", "name": "No title", "text_with_links": []})
    archive = make_archive(tmp_path, raw={("AB", "wiki_00.bz2"): bz2.compress(line.encode())})
    message = _build_error(tmp_path, archive)
    assert f"{ROOT}/AB/wiki_00.bz2:1: no 'title' and 'text' keys (found: 'id', 'url', 'name', 'text_with_links')" \
        in message


@pytest.mark.parametrize("text, kind", [(None, "NoneType"), ([1, 2], "list"), ({"a": 1}, "dict")])
def test_a_text_of_the_wrong_type_is_named(tmp_path, text, kind):
    line = json.dumps({"title": "T", "text": text})
    archive = make_archive(tmp_path, raw={("AA", "wiki_00.bz2"): bz2.compress(line.encode())})
    assert f"wiki_00.bz2:1: key 'text' should be a string or a list of strings, got {kind}" in \
        _build_error(tmp_path, archive)


def test_a_corrupt_member_and_a_truncated_archive_are_named(archive, tmp_path):
    bad = make_archive(tmp_path, name="bad.tar.bz2", raw={("AA", "wiki_01.bz2"): b"BZh91AY&SY not bz2 at all"})
    message = _build_error(tmp_path, bad)
    assert f"{bad}: {ROOT}/AA/wiki_01.bz2: corrupt or truncated" in message
    truncated = tmp_path / "truncated.tar.bz2"
    truncated.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    assert f"{truncated}" in _build_error(tmp_path, truncated) and "corrupt or truncated" in \
        _build_error(tmp_path, truncated)
    not_tar = tmp_path / "not.tar.bz2"
    not_tar.write_bytes(bz2.compress(b"hello"))
    assert "corrupt or truncated archive" in _build_error(tmp_path, not_tar)


def test_an_archive_without_wiki_files_says_so(tmp_path):
    other = tmp_path / "other.tar.bz2"
    with tarfile.open(other, "w:bz2") as tar:
        info = tarfile.TarInfo("readme.txt")
        info.size = 2
        tar.addfile(info, io.BytesIO(b"hi"))
    assert "no wiki_NN.bz2 files" in _build_error(tmp_path, other)
    (tmp_path / "empty").mkdir()
    assert "no wiki_NN.bz2 files" in _build_error(tmp_path, tmp_path / "empty")
    assert "file not found" in _build_error(tmp_path, tmp_path / "missing.tar.bz2")


# --------------------------------------------------------------------------- passages


@pytest.mark.parametrize("text, sentences", [
    ("One. Two. Three", ["One.", " Two.", " Three"]),
    ("U.S. Army. It is.", ["U.S.", " Army.", " It is."]),  # ReAct's own split cuts there too
    ("  Padded.  Two spaces.\n\nNew paragraph. ", ["Padded.", "  Two spaces.", "\n\nNew paragraph."]),
    ("No full stop at all", ["No full stop at all"]),
    ("Ends with a dot.", ["Ends with a dot."]),
    ("Line one\nline two", ["Line one", "\nline two"]),
    ("", []),
    ("  \n ", []),
])
def test_split_passage(text, sentences):
    assert split_passage(text) == sentences
    assert "".join(sentences) == text.strip()  # the passage comes back exactly


def test_split_passage_keeps_reacts_sentences():
    """ReAct's WikiEnv split of the joined sentences equals its split of the passage itself."""
    from react.agent.protocol import page_sentences, paragraph_text

    passage = "Alpha beta. Gamma (b. 1950) delta.\nSecond line.  Spaced. End"
    assert page_sentences(paragraph_text(split_passage(passage))) == page_sentences(passage)


# --------------------------------------------------------------------------- other formats


def write_jsonl(path: Path, objects: list) -> Path:
    path.write_text("".join(json.dumps(o) + "\n" for o in objects), encoding="utf-8")
    return path


FLASHRAG = [
    {"id": "0", "contents": "\"Aaron\"\nAaron is a prophet. He is the brother of Moses."},
    {"id": "1", "contents": "\"Aaron\"\nAaron's staff budded. It is kept in the Ark."},
    {"id": "2", "contents": "\"Moses\"\nMoses is a prophet. He led the Exodus."},
    {"id": "3", "contents": "\"\"Weird\" Al Yankovic\"\nA musician known for parody. Aaron is not his name."},
    {"id": "4", "contents": "Unquoted title\nSome text."},
    {"id": "5", "contents": "\"Aaron\"\nA third passage about Aaron the prophet."},
]


def test_flashrag_jsonl(tmp_path):
    path = write_jsonl(tmp_path / "wiki18.jsonl", FLASHRAG)
    out = tmp_path / "wiki.parquet"
    build_corpus(entry({"source": "flashrag", "path": str(path)}), out, {})
    rows = corpus_rows(out)
    assert [t for t, _ in rows] == ["Aaron", "Aaron", "Moses", "\"Weird\" Al Yankovic", "Unquoted title", "Aaron"]
    assert rows[0][1] == ["Aaron is a prophet.", " He is the brother of Moses."]
    assert read_provenance(out)["file"]["sha256"] == sha256(path)
    build_index(out, tmp_path / "wiki.bm25s")
    corpus = Corpus.load(out, tmp_path / "wiki.bm25s")
    # Several passages of one title: Search serves the first in file order ...
    assert corpus.page("aaron") == ["Aaron is a prophet.", " He is the brother of Moses."]
    assert "brother of Moses" in WikiEnv(corpus).step("search[Aaron]").observation
    # ... and Similar lists each title once, at its best passage.
    similar = corpus.similar("Aaron prophet")
    assert similar.count("Aaron") == 1 and len(similar) == len(set(similar)) == 3
    assert set(corpus.similar("prophet staff ark parody musician text exodus", k=10)) == {
        "Aaron", "Moses", "\"Weird\" Al Yankovic", "Unquoted title"}


def test_first_row_of_a_title_wins_whatever_the_row_order(tmp_path):
    """Rows not sorted by title (every source but the splits): the first row of a title in file order wins."""
    rows = [{"title": "B", "text": "b"}, {"title": "A", "text": ["first"]}, {"title": "C", "text": "c"},
            {"title": "A", "text": ["second"]}, {"title": "a", "text": ["lower case"]}, {"title": "A", "text": "3"}]
    path = write_jsonl(tmp_path / "rows.jsonl", rows)
    out = tmp_path / "wiki.parquet"
    build_corpus(entry({"source": "jsonl", "path": str(path)}), out, {})
    build_index(out, tmp_path / "wiki.bm25s")
    corpus = Corpus.load(out, tmp_path / "wiki.bm25s")
    assert corpus.page("A") == ["first"]  # "A" sorts before "a": of two titles with one key, the first sorted
    assert corpus.page("b") == ["b"]
    meta = json.loads((tmp_path / "wiki.bm25s" / "react_corpus.json").read_text())
    assert meta["n_docs"] == 6 and meta["n_title_keys"] == 3


def test_title_keys_are_built_without_python_objects_per_row():
    """The Arrow build gives what the former Python sort did: by key, then title, then row."""
    import random

    from react.search.index import _TitleKeys

    rng = random.Random(0)
    titles = [rng.choice(["Foo", "foo", "FOO ", "Bar", "bar", "Ünï", "ünï", "X"]) for _ in range(300)]
    keys = [_TitleKeys.key(t) for t in titles]
    built = _TitleKeys.build(keys, titles)
    order = sorted(range(len(keys)), key=lambda i: (keys[i], titles[i]))
    expected = {}
    for i in order:
        expected.setdefault(keys[i], i)
    for key, row in expected.items():
        assert built.find(key.decode()) == row
    assert built.find("nothing") is None
    assert _TitleKeys.build([], []).find("x") is None


def test_title_text_jsonl_and_parquet(tmp_path):
    objects = [{"name": "Alpha", "body": "Alpha is first. It leads."}, {"name": "Beta", "body": ["Beta.", " Two."]}]
    path = write_jsonl(tmp_path / "rows.jsonl", objects)
    out = tmp_path / "a.parquet"
    build_corpus(entry({"source": "jsonl", "path": str(path), "title_field": "name", "text_field": "body"}), out,
                 {})
    assert corpus_rows(out) == [("Alpha", ["Alpha is first.", " It leads."]), ("Beta", ["Beta.", " Two."])]
    for text_type in (pa.string(), pa.large_string()):
        table = pa.table({"title": pa.array(["Alpha", "Gamma"], pa.large_string()),
                          "text": pa.array(["Alpha is first. It leads.", ""], text_type), "extra": [1, 2]})
        pq.write_table(table, tmp_path / "rows.parquet")
        build_corpus(entry({"source": "parquet", "path": str(tmp_path / "rows.parquet")}), out, {})
        assert corpus_rows(out) == [("Alpha", ["Alpha is first.", " It leads."]), ("Gamma", [])]
    pq.write_table(pa.table({"title": ["T"], "text": pa.array([["S one.", " S two."]], pa.list_(pa.string()))}),
                   tmp_path / "lists.parquet")
    build_corpus(entry({"source": "parquet", "path": str(tmp_path / "lists.parquet")}), out, {})
    assert corpus_rows(out) == [("T", ["S one.", " S two."])]


@pytest.mark.parametrize("source, content, message", [
    ("jsonl", [{"id": "1", "contents": "\"T\"\nx"}], "rows.jsonl:1: no 'title' and 'text' keys (found: 'id', "
                                                     "'contents'); for FlashRAG's"),
    ("jsonl", [{"title": "T", "text": "x"}, {"title": 3, "text": "x"}], "rows.jsonl:2: key 'title' should be a string"),
    ("jsonl", ["just a string"], "rows.jsonl:1: expected a JSON object"),
    ("flashrag", [{"id": "1", "title": "T", "text": "x"}], "rows.jsonl:1: no 'contents' key (found: 'id', 'title', "
                                                           "'text'); for title/text rows use source: jsonl"),
    ("flashrag", [{"contents": 5}], "rows.jsonl:1: key 'contents' should be a string, got int"),
])
def test_bad_jsonl_rows_are_named(tmp_path, source, content, message):
    path = write_jsonl(tmp_path / "rows.jsonl", content)
    out = tmp_path / "out" / "wiki.parquet"
    with pytest.raises(DataFileError) as err:
        build_corpus(entry({"source": source, "path": str(path)}), out, {})
    assert message in str(err.value)
    assert not out.parent.exists() or no_leftovers(out.parent, "wiki.parquet")


def test_broken_jsonl_line_is_named(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_text('{"title": "A", "text": "a"}\n{"title": "B", "text": \n', encoding="utf-8")
    with pytest.raises(DataFileError, match=r"rows.jsonl:2: invalid JSON"):
        build_corpus(entry({"source": "jsonl", "path": str(path)}), tmp_path / "wiki.parquet", {})


def test_bad_parquet_files_are_named(tmp_path):
    path = tmp_path / "rows.parquet"
    pq.write_table(pa.table({"id": [1], "contents": ["x"]}), path)
    with pytest.raises(DataFileError, match=r"no 'title' and 'text' columns \(found: 'id', 'contents'\)"):
        build_corpus(entry({"source": "parquet", "path": str(path)}), tmp_path / "wiki.parquet", {})
    pq.write_table(pa.table({"title": ["T"], "text": [1]}), path)
    with pytest.raises(DataFileError, match=r"column 'text' has type int64, expected a string or a list"):
        build_corpus(entry({"source": "parquet", "path": str(path)}), tmp_path / "wiki.parquet", {})
    pq.write_table(pa.table({"title": ["T", None], "text": ["a", "b"]}), path)
    with pytest.raises(DataFileError, match=r"rows.parquet: row 1: column 'title' is null"):
        build_corpus(entry({"source": "parquet", "path": str(path)}), tmp_path / "wiki.parquet", {})
    path.write_bytes(b"not parquet")
    with pytest.raises(DataFileError, match="not a readable Parquet file"):
        build_corpus(entry({"source": "parquet", "path": str(path)}), tmp_path / "wiki.parquet", {})
    assert not (tmp_path / "wiki.parquet").exists()


# --------------------------------------------------------------------------- configuration


@pytest.fixture
def base_config(project_dir):
    return yaml.safe_load((project_dir / "config/config.yaml").read_text())


@pytest.mark.parametrize("entry, message", [
    ({"source": "hotpotqa-abstracts"}, "config key 'corpus.x': give one of url, path"),
    ({"source": "hotpotqa-abstracts", "url": "http://h/a.tar.bz2"}, "config key 'corpus.x': give one of md5, sha256"),
    ({"source": "hotpotqa-abstracts", "url": "http://h/a.tar.bz2", "md5": "xyz"}, "config key 'corpus.x.md5'"),
    ({"source": "flashrag"}, "config key 'corpus.x': 'path' is a required property"),
    ({"source": "jsonl", "path": "missing.jsonl"}, "config key 'corpus.x.path': missing.jsonl not found"),
    ({"source": "flashrag", "path": "README.md", "text_field": "t"}, "config key 'corpus.x.text_field': not used"),
    ({"splits": ["dev"], "source": "jsonl", "path": "README.md"}, "config key 'corpus.x': give exactly one of"),
    ({"source": "tsv", "path": "README.md"}, "config key 'corpus.x.source'"),
    ({"source": "parquet", "path": "config"}, "config key 'corpus.x.path': config is a folder"),
])
def test_corpus_entries_are_validated_naming_the_key(base_config, entry, message):
    config = copy.deepcopy(base_config)
    config["corpus"]["x"] = entry
    with pytest.raises(ConfigError) as err:
        validate_config(config)
    assert message in str(err.value)


def test_corpus_entries_get_their_defaults(base_config):
    config = copy.deepcopy(base_config)
    config["corpus"]["x"] = {"source": "jsonl", "path": "README.md"}
    config["corpus"]["y"] = {"source": "hotpotqa-abstracts", "url": ABSTRACTS_2017["url"],
                             "md5": ABSTRACTS_2017["md5"]}
    validate_config(config)
    assert config["corpus"]["x"] == {"source": "jsonl", "path": "README.md", "title_field": "title",
                                     "text_field": "text"}
    assert "title_field" not in config["corpus"]["y"] and config["corpus"]["distractor"] == {"splits": ["dev", "train"]}


def test_the_registry_has_a_source_for_every_name_the_schema_allows():
    entry_schema = load_schema()["properties"]["corpus"]["additionalProperties"]
    assert list(SOURCES) == entry_schema["properties"]["source"]["enum"]
    for name in SOURCES:
        cls = source_class(name)
        assert cls.name == name and dataclasses.is_dataclass(cls)
        assert {f.name for f in dataclasses.fields(cls)} <= set(entry_schema["properties"])  # no key of its own
    with pytest.raises(ValueError, match="unknown corpus source 'tsv' \\(expected one of hotpotqa-abstracts, "):
        source_class("tsv")


def test_entries_are_typed_once_with_the_schemas_defaults(tmp_path):
    rows = entry({"source": "jsonl", "path": "rows.jsonl"})
    assert (rows.title_field, rows.text_field, rows.md5) == ("title", "text", None)
    with pytest.raises(dataclasses.FrozenInstanceError):
        rows.path = "other.jsonl"
    splits = entry({"splits": ["dev", "train"]})
    assert splits.input_files() == ["results/data/hotpotqa/dev.parquet", "results/data/hotpotqa/train.parquet"]
    url = "http://h/abstracts.tar.bz2"
    downloaded = entry({"source": "hotpotqa-abstracts", "url": url, "md5": "0" * 32})
    assert downloaded.download_url == url and downloaded.input_files() == ["results/downloads/abstracts.tar.bz2"]
    local = entry({"source": "hotpotqa-abstracts", "url": url, "md5": "0" * 32, "path": str(tmp_path)})
    assert local.download_url is None and local.input_files() == [str(tmp_path)]
    assert downloads({"a": downloaded, "b": local, "c": splits, "d": rows}) == {"abstracts.tar.bz2": "a"}


def test_live_entries_are_typed_with_the_default_cache():
    spec = schema_defaults("corpus", {"wikipedia": {"live": {}}})["wikipedia"]
    live = wiki_settings("wikipedia", spec)
    assert live == LiveSettings(url="https://en.wikipedia.org", cache="results/wiki-cache/wikipedia", offline=False,
                                user_agent=None, timeout_s=30, max_retries=5)
    assert isinstance(wiki_settings("distractor", {"splits": ["dev"]}), Splits)


# --------------------------------------------------------------------------- the workflow


@pytest.mark.slow
def test_workflow_downloads_builds_and_evaluates_on_the_abstracts(project_dir, tiny_model, archive, file_server,
                                                                 tmp_path):
    """Snakemake downloads the archive, builds the corpus and its index, and evaluates a model on them."""
    import subprocess
    import sys

    root, base = file_server.root, file_server.url
    (root / archive.name).write_bytes(archive.read_bytes())
    workdir = tmp_path / "work"
    workdir.mkdir()
    config = {
        "data": {"dev": {"source": "bundled", "files": ["dev_distractor.jsonl.gz"]}},
        "corpus": {"abstracts": {"source": "hotpotqa-abstracts", "url": f"{base}/{archive.name}",
                                 "md5": md5(archive)}},
        "agent": {"max_steps": 2, "max_new_tokens": 12},
        "models": {"m": {"path": str(tiny_model), "backend": "transformers"}},
        "evaluation": {"corpus": "abstracts", "n_questions": 2, "models": ["m"]},
        "backends": {"transformers": {"batch_size": 2}},
    }
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))

    def snakemake(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "snakemake", *args, "-s", str(project_dir / "workflow/Snakefile"),
                               "-d", str(workdir), "--configfile", str(workdir / "config.yaml")],
                              capture_output=True, text=True, timeout=600)

    result = snakemake("results/data/wiki/abstracts.bm25s", "--cores", "1")
    assert result.returncode == 0, result.stderr[-3000:]
    assert re.search(r"download_corpus\s+1", result.stderr) and re.search(r"build_index\s+1", result.stderr)
    assert (workdir / "results/downloads" / archive.name).read_bytes() == archive.read_bytes()
    corpus = Corpus.load(workdir / "results/data/wiki/abstracts.parquet", workdir / "results/data/wiki/abstracts.bm25s")
    assert len(corpus) == N_ABSTRACTS and corpus.page("Milhouse Van Houten") is not None
    assert read_provenance(workdir / "results/data/wiki/abstracts.parquet")["archive"]["md5"] == md5(archive)

    plan = snakemake("results/eval/m.parquet", "-n")
    assert plan.returncode == 0, plan.stderr[-3000:]
    evaluate = plan.stdout[plan.stdout.index("rule evaluate:"):]
    inputs = re.search(r"input: (.*)", evaluate).group(1)
    assert "results/data/wiki/abstracts.parquet" in inputs and "results/data/wiki/abstracts.bm25s" in inputs
    assert not re.search(r"rule (download_corpus|build_corpus|build_index):", plan.stdout)  # built, offline

    (root / archive.name).unlink()  # from here on nothing is downloaded
    result = snakemake("results/eval/m.parquet", "--cores", "2")
    assert result.returncode == 0, result.stderr[-3000:]
    table = read_parquet(workdir / "results/eval/m.parquet")
    assert table.num_rows == 2
    assert set(table.column("corpus_sha256").to_pylist()) == {corpus.sha256}


@pytest.mark.parametrize("obj, kwargs", [
    ({"id": "1", "url": "u", "title": "T", "text": ["a.", " b."], "charoffset": [[[0, 1]]]}, {}),
    ({"id": "1", "url": "u", "title": "T", "text": ["a."], "charoffset": [[[0, 1]]]}, {"separators": (",", ":")}),
    ({"charoffset": [[[0, 1]]], "title": "T", "text": ["a."]}, {}),  # another key order: parsed whole
    ({"title": "Say \"charoffset\": here", "text": ["\", \"charoffset\": x"], "charoffset": []}, {}),
    ({"title": "T", "x": {"y": 1, "charoffset": 2}, "text": ["nested"], "charoffset": []}, {}),
    ({"title": "T", "text": ["a"], "x": [{"y": 1, "charoffset": 2}]}, {}),
    ({"title": "Ünïcödé", "text": ["é."], "charoffset": []}, {"ensure_ascii": False}),
])
def test_the_shortcut_past_the_offsets_reads_what_json_reads(obj, kwargs):
    line = json.dumps(obj, **kwargs).encode()
    parsed = abstracts._loads_title_text(line)
    assert (parsed["title"], parsed["text"]) == (obj["title"], obj["text"])


def test_a_reader_stopped_early_stops_its_threads(archive):
    import threading as _threading

    before = _threading.active_count()
    rows = iter_abstracts(archive, threads=2)
    assert next(rows)[0] == "Arthur's Magazine"
    rows.close()
    assert _threading.active_count() == before


def test_a_whole_part_file_is_renamed_without_a_request(archive, file_server, tmp_path):
    server, base = file_server, serve(file_server, {"a.tar.bz2": archive.read_bytes()})
    dest = tmp_path / "dl" / "a.tar.bz2"
    dest.parent.mkdir()
    (dest.parent / f".a.tar.bz2.{md5(archive)[:16]}.part").write_bytes(archive.read_bytes())
    download.download(f"{base}/a.tar.bz2", dest, {"md5": md5(archive)})
    assert dest.read_bytes() == archive.read_bytes() and server.requests == []


# --------------------------------------------------------------------------- fuzzing

_json = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=20),
                     lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
                     max_leaves=12)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.binary(max_size=200), _json.map(lambda o: json.dumps(o).encode()),
                 st.dictionaries(st.sampled_from(["title", "text", "charoffset", "id"]), _json, max_size=4)
                 .map(lambda o: json.dumps(o).encode())))
def test_any_line_is_a_row_or_an_error_naming_it(line):
    try:
        rows = list(abstracts._parse_lines(line, "f"))
    except DataFileError as exc:
        assert str(exc).startswith("f:")
        return
    for title, sentences in rows:
        assert isinstance(title, str) and all(isinstance(s, str) for s in sentences)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from("ab. \n\t"), max_size=40) | st.text(max_size=40))
def test_split_passage_round_trips_any_text(text):
    sentences = split_passage(text)
    assert "".join(sentences) == text.strip()
    assert all(s.strip() for s in sentences)


@pytest.fixture(scope="module")
def several_passages(tmp_path_factory) -> Corpus:
    folder = tmp_path_factory.mktemp("several-passages")
    path = write_jsonl(folder / "wiki18.jsonl", [*FLASHRAG, {"contents": "\"Empty\"\n"}])
    build_corpus(entry({"source": "flashrag", "path": str(path)}), folder / "wiki.parquet", {})
    build_index(folder / "wiki.parquet", folder / "wiki.bm25s")
    return Corpus.load(folder / "wiki.parquet", folder / "wiki.bm25s")


@settings(max_examples=100, deadline=None)
@given(actions=st.lists(st.sampled_from(["search[Aaron]", "search[aaron ]", "lookup[prophet]", "lookup[]",
                                         "search[Empty]", "search[prophet]", "finish[x]", "SEARCH[Aaron]",
                                         "search[]", "lookup[the]"]), max_size=8))
def test_several_passages_and_empty_pages_never_make_the_environment_raise(several_passages, actions):
    env = WikiEnv(several_passages)
    for action in actions:
        assert isinstance(env.step(action).observation, str)


def test_a_lone_surrogate_is_replaced_and_counted(tmp_path):
    lines = [abstract_line(1, "Good", ["Fine."]), '{"title": "Bad \\ud83d", "text": ["x \\udc00 y."]}']
    archive = make_archive(tmp_path, raw={("AA", "wiki_00.bz2"): bz2.compress("\n".join(lines).encode())})
    out = tmp_path / "wiki.parquet"
    build_corpus(entry({"source": "hotpotqa-abstracts", "path": str(archive)}), out, {})
    rows = corpus_rows(out)
    assert rows[:2] == [("Good", ["Fine."]), ("Bad \ufffd", ["x \ufffd y."])] and len(rows) == N_ABSTRACTS - 1
    assert read_provenance(out)["n_rows_with_lone_surrogates"] == 1
