"""The offline Wikipedia: the prompt's six examples replayed, lookup, parsing edge cases, corpus files, fuzzing."""

from __future__ import annotations

import ast
import json
import re
import unicodedata
from pathlib import Path

import bm25s
import numpy as np
import pyarrow as pa
import pytest
import Stemmer
from hypothesis import given, settings
from hypothesis import strategies as st

import react.search.corpus as corpus_file
from react.agent.prompts import read_prompt
from react.config.validate import load_schema
from react.environment.offline import WikiEnv
from react.io import DataFileError, read_parquet, read_provenance, write_parquet
from react.schemas import CORPUS_SCHEMA, SPLIT_SCHEMA
from react.search.corpus import corpus_sha256
from react.search.index import (
    INDEX_META,
    Corpus,
    _query_terms,
    _stemmer,
    build_index,
    normalize_title,
)
from react.search.sources.splits import build_from_splits

PROMPT = read_prompt(load_schema()["properties"]["prompt"]["default"])

# The pages the prompt's examples observe, with the example observations as their text.
PAGES = {
    "Colorado orogeny": [
        "The Colorado orogeny was an episode of mountain building (an orogeny) in Colorado and surrounding areas.",
        " The eastern sector extends into the High Plains and is called the Central Plains orogeny.",
    ],
    "High Plains": ["High Plains refers to one of two distinct land regions:"],
    "High Plains (United States)": [
        "The High Plains are a subregion of the Great Plains.",
        " From east to west, the High Plains rise in elevation from around 1,800 to 7,000 ft (550 to 2,130 m).[3]",
    ],
    "Milhouse": [
        "Milhouse Mussolini Van Houten is a recurring character in the Fox animated television series The "
        "Simpsons voiced by Pamela Hayden and created by Matt Groening.",
        " Milhouse was named after U.S. president Richard Nixon, whose middle name was Milhous.",
    ],
    "Adam Clayton Powell (film)": [
        "Adam Clayton Powell is a 1989 American documentary film directed by Richard Kilberg.",
        " The film is about the rise and fall of influential African-American politician Adam Clayton Powell "
        "Jr.[3][4] It was later aired as part of the PBS series The American Experience.",
    ],
    "Adam Clayton Powell III": ["Adam Clayton Powell III is an American journalist and academic."],
    "Adam Clayton Powell Jr. State Office Building": [
        "The Adam Clayton Powell Jr. State Office Building is an office building in Harlem, New York City."
    ],
    "Seventh Avenue (Manhattan)": ["Seventh Avenue is a thoroughfare on the West Side of Manhattan."],
    "Isabel Washington Powell": ["Isabel Washington Powell was an American stage actress and dancer."],
    "Adam Powell": ["Adam Powell is an English footballer."],
    "Giancarlo Esposito": ["Giancarlo Esposito is an American actor and director."],
    "The Saimaa Gesture": ["The Saimaa Gesture is a 1981 Finnish documentary film about three rock groups."],
    "Nicholas Ray": [
        "Nicholas Ray (born Raymond Nicholas Kienzle Jr., August 7, 1911 - June 16, 1979) was an American film "
        "director, screenwriter, and actor best known for the 1955 film Rebel Without a Cause."
    ],
    "Elia Kazan": ["Elia Kazan was an American film and theatre director, producer, screenwriter and actor."],
    "Arthur's Magazine": [
        "Arthur's Magazine (1844-1846) was an American literary periodical published in Philadelphia in the "
        "19th century."
    ],
    "First for Women": [
        "First for Women is a woman's magazine published by Bauer Media Group in the USA.[1]",
        " The magazine was started in 1989.",
    ],
    "Pavel Urysohn": [
        "Pavel Samuilovich Urysohn (February 3, 1898 - August 17, 1924) was a Soviet mathematician who is best "
        "known for his contributions in dimension theory."
    ],
    "Leonid Levin": ["Leonid Anatolievich Levin is a Soviet-American mathematician and computer scientist."],
}


@pytest.fixture(scope="module")
def corpus() -> Corpus:
    return Corpus.from_paragraphs(PAGES)


def prompt_examples() -> list[list[tuple[str, str]]]:
    """(action, observation) pairs of each example in the prompt file; observations may span lines."""
    examples: list[list[tuple[str, str]]] = []
    for line in PROMPT.splitlines():
        if line.startswith("Question:"):
            examples.append([])
        elif m := re.match(r"Action \d+: (.*)$", line):
            examples[-1].append((m.group(1), ""))
        elif m := re.match(r"Observation \d+: (.*)$", line):
            examples[-1][-1] = (examples[-1][-1][0], m.group(1))
        elif examples and examples[-1] and examples[-1][-1][1] and not line.startswith("Thought"):
            action, obs = examples[-1][-1]
            examples[-1][-1] = (action, obs + "\n" + line)
    return examples


# ------------------------------------------------------------------- the prompt's six examples


def test_prompt_has_six_examples():
    examples = prompt_examples()
    assert len(examples) == 6
    assert all(ex[-1][0].startswith("Finish[") for ex in examples)


@pytest.mark.parametrize("protocol", ["react", "lenient"])
@pytest.mark.parametrize("n", range(6))
def test_prompt_example_replays(corpus, n, protocol):
    env = WikiEnv(corpus, protocol)
    for action, expected in prompt_examples()[n]:
        # The loop's first-letter lowercasing: `Search[` reaches ReAct's environment as `search[`.
        result = env.step(action[0].lower() + action[1:] if protocol == "react" else action)
        if action.startswith("Finish["):
            assert result.done
            assert result.observation == ("Episode finished." if protocol == "lenient"
                                          else "Episode finished, reward = 0\n")  # the agent writes the reward
            assert result.answer == action[len("Finish[") : -1]
        elif expected.startswith("Could not find"):
            # Offline the similar titles come from BM25 over this small corpus, not Wikipedia; a plain
            # miss offline (react) has no brackets: online they came from the disambiguation retry.
            prefix = ("Could not find [Adam Clayton Powell]. Similar: [" if protocol == "lenient"
                      else "Could not find Adam Clayton Powell. Similar: [")
            assert result.observation.startswith(prefix) and result.observation.endswith("].")
            similar = ast.literal_eval(result.observation[len(prefix) - 1 : -1])
            assert 0 < len(similar) <= 5 and all(t in PAGES for t in similar)
            assert "Adam Clayton Powell (film)" in similar
        else:
            # The prompt's observations were edited by hand (trailing spaces, dashes mis-encoded as
            # "â\x80\x93"); PAGES hold them cleaned. Offline sentences are joined with a space, and the
            # page may go on after what the example shows (the online page was split differently).
            expected = re.sub("[-â]?\x80\x93|–", "-", expected).replace(" \n", "\n").replace("\n", " ").rstrip()
            observed = result.observation
            if protocol == "react":
                # ReAct's split at ". " cuts "U.S. president" and gives every sentence a "."
                # ("regions:." and a paragraph's last one ".."): the sentence starts must agree.
                assert expected[:40] == observed[:40]
            else:
                assert observed == expected or observed.startswith(expected + " ")
            assert not result.done and result.answer is None


def test_example_lookup_and_search_observations_exactly(corpus):
    env = WikiEnv(corpus, "lenient")
    assert env.step("Search[Milhouse]").observation == " ".join(s.strip() for s in PAGES["Milhouse"])
    assert env.step("Lookup[named after]").observation == (
        "(Result 1 / 1) Milhouse was named after U.S. president Richard Nixon, whose middle name was Milhous."
    )
    assert env.step("Search[Leonid Levin]").observation == PAGES["Leonid Levin"][0]


# ------------------------------------------------------------------- search and titles


@pytest.mark.parametrize(
    "entity",
    ["  colorado   OROGENY ", "Ｃｏｌｏｒａｄｏ orogeny", "Colorado\u00a0orogeny", "COLORADO\torogeny"],
)
def test_search_normalises_titles(corpus, entity):
    obs = WikiEnv(corpus).step(f"search[{entity}]").observation
    assert obs.startswith("The Colorado orogeny was an episode")


def test_normalize_title():
    assert normalize_title("  Ｆｏｏ\u00a0 BAR\n") == "foo bar"
    assert normalize_title("Straße") == normalize_title("STRASSE")


def test_colliding_titles_first_sorted_wins():
    corpus = Corpus.from_paragraphs({"foo  bar": ["second"], "Foo bar": ["first"]})
    assert corpus.page("FOO BAR") == ["first"]
    assert len(corpus) == 2


@pytest.mark.parametrize("protocol", ["react", "lenient"])
def test_failed_search_keeps_page_and_lookup(corpus, protocol):
    env = WikiEnv(corpus, protocol)
    env.step("search[First for Women]")
    # ReAct splits at ". ": "USA.[1] The magazine ..." stays one sentence; HotPotQA's split has two.
    hits = 1 if protocol == "react" else 2
    assert env.step("lookup[magazine]").observation.startswith(f"(Result 1 / {hits})")
    miss = "Could not find No such page. Similar: [" if protocol == "react" else "Could not find [No such page]. Similar: ["
    assert env.step("search[No such page]").observation.startswith(miss)
    expected = "No more results.\n" if protocol == "react" else "(Result 2 / 2) The magazine was started in 1989."
    assert env.step("lookup[magazine]").observation == expected


def test_similar_empty_stopwords_and_ties():
    corpus = Corpus.from_paragraphs({"Bb": ["same words"], "Cc": ["same words"], "Aa": ["same words"]})
    assert corpus.similar("") == []
    assert corpus.similar("the of and") == []
    assert corpus.similar("[]!?") == []
    assert corpus.similar("zzzz unknown") == []
    assert corpus.similar("same words") == ["Aa", "Bb", "Cc"]
    assert corpus.similar("same words", k=2) == ["Aa", "Bb"]
    assert WikiEnv(corpus, "lenient").step("Search[the]").observation == "Could not find [the]. Similar: []."
    assert WikiEnv(corpus).step("search[the]").observation == "Could not find the. Similar: []."


def test_empty_page_observes_nothing_in_react_and_a_note_when_lenient():
    blank = Corpus.from_paragraphs({"Blank": [" ", ""]})
    lenient = WikiEnv(blank, "lenient")
    assert lenient.step("Search[Blank]").observation == "(This page is empty.)"
    assert lenient.step("Lookup[x]").observation == "No more results."
    react = WikiEnv(blank)
    assert react.step("search[Blank]").observation == ""  # wikienv.get_page_obs("")
    assert react.step("lookup[x]").observation == "No more results.\n"


# ------------------------------------------------------------------- lookup


def test_lookup_walks_restarts_and_ends():
    corpus = Corpus.from_paragraphs(
        {"Rhine": [" The Rhine is a River.", " It flows north.", " The river ends in the North Sea."]}
    )
    env = WikiEnv(corpus, "lenient")
    assert env.step("Lookup[river]").observation == "No more results."  # no page yet
    env.step("Search[Rhine]")
    assert env.step("Lookup[river]").observation == "(Result 1 / 2) The Rhine is a River."
    assert env.step("Lookup[river]").observation == "(Result 2 / 2) The river ends in the North Sea."
    assert env.step("Lookup[river]").observation == "No more results."
    assert env.step("Lookup[river]").observation == "No more results."
    assert env.step("Lookup[NORTH]").observation == "(Result 1 / 2) It flows north."  # new keyword restarts
    assert env.step("Lookup[river]").observation == "(Result 1 / 2) The Rhine is a River."
    env.step("Search[Rhine]")  # a successful search resets the cursor
    assert env.step("Lookup[river]").observation == "(Result 1 / 2) The Rhine is a River."
    assert env.step("Lookup[nothing here]").observation == "No more results."
    assert not env.step("Lookup[]").observation.endswith("\n")


# ------------------------------------------------------------------- invalid actions and finish


@pytest.mark.parametrize("action", ["Foo[bar]", "search Milhouse", "", "Search[x", "  Search[x  ", "Think[hmm]"])
def test_invalid_actions_when_lenient(corpus, action):
    result = WikiEnv(corpus, "lenient").step(action)
    assert result.observation.startswith("Invalid action")
    assert result.observation == f"Invalid action: {action.strip()}".rstrip()
    assert not result.done and result.answer is None and result.action.type == "invalid"


def test_finish_then_nothing_happens(corpus):
    env = WikiEnv(corpus, "lenient")
    env.step("Search[Milhouse]")
    result = env.step("Finish[]")
    assert (result.observation, result.done, result.answer) == ("Episode finished.", True, "")
    after = env.step("Search[Elia Kazan]")
    assert (after.observation, after.done, after.answer) == ("Episode finished.", True, "")
    env.reset()
    assert env.step("Search[Elia Kazan]").observation.startswith("Elia Kazan was")


def test_action_names_are_case_insensitive_when_lenient(corpus):
    env = WikiEnv(corpus, "lenient")
    assert env.step("search[Milhouse]").observation.startswith("Milhouse Mussolini")
    assert env.step("LOOKUP[named after]").observation.startswith("(Result 1 / 1)")
    assert env.step("finish[Richard Nixon]").answer == "Richard Nixon"


# ------------------------------------------------------------------- corpus and index files


def _split_row(qid: str, context: list[tuple[str, list[str]]] | None) -> dict:
    return {
        "id": qid,
        "index": None,
        "question": "q?",
        "answer": "a",
        "type": "bridge",
        "level": "easy",
        "supporting_facts": [],
        "context": None if context is None else [{"title": t, "sentences": s} for t, s in context],
        "source": "test",
    }


def _write_split(path: Path, rows: list[dict]) -> Path:
    write_parquet(pa.Table.from_pylist(rows, schema=SPLIT_SCHEMA), path, {"test": True})
    return path


@pytest.fixture
def splits(tmp_path) -> list[Path]:
    first = _write_split(
        tmp_path / "dev.parquet",
        [
            _split_row("1", [("Milhouse", PAGES["Milhouse"]), ("Elia Kazan", PAGES["Elia Kazan"])]),
            _split_row("2", None),
            _split_row("3", [("Milhouse", PAGES["Milhouse"]), ("Leonid Levin", PAGES["Leonid Levin"])]),
        ],
    )
    second = _write_split(
        tmp_path / "train.parquet",
        [_split_row("4", [("Milhouse", ["A different Milhouse."]), ("Arthur's Magazine", PAGES["Arthur's Magazine"])])],
    )
    return [first, second]


def test_corpus_round_trip(tmp_path, splits):
    build_from_splits(splits, tmp_path / "wiki.parquet", {"rule": "test"})
    table = read_parquet(tmp_path / "wiki.parquet", CORPUS_SCHEMA)
    assert table.column("title").to_pylist() == ["Arthur's Magazine", "Elia Kazan", "Leonid Levin", "Milhouse"]
    assert table.column("sentences").to_pylist()[3] == PAGES["Milhouse"]  # first kept, raw leading space
    prov = read_provenance(tmp_path / "wiki.parquet")
    assert prov["rule"] == "test" and prov["n_paragraphs"] == 6 and prov["n_titles"] == 4
    assert prov["n_conflicting_titles"] == 1 and set(prov["inputs"]) == {str(p) for p in splits}

    build_index(tmp_path / "wiki.parquet", tmp_path / "index")
    build_index(tmp_path / "wiki.parquet", tmp_path / "index")  # rebuilding replaces the old index
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dev.parquet", "index", "train.parquet", "wiki.parquet"]
    corpus = Corpus.load(tmp_path / "wiki.parquet", tmp_path / "index")
    assert len(corpus) == 4
    assert corpus.sha256 == corpus_sha256(tmp_path / "wiki.parquet")
    assert corpus.page("milhouse") == PAGES["Milhouse"]
    assert corpus.similar("Soviet mathematician")[0] == "Leonid Levin"
    env = WikiEnv(corpus, "lenient")
    assert env.step("Search[Milhouse]").observation.startswith("Milhouse Mussolini Van Houten is")
    assert env.step("Lookup[named after]").observation.startswith("(Result 1 / 1) Milhouse was named")
    # The same content hashes the same in memory as on disk.
    in_memory = {t: s for t, s in zip(*(table.column(c).to_pylist() for c in ("title", "sentences")))}
    assert Corpus.from_paragraphs(in_memory).sha256 == corpus.sha256


def test_corpus_sha256_is_stable(tmp_path, splits):
    build_from_splits(splits, tmp_path / "a.parquet", {"run": 1})
    build_from_splits(splits, tmp_path / "b.parquet", {"run": 2})  # other provenance, same content
    assert corpus_sha256(tmp_path / "a.parquet") == corpus_sha256(tmp_path / "b.parquet")
    build_from_splits(splits[::-1], tmp_path / "c.parquet")  # other first occurrence of Milhouse
    assert corpus_sha256(tmp_path / "c.parquet") != corpus_sha256(tmp_path / "a.parquet")


def test_index_of_another_corpus_is_refused(tmp_path, splits):
    build_from_splits(splits, tmp_path / "a.parquet")
    build_from_splits(splits[:1], tmp_path / "b.parquet")
    build_index(tmp_path / "b.parquet", tmp_path / "index_b")
    with pytest.raises(DataFileError, match="rebuild the index"):
        Corpus.load(tmp_path / "a.parquet", tmp_path / "index_b")
    with pytest.raises(DataFileError, match="not a corpus index"):
        Corpus.load(tmp_path / "a.parquet", tmp_path / "missing")


# ------------------------------------------------------------------- never raises


ANY_TEXT = st.text(st.characters(exclude_categories=()), max_size=3000)  # surrogates and controls too
ACTIONS = st.one_of(
    ANY_TEXT,
    st.builds(
        lambda name, arg, close: f"{name}[{arg}{close}",
        st.sampled_from(["Search", "search", "Lookup", "lookup", "Finish", "Think", "", " Search"]),
        st.one_of(ANY_TEXT, st.sampled_from(list(PAGES)), st.sampled_from(["", "the", "]", "[", "\n"])),
        st.sampled_from(["]", "", "]\n", "]]", "] x"]),
    ),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(ACTIONS, min_size=1, max_size=6))
def test_any_action_text_never_raises(corpus, actions):
    for protocol in ("react", "lenient"):
        env = WikiEnv(corpus, protocol)
        for text in actions:
            result = env.step(text)
            assert isinstance(result.observation, str)
            if protocol == "lenient":  # never empty, never a trailing newline
                assert result.observation and not result.observation.endswith("\n")
            assert result.done == (result.answer is not None)


# ------------------------------------------------------------------- the index internals (search at scale)


def _bm25s_reference(paragraphs: dict[str, list[str]]) -> bm25s.BM25:
    """The index as react.search.index built it before it streamed: bm25s's own, over NFKC title + text."""
    texts = [unicodedata.normalize("NFKC", " ".join([t, *paragraphs[t]])) for t in sorted(paragraphs)]
    reference = bm25s.BM25()
    reference.index(bm25s.tokenize(texts, stopwords="en", stemmer=Stemmer.Stemmer("english"), show_progress=False),
                    show_progress=False)
    return reference


MORE_PAGES = {
    **PAGES,
    "Ｆｕｌｌ ｗｉｄｔｈ": ["Ｗｉｄｅ letters, a ﬁsh ligature and Straße.", " Film film FILM films."],
    "Only stopwords": ["the of and", " a an"],
    "Nothing": [],
    "Numbers 1989": [" 1989 1,800 7,000 ft", "x_y snake_case"],
}


@settings(max_examples=300, deadline=None)
@given(ANY_TEXT)
def test_query_terms_are_bm25s_tokens(text):
    expected = bm25s.tokenize([unicodedata.normalize("NFKC", text)], stopwords="en",
                              stemmer=Stemmer.Stemmer("english"), return_ids=False, show_progress=False)[0]
    assert _query_terms(text, _stemmer()) == expected


def test_index_scores_are_bm25s_scores():
    reference, ours = _bm25s_reference(MORE_PAGES), Corpus.from_paragraphs(MORE_PAGES)._bm25
    assert set(ours.vocab) == set(reference.vocab_dict)
    ref = reference.scores
    for term, ref_id in reference.vocab_dict.items():
        if term == "":
            continue
        ours_id = ours.vocab[term]
        lo, hi = ref["indptr"][ref_id], ref["indptr"][ref_id + 1]
        our_lo, our_hi = ours.indptr[ours_id], ours.indptr[ours_id + 1]
        assert ours.indices[our_lo:our_hi].tolist() == ref["indices"][lo:hi].tolist()
        assert ours.data[our_lo:our_hi].tobytes() == ref["data"][lo:hi].tobytes()  # bit for bit


@pytest.mark.parametrize("query", ["Adam Clayton Powell", "American film director", "film film", "Soviet",
                                   "Ｆｉｌｍ", "magazine 1989", "the", "zzzz"])
def test_similar_ranks_as_full_bm25s_scores(query):
    titles = sorted(MORE_PAGES)
    reference = _bm25s_reference(MORE_PAGES)
    ids = reference.get_tokens_ids(_query_terms(query, _stemmer()))
    expected = []
    if ids:
        scores = reference.get_scores_from_ids(ids)
        hits = np.flatnonzero(scores > 0)
        expected = [titles[i] for i in hits[np.lexsort((hits, -scores[hits]))][:5]]
    assert Corpus.from_paragraphs(MORE_PAGES).similar(query) == expected


def _write_corpus(path: Path, rows: list[tuple[str, list[str]]], provenance: dict | None = None) -> Path:
    table = pa.table({"title": [t for t, _ in rows], "sentences": [s for _, s in rows]}, schema=CORPUS_SCHEMA)
    write_parquet(table, path, provenance or {})
    return path


def test_streamed_index_equals_the_in_memory_one(tmp_path, monkeypatch):
    monkeypatch.setattr(corpus_file, "BATCH_ROWS", 3)  # several batches, postings spilled and placed batch by batch
    path = _write_corpus(tmp_path / "wiki.parquet", sorted(MORE_PAGES.items()))
    build_index(path, tmp_path / "index")
    assert not (tmp_path / "index" / "postings.tmp").exists()
    loaded, in_memory = Corpus.load(path, tmp_path / "index"), Corpus.from_paragraphs(MORE_PAGES)
    assert loaded.sha256 == in_memory.sha256
    for name in ("data", "indices", "indptr"):
        assert np.array_equal(getattr(loaded._bm25, name), getattr(in_memory._bm25, name))
    assert loaded._bm25.vocab == in_memory._bm25.vocab
    reference = bm25s.BM25.load(tmp_path / "index")  # bm25s reads the index too
    ids = reference.get_tokens_ids(["film"])
    assert np.array_equal(reference.get_scores_from_ids(ids),
                          _bm25s_reference(MORE_PAGES).get_scores_from_ids(
                              _bm25s_reference(MORE_PAGES).get_tokens_ids(["film"])))
    for title in MORE_PAGES:
        assert loaded.page(title) == MORE_PAGES[title]


def test_index_from_before_the_streaming_build_still_loads(tmp_path):
    """An index directory holding only bm25s's files (format 1): pages and keys are made at load."""
    path = _write_corpus(tmp_path / "wiki.parquet", sorted(MORE_PAGES.items()))
    index = tmp_path / "index"
    _bm25s_reference(MORE_PAGES).save(index, show_progress=False)
    (index / INDEX_META).write_text(json.dumps({"corpus_sha256": corpus_sha256(path), "n_docs": len(MORE_PAGES)}))
    old, new = Corpus.load(path, index), Corpus.from_paragraphs(MORE_PAGES)
    for query in ["Adam Clayton Powell", "film", "Soviet mathematician", "High Plains"]:
        assert old.similar(query) == new.similar(query)
        assert old.page(query) == new.page(query)


def test_same_rows_in_another_file_load_and_unsorted_rows_keep_the_first_title(tmp_path, monkeypatch):
    monkeypatch.setattr(corpus_file, "BATCH_ROWS", 1)
    rows = [("foo  bar", ["second"]), ("B", ["b"]), ("Foo bar", ["first"])]  # not sorted by title
    built = _write_corpus(tmp_path / "a.parquet", rows, {"run": 1})
    build_index(built, tmp_path / "index")
    other = _write_corpus(tmp_path / "b.parquet", rows, {"run": 2})  # other bytes, same rows
    corpus = Corpus.load(other, tmp_path / "index")
    assert corpus.sha256 == corpus_sha256(built)
    assert corpus.page("FOO BAR") == ["first"] and corpus.page("b") == ["b"]
    assert Corpus.from_paragraphs(dict(rows)).page("FOO BAR") == ["first"]


def test_empty_corpus(tmp_path):
    path = _write_corpus(tmp_path / "wiki.parquet", [])
    build_index(path, tmp_path / "index")
    corpus = Corpus.load(path, tmp_path / "index")
    assert len(corpus) == 0 and corpus.page("x") is None and corpus.similar("x") == []
    assert WikiEnv(Corpus.from_paragraphs({}), "lenient").step("Search[x]").observation == "Could not find [x]. Similar: []."
