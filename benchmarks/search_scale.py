"""Search at Wikipedia scale: build and query the offline Wikipedia over a synthetic corpus.

Generates a corpus of ``--n-paragraphs`` paragraphs (default 5 million, about the
size of the HotPotQA full-wiki abstracts) shaped like the project's real corpus,
builds its index with the project's own ``react.search.index.build_index`` and measures,
through the public API the agent uses (``WikiEnv.step``, ``Corpus.page``,
``Corpus.similar``):

* index build time, disk size (corpus Parquet, index directory) and peak memory;
* Corpus.load time and the peak memory of loading and querying;
* latency p50/p99/mean/max of exact-title Search hits, Search misses answered with
  the "Similar" BM25 fallback, and Lookup on a loaded page (``--queries`` each).

Each phase (generate, build, queries, measure) runs in its own subprocess so that
its peak resident memory (VmHWM) is its own. Prints a table and writes JSON with the
machine's facts to ``benchmarks/results/search_scale-<n>.json``.

The synthetic corpus mimics the real one (``results/data/wiki/distractor.parquet``
if built, else the contexts of ``resources/hotpotqa/*_distractor.jsonl.gz``):
measured distributions of title length, parenthesised disambiguators ("X (film)"),
sentences per paragraph and words per sentence; the real word-frequency ranking for
the 10,000 most frequent words, continued by a power-law tail of pseudo-words
(exponent and size chosen so that the vocabulary growth matches the real corpus's:
``TAIL_EXPONENT``, ``VOCABULARY``); words repeated within a paragraph as in real
text (``BURST``); the first sentence starting with the title. Title words are drawn
log-uniformly over the vocabulary in use (the real titles' words are), so at scale
most titles name rare entities. Deterministic for a given seed and profile source.

    .venv/bin/python benchmarks/search_scale.py --n-paragraphs 100000   # a quick try
    .venv/bin/python benchmarks/search_scale.py                         # 5 million
"""

from __future__ import annotations

import argparse
import datetime as dt
import gzip
import hashlib
import importlib.metadata
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT / "src"))

from react.io import PROVENANCE_KEY, atomic_path, read_parquet, read_provenance  # noqa: E402
from react.schemas import CORPUS_SCHEMA  # noqa: E402

GENERATOR_VERSION = 1
REAL_CORPUS = PROJECT / "results/data/wiki/distractor.parquet"
REAL_CONTEXTS = [PROJECT / "resources/hotpotqa/dev_distractor.jsonl.gz",
                 PROJECT / "resources/hotpotqa/train_distractor.jsonl.gz"]
HEAD_WORDS = 10_000  # ranks taken from the real word counts
TAIL_EXPONENT = 1.7  # power law of the pseudo-word tail, continuing the head at rank HEAD_WORDS
VOCABULARY = 4_000_000  # ranks in all: about 2 million distinct words in 5 million paragraphs
BURST = 0.3  # chance that a word repeats an earlier word of its paragraph
TITLE_HEAD_SHARE = 0.1  # title words from the 50 most frequent words ("of", "the", "in", ...)
TITLE_MIN_RANK = 30  # the others log-uniform over [TITLE_MIN_RANK, words in use]
GEN_BATCH = 50_000
WORD_RE = re.compile(r"(?u)\b\w\w+\b")
PAREN_RE = re.compile(r"^(.*\S) \(([^()]+)\)$")
CONSONANTS, VOWELS = "bcdfghjklmnprstvwxz", "aiou"  # pseudo-words end in a vowel other than e: stems stay whole
SYLLABLES = [c + v for c in CONSONANTS for v in VOWELS]


# --------------------------------------------------------------------------- machine facts and memory


def proc_status() -> dict[str, int]:
    """VmHWM (peak resident), VmRSS, RssAnon, RssFile of this process, in bytes."""
    out = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmHWM", "VmRSS", "RssAnon", "RssFile"):
            out[key] = int(value.split()[0]) * 1024
    return out


def machine() -> dict[str, Any]:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    mem = next(int(line.split()[1]) * 1024 for line in Path("/proc/meminfo").read_text().splitlines()
               if line.startswith("MemTotal"))
    versions = {}
    for dist in ("numpy", "pyarrow", "bm25s", "PyStemmer", "numba"):
        try:
            versions[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            versions[dist] = None
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=PROJECT, capture_output=True, text=True).stdout.strip()
        dirty = bool(subprocess.run(["git", "status", "--porcelain", "--", "src/react/search"], cwd=PROJECT,
                                    capture_output=True, text=True).stdout.strip())
    except OSError:
        commit, dirty = None, None
    return {"cpu": cpu, "cores": os.cpu_count(), "cores_usable": len(os.sched_getaffinity(0)), "ram_bytes": mem,
            "python": platform.python_version(), "platform": platform.platform(), "versions": versions,
            "git_commit": commit, "react_wiki_modified": dirty,
            "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}


def loadavg() -> list[float]:
    return list(os.getloadavg())


# --------------------------------------------------------------------------- the real corpus's shape


def real_paragraphs() -> tuple[str, list[tuple[str, list[str]]]]:
    if REAL_CORPUS.exists():
        table = read_parquet(REAL_CORPUS, CORPUS_SCHEMA)
        return str(REAL_CORPUS.relative_to(PROJECT)), list(zip(table.column("title").to_pylist(),
                                                                table.column("sentences").to_pylist(), strict=True))
    seen: dict[str, list[str]] = {}
    for path in REAL_CONTEXTS:
        with gzip.open(path, "rt", encoding="utf-8") as fh:
            for line in fh:
                for title, sentences in json.loads(line)["context"]:
                    seen.setdefault(title, sentences)
    return "+".join(str(p.relative_to(PROJECT)) for p in REAL_CONTEXTS), sorted(seen.items())


def hist(values: list[int]) -> dict[str, list]:
    counts = Counter(values)
    keys = sorted(counts)
    return {"values": keys, "counts": [counts[k] for k in keys]}


def measure_profile() -> dict[str, Any]:
    """The distributions the generator mimics, measured on the real corpus."""
    source, paragraphs = real_paragraphs()
    words: Counter[str] = Counter()
    title_words, n_sentences, sentence_words, suffixes, sentence_chars = [], [], [], Counter(), []
    for title, sentences in paragraphs:
        m = PAREN_RE.match(title)
        if m:
            suffixes[m.group(2)] += 1
        title_words.append(len((m.group(1) if m else title).split()))
        n_sentences.append(len(sentences))
        for s in sentences:
            sentence_words.append(len(s.split()))
            sentence_chars.append(len(s))
            words.update(WORD_RE.findall(s.lower()))
    top = words.most_common(HEAD_WORDS)
    digest = hashlib.sha256(json.dumps(paragraphs[:1000]).encode()).hexdigest()[:16]
    return {
        "source": source, "source_sample_sha256": digest, "n_paragraphs": len(paragraphs),
        "title_words": hist(title_words), "paren_share": sum(suffixes.values()) / len(paragraphs),
        "suffixes": dict(suffixes.most_common(200)), "n_sentences": hist(n_sentences),
        "sentence_words": hist(sentence_words), "n_tokens": sum(words.values()), "n_words": len(words),
        "head_words": [w for w, _ in top], "head_counts": [c for _, c in top],
        "mean_sentences": float(np.mean(n_sentences)), "mean_sentence_chars": float(np.mean(sentence_chars)),
        "mean_title_words": float(np.mean(title_words)),
    }


def profile_summary(profile: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in profile.items() if k not in ("head_words", "head_counts", "suffixes")}


# --------------------------------------------------------------------------- the synthetic corpus


class Vocabulary:
    """Word ranks: the real head, then pseudo-words; sampling as the measured head plus a power-law tail."""

    def __init__(self, profile: dict[str, Any], size: int = VOCABULARY):
        head = profile["head_words"]
        self.n_head = len(head)
        self.size = max(size, self.n_head + 1)
        self.words = head + [self.pseudo(r) for r in range(self.size - self.n_head)]
        counts = np.asarray(profile["head_counts"], dtype=np.float64)
        head_p = counts / profile["n_tokens"]
        ranks = np.arange(self.n_head + 1, self.size + 1, dtype=np.float64)
        tail_p = head_p[-1] * (ranks / self.n_head) ** -TAIL_EXPONENT
        total = head_p.sum() + tail_p.sum()
        self.p = np.concatenate([head_p, tail_p]) / total  # for expected-vocabulary estimates
        self.head_cdf = np.cumsum(head_p / head_p.sum())
        self.p_head = head_p.sum() / total
        lower = [(" " + w).encode() for w in self.words]
        upper = [(" " + w[:1].upper() + w[1:]).encode() for w in self.words]
        pieces = lower + upper + [b"."]  # entry ids: word, capitalised word (+size), full stop (2 size)
        self.lengths = np.fromiter(map(len, pieces), dtype=np.int64, count=len(pieces))
        self.starts = np.zeros(len(pieces), dtype=np.int64)
        np.cumsum(self.lengths[:-1], out=self.starts[1:])
        self.blob = np.frombuffer(b"".join(pieces), dtype=np.uint8)
        self.capitalised = [p.decode()[1:] for p in upper]
        self.full_stop = 2 * self.size

    @staticmethod
    def pseudo(r: int) -> str:
        syllables = []
        while True:
            r, d = divmod(r, len(SYLLABLES))
            syllables.append(SYLLABLES[d])
            if r == 0 and len(syllables) >= 3:
                return "".join(syllables)

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        u = rng.random(n)
        out = np.empty(n, dtype=np.int64)
        head = u < self.p_head
        n_head = int(head.sum())
        out[head] = np.searchsorted(self.head_cdf, rng.random(n_head) * self.head_cdf[-1], side="right")
        # Tail: inverse CDF of the continuous power law on [n_head, size).
        w = rng.random(n - n_head)
        a = 1 - TAIL_EXPONENT
        r = self.n_head * (1 - w * (1 - (self.size / self.n_head) ** a)) ** (1 / a)
        out[~head] = np.clip(r.astype(np.int64), self.n_head, self.size - 1)
        return np.minimum(out, self.size - 1)

    def expected_distinct(self, n_tokens: float) -> int:
        return int(np.sum(-np.expm1(-n_tokens * self.p)))


def from_hist(rng: np.random.Generator, h: dict[str, list], n: int) -> np.ndarray:
    values = np.asarray(h["values"], dtype=np.int64)
    p = np.asarray(h["counts"], dtype=np.float64)
    return values[rng.choice(len(values), size=n, p=p / p.sum())]


def ragged_arange(lengths: np.ndarray) -> np.ndarray:
    """concatenate([arange(n) for n in lengths])"""
    total = int(lengths.sum())
    starts = np.cumsum(lengths) - lengths
    return np.arange(total, dtype=np.int64) - np.repeat(starts, lengths)


def make_titles(rng: np.random.Generator, vocab: Vocabulary, profile: dict[str, Any], n: int,
                words_in_use: int) -> tuple[list[str], list[np.ndarray]]:
    """``n`` distinct titles, sorted as build_corpus sorts them, with the word ranks of each title's base."""
    suffixes = list(profile["suffixes"])
    suffix_p = np.asarray(list(profile["suffixes"].values()), dtype=np.float64)
    suffix_p /= suffix_p.sum()
    titles: dict[str, np.ndarray] = {}
    top = min(50, vocab.n_head)
    hi = max(words_in_use, TITLE_MIN_RANK + 1)
    while len(titles) < n:
        m = int((n - len(titles)) * 1.1) + 100
        k = from_hist(rng, profile["title_words"], m)
        total = int(k.sum())
        ranks = np.where(
            rng.random(total) < TITLE_HEAD_SHARE,
            np.searchsorted(vocab.head_cdf[:top] / vocab.head_cdf[top - 1], rng.random(total), side="right"),
            (TITLE_MIN_RANK * (hi / TITLE_MIN_RANK) ** rng.random(total)).astype(np.int64),
        )
        ranks = np.minimum(ranks, vocab.size - 1)
        paren = rng.random(m) < profile["paren_share"]
        suffix = rng.choice(len(suffixes), size=m, p=suffix_p)
        cap = vocab.capitalised
        ends = np.cumsum(k)
        for i in range(m):
            base = ranks[ends[i] - k[i]:ends[i]]
            title = " ".join([cap[r] for r in base])
            if paren[i]:
                title = f"{title} ({suffixes[suffix[i]]})"
            titles.setdefault(title, base)
            if len(titles) == n:
                break
    ordered = sorted(titles)
    return ordered, [titles[t] for t in ordered]


def make_batch(rng: np.random.Generator, vocab: Vocabulary, profile: dict[str, Any], titles: list[str],
               title_ranks: list[np.ndarray]) -> pa.RecordBatch:
    """The paragraphs of ``titles``: Arrow string buffers assembled in NumPy, no Python string per sentence."""
    n = len(titles)
    n_sent = from_hist(rng, profile["n_sentences"], n)
    n_sent = np.maximum(n_sent, 1)
    n_total = int(n_sent.sum())
    para_of = np.repeat(np.arange(n), n_sent)
    first = np.zeros(n_total, dtype=bool)
    first[np.cumsum(n_sent) - n_sent] = True
    k = np.fromiter(map(len, title_ranks), dtype=np.int64, count=n)
    words = from_hist(rng, profile["sentence_words"], n_total)
    words[first] = np.maximum(words[first] - k, 2)  # the first sentence starts with the title
    # Generic words, with repeats of earlier words of the same paragraph (burstiness).
    generic = vocab.sample(rng, int(words.sum()))
    para_of_word = np.repeat(para_of, words)
    para_words = np.bincount(para_of_word, minlength=n)
    pos = ragged_arange(para_words)  # position within the paragraph's generic words
    para_start = np.cumsum(para_words) - para_words
    repeat = (rng.random(len(generic)) < BURST) & (pos > 0)
    source = para_start[para_of_word[repeat]] + (rng.random(int(repeat.sum())) * pos[repeat]).astype(np.int64)
    generic[repeat] = generic[source]
    # Entries per sentence: [capitalised title words if first] + generic words + full stop.
    title_k = np.where(first, k[para_of], 0)
    n_entries = title_k + words + 1
    sent_start = np.cumsum(n_entries) - n_entries
    entries = np.empty(int(n_entries.sum()), dtype=np.int64)
    entries[sent_start + n_entries - 1] = vocab.full_stop
    generic_pos = np.repeat(sent_start + title_k, words) + ragged_arange(words)
    entries[generic_pos] = generic
    title_flat = np.concatenate(title_ranks) if n else np.zeros(0, np.int64)
    first_starts = sent_start[first]
    entries[np.repeat(first_starts, k) + ragged_arange(k)] = title_flat + vocab.size
    # Bytes: each entry is " word"; a paragraph's first entry drops its space.
    starts, lengths = vocab.starts[entries].copy(), vocab.lengths[entries].copy()
    starts[first_starts] += 1
    lengths[first_starts] -= 1
    out_start = np.cumsum(lengths) - lengths
    chars = vocab.blob[np.repeat(starts - out_start, lengths) + np.arange(int(lengths.sum()), dtype=np.int64)]
    sentence_bytes = np.add.reduceat(lengths, sent_start) if n_total else np.zeros(0, np.int64)
    offsets = np.zeros(n_total + 1, dtype=np.int32)
    np.cumsum(sentence_bytes, out=offsets[1:])
    strings = pa.StringArray.from_buffers(n_total, pa.py_buffer(offsets), pa.py_buffer(chars.tobytes()))
    list_offsets = np.zeros(n + 1, dtype=np.int32)
    np.cumsum(n_sent, out=list_offsets[1:])
    sentences = pa.ListArray.from_arrays(pa.array(list_offsets), strings)
    return pa.RecordBatch.from_arrays([pa.array(titles, pa.string()), sentences], schema=CORPUS_SCHEMA)


def generator_params(n: int, seed: int, profile: dict[str, Any]) -> dict[str, Any]:
    return {"generator": "benchmarks/search_scale.py", "generator_version": GENERATOR_VERSION, "n_paragraphs": n,
            "seed": seed, "profile": profile_summary(profile), "vocabulary": VOCABULARY, "head_words": HEAD_WORDS,
            "tail_exponent": TAIL_EXPONENT, "burst": BURST, "title_head_share": TITLE_HEAD_SHARE,
            "title_min_rank": TITLE_MIN_RANK}


def generate(out: Path, n: int, seed: int, profile: dict[str, Any]) -> dict[str, Any]:
    t0 = time.perf_counter()
    vocab = Vocabulary(profile)
    tokens_per_doc = profile["n_tokens"] / profile["n_paragraphs"]
    in_use = vocab.expected_distinct(n * tokens_per_doc)
    titles, ranks = make_titles(np.random.default_rng([seed, 0]), vocab, profile, n, in_use)
    t_titles = time.perf_counter() - t0
    provenance = {**generator_params(n, seed, profile), "title_words_in_use": in_use}
    schema = CORPUS_SCHEMA.with_metadata({PROVENANCE_KEY: json.dumps(provenance, sort_keys=True).encode()})
    with atomic_path(out) as tmp, pq.ParquetWriter(tmp, schema, compression="zstd") as writer:
        for b, lo in enumerate(range(0, n, GEN_BATCH)):
            hi = min(lo + GEN_BATCH, n)
            batch = make_batch(np.random.default_rng([seed, 1, b]), vocab, profile, titles[lo:hi], ranks[lo:hi])
            writer.write_batch(batch)
    return {"generate_s": time.perf_counter() - t0, "titles_s": t_titles, "title_words_in_use": in_use}


# --------------------------------------------------------------------------- queries


def make_queries(corpus: Path, n: int, seed: int) -> dict[str, list[str]]:
    """Exact-title Searches (some re-spaced or re-cased), misses for the Similar fallback, Lookup pages."""
    from react.search.index import normalize_title

    titles = pq.read_table(corpus, columns=["title"]).column("title").to_pylist()
    keys = {normalize_title(t) for t in titles}
    rng = np.random.default_rng([seed, 2])

    def pick() -> str:
        return titles[int(rng.integers(len(titles)))]

    exact = []
    for _ in range(n):
        t, r = pick(), rng.random()
        if r < 0.15:
            t = t.lower()
        elif r < 0.25:
            t = t.upper()
        elif r < 0.4:
            t = "  " + t.replace(" ", "  ") + " "
        elif r < 0.5:
            t = t.replace(" ", "\u00a0", 1)
        exact.append(t)
    similar = []
    kinds = Counter()
    while len(similar) < n:
        t, r = pick(), rng.random()
        m = PAREN_RE.match(t)
        base = m.group(1) if m else t
        ws = base.split()
        if r < 0.35:  # a word of the title changed
            kind = "word changed"
            other = pick()
            others = (PAREN_RE.match(other).group(1) if PAREN_RE.match(other) else other).split()
            ws[int(rng.integers(len(ws)))] = others[int(rng.integers(len(others)))]
            q = " ".join(ws) + (f" ({m.group(2)})" if m and rng.random() < 0.5 else "")
        elif r < 0.7:  # partial: without the disambiguator, or a word short
            kind = "partial"
            if m:
                q = base
            elif len(ws) > 1:
                q = " ".join(ws[:-1] if rng.random() < 0.7 else ws[1:])
            else:
                continue
        elif r < 0.85:  # two entities mixed ("Adam Powell")
            kind = "mixed"
            other = pick().split()
            q = " ".join([ws[0], other[-1]]) if len(other) > 0 else ws[0]
        else:  # a letter mistyped
            kind = "typo"
            i = int(rng.integers(len(ws)))
            w = ws[i]
            if len(w) < 4:
                continue
            j = int(rng.integers(1, len(w)))
            ws[i] = w[:j] + "aeiourst"[int(rng.integers(8))] + w[j + 1:]
            q = " ".join(ws)
        if normalize_title(q) in keys or not q.strip():
            continue
        similar.append(q)
        kinds[kind] += 1
    lookup = [pick() for _ in range(n)]
    return {"exact": exact, "similar": similar, "lookup": lookup, "similar_kinds": dict(kinds)}


# --------------------------------------------------------------------------- phases (each in a subprocess)


def stats_ns(samples: list[int]) -> dict[str, float]:
    a = np.asarray(samples, dtype=np.float64) / 1e6
    return {"n": len(a), "p50_ms": float(np.percentile(a, 50)), "p90_ms": float(np.percentile(a, 90)),
            "p99_ms": float(np.percentile(a, 99)), "mean_ms": float(a.mean()), "max_ms": float(a.max()),
            "first_ms": float(a[0])}


def phase_generate(args: argparse.Namespace) -> dict[str, Any]:
    profile = json.loads(Path(args.profile).read_text())
    return generate(Path(args.corpus), args.n_paragraphs, args.seed, profile)


def phase_build(args: argparse.Namespace) -> dict[str, Any]:
    import logging

    from react.search.index import build_index

    events = []

    class Recorder(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            events.append([round(time.perf_counter() - t0, 2), record.getMessage()])

    logging.getLogger("react.search.index").addHandler(Recorder())
    logging.getLogger("react.search.index").setLevel(logging.INFO)
    t0 = time.perf_counter()
    build_index(args.corpus, args.index)
    return {"build_s": time.perf_counter() - t0, "log": events}


def phase_queries(args: argparse.Namespace) -> dict[str, Any]:
    t0 = time.perf_counter()
    queries = make_queries(Path(args.corpus), args.queries, args.seed)
    Path(args.queries_file).write_text(json.dumps(queries, ensure_ascii=False))
    return {"queries_s": time.perf_counter() - t0, "similar_kinds": queries["similar_kinds"]}


def phase_measure(args: argparse.Namespace) -> dict[str, Any]:
    from react.environment.offline import WikiEnv
    from react.search.index import Corpus

    queries = json.loads(Path(args.queries_file).read_text())
    before = proc_status()
    t0 = time.perf_counter()
    corpus = Corpus.load(args.corpus, args.index)
    load_s = time.perf_counter() - t0
    after_load = proc_status()
    env = WikiEnv(corpus, "lenient")  # the observations these timings were first measured with
    clock = time.perf_counter_ns
    out: dict[str, Any] = {"load_s": load_s, "rss_before_load": before, "rss_after_load": after_load}

    times, misses = [], 0
    for q in queries["exact"]:
        t = clock()
        obs = env.step(f"Search[{q}]").observation
        times.append(clock() - t)
        misses += obs.startswith("Could not find")
    out["search_exact"] = {**stats_ns(times), "not_found": misses}

    times, found, n_titles, n_empty = [], 0, [], 0
    for q in queries["similar"]:
        t = clock()
        obs = env.step(f"Search[{q}]").observation
        times.append(clock() - t)
        found += not obs.startswith("Could not find")
        n_listed = obs.count("', '") + obs.count("', \"") + obs.count("\", '") + obs.count('", "') + 1
        n_empty += obs.endswith("Similar: [].")
        n_titles.append(0 if obs.endswith("Similar: [].") else n_listed)
    out["search_similar"] = {**stats_ns(times), "found": found, "empty_similar": n_empty,
                             "mean_titles_listed": float(np.mean(n_titles))}

    # Work per Similar query: postings read (the sum of its terms' document frequencies).
    bm25 = corpus._bm25
    work = []
    for q in queries["similar"]:
        terms = bm25.term_ids(q)
        work.append(int(sum(int(bm25.indptr[t + 1] - bm25.indptr[t]) for t in terms)))
    out["similar_postings_read"] = {p: float(np.percentile(work, q)) for p, q in
                                    (("p50", 50), ("p90", 90), ("p99", 99), ("max", 100))}

    times_page, times_similar = [], []
    for q in queries["exact"]:
        t = clock()
        corpus.page(q)
        times_page.append(clock() - t)
    for q in queries["similar"]:
        t = clock()
        corpus.similar(q)
        times_similar.append(clock() - t)
    out["corpus_page"] = stats_ns(times_page)
    out["corpus_similar"] = stats_ns(times_similar)

    rng = np.random.default_rng([args.seed, 3])
    times, hits = [], 0
    for title in queries["lookup"]:
        env.reset()
        env.step(f"Search[{title}]")
        words = [w for s in env.sentences or () for w in WORD_RE.findall(s)]
        keyword = words[int(rng.integers(len(words)))] if words and rng.random() < 0.7 else "zzqx"
        t = clock()
        obs = env.step(f"Lookup[{keyword}]").observation
        times.append(clock() - t)
        hits += obs.startswith("(Result")
    out["lookup"] = {**stats_ns(times), "with_result": hits}
    out["rss_end"] = proc_status()
    return out


# --------------------------------------------------------------------------- the designs compared (--compare-designs)

LEGACY_COMMIT = "996c7a453f74aa0213671586e97bf07b6d4ba5d2"  # react/wiki.py before the scale work
LEGACY_MAX_PARAGRAPHS = 1_000_000  # its build needs about 5.5 GiB per million paragraphs


def legacy_wiki() -> Any:
    """react/wiki.py as it was at LEGACY_COMMIT: bm25s's own index, Python lists, a dict of titles."""
    import types

    source = subprocess.run(["git", "show", f"{LEGACY_COMMIT}:react/wiki.py"], cwd=PROJECT, check=True,
                            capture_output=True, text=True).stdout
    module = types.ModuleType("legacy_wiki")
    sys.modules["legacy_wiki"] = module
    exec(compile(source, "legacy_wiki.py", "exec"), module.__dict__)
    return module


def time_calls(fn: Any, items: list[str]) -> tuple[dict[str, float], list[Any]]:
    clock, times, out = time.perf_counter_ns, [], []
    for item in items:
        t = clock()
        out.append(fn(item))
        times.append(clock() - t)
    return stats_ns(times), out


def design_queries(args: argparse.Namespace) -> dict[str, list[str]]:
    queries = json.loads(Path(args.queries_file).read_text())
    return {kind: queries[kind][:args.design_queries] for kind in ("exact", "similar")}


def phase_legacy_build(args: argparse.Namespace) -> dict[str, Any]:
    t0 = time.perf_counter()
    legacy_wiki().build_index(args.corpus, args.index + ".legacy")
    return {"build_s": time.perf_counter() - t0, "index_bytes": sum(dir_size(Path(args.index + ".legacy")).values())}


def phase_legacy_measure(args: argparse.Namespace) -> dict[str, Any]:
    wiki, queries = legacy_wiki(), design_queries(args)
    t0 = time.perf_counter()
    corpus = wiki.Corpus.load(args.corpus, args.index + ".legacy")
    out = {"load_s": time.perf_counter() - t0, "rss_after_load": proc_status()}
    out["corpus_page"], _ = time_calls(corpus.page, queries["exact"])
    out["corpus_similar"], similar = time_calls(corpus.similar, queries["similar"])
    out["peak_rss_legacy_bytes"] = proc_status()["VmHWM"]
    from react.search.index import Corpus

    new = Corpus.load(args.corpus, args.index)
    out["differs_from_new"] = sum(new.similar(q) != s for q, s in zip(queries["similar"], similar, strict=True))
    return out


def phase_bm25s_retrieve(args: argparse.Namespace) -> dict[str, Any]:
    """bm25s's own top-k (retrieve, numpy and numba backends) over the same index files."""
    import bm25s

    from react.search.index import Corpus, _query_terms, _stemmer

    stemmer = _stemmer()
    corpus = Corpus.load(args.corpus, args.index)
    out: dict[str, Any] = {}
    for backend in ("numpy", "numba"):
        # The numpy backend scores every document per query (0.4 s at 5 million): 200 queries of it suffice.
        queries = design_queries(args)["similar"][:200 if backend == "numpy" else None]
        t0 = time.perf_counter()
        retriever = bm25s.BM25.load(args.index, mmap=True, backend=backend)
        load_s = time.perf_counter() - t0
        vocab = retriever.vocab_dict

        def top(q: str, retriever: Any = retriever, vocab: dict = vocab) -> list[str]:
            ids = [vocab[t] for t in _query_terms(q, stemmer) if t in vocab]
            if not ids:
                return []
            docs, scores = retriever.retrieve([ids], k=5, show_progress=False, n_threads=1)
            return [corpus.title(int(d)) for d, s in zip(docs[0], scores[0], strict=True) if s > 0]

        top(queries[0])  # numba compiles on the first call
        stats, results = time_calls(top, queries)
        out[backend] = {"load_s": load_s, "corpus_similar": stats, "queries": len(queries),
                        "differs_from_new": sum(corpus.similar(q) != r for q, r in zip(queries, results, strict=True))}
    return out


def phase_titles_only(args: argparse.Namespace) -> dict[str, Any]:
    """BM25 over titles only (an index ~15x smaller): faster, but it lists other titles."""
    from react.search.index import Corpus, _BM25Builder

    queries = design_queries(args)["similar"]
    corpus = Corpus.load(args.corpus, args.index)
    t0 = time.perf_counter()
    builder = _BM25Builder()
    for batch in pq.ParquetFile(args.corpus).iter_batches(batch_size=50_000, columns=["title"]):
        builder.add(batch.column(0).to_pylist())
    bm25 = builder.finish()
    out: dict[str, Any] = {"build_s": time.perf_counter() - t0, "postings": len(bm25.data)}

    def similar(q: str) -> list[str]:
        terms = bm25.term_ids(q)
        return [corpus.title(r) for r in bm25.top(terms, 5).tolist()] if terms else []

    out["corpus_similar"], results = time_calls(similar, queries)
    out["differs_from_new"] = sum(corpus.similar(q) != r for q, r in zip(queries, results, strict=True))
    return out


def phase_pages_in_memory(args: argparse.Namespace) -> dict[str, Any]:
    """The pages read from the Parquet file into memory instead of memory-mapped from the index."""
    from react.search.index import _BM25, Corpus, _TitleKeys

    queries = design_queries(args)["exact"]
    t0 = time.perf_counter()
    pages = read_parquet(args.corpus, CORPUS_SCHEMA)
    corpus = Corpus(pages, _TitleKeys.load(Path(args.index)), _BM25.load(Path(args.index)), "")
    out = {"load_s": time.perf_counter() - t0, "rss_after_load": proc_status()}
    out["corpus_page"], _ = time_calls(corpus.page, queries)
    return out


DESIGN_PHASES = {"legacy-build": phase_legacy_build, "legacy-measure": phase_legacy_measure,
                 "bm25s-retrieve": phase_bm25s_retrieve, "titles-only": phase_titles_only,
                 "pages-in-memory": phase_pages_in_memory}


PHASES = {"generate": phase_generate, "build": phase_build, "queries": phase_queries, "measure": phase_measure,
          **DESIGN_PHASES}


def run_phase(name: str, args: argparse.Namespace, extra: list[str]) -> dict[str, Any]:
    """Run one phase in a fresh interpreter; its result carries its own peak memory and wall time."""
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as fh:
        result_path = fh.name
    cmd = [sys.executable, __file__, "--phase", name, "--phase-result", result_path, "--seed", str(args.seed),
           "--n-paragraphs", str(args.n_paragraphs), "--queries", str(args.queries),
           "--design-queries", str(args.design_queries), *extra]
    print(f"[{time.strftime('%H:%M:%S')}] {name} (load average {loadavg()[0]:.2f}) ...", flush=True)
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True)
    result = json.loads(Path(result_path).read_text())
    os.unlink(result_path)
    result["wall_s"] = time.perf_counter() - t0
    print(f"    {name}: {result['wall_s']:.1f} s, peak RSS {result['peak_rss_bytes'] / 2**30:.2f} GiB", flush=True)
    return result


def dir_size(path: Path) -> dict[str, int]:
    return {p.name: p.stat().st_size for p in sorted(path.iterdir()) if p.is_file()} if path.is_dir() else {}


# --------------------------------------------------------------------------- report


def table(result: dict[str, Any]) -> str:
    gib = 2**30
    build, measure = result["build"], result["measure"]
    lines = [
        f"Search at scale: {result['n_paragraphs']:,} paragraphs ({result['machine']['cpu']}, "
        f"{result['machine']['cores_usable']} cores usable, {result['machine']['ram_bytes'] / gib:.0f} GiB RAM)",
        f"  corpus Parquet      {result['disk']['corpus_bytes'] / gib:8.2f} GiB   "
        + (f"generated in {result['generate']['wall_s']:.0f} s" if result["generate"]["wall_s"] else "(reused)"),
        f"  index directory     {result['disk']['index_bytes'] / gib:8.2f} GiB   "
        + ", ".join(f"{k} {v / gib:.2f}" for k, v in result["disk"]["index_files"].items() if v > gib / 100),
        f"  build_index         {build['build_s']:8.1f} s     peak RSS {build['peak_rss_bytes'] / gib:.2f} GiB",
        f"  Corpus.load         {measure['load_s']:8.2f} s     peak RSS (load + all queries) "
        f"{measure['peak_rss_bytes'] / gib:.2f} GiB (anonymous {measure['rss_end']['RssAnon'] / gib:.2f}, "
        f"file-backed {measure['rss_end']['RssFile'] / gib:.2f} at the end)",
        f"  {'latency (ms)':<28}{'p50':>9}{'p90':>9}{'p99':>9}{'mean':>9}{'max':>9}{'first':>9}",
    ]
    for label, key in (("Search, exact title", "search_exact"), ("Search, miss -> Similar", "search_similar"),
                       ("Lookup", "lookup"), ("Corpus.page", "corpus_page"), ("Corpus.similar", "corpus_similar")):
        s = measure[key]
        lines.append(f"  {label:<28}" + "".join(f"{s[k]:9.3f}" for k in
                                                 ("p50_ms", "p90_ms", "p99_ms", "mean_ms", "max_ms", "first_ms")))
    designs = result.get("designs")
    if designs:
        lines.append(f"  designs compared ({result['design_queries']} queries each; Corpus.page / Corpus.similar):")
        legacy_build, legacy = designs["legacy-build"], designs["legacy-measure"]
        if "skipped" in legacy_build:
            lines.append(f"    previous (bm25s index, lists): skipped ({legacy_build['skipped']})")
        else:
            lines.append(f"    previous (bm25s index, lists): build {legacy_build['build_s']:.1f} s, peak "
                         f"{legacy_build['peak_rss_bytes'] / gib:.2f} GiB, index {legacy_build['index_bytes'] / gib:.2f} GiB; "
                         f"load {legacy['load_s']:.1f} s, peak {legacy['peak_rss_legacy_bytes'] / gib:.2f} GiB; "
                         f"page p50 {legacy['corpus_page']['p50_ms']:.3f} ms; similar p50/p99 "
                         f"{legacy['corpus_similar']['p50_ms']:.2f}/{legacy['corpus_similar']['p99_ms']:.2f} ms "
                         f"({legacy['differs_from_new']} lists differ from this design's)")
        for backend, d in designs["bm25s-retrieve"].items():
            if isinstance(d, dict) and "corpus_similar" in d:
                lines.append(f"    bm25s retrieve, {backend} backend: similar p50/p99 {d['corpus_similar']['p50_ms']:.2f}/"
                             f"{d['corpus_similar']['p99_ms']:.2f} ms ({d['differs_from_new']} lists differ: ties)")
        t = designs["titles-only"]
        lines.append(f"    titles-only BM25: similar p50/p99 {t['corpus_similar']['p50_ms']:.2f}/"
                     f"{t['corpus_similar']['p99_ms']:.2f} ms ({t['differs_from_new']} lists differ)")
        m = designs["pages-in-memory"]
        lines.append(f"    pages in memory (Parquet read at load): load {m['load_s']:.1f} s, peak "
                     f"{m['peak_rss_bytes'] / gib:.2f} GiB, page p50 {m['corpus_page']['p50_ms']:.3f} ms")
    w = measure["similar_postings_read"]
    lines.append(f"  postings read per Similar query: p50 {w['p50']:,.0f}, p90 {w['p90']:,.0f}, "
                 f"p99 {w['p99']:,.0f}, max {w['max']:,.0f}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n-paragraphs", type=int, default=5_000_000)
    parser.add_argument("--queries", type=int, default=10_000, help="queries of each kind")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", type=Path, help="default: a folder under the system's temporary directory")
    parser.add_argument("--keep", action="store_true", help="keep the corpus and index (reused by the next run)")
    parser.add_argument("--output", type=Path, help="default: benchmarks/results/search_scale-<n>.json")
    parser.add_argument("--compare-designs", action="store_true",
                        help="also measure the alternatives: the previous implementation (bm25s builds the index, "
                             "Python lists), bm25s retrieve (numpy, numba), a titles-only index, pages in memory")
    parser.add_argument("--design-queries", type=int, default=2000, help="Similar/exact queries per alternative")
    parser.add_argument("--phase", choices=PHASES, help=argparse.SUPPRESS)
    parser.add_argument("--phase-result", help=argparse.SUPPRESS)
    parser.add_argument("--corpus", help=argparse.SUPPRESS)
    parser.add_argument("--index", help=argparse.SUPPRESS)
    parser.add_argument("--profile", help=argparse.SUPPRESS)
    parser.add_argument("--queries-file", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.phase:
        result = PHASES[args.phase](args)
        status = proc_status()
        result["peak_rss_bytes"] = status["VmHWM"]
        result["rss_end"] = status
        result["cpu_s"] = time.process_time()
        result["loadavg_end"] = loadavg()
        Path(args.phase_result).write_text(json.dumps(result))
        return

    n = args.n_paragraphs
    workdir = args.workdir or Path(tempfile.gettempdir()) / f"search_scale-{n}-seed{args.seed}"
    workdir.mkdir(parents=True, exist_ok=True)
    corpus, index = workdir / "corpus.parquet", workdir / "corpus.index"
    profile_path, queries_path = workdir / "profile.json", workdir / "queries.json"
    output = args.output or PROJECT / "benchmarks" / "results" / f"search_scale-{n}.json"
    result: dict[str, Any] = {"benchmark": "search_scale", "n_paragraphs": n, "queries_per_kind": args.queries,
                              "design_queries": args.design_queries if args.compare_designs else None,
                              "seed": args.seed, "machine": machine(), "loadavg_start": loadavg()}
    t0 = time.perf_counter()
    profile = measure_profile()
    profile_path.write_text(json.dumps(profile))
    result["profile"] = profile_summary(profile)
    common = ["--corpus", str(corpus), "--index", str(index), "--profile", str(profile_path),
              "--queries-file", str(queries_path)]
    previous = read_provenance(corpus) if corpus.exists() else {}
    expected = json.loads(json.dumps(generator_params(n, args.seed, profile)))
    if {k: previous.get(k) for k in expected} == expected:
        print(f"reusing {corpus}")
        result["generate"] = {"reused": True, "wall_s": None}
    else:
        result["generate"] = run_phase("generate", args, common)
    result["build"] = run_phase("build", args, common)
    result["queries"] = run_phase("queries", args, common)
    result["measure"] = run_phase("measure", args, common)
    if args.compare_designs:
        result["designs"] = {}
        for name in DESIGN_PHASES:
            if name.startswith("legacy") and n > LEGACY_MAX_PARAGRAPHS:
                # Its build peaked at 2.7 GiB for 500,000 paragraphs and grows linearly: 27 GiB at 5 million.
                result["designs"][name] = {"skipped": f"more than {LEGACY_MAX_PARAGRAPHS:,} paragraphs"}
                continue
            result["designs"][name] = run_phase(name, args, common)
    index_files = dir_size(index)
    result["disk"] = {"corpus_bytes": corpus.stat().st_size, "index_bytes": sum(index_files.values()),
                      "index_files": index_files}
    result["index_meta"] = json.loads((index / "react_corpus.json").read_text())
    m = result["index_meta"]
    result["shape"] = {"tokens_per_doc": m["n_tokens"] / m["n_docs"], "postings_per_doc": m["n_postings"] / m["n_docs"],
                       "terms": m["n_terms"]}
    result["total_s"] = time.perf_counter() - t0
    result["loadavg_end"] = loadavg()
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(result, indent=2) + "\n")
    print(table(result))
    print(f"-> {output}")
    if not args.keep:
        shutil.rmtree(workdir)


if __name__ == "__main__":
    main()
