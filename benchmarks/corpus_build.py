"""HotPotQA's 2017 abstracts at full size: archive -> corpus Parquet -> index, with the real reader.

Generates a synthetic archive of ``--n-abstracts`` abstracts (default 5 million; the real
one has 5,233,329) in exactly the format of
``enwiki-20171001-pages-meta-current-withlinks-abstracts.tar.bz2``: a bz2-compressed tar
of ``<root>/AA/wiki_00.bz2`` ... files, each a bz2 file of JSON lines with ``id``,
``url``, ``title``, ``text`` (sentences, the ones after the first with a leading
space), ``charoffset``, ``text_with_links``, ``charoffset_with_links`` (json.dumps'
default separators and ASCII escapes), a new file after 1 MiB of lines and 100 files
a folder (WikiExtractor's layout). Titles and sentences come from
``benchmarks/search_scale.py``'s generator (shaped like HotPotQA's paragraphs: title
lengths, disambiguators, sentences per paragraph, words per sentence, the real word
ranking with a fitted tail), in page-id order rather than title order as the dump is;
the token offsets are those of the words and full stops; about one word in 20 is a
link. The archive is cached in the work folder and reused while its parameters hold.

Then, each in its own process so that its peak memory is its own:

* ``read``: ``react.search.sources.registry.build_corpus`` on the archive (the reader the
  workflow's ``build_corpus`` rule runs, checksum check included) -> corpus Parquet;
* ``index``: ``react.search.index.build_index`` on that file (the ``build_index`` rule);
* ``check``: ``Corpus.load`` and a few hundred Searches through ``WikiEnv``.

Writes ``benchmarks/results/corpus_build-<n>.json`` with the CPU (/proc/cpuinfo), the
usable cores (os.sched_getaffinity), the load average before and after each phase,
and prints a table.

    .venv/bin/python benchmarks/corpus_build.py --n-abstracts 50000   # a quick try
    nohup .venv/bin/python benchmarks/corpus_build.py > benchmarks/work/corpus_build.log 2>&1 &
"""

from __future__ import annotations

import argparse
import bz2
import io
import json
import multiprocessing
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
PROJECT = HERE.parent
sys.path.insert(0, str(PROJECT / "src"))
sys.path.insert(0, str(HERE))

import search_scale  # noqa: E402 - the corpus generator and the machine facts

GENERATOR_VERSION = 1
ROOT = "enwiki-20171001-pages-meta-current-withlinks-abstracts"
FILE_BYTES = 1 << 20  # WikiExtractor's --bytes 1M: a new wiki_NN file after this much text
FILES_PER_FOLDER = 100
TASK_ROWS = 20_000  # abstracts per generation task
LINK_SHARE = 0.05  # words that become a link in text_with_links
WORK = HERE / "work"  # git-ignored


def folder_name(i: int) -> str:
    letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    return letters[i // 26] + letters[i % 26]


def offsets_json(sentences: list[str]) -> str:
    """The charoffset of sentences: [start, end] of each word and full stop, counted over the whole abstract."""
    out = []
    pos = 0
    for s in sentences:
        spans = []
        i = pos
        for w in s.split(" "):
            n = len(w)
            if n:
                if w[-1] == ".":
                    spans.append(f"[{i}, {i + n - 1}], [{i + n - 1}, {i + n}]")
                else:
                    spans.append(f"[{i}, {i + n}]")
            i += n + 1
        out.append("[" + ", ".join(spans) + "]")
        pos += len(s)
    return "[" + ", ".join(out) + "]"


def with_links(sentences: list[str], rng: np.random.Generator) -> list[str]:
    out = []
    for s in sentences:
        words = s.split(" ")
        chosen = np.flatnonzero(rng.random(len(words)) < LINK_SHARE)
        for k in chosen.tolist():
            w = words[k].rstrip(".")
            if w:
                words[k] = f'<a href="{w}">{w}</a>' + words[k][len(w):]
        out.append(" ".join(words))
    return out


_STATE: dict[str, Any] = {}  # the generator's inputs, inherited by the forked workers


def generate_task(task: int) -> tuple[int, list[bytes], int, int]:
    """Abstracts [task * TASK_ROWS, ...) as bz2-compressed wiki files of at most FILE_BYTES each."""
    st = _STATE
    lo = task * TASK_ROWS
    hi = min(lo + TASK_ROWS, st["n"])
    rows = st["order"][lo:hi]
    titles = [st["titles"][r] for r in rows]
    batch = search_scale.make_batch(np.random.default_rng([st["seed"], 1, task]), st["vocab"], st["profile"],
                                    titles, [st["ranks"][r] for r in rows])
    sentences = batch.column(1).to_pylist()
    rng = np.random.default_rng([st["seed"], 3, task])
    ids = lo * 6 + np.cumsum(rng.integers(1, 6, size=hi - lo))  # page ids grow with gaps, as curids do
    files, lines, size, raw = [], [], 0, 0
    dumps = json.dumps
    for page_id, title, sents in zip(ids.tolist(), titles, sentences, strict=True):
        links = with_links(sents, rng)
        line = (f'{{"id": "{page_id}", "url": "https://en.wikipedia.org/wiki?curid={page_id}", '
                f'"title": {dumps(title)}, "text": {dumps(sents)}, "charoffset": {offsets_json(sents)}, '
                f'"text_with_links": {dumps(links)}, "charoffset_with_links": {offsets_json(links)}}}\n')
        if size + len(line) > FILE_BYTES and lines:
            data = "".join(lines).encode()
            raw += len(data)
            files.append(bz2.compress(data, 9))
            lines, size = [], 0
        lines.append(line)
        size += len(line)
    if lines:
        data = "".join(lines).encode()
        raw += len(data)
        files.append(bz2.compress(data, 9))
    return task, files, raw, hi - lo


def generator_params(n: int, seed: int, profile: dict[str, Any]) -> dict[str, Any]:
    return {**search_scale.generator_params(n, seed, profile), "generator": "benchmarks/corpus_build.py",
            "corpus_build_version": GENERATOR_VERSION, "file_bytes": FILE_BYTES, "task_rows": TASK_ROWS,
            "link_share": LINK_SHARE}


def generate(out: Path, n: int, seed: int, profile: dict[str, Any], workers: int) -> dict[str, Any]:
    t0 = time.perf_counter()
    vocab = search_scale.Vocabulary(profile)
    in_use = vocab.expected_distinct(n * profile["n_tokens"] / profile["n_paragraphs"])
    titles, ranks = search_scale.make_titles(np.random.default_rng([seed, 0]), vocab, profile, n, in_use)
    order = np.random.default_rng([seed, 2]).permutation(n)  # page-id order, not title order
    _STATE.update(n=n, seed=seed, vocab=vocab, profile=profile, titles=titles, ranks=ranks, order=order)
    t_titles = time.perf_counter() - t0
    n_tasks = (n + TASK_ROWS - 1) // TASK_ROWS
    stats = {"files": 0, "raw_bytes": 0, "inner_bz2_bytes": 0, "abstracts": 0}
    tmp = out.with_name(out.name + ".tmp")
    context = multiprocessing.get_context("fork")
    with context.Pool(workers) as pool, tarfile.open(tmp, "w|bz2") as tar:
        info = tarfile.TarInfo(ROOT)
        info.type, info.mode = tarfile.DIRTYPE, 0o755
        tar.addfile(info)
        folders_done = -1
        for _, files, raw, count in pool.imap(generate_task, range(n_tasks)):  # imap keeps task order
            for data in files:
                i = stats["files"]
                folder = i // FILES_PER_FOLDER
                if folder != folders_done:
                    info = tarfile.TarInfo(f"{ROOT}/{folder_name(folder)}")
                    info.type, info.mode = tarfile.DIRTYPE, 0o755
                    tar.addfile(info)
                    folders_done = folder
                info = tarfile.TarInfo(f"{ROOT}/{folder_name(folder)}/wiki_{i % FILES_PER_FOLDER:02d}.bz2")
                info.size, info.mode = len(data), 0o644
                tar.addfile(info, io.BytesIO(data))
                stats["files"] += 1
                stats["inner_bz2_bytes"] += len(data)
            stats["raw_bytes"] += raw
            stats["abstracts"] += count
            done = stats["abstracts"]
            if done // 500_000 != (done - count) // 500_000:
                print(f"    generated {done:,} abstracts, {stats['files']:,} files, "
                      f"{time.perf_counter() - t0:.0f} s", flush=True)
    os.replace(tmp, out)
    return {"generate_s": time.perf_counter() - t0, "titles_s": t_titles, "workers": workers, **stats}


# --------------------------------------------------------------------------- phases (each in a subprocess)


def _recorder(t0: float) -> list:
    import logging

    events: list = []

    class Recorder(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            events.append([round(time.perf_counter() - t0, 2), record.getMessage()])

    for name in ("react.search.index", "react.search.sources"):
        logging.getLogger(name).addHandler(Recorder())
        logging.getLogger(name).setLevel(logging.INFO)
    return events


def phase_generate(args: argparse.Namespace) -> dict[str, Any]:
    profile = json.loads(Path(args.profile).read_text())
    return generate(Path(args.archive), args.n_abstracts, args.seed, profile, args.workers)


def phase_read(args: argparse.Namespace) -> dict[str, Any]:
    from react.io import read_provenance
    from react.search.sources.abstracts import HotpotqaAbstracts, _threads
    from react.search.sources.registry import build_corpus

    source = HotpotqaAbstracts(url=None, path=args.archive, md5=args.archive_md5, sha256=None)
    t0 = time.perf_counter()
    events = _recorder(t0)
    build_corpus(source, args.corpus, {"step": "benchmark"})
    provenance = read_provenance(args.corpus)
    return {"read_s": time.perf_counter() - t0, "log": events, "threads": _threads(),
            "rows": provenance["n_rows"], "empty_pages": provenance["n_empty_pages"]}


def phase_index(args: argparse.Namespace) -> dict[str, Any]:
    from react.search.index import build_index

    t0 = time.perf_counter()
    events = _recorder(t0)
    build_index(args.corpus, args.index)
    return {"build_s": time.perf_counter() - t0, "log": events}


def phase_check(args: argparse.Namespace) -> dict[str, Any]:
    import pyarrow.parquet as pq

    from react.environment.offline import WikiEnv
    from react.search.index import Corpus

    t0 = time.perf_counter()
    corpus = Corpus.load(args.corpus, args.index)
    load_s = time.perf_counter() - t0
    titles = pq.read_table(args.corpus, columns=["title"]).column(0)
    rng = np.random.default_rng([args.seed, 4])
    picks = [titles[int(i)].as_py() for i in rng.integers(len(titles), size=300)]
    env, found, times = WikiEnv(corpus), 0, []
    for title in picks:
        t = time.perf_counter()
        observation = env.step(f"search[{title}]").observation
        times.append(time.perf_counter() - t)
        found += not observation.startswith("Could not find")
    return {"load_s": load_s, "searches": len(picks), "found": found, "search_p50_ms": 1e3 * float(np.median(times))}


PHASES = {"generate": phase_generate, "read": phase_read, "index": phase_index, "check": phase_check}


def run_phase(name: str, args: argparse.Namespace, paths: dict[str, str]) -> dict[str, Any]:
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as fh:
        result_path = fh.name
    cmd = [sys.executable, __file__, "--phase", name, "--phase-result", result_path, "--seed", str(args.seed),
           "--n-abstracts", str(args.n_abstracts), "--workers", str(args.workers),
           *(x for k, v in paths.items() for x in (f"--{k.replace('_', '-')}", v))]
    start_load = search_scale.loadavg()
    print(f"[{time.strftime('%H:%M:%S')}] {name} (load average {start_load[0]:.2f}) ...", flush=True)
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True)
    result = json.loads(Path(result_path).read_text())
    os.unlink(result_path)
    result["wall_s"] = time.perf_counter() - t0
    result["loadavg_start"] = start_load
    print(f"    {name}: {result['wall_s']:.1f} s, peak RSS {result['peak_rss_bytes'] / 2**30:.2f} GiB", flush=True)
    return result


def table(result: dict[str, Any]) -> str:
    gib, m = 2**30, result["machine"]
    read, index = result["read"], result["index"]
    archive = result["archive"]
    lines = [
        f"HotPotQA 2017 abstracts format: {result['n_abstracts']:,} synthetic abstracts ({m['cpu']}, "
        f"{m['cores_usable']} cores usable, load average {result['loadavg_start'][0]:.2f} at the start)",
        f"  archive            {archive['bytes'] / 2**30:8.2f} GiB ({archive['files']:,} wiki files, "
        f"{archive['raw_bytes'] / 2**30:.1f} GiB of JSON lines; the real one: 1.45 GiB, 5,233,329 abstracts)",
        f"  read -> Parquet    {read['read_s']:8.1f} s   peak RSS {read['peak_rss_bytes'] / gib:.2f} GiB   "
        f"({result['n_abstracts'] / read['read_s']:,.0f} abstracts/s; corpus {result['disk']['corpus_bytes'] / gib:.2f} GiB)",
        f"  build_index        {index['build_s']:8.1f} s   peak RSS {index['peak_rss_bytes'] / gib:.2f} GiB   "
        f"(index {result['disk']['index_bytes'] / gib:.2f} GiB)",
        f"  archive -> index   {read['read_s'] + index['build_s']:8.1f} s",
    ]
    check = result.get("check")
    if check:
        lines.append(f"  Corpus.load {check['load_s']:.2f} s; {check['found']} of {check['searches']} title Searches "
                     f"found, p50 {check['search_p50_ms']:.3f} ms")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n-abstracts", type=int, default=5_000_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=min(2, len(os.sched_getaffinity(0))),
                        help="processes generating the archive (it is bz2-compressed twice: the slow part)")
    parser.add_argument("--workdir", type=Path, help="default: benchmarks/work/corpus_build-<n>-seed<seed>")
    parser.add_argument("--output", type=Path, help="default: benchmarks/results/corpus_build-<n>.json")
    parser.add_argument("--keep-corpus", action="store_true", help="keep the corpus Parquet and index (the archive "
                                                                   "is always kept for the next run)")
    parser.add_argument("--generate-only", action="store_true", help="make (or check) the archive and stop")
    parser.add_argument("--phase", choices=PHASES, help=argparse.SUPPRESS)
    parser.add_argument("--phase-result", help=argparse.SUPPRESS)
    for hidden in ("archive", "archive-md5", "corpus", "index", "profile"):
        parser.add_argument(f"--{hidden}", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.phase:
        result = PHASES[args.phase](args)
        status = search_scale.proc_status()
        result.update(peak_rss_bytes=status["VmHWM"], rss_end=status, cpu_s=time.process_time(),
                      loadavg_end=search_scale.loadavg())
        if args.phase == "generate":  # the workers' CPU time too
            children = os.times()
            result["cpu_s_children"] = children.children_user + children.children_system
        Path(args.phase_result).write_text(json.dumps(result))
        return

    from react.download import file_hashes

    n = args.n_abstracts
    workdir = args.workdir or WORK / f"corpus_build-{n}-seed{args.seed}"
    workdir.mkdir(parents=True, exist_ok=True)
    archive = workdir / f"{ROOT}.tar.bz2"
    params_path, profile_path = workdir / "archive.json", workdir / "profile.json"
    paths = {"archive": str(archive), "corpus": str(workdir / "corpus.parquet"),
             "index": str(workdir / "corpus.bm25s"), "profile": str(profile_path)}
    output = args.output or HERE / "results" / f"corpus_build-{n}.json"
    result: dict[str, Any] = {"benchmark": "corpus_build", "n_abstracts": n, "seed": args.seed,
                              "machine": search_scale.machine(), "loadavg_start": search_scale.loadavg()}
    t0 = time.perf_counter()
    profile = search_scale.measure_profile()
    profile_path.write_text(json.dumps(profile))
    expected = json.loads(json.dumps(generator_params(n, args.seed, profile)))
    cached = json.loads(params_path.read_text()) if params_path.exists() and archive.exists() else {}
    if cached.get("params") == expected:
        print(f"reusing {archive}")
        result["generate"] = {"reused": True, **cached["generate"]}
    else:
        params_path.unlink(missing_ok=True)
        result["generate"] = run_phase("generate", args, paths)
        params_path.write_text(json.dumps({"params": expected, "generate": result["generate"]}, indent=2))
    if args.generate_only:
        print(f"{archive}: {archive.stat().st_size:,} bytes")
        return
    hashes = file_hashes(archive)
    gen = result["generate"]
    result["archive"] = {"bytes": archive.stat().st_size, "files": gen["files"], "raw_bytes": gen["raw_bytes"],
                         "inner_bz2_bytes": gen["inner_bz2_bytes"], **hashes,
                         "bytes_per_abstract": archive.stat().st_size / n,
                         "real_bytes_per_abstract": 1_553_565_403 / 5_233_329}
    result["read"] = run_phase("read", args, {**paths, "archive_md5": hashes["md5"]})
    result["index"] = run_phase("index", args, paths)
    result["check"] = run_phase("check", args, paths)
    index_files = search_scale.dir_size(Path(paths["index"]))
    result["disk"] = {"corpus_bytes": Path(paths["corpus"]).stat().st_size, "index_bytes": sum(index_files.values()),
                      "index_files": index_files}
    result["index_meta"] = json.loads((Path(paths["index"]) / "react_corpus.json").read_text())
    result["total_s"] = time.perf_counter() - t0
    result["loadavg_end"] = search_scale.loadavg()
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(result, indent=2) + "\n")
    print(table(result))
    print(f"-> {output}")
    if not args.keep_corpus:
        Path(paths["corpus"]).unlink()
        import shutil

        shutil.rmtree(paths["index"])


if __name__ == "__main__":
    main()
