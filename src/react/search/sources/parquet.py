"""``parquet``: one row per page or passage with a title and a text column (``title_field``, ``text_field``).

The text column holds strings (passages, cut into sentences by ``split_passage``) or
lists of strings (sentences, kept as they are); it is read in batches.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import pyarrow as pa
import pyarrow.parquet as pq

from react.io import DataFileError
from react.search.sources.base import WRITE_ROWS, Row, TitleTextSource, split_passage


@dataclass(frozen=True)
class TitleTextParquet(TitleTextSource):
    name: ClassVar[str] = "parquet"

    def rows(self, path: Path) -> Iterator[Row]:
        return iter_title_text_parquet(path, self.title_field, self.text_field)


def _is_string(t: pa.DataType) -> bool:
    return pa.types.is_string(t) or pa.types.is_large_string(t)


def iter_title_text_parquet(path: str | Path, title_field: str = "title", text_field: str = "text") -> Iterator[Row]:
    path = Path(path)
    if not path.exists():
        raise DataFileError(f"{path}: file not found")
    try:
        parquet = pq.ParquetFile(path)
        schema = parquet.schema_arrow
        if title_field not in schema.names or text_field not in schema.names:
            raise DataFileError(f"{path}: no {title_field!r} and {text_field!r} columns (found: "
                                f"{', '.join(map(repr, schema.names)) or 'none'})")
        title_type, text_type = schema.field(title_field).type, schema.field(text_field).type
        if not _is_string(title_type):
            raise DataFileError(f"{path}: column {title_field!r} has type {title_type}, expected a string")
        if not (_is_string(text_type) or ((pa.types.is_list(text_type) or pa.types.is_large_list(text_type))
                                           and _is_string(text_type.value_type))):
            raise DataFileError(f"{path}: column {text_field!r} has type {text_type}, expected a string or a "
                                "list of strings")
        row = 0
        for batch in parquet.iter_batches(batch_size=WRITE_ROWS, columns=[title_field, text_field]):
            titles, texts = batch.column(0).to_pylist(), batch.column(1).to_pylist()
            for title, text in zip(titles, texts, strict=True):
                if title is None or text is None or (isinstance(text, list) and None in text):
                    key = title_field if title is None else text_field
                    raise DataFileError(f"{path}: row {row}: column {key!r} is null")
                yield title, split_passage(text) if isinstance(text, str) else text
                row += 1
    except (pa.ArrowInvalid, OSError) as exc:
        raise DataFileError(f"{path}: not a readable Parquet file ({exc})") from exc
