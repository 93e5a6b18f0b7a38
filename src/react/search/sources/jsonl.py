"""``jsonl``: one JSON object per line with a title and a text (``title_field``, ``text_field``).

The text is a string (a passage, cut into sentences by ``split_passage``) or a list
of strings (its sentences, kept as they are).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from react.io import iter_jsonl
from react.search.sources.base import Row, TitleTextSource, title_text_row


@dataclass(frozen=True)
class TitleTextJsonl(TitleTextSource):
    name: ClassVar[str] = "jsonl"

    def rows(self, path: Path) -> Iterator[Row]:
        return iter_title_text_jsonl(path, self.title_field, self.text_field)


def iter_title_text_jsonl(path: str | Path, title_field: str = "title", text_field: str = "text") -> Iterator[Row]:
    hint = "; for FlashRAG's {\"id\", \"contents\"} use source: flashrag"
    for line_no, obj in iter_jsonl(path):
        yield title_text_row(obj, title_field, text_field, f"{path}:{line_no}",
                             hint if isinstance(obj, dict) and "contents" in obj else "")
