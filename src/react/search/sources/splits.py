"""``splits``: the union of the context paragraphs of some HotPotQA splits (the default corpus).

One row per title, sorted by title; the first occurrence of a title wins (HotPotQA
sometimes ships two versions of one paragraph: later ones with other text are counted
in the provenance). Sentences are kept raw, leading spaces included.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import pyarrow as pa

from react import paths
from react.io import read_parquet, sha256_file, write_parquet
from react.schemas import CORPUS_SCHEMA, SPLIT_SCHEMA

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Splits:
    name: ClassVar[str] = "splits"
    splits: tuple[str, ...]

    @classmethod
    def from_config(cls, spec: dict[str, Any]) -> Splits:
        return cls(splits=tuple(spec["splits"]))

    @property
    def download_url(self) -> str | None:
        return None

    def input_files(self, download_dir: str | Path = paths.DOWNLOAD_DIR) -> list[str]:
        return [paths.SPLIT.format(split=split) for split in self.splits]

    def problems(self, where: str) -> list[str]:
        return []  # the splits are checked against `data` with the other references between sections

    def build(self, out: str | Path, provenance: dict[str, Any], split_parquets: Iterable[str | Path]) -> None:
        build_from_splits(list(split_parquets), out, provenance)


def _iter_paragraphs(split_parquets: Iterable[str | Path]) -> Iterable[tuple[str, list[str]]]:
    """Every (title, sentences) of the splits' ``context`` columns, in file, row and paragraph order."""
    for path in split_parquets:
        for context in read_parquet(path, SPLIT_SCHEMA).column("context").to_pylist():
            for paragraph in context or ():
                if paragraph["title"] is not None:
                    yield paragraph["title"], paragraph["sentences"] or []


def build_from_splits(
    split_parquets: list[str | Path], out_parquet: str | Path, provenance: dict[str, Any] | None = None
) -> None:
    """Write the union of the splits' context paragraphs, one row per title, sorted by title."""
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
