"""An offline Wikipedia for ReAct: a paragraph corpus, a BM25 index and ``WikiEnv``.

``WikiEnv`` reproduces the behaviour of ysymyth/ReAct's ``wikienv.py`` (Search,
Lookup, Finish, their observation strings and the lookup cursor) over the
paragraphs that HotPotQA ships in its ``context`` fields instead of live
Wikipedia. Where the offline environment differs from the online one:

* Pages are the HotPotQA paragraphs (usually the article's first paragraph),
  not whole articles, so Lookup only sees that paragraph.
* Sentences are HotPotQA's own segmentation (each stripped; empty ones dropped),
  not the online ``page.split("\\n")`` then ``split(". ")`` re-splitting with a
  ``"."`` appended. A search shows the first 5 of them joined with a space; the
  online observation can hold a newline where a paragraph ended.
* Search matches titles exactly after :func:`normalize_title` (NFKC, casefold,
  whitespace collapsed); Wikipedia also follows redirects and does its own fuzzy
  matching, so a search online can land on a page where ours lists similar ones.
* There are no "may refer to" disambiguation pages: online, such a page makes
  ReAct retry ``[entity]`` and report ``Could not find [entity]``; offline every
  miss reports ``Could not find [entity]`` (the brackets of the prompt's Adam
  Clayton Powell example) with the similar titles.
* "Similar" titles are the top-5 BM25 hits (bm25s, English stopwords, Snowball
  stemmer, over title + paragraph text, ties broken by title) instead of
  Wikipedia's search ranking; a query with no indexed token lists none (``[]``).
* ``Finish`` observes ``Episode finished.`` (online: ``Episode finished, reward =
  ...``), and observations never end with a newline (online ``No more results.\\n``).
* A page whose sentences are all empty observes ``(This page is empty.)`` so
  that an observation is never empty.
"""

from __future__ import annotations

import hashlib
import json
import logging
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bm25s
import numpy as np
import pyarrow as pa
import Stemmer

from react.io import DataFileError, atomic_dir, read_parquet, sha256_file, write_parquet
from react.parsing import Action, parse_action
from react.schemas import CORPUS_SCHEMA, SPLIT_SCHEMA

INDEX_META = "react_corpus.json"  # next to bm25s's own files in the index dir
N_SEARCH_SENTENCES = 5  # ReAct's _get_page_obs shows the first 5 sentences
N_SIMILAR = 5  # ReAct shows result_titles[:5]
EMPTY_PAGE = "(This page is empty.)"
log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- corpus file


def normalize_title(s: str) -> str:
    """The key exact-title matching uses: NFKC, casefolded, whitespace collapsed and stripped."""
    return " ".join(unicodedata.normalize("NFKC", s).casefold().split())


def _iter_paragraphs(split_parquets: Iterable[str | Path]) -> Iterable[tuple[str, list[str]]]:
    """Every (title, sentences) of the splits' ``context`` columns, in file, row and paragraph order."""
    for path in split_parquets:
        for context in read_parquet(path, SPLIT_SCHEMA).column("context").to_pylist():
            for paragraph in context or ():
                if paragraph["title"] is not None:
                    yield paragraph["title"], paragraph["sentences"] or []


def build_corpus(
    split_parquets: list[str | Path], out_parquet: str | Path, provenance: dict[str, Any] | None = None
) -> None:
    """Write the union of the splits' context paragraphs, one row per title, sorted by title.

    The first occurrence of a title wins; later ones with other text are counted
    (HotPotQA sometimes ships two versions of one paragraph). Sentences are kept
    raw, leading spaces included.
    """
    first: dict[str, list[str]] = {}
    conflicts: set[str] = set()
    n_paragraphs = 0
    for title, sentences in _iter_paragraphs(split_parquets):
        n_paragraphs += 1
        kept = first.setdefault(title, sentences)
        if kept != sentences:
            conflicts.add(title)
    titles = sorted(first)
    table = pa.table({"title": titles, "sentences": [first[t] for t in titles]}, schema=CORPUS_SCHEMA)
    write_parquet(
        table,
        out_parquet,
        {
            **(provenance or {}),
            "inputs": {str(p): sha256_file(p) for p in split_parquets},
            "n_paragraphs": n_paragraphs,
            "n_titles": len(titles),
            "n_conflicting_titles": len(conflicts),
            "conflicting_titles_sample": sorted(conflicts)[:20],
        },
    )
    log.info("corpus %s: %d titles from %d paragraphs (%d titles seen with differing text, first kept)",
             out_parquet, len(titles), n_paragraphs, len(conflicts))


def _rows_sha256(titles: Iterable[str], sentences: Iterable[list[str]]) -> str:
    """sha256 over one canonical JSON line per row: independent of the Parquet encoding."""
    digest = hashlib.sha256()
    for title, sents in zip(titles, sentences, strict=True):
        line = json.dumps([title, sents], ensure_ascii=False, separators=(",", ":"))
        digest.update(line.encode("utf-8") + b"\n")
    return digest.hexdigest()


def _read_corpus(corpus_parquet: str | Path) -> tuple[list[str], list[list[str]]]:
    table = read_parquet(corpus_parquet, CORPUS_SCHEMA)
    return table.column("title").to_pylist(), table.column("sentences").to_pylist()


def corpus_sha256(path: str | Path) -> str:
    """Content hash of a corpus Parquet file: (title, sentences) rows in file order."""
    return _rows_sha256(*_read_corpus(path))


# --------------------------------------------------------------------------- BM25 index


def _stemmer() -> Stemmer.Stemmer:
    return Stemmer.Stemmer("english")


def _tokenize(texts: list[str], stemmer: Stemmer.Stemmer, *, return_ids: bool):
    # NFKC first so that full-width or ligature spellings meet the indexed tokens.
    texts = [unicodedata.normalize("NFKC", t) for t in texts]
    return bm25s.tokenize(texts, stopwords="en", stemmer=stemmer, return_ids=return_ids, show_progress=False)


def _document_texts(titles: list[str], sentences: list[list[str]]) -> list[str]:
    # Joined with a space: HotPotQA sentences carry a leading space, other sources may not.
    return [" ".join([t, *(s or "" for s in sents)]) for t, sents in zip(titles, sentences, strict=True)]


def _bm25(titles: list[str], sentences: list[list[str]]) -> bm25s.BM25:
    retriever = bm25s.BM25()
    retriever.index(_tokenize(_document_texts(titles, sentences), _stemmer(), return_ids=True), show_progress=False)
    return retriever


def build_index(corpus_parquet: str | Path, index_dir: str | Path) -> None:
    """Build the BM25 index of a corpus into ``index_dir``, recording the corpus it belongs to.

    Written into a temporary sibling directory and renamed into place, so a
    crash never leaves a partial index under the final name.
    """
    titles, sentences = _read_corpus(corpus_parquet)
    retriever = _bm25(titles, sentences)
    with atomic_dir(index_dir) as tmp:
        retriever.save(tmp, show_progress=False)
        meta = {"corpus_sha256": _rows_sha256(titles, sentences), "n_docs": len(titles), "bm25s": bm25s.__version__}
        (tmp / INDEX_META).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    log.info("BM25 index of %d titles -> %s", len(titles), index_dir)


def _load_bm25(index_dir: Path, sha256: str, n_docs: int) -> bm25s.BM25:
    """Load a saved index, refusing one built from another corpus."""
    meta_path = index_dir / INDEX_META
    if not meta_path.exists():
        raise DataFileError(f"{index_dir}: not a corpus index (no {INDEX_META}); run build_index")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DataFileError(f"{meta_path}: unreadable index metadata ({exc}); run build_index") from exc
    if meta.get("corpus_sha256") != sha256 or meta.get("n_docs") != n_docs:
        raise DataFileError(
            f"{index_dir}: index was built from corpus sha256 {meta.get('corpus_sha256')} "
            f"({meta.get('n_docs')} titles), but the corpus given has sha256 {sha256} "
            f"({n_docs} titles); rebuild the index for this corpus"
        )
    try:
        return bm25s.BM25.load(index_dir, mmap=True, show_progress=False)
    except (OSError, ValueError):  # e.g. a file system that cannot memory-map
        return bm25s.BM25.load(index_dir, mmap=False, show_progress=False)


# --------------------------------------------------------------------------- Corpus


class Corpus:
    """Titles, their sentences and a BM25 index over them (rows in the corpus file's order, sorted by title)."""

    def __init__(self, titles: list[str], sentences: list[list[str]], retriever: bm25s.BM25, sha256: str):
        self.titles = titles
        self.sentences = sentences
        self.sha256 = sha256
        self._retriever = retriever
        self._stemmer = _stemmer()
        # When two titles share a key the first in sorted order wins, whatever the file's row order.
        self._by_key: dict[str, int] = {}
        for i in sorted(range(len(titles)), key=titles.__getitem__):
            self._by_key.setdefault(normalize_title(titles[i]), i)

    @classmethod
    def load(cls, corpus_parquet: str | Path, index_dir: str | Path) -> Corpus:
        titles, sentences = _read_corpus(corpus_parquet)
        sha256 = _rows_sha256(titles, sentences)
        return cls(titles, sentences, _load_bm25(Path(index_dir), sha256, len(titles)), sha256)

    @classmethod
    def from_paragraphs(cls, paragraphs: dict[str, list[str]]) -> Corpus:
        """An in-memory corpus and index (tests, oracle teachers)."""
        titles = sorted(paragraphs)
        sentences = [list(paragraphs[t]) for t in titles]
        return cls(titles, sentences, _bm25(titles, sentences), _rows_sha256(titles, sentences))

    def __len__(self) -> int:
        return len(self.titles)

    def page(self, title: str) -> list[str] | None:
        """The raw sentences of the page whose normalised title equals ``title``'s, or None."""
        i = self._by_key.get(normalize_title(title))
        return None if i is None else self.sentences[i]

    def similar(self, query: str, k: int = N_SIMILAR) -> list[str]:
        """Titles of the ``k`` best BM25 matches (score > 0), ties broken by title order."""
        tokens = _tokenize([query], self._stemmer, return_ids=False)[0]
        ids = self._retriever.get_tokens_ids(tokens)
        if not ids or k <= 0:
            return []
        scores = np.asarray(self._retriever.get_scores_from_ids(ids))
        hits = np.flatnonzero(scores > 0)
        # Sort by score descending, then by row (= title) ascending: argpartition ties are arbitrary.
        order = np.lexsort((hits, -scores[hits]))[:k]
        return [self.titles[i] for i in hits[order]]


# --------------------------------------------------------------------------- environment


@dataclass(frozen=True)
class StepResult:
    observation: str
    done: bool
    action: Action
    answer: str | None


class WikiEnv:
    """ReAct's WikiEnv over a :class:`Corpus`: Search, Lookup and Finish; never raises on a string."""

    def __init__(self, corpus: Corpus):
        self.corpus = corpus
        self.reset()

    def reset(self) -> None:
        self.page: list[str] | None = None  # sentences of the current page, stripped
        self.answer: str | None = None
        self._final: str | None = None  # observation repeated once the episode is done
        self._lookup_keyword: str | None = None
        self._lookup_hits: list[str] = []
        self._lookup_cnt = 0

    def step(self, action_text: str) -> StepResult:
        action = parse_action(action_text)
        if self._final is not None:
            return StepResult(self._final, True, action, self.answer)
        if action.type == "search":
            observation = self._search(action.argument)
        elif action.type == "lookup":
            observation = self._lookup(action.argument)
        elif action.type == "finish":
            self.answer = action.argument
            self._final = observation = "Episode finished."
            return StepResult(observation, True, action, self.answer)
        else:
            observation = f"Invalid action: {action_text.strip()}".rstrip()
        return StepResult(observation, False, action, None)

    def _search(self, entity: str) -> str:
        sentences = self.corpus.page(entity)
        if sentences is None:  # the current page stays, as online
            return f"Could not find [{entity}]. Similar: {self.corpus.similar(entity)}."
        self.page = [s.strip() for s in sentences if s and s.strip()]
        self._lookup_keyword, self._lookup_hits, self._lookup_cnt = None, [], 0
        return " ".join(self.page[:N_SEARCH_SENTENCES]) or EMPTY_PAGE

    def _lookup(self, keyword: str) -> str:
        if keyword != self._lookup_keyword:  # a new keyword restarts the walk
            self._lookup_keyword = keyword
            # As online, the empty keyword is "in" every sentence.
            self._lookup_hits = [s for s in self.page or () if keyword.lower() in s.lower()]
            self._lookup_cnt = 0
        if self._lookup_cnt >= len(self._lookup_hits):
            return "No more results."
        self._lookup_cnt += 1
        return f"(Result {self._lookup_cnt} / {len(self._lookup_hits)}) {self._lookup_hits[self._lookup_cnt - 1]}"
