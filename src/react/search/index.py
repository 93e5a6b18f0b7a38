"""The search index of a corpus: exact titles and BM25, and :class:`Corpus`, what the offline environment asks.

A page is found by its title after :func:`normalize_title` (NFKC, casefold,
whitespace collapsed); "Similar" titles are the top-5 BM25 hits (bm25s, English
stopwords, Snowball stemmer, over title + paragraph text, ties broken by row: by
title in a corpus from the splits); a query with no indexed token lists none
(``[]``). How that differs from the live site: react.environment.offline.

The index is built for Wikipedia scale (BENCHMARKS.md 3). ``build_index`` reads the corpus
file (react.search.corpus) once, in batches, and writes one directory: ``pages.arrow`` (the
rows, memory-mapped by ``Corpus.load``), ``title_keys.*`` (sorted normalised titles, searched
by bisection), the BM25 index in bm25s's own file layout (built from postings spilled batch by
batch, with bm25s's float32 scores bit for bit) and ``react_corpus.json`` (the corpus' content
hash, checked at load so that an index never serves other rows).

None of this changes an observation: Search, Lookup and the Similar lists are
those of the bm25s ``get_scores`` implementation this replaces.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import math
import mmap
import os
import re
import threading
import unicodedata
from collections.abc import Callable
from pathlib import Path
from typing import Any

import bm25s
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import Stemmer

from react.agent.protocol import N_SIMILAR
from react.io import DataFileError, atomic_dir, read_parquet, sha256_file
from react.schemas import CORPUS_SCHEMA
from react.search.corpus import corpus_sha256, hash_rows, iter_corpus_batches, rows_sha256

INDEX_META = "react_corpus.json"  # next to bm25s's own files in the index dir
INDEX_FORMAT = 2  # 2: pages and title keys stored with the BM25 files (1: BM25 files only)
PAGES_FILE = "pages.arrow"  # the corpus rows, Arrow IPC, uncompressed: memory-mapped
KEYS_FILE = "title_keys.bin"  # sorted normalised titles, UTF-8, concatenated
KEY_OFFSETS_FILE = "title_keys.offsets.npy"
KEY_ROWS_FILE = "title_keys.rows.npy"
PROGRESS_ROWS = 500_000
log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- titles


def normalize_title(s: str) -> str:
    """The key exact-title matching uses: NFKC, casefolded, whitespace collapsed and stripped."""
    return " ".join(unicodedata.normalize("NFKC", s).casefold().split())


# --------------------------------------------------------------------------- tokens

_words_of = re.compile(r"(?u)\b\w\w+\b").findall  # bm25s.tokenize's default token_pattern
_STOPWORDS = frozenset(bm25s.stopwords.STOPWORDS_EN)  # bm25s.tokenize(stopwords="en")


def _stemmer() -> Stemmer.Stemmer:
    return Stemmer.Stemmer("english")


# In ASCII text the pattern's \w is [A-Za-z0-9_]: splitting on the other characters finds the same words, faster.
_ASCII_NON_WORD = str.maketrans({c: " " for c in map(chr, range(128)) if not (c.isalnum() or c == "_")})


def _words(text: str) -> list[str]:
    # NFKC first so that full-width or ligature spellings meet the indexed tokens; then as bm25s: lower, split.
    text = unicodedata.normalize("NFKC", text).lower()
    if text.isascii():
        return [w for w in text.translate(_ASCII_NON_WORD).split() if len(w) > 1]
    return _words_of(text)


def _query_terms(text: str, stemmer: Stemmer.Stemmer) -> list[str]:
    """The stems bm25s.tokenize(stopwords="en", stemmer) makes of ``text``, in order, repeats kept."""
    words = [w for w in _words(text) if w not in _STOPWORDS]
    return stemmer.stemWords(words) if words else []


def _document_texts(titles: list[str], sentences: list[list[str]]) -> list[str]:
    # Joined with a space: HotPotQA sentences carry a leading space, other sources may not.
    return [" ".join([t, *(s or "" for s in sents)]) for t, sents in zip(titles, sentences, strict=True)]


# --------------------------------------------------------------------------- BM25 index

# bm25s.BM25()'s defaults, which the index has always been built with.
BM25_PARAMS = {"k1": 1.5, "b": 0.75, "delta": 0.5, "method": "lucene", "idf_method": "lucene",
               "dtype": "float32", "int_dtype": "int32"}
BM25_FILES = {"data": "data.csc.index.npy", "indices": "indices.csc.index.npy", "indptr": "indptr.csc.index.npy",
              "vocab": "vocab.index.json", "params": "params.index.json"}


class _BM25Builder:
    """bm25s's eager BM25 index (the BM25_PARAMS), built from documents streamed in batches.

    ``bm25s.BM25().index(bm25s.tokenize(texts, ...))`` holds every token of the corpus
    as Python lists and sorts all postings with full-size temporaries (memory linear in the corpus's
    tokens, BENCHMARKS.md 3). Here each batch is tokenized
    and reduced in NumPy to its (document, term, term frequency) postings, which are
    spilled to ``spill_dir`` (or kept, for small in-memory corpora); ``finish`` then puts
    them straight into their term columns, whose sizes (the document frequencies) are
    known by then, batch by batch: memory is the vocabulary and one batch. The scores
    stored are the float32 values bm25s computes (same formula, same operation order),
    so rankings are too; only the term ids differ (bm25s numbers its vocabulary in
    ``set`` order, which changes with the hash seed; here terms are numbered as first seen).
    """

    def __init__(self, spill_dir: Path | None = None) -> None:
        self._stemmer = _stemmer()
        self._term_of: dict[str, int] = dict.fromkeys(_STOPWORDS, -1)  # lower-cased word -> term id; -1: stopword
        self.vocab: dict[str, int] = {}  # stem -> term id
        self._spill_dir = spill_dir
        self._batches: list[Path | np.ndarray] = []  # int32 (document, term, tf) rows, sorted by (document, term)
        self._doc_lens: list[np.ndarray] = []
        self._df = np.zeros(0, dtype=np.int64)  # documents per term
        self.n_docs = 0
        self.n_tokens = 0
        self.n_postings = 0

    def add(self, texts: list[str]) -> None:
        words = [_words(text) for text in texts]
        lens = np.fromiter(map(len, words), dtype=np.int64, count=len(words))
        flat = list(itertools.chain.from_iterable(words))
        del words
        term_of = self._term_of
        terms = np.fromiter(map(term_of.get, flat, itertools.repeat(-2)), dtype=np.int64, count=len(flat))
        unseen = np.flatnonzero(terms == -2).tolist()
        if unseen:
            new = list(dict.fromkeys([flat[i] for i in unseen]))  # first-seen order: a reproducible vocabulary
            vocab = self.vocab
            for word, stem in zip(new, self._stemmer.stemWords(new), strict=True):
                term_of[word] = vocab.setdefault(stem, len(vocab))
            terms[unseen] = [term_of[flat[i]] for i in unseen]
        docs = np.repeat(np.arange(self.n_docs, self.n_docs + len(texts), dtype=np.int64), lens)
        kept = terms >= 0
        terms, docs = terms[kept], docs[kept]
        self._doc_lens.append(np.bincount(docs - self.n_docs, minlength=len(texts)).astype(np.int32))
        pairs, tf = np.unique((docs << 32) | terms, return_counts=True)
        batch = np.stack([pairs >> 32, pairs & 0xFFFFFFFF, tf]).astype(np.int32)
        if len(self._df) < len(self.vocab):
            self._df = np.concatenate([self._df, np.zeros(max(len(self.vocab), 2 * len(self._df)) - len(self._df),
                                                          dtype=np.int64)])
        counts = np.bincount(batch[1], minlength=0)
        self._df[:len(counts)] += counts
        if self._spill_dir is not None:
            path = self._spill_dir / f"postings-{len(self._batches)}.npy"
            np.save(path, batch)
            self._batches.append(path)
        else:
            self._batches.append(batch)
        self.n_docs += len(texts)
        self.n_tokens += len(terms)
        self.n_postings += batch.shape[1]

    def finish(self, out_dir: Path | None = None) -> _BM25:
        """The index; with ``out_dir`` its arrays are written there (bm25s's file layout) and memory-mapped."""
        k1, b = BM25_PARAMS["k1"], BM25_PARAMS["b"]
        n_docs, n_terms, n_postings = self.n_docs, len(self.vocab), self.n_postings
        doc_lens = np.concatenate(self._doc_lens) if self._doc_lens else np.zeros(0, np.int32)
        self._doc_lens = []
        # bm25s: np.array([len(doc) for doc in corpus]).mean(); exact, the lengths being integers.
        avg_doc_len = np.float64(int(doc_lens.sum(dtype=np.int64))) / n_docs if n_docs else np.float64(1.0)
        df = self._df[:n_terms]
        # bm25s: idf = math.log(1 + (N - df + 0.5) / (df + 0.5)) in Python floats, stored as float32.
        df_values, df_index = np.unique(df, return_inverse=True)
        idf = np.array([math.log(1 + (n_docs - d + 0.5) / (d + 0.5)) for d in df_values.tolist()],
                       dtype=np.float32)[df_index]

        def array(name: str, dtype: Any, n: int) -> np.ndarray:
            if out_dir is None:
                return np.empty(n, dtype=dtype)
            return np.lib.format.open_memmap(out_dir / BM25_FILES[name], mode="w+", dtype=dtype, shape=(n,))

        data, indices = array("data", np.float32, n_postings), array("indices", np.int32, n_postings)
        indptr = array("indptr", np.int64, n_terms + 1)
        indptr[0] = 0
        np.cumsum(df, out=indptr[1:])
        # The CSC order: by term, then by document. Batches come in document order, so each
        # batch's postings of a term go right after the earlier batches' ones.
        cursor = np.array(indptr[:-1])
        for item in self._batches:
            batch = np.load(item) if isinstance(item, Path) else item
            if isinstance(item, Path):
                item.unlink()
            if not batch.shape[1]:
                continue
            order = np.argsort((batch[1].astype(np.int64) << 32) | batch[0])
            docs, terms, tf = batch[0][order], batch[1][order], batch[2][order].astype(np.float32)
            starts = np.flatnonzero(np.concatenate([[True], terms[1:] != terms[:-1]]))
            counts = np.diff(np.append(starts, len(terms)))
            first_terms = terms[starts]
            where = np.repeat(cursor[first_terms] - starts, counts) + np.arange(len(terms))
            cursor[first_terms] += counts
            indices[where] = docs
            # bm25s's lucene (= robertson) term-frequency component, float64 since avg_doc_len is,
            # times the float32 idf, stored as float32.
            tfc = tf / (k1 * ((1 - b) + b * doc_lens[docs].astype(np.float64) / avg_doc_len) + tf)
            data[where] = idf[terms] * tfc
        self._batches = []
        vocab = {**self.vocab, "": n_terms}  # bm25s adds the empty token past the last column
        if out_dir is not None:
            for arr in (data, indices, indptr):
                arr.flush()
            (out_dir / BM25_FILES["vocab"]).write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
            params = {**BM25_PARAMS, "num_docs": n_docs, "version": bm25s.__version__, "backend": "numpy"}
            (out_dir / BM25_FILES["params"]).write_text(json.dumps(params, indent=4), encoding="utf-8")
            del data, indices, indptr
            return _BM25.load(out_dir)
        return _BM25(data, indices, indptr, vocab, n_docs)


class _BM25:
    """Top-k BM25 search over bm25s's eager index: the CSC term columns of precomputed scores."""

    def __init__(self, data: np.ndarray, indices: np.ndarray, indptr: np.ndarray, vocab: dict[str, int],
                 n_docs: int):
        self.data, self.indices, self.indptr = data, indices, indptr
        self.vocab = vocab
        self.n_docs = n_docs
        self._stemmer = _stemmer()
        self._acc: np.ndarray | None = None  # per-document scores, all zero between queries
        self._lock = threading.Lock()  # guards _acc and _stemmer

    @classmethod
    def load(cls, index_dir: Path) -> _BM25:
        """Memory-map an index saved in bm25s's layout (``bm25s.BM25.load`` reads it too)."""
        try:
            params = json.loads((index_dir / BM25_FILES["params"]).read_text(encoding="utf-8"))
            vocab = json.loads((index_dir / BM25_FILES["vocab"]).read_text(encoding="utf-8"))
            arrays = [_load_npy(index_dir / BM25_FILES[name]) for name in ("data", "indices", "indptr")]
        except (OSError, ValueError) as exc:
            raise DataFileError(f"{index_dir}: unreadable BM25 index ({exc}); run build_index") from exc
        if any(params.get(key) != value for key, value in BM25_PARAMS.items()):
            raise DataFileError(f"{index_dir}: BM25 parameters {params} are not {BM25_PARAMS}; run build_index")
        return cls(*arrays, vocab, int(params["num_docs"]))

    def term_ids(self, query: str) -> list[int]:
        with self._lock:  # a Stemmer is not thread-safe
            stems = _query_terms(query, self._stemmer)
        vocab = self.vocab
        return [vocab[t] for t in stems if t in vocab]

    def top(self, terms: list[int], k: int, distinct: Callable[[int], Any] | None = None) -> np.ndarray:
        """Rows of the ``k`` best scores above 0, best first, ties by row.

        The same float32 sums as ``bm25s.BM25.get_scores`` (each term's column added in query
        order), but only over the documents that hold a query term, and without sorting all
        of them: the k-th best score is found with a partition, then only the scores at least
        as good are sorted. An accumulator over all documents is kept between queries and
        cleared where it was written. With ``distinct``, rows whose ``distinct(row)`` an
        earlier (better) row had are passed over: the k best rows of k different values.
        """
        indptr, indices, data = self.indptr, self.indices, self.data
        with self._lock:
            if self._acc is None:
                self._acc = np.zeros(self.n_docs, dtype=np.float32)
            acc = self._acc
            touched = []
            for term in terms:
                lo, hi = indptr[term], indptr[term + 1]
                rows = indices[lo:hi]
                if not touched:
                    acc[rows] = data[lo:hi]  # = 0 + data, as bm25s adds it
                    touched.append(rows)
                    continue
                before = acc[rows]
                touched.append(rows[before == 0])  # first time a query term meets this document (scores are > 0)
                acc[rows] = before + data[lo:hi]
            rows = np.concatenate(touched) if touched else np.zeros(0, dtype=np.int32)
            scores = acc[rows]
            if len(rows) > len(acc) // 8:
                acc.fill(0)  # cheaper than scattering zeros
            else:
                acc[rows] = 0
        if distinct is None:
            return self._best(rows, scores, k)
        m = k
        while True:  # the best m rows are a prefix of the best 4m: widen until k values are found
            best = self._best(rows, scores, m)
            kept, seen = [], set()
            for row in best.tolist():
                value = distinct(row)
                if value not in seen:
                    seen.add(value)
                    kept.append(row)
                    if len(kept) == k:
                        return np.array(kept, dtype=best.dtype)
            if len(best) < m:
                return np.array(kept, dtype=best.dtype)
            m *= 4

    @staticmethod
    def _best(rows: np.ndarray, scores: np.ndarray, k: int) -> np.ndarray:
        if len(scores) > k:
            kth = np.partition(scores, len(scores) - k)[len(scores) - k]
            best = scores >= kth
            rows, scores = rows[best], scores[best]
        best = np.lexsort((rows, -scores))[:k]
        rows, scores = rows[best], scores[best]
        return rows[scores > 0]  # non-positive scores (none in practice) sort after every positive one


def _load_npy(path: Path) -> np.ndarray:
    try:
        return np.load(path, mmap_mode="r").view(np.ndarray)
    except (OSError, ValueError):  # e.g. a file system that cannot memory-map
        return np.load(path)


# --------------------------------------------------------------------------- exact titles


class _TitleKeys:
    """normalize_title(title) -> row: the keys sorted as UTF-8 bytes, binary-searched.

    When two titles share a key the first in sorted title order wins, whatever the
    file's row order; rows with the same title (several passages of one page) serve
    the first in file order. Stored as one UTF-8 blob with offsets and rows, memory-mapped.
    """

    def __init__(self, blob: bytes | mmap.mmap, offsets: np.ndarray, rows: np.ndarray):
        self._blob, self._offsets, self._rows = blob, offsets, rows
        self._n = len(rows)

    @staticmethod
    def key(title: str) -> bytes:
        return normalize_title(title).encode("utf-8", "surrogatepass")

    @classmethod
    def build(cls, keys: list[bytes] | pa.Array | pa.ChunkedArray,
              titles: list[str] | pa.Array | pa.ChunkedArray | None = None) -> _TitleKeys:
        """From every row's key; ``titles`` orders rows sharing a key when the rows are not sorted by title.

        Arrow sorts (stably, bytewise: the order of Python's ``bytes`` and, for valid
        UTF-8, of ``str``), so no Python object is made per row at millions of rows.
        """
        if isinstance(keys, list):
            keys = pa.array(keys, pa.large_binary())
        elif isinstance(keys, pa.ChunkedArray):
            keys = keys.combine_chunks()
        keys = keys.cast(pa.large_binary())
        columns, sort_keys = {"key": keys}, [("key", "ascending")]
        if titles is not None:  # a stable sort by (key, title): equal titles keep their file order
            columns["title"] = pa.array(titles, pa.string()) if isinstance(titles, list) else titles
            sort_keys.append(("title", "ascending"))
        order = pc.sort_indices(pa.table(columns), sort_keys=sort_keys)
        ordered = keys.take(order)
        n = len(ordered)
        first = np.ones(n, dtype=bool)
        if n > 1:
            first[1:] = pc.not_equal(ordered.slice(1), ordered.slice(0, n - 1)).to_numpy(zero_copy_only=False)
        if not n:
            return cls(b"", np.zeros(1, dtype=np.int64), np.zeros(0, dtype=np.int64))
        unique = ordered.filter(pa.array(first))
        rows = order.to_numpy(zero_copy_only=False)[first].astype(np.int64)
        _, offsets_buffer, data = unique.buffers()
        offsets = np.frombuffer(offsets_buffer, dtype=np.int64)[unique.offset:unique.offset + len(unique) + 1]
        blob = data.to_pybytes()[offsets[0]:offsets[-1]] if data is not None else b""
        return cls(blob, offsets - offsets[0], rows)

    @classmethod
    def of_titles(cls, titles: list[str]) -> _TitleKeys:
        in_order = all(a <= b for a, b in itertools.pairwise(titles))
        return cls.build([cls.key(t) for t in titles], None if in_order else titles)

    def save(self, out_dir: Path) -> None:
        (out_dir / KEYS_FILE).write_bytes(self._blob)
        np.save(out_dir / KEY_OFFSETS_FILE, self._offsets)
        np.save(out_dir / KEY_ROWS_FILE, self._rows)

    @classmethod
    def load(cls, index_dir: Path) -> _TitleKeys:
        with open(index_dir / KEYS_FILE, "rb") as fh:
            blob = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) if os.fstat(fh.fileno()).st_size else b""
        return cls(blob, _load_npy(index_dir / KEY_OFFSETS_FILE), _load_npy(index_dir / KEY_ROWS_FILE))

    def find(self, key: str) -> int | None:
        target = key.encode("utf-8", "surrogatepass")
        blob, offsets = self._blob, self._offsets
        lo, hi = 0, self._n
        while lo < hi:
            mid = (lo + hi) // 2
            if blob[offsets[mid]:offsets[mid + 1]] < target:
                lo = mid + 1
            else:
                hi = mid
        if lo < self._n and blob[offsets[lo]:offsets[lo + 1]] == target:
            return int(self._rows[lo])
        return None


# --------------------------------------------------------------------------- index directory


def build_index(corpus_parquet: str | Path, index_dir: str | Path) -> None:
    """Build the index of a corpus into ``index_dir``, recording the corpus it belongs to.

    One streaming pass over the corpus file writes the pages (Arrow IPC), the title
    keys and the BM25 index, so the build never holds the corpus as Python objects.
    Written into a temporary sibling directory and renamed into place, so a crash
    never leaves a partial index under the final name.
    """
    corpus_parquet = Path(corpus_parquet)
    file_sha256 = sha256_file(corpus_parquet) if corpus_parquet.exists() else None
    digest = hashlib.sha256()
    keys: list[pa.Array] = []  # a batch's keys each: no Python object per row is kept
    n_docs = 0
    in_order, last_title = True, None
    with atomic_dir(index_dir) as tmp:
        spill = tmp / "postings.tmp"
        spill.mkdir()
        builder = _BM25Builder(spill)
        schema = pa.schema([CORPUS_SCHEMA.field(name) for name in CORPUS_SCHEMA.names])
        with pa.OSFile(str(tmp / PAGES_FILE), "wb") as sink, pa.ipc.new_file(sink, schema) as pages:
            for batch in iter_corpus_batches(corpus_parquet):
                pages.write_batch(pa.RecordBatch.from_arrays(batch.columns, schema=schema))
                titles, sentences = batch.column(0).to_pylist(), batch.column(1).to_pylist()
                hash_rows(digest, titles, sentences)
                builder.add(_document_texts(titles, sentences))
                keys.append(pa.array(map(_TitleKeys.key, titles), pa.large_binary(), size=len(titles)))
                n_docs += len(titles)
                if titles:
                    in_order = in_order and (last_title is None or last_title <= titles[0]) and all(
                        a <= b for a, b in itertools.pairwise(titles))
                    last_title = titles[-1]
                if n_docs // PROGRESS_ROWS != (n_docs - len(titles)) // PROGRESS_ROWS:
                    log.info("read %d titles", n_docs)
        # Rows not sorted by title (other sources than the splits): titles order the rows that share a key.
        titles = None if in_order else pq.read_table(corpus_parquet, columns=["title"]).column(0)
        title_keys = _TitleKeys.build(pa.chunked_array(keys, pa.large_binary()), titles)
        title_keys.save(tmp)
        n_keys = len(title_keys._rows)
        del keys, titles, title_keys
        log.info("title keys written; placing %d postings", builder.n_postings)
        bm25 = builder.finish(tmp)
        spill.rmdir()
        meta = {"format": INDEX_FORMAT, "corpus_sha256": digest.hexdigest(), "corpus_file_sha256": file_sha256,
                "n_docs": n_docs, "n_title_keys": n_keys, "n_tokens": builder.n_tokens, "n_terms": len(builder.vocab),
                "n_postings": len(bm25.data), "bm25s": bm25s.__version__}
        (tmp / INDEX_META).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    log.info("index of %d titles (%d terms, %d postings) -> %s", n_docs, meta["n_terms"], meta["n_postings"],
             index_dir)


def _read_meta(index_dir: Path) -> dict[str, Any]:
    meta_path = index_dir / INDEX_META
    if not meta_path.exists():
        raise DataFileError(f"{index_dir}: not a corpus index (no {INDEX_META}); run build_index")
    try:
        return json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DataFileError(f"{meta_path}: unreadable index metadata ({exc}); run build_index") from exc


def _check_meta(index_dir: Path, meta: dict[str, Any], sha256: str, n_docs: int) -> None:
    """Refuse an index built from another corpus."""
    if meta.get("corpus_sha256") != sha256 or meta.get("n_docs") != n_docs:
        raise DataFileError(
            f"{index_dir}: index was built from corpus sha256 {meta.get('corpus_sha256')} "
            f"({meta.get('n_docs')} titles), but the corpus given has sha256 {sha256} "
            f"({n_docs} titles); rebuild the index for this corpus"
        )


def _num_rows(corpus_parquet: Path) -> int:
    if not corpus_parquet.exists():
        raise DataFileError(f"{corpus_parquet}: file not found")
    try:
        return pq.ParquetFile(corpus_parquet).metadata.num_rows
    except (pa.ArrowInvalid, OSError) as exc:
        raise DataFileError(f"{corpus_parquet}: not a readable Parquet file ({exc})") from exc


def _open_pages(path: Path) -> pa.Table:
    try:
        return pa.ipc.open_file(pa.memory_map(str(path), "r")).read_all()
    except (pa.ArrowInvalid, OSError) as exc:
        raise DataFileError(f"{path}: unreadable pages file ({exc}); run build_index") from exc


# --------------------------------------------------------------------------- Corpus


class Corpus:
    """Pages (title, sentences), exact-title keys and a BM25 index, rows in the corpus file's order.

    Loaded from an index directory, all three are memory-mapped: loading is quick and
    takes little memory whatever the corpus size, and processes share the pages.
    ``page`` and ``similar`` may be called from several threads.
    """

    def __init__(self, pages: pa.Table, keys: _TitleKeys, bm25: _BM25, sha256: str):
        self._titles = pages.column("title")
        self._sentences = pages.column("sentences")
        self._keys = keys
        self._bm25 = bm25
        self.sha256 = sha256

    @classmethod
    def load(cls, corpus_parquet: str | Path, index_dir: str | Path) -> Corpus:
        corpus_parquet, index_dir = Path(corpus_parquet), Path(index_dir)
        meta = _read_meta(index_dir)
        n_docs = _num_rows(corpus_parquet)
        if meta.get("format") == INDEX_FORMAT:
            # The file the index was built from, byte for byte, has the content hash recorded with it.
            same_file = meta.get("corpus_file_sha256") == sha256_file(corpus_parquet)
            sha256 = meta["corpus_sha256"] if same_file else corpus_sha256(corpus_parquet)
            _check_meta(index_dir, meta, sha256, n_docs)
            pages, keys = _open_pages(index_dir / PAGES_FILE), _TitleKeys.load(index_dir)
            if pages.num_rows != n_docs:
                raise DataFileError(f"{index_dir}: {PAGES_FILE} has {pages.num_rows} rows, not {n_docs}; "
                                    "rebuild the index for this corpus")
        elif "format" in meta:
            raise DataFileError(f"{index_dir}: index format {meta['format']} is not {INDEX_FORMAT}; "
                                "rebuild the index for this corpus")
        else:  # built before INDEX_FORMAT 2 (the BM25 files only): pages and keys are made in memory
            pages = read_parquet(corpus_parquet, CORPUS_SCHEMA)
            titles = pages.column("title").to_pylist()
            sha256 = rows_sha256(titles, pages.column("sentences").to_pylist())
            _check_meta(index_dir, meta, sha256, n_docs)
            keys = _TitleKeys.of_titles(titles)
        return cls(pages, keys, _BM25.load(index_dir), sha256)

    @classmethod
    def from_paragraphs(cls, paragraphs: dict[str, list[str]]) -> Corpus:
        """An in-memory corpus and index (tests, oracle teachers)."""
        titles = sorted(paragraphs)
        sentences = [list(paragraphs[t]) for t in titles]
        builder = _BM25Builder()
        builder.add(_document_texts(titles, sentences))
        pages = pa.table({"title": titles, "sentences": sentences}, schema=CORPUS_SCHEMA)
        return cls(pages, _TitleKeys.of_titles(titles), builder.finish(), rows_sha256(titles, sentences))

    def __len__(self) -> int:
        return len(self._titles)

    def title(self, row: int) -> str:
        return self._titles[row].as_py()

    def page(self, title: str) -> list[str] | None:
        """The raw sentences of the page whose normalised title equals ``title``'s, or None."""
        row = self._keys.find(normalize_title(title))
        return None if row is None else self._sentences[row].as_py()

    def similar(self, query: str, k: int = N_SIMILAR) -> list[str]:
        """Titles of the ``k`` best BM25 matches (score > 0), ties broken by row order.

        A title with several rows (passages) is listed once, at its best row: Wikipedia's
        search lists pages. With unique titles these are simply the k best rows.
        """
        terms = self._bm25.term_ids(query)
        if not terms or k <= 0:
            return []
        return [self.title(row) for row in self._bm25.top(terms, k, distinct=self.title).tolist()]
