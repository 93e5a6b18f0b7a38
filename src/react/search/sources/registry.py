"""The corpus sources by the name a ``corpus`` entry gives as its ``source``, and what the workflow does with them.

Adding a source: one module in this package with a frozen dataclass of its settings
(``from_config``, ``input_files``, ``problems``, ``read``: see ``base.FileSource``)
and one line in :data:`SOURCES`; the schema's ``source`` enum names it. An entry with
``splits`` is the union of those splits' context paragraphs (``splits.Splits``).
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from react import paths
from react.download import url_file_name
from react.search.sources.base import CorpusSource
from react.search.sources.splits import Splits

# `source` name -> "module:class" of its settings, imported when an entry uses it.
SOURCES = {
    "hotpotqa-abstracts": "react.search.sources.abstracts:HotpotqaAbstracts",
    "flashrag": "react.search.sources.flashrag:FlashRAG",
    "jsonl": "react.search.sources.jsonl:TitleTextJsonl",
    "parquet": "react.search.sources.parquet:TitleTextParquet",
}


def source_class(name: str) -> type:
    if name not in SOURCES:
        raise ValueError(f"unknown corpus source {name!r} (expected one of {', '.join(SOURCES)})")
    module, _, cls = SOURCES[name].partition(":")
    return getattr(importlib.import_module(module), cls)


def _kind(spec: Mapping[str, Any]) -> str:
    return "splits" if "splits" in spec else "live" if "live" in spec else spec.get("source")


def _settings_class(kind: str) -> type:
    if kind == "live":
        raise ValueError("a live corpus entry has no corpus source")
    return Splits if kind == "splits" else source_class(kind)


def corpus_source(spec: Mapping[str, Any]) -> CorpusSource:
    """The typed settings of a validated offline ``corpus`` entry (one with ``splits`` or a ``source``)."""
    return _settings_class(_kind(spec)).from_config(spec)


def corpus_problems(corpora: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """What the schema cannot say about the ``corpus`` entries: keys of another kind, missing files, clashes."""
    problems: list[str] = []
    downloaded_by: dict[str, tuple[str, str]] = {}  # file -> (entry, url)
    for name, spec in corpora.items():
        where = f"corpus.{name}"
        kind = _kind(spec)
        # The keys of an entry are its settings' fields.
        allowed = {"live"} if kind == "live" else {f.name for f in dataclasses.fields(_settings_class(kind))}
        if kind not in ("splits", "live"):
            allowed.add("source")
        for key in spec:
            if key not in allowed:
                problems.append(f"config key '{where}.{key}': not used by a {kind} corpus "
                                f"(its keys: {', '.join(sorted(allowed))})")
        if kind in ("splits", "live"):
            continue
        source = corpus_source(spec)
        problems += source.problems(where)
        if source.download_url:
            try:
                file = url_file_name(source.download_url)
            except ValueError as exc:
                problems.append(f"config key '{where}.url': {exc}")
                continue
            first = downloaded_by.setdefault(file, (name, source.download_url))
            if first[1] != source.download_url:
                problems.append(f"config key '{where}.url': downloads to {paths.DOWNLOAD.format(archive=file)}, "
                                f"as corpus.{first[0]}.url ({first[1]}) does; rename one")
    return problems


def downloads(sources: Mapping[str, CorpusSource]) -> dict[str, str]:
    """File name in paths.DOWNLOAD_DIR -> the (first) entry that downloads it."""
    found: dict[str, str] = {}
    for name, source in sources.items():
        if source.download_url:
            found.setdefault(url_file_name(source.download_url), name)
    return found


def build_corpus(source: CorpusSource, out: str | Path, provenance: dict[str, Any],
                 split_parquets: Iterable[str | Path] = (), download_dir: str | Path = paths.DOWNLOAD_DIR) -> None:
    """Write the corpus Parquet file of an entry: from its splits' contexts (``split_parquets``) or its source."""
    if isinstance(source, Splits):
        source.build(out, provenance, split_parquets)
    else:
        source.build(out, provenance, download_dir)
