"""``flashrag``: FlashRAG's JSONL, ``{"id": ..., "contents": "\\"Title\\"\\ntext"}``, as its wiki-18 passages ship.

The first line of ``contents`` is the title (its surrounding double quotes removed),
the rest the passage, cut into sentences by ``split_passage``. Several rows share a
title (the 100-word passages of one article): Search serves the first in file order,
every row is a BM25 document, and Similar lists a title once.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from react.io import DataFileError, iter_jsonl
from react.search.sources.base import FileSource, Row, split_passage


@dataclass(frozen=True)
class FlashRAG(FileSource):
    name: ClassVar[str] = "flashrag"

    @property
    def fields(self) -> list[str]:
        return ["contents"]

    def rows(self, path: Path) -> Iterator[Row]:
        return iter_flashrag(path)


def flashrag_row(obj: Any, where: str) -> Row:
    """``{"contents": "\\"Title\\"\\ntext"}``: the first line, unquoted, and the passage after it."""
    if not isinstance(obj, dict):
        raise DataFileError(f"{where}: expected a JSON object, got {type(obj).__name__}")
    if "contents" not in obj:
        hint = "; for title/text rows use source: jsonl" if "title" in obj else ""
        raise DataFileError(f"{where}: no 'contents' key (found: {', '.join(map(repr, obj)) or 'none'}){hint}")
    contents = obj["contents"]
    if not isinstance(contents, str):
        raise DataFileError(f"{where}: key 'contents' should be a string, got {type(contents).__name__}")
    first, _, rest = contents.partition("\n")
    title = first.strip()
    if len(title) >= 2 and title[0] == title[-1] == '"':
        title = title[1:-1]
    return title, split_passage(rest)


def iter_flashrag(path: str | Path) -> Iterator[Row]:
    for line_no, obj in iter_jsonl(path):
        yield flashrag_row(obj, f"{path}:{line_no}")
