"""The corpus file: (title, sentences) rows of :data:`react.schemas.CORPUS_SCHEMA` in a Parquet file.

Every source (react.search.sources) writes one; the index (react.search.index) reads
it in batches. Its content hash, :func:`corpus_sha256`, is that of the rows, not of
the file's bytes: the same rows give the same hash whatever the Parquet encoding or
provenance, and every result row records it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from react.io import DataFileError
from react.schemas import CORPUS_SCHEMA, validate_table

BATCH_ROWS = 20_000  # corpus rows per streamed batch


def iter_corpus_batches(corpus_parquet: str | Path) -> Iterator[pa.RecordBatch]:
    """The (title, sentences) rows of a corpus file in batches of BATCH_ROWS, checked against CORPUS_SCHEMA."""
    path = Path(corpus_parquet)
    if not path.exists():
        raise DataFileError(f"{path}: file not found")
    try:
        parquet = pq.ParquetFile(path)
        validate_table(parquet.schema_arrow.empty_table(), CORPUS_SCHEMA, path)
        for batch in parquet.iter_batches(batch_size=BATCH_ROWS, columns=CORPUS_SCHEMA.names):
            validate_table(pa.Table.from_batches([batch]), CORPUS_SCHEMA, path)  # the null checks
            yield batch
    except (pa.ArrowInvalid, OSError) as exc:
        raise DataFileError(f"{path}: not a readable Parquet file ({exc})") from exc


_row_json = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode  # = json.dumps(..., same options)


def hash_rows(digest: Any, titles: list[str], sentences: list[list[str]]) -> None:
    """Feed one canonical JSON line per row to ``digest``: independent of the Parquet encoding."""
    if titles:
        lines = [_row_json([title, sents]) for title, sents in zip(titles, sentences, strict=True)]
        digest.update(("\n".join(lines) + "\n").encode("utf-8"))


def rows_sha256(titles: list[str], sentences: list[list[str]]) -> str:
    digest = hashlib.sha256()
    hash_rows(digest, titles, sentences)
    return digest.hexdigest()


def corpus_sha256(path: str | Path) -> str:
    """Content hash of a corpus Parquet file: (title, sentences) rows in file order."""
    digest = hashlib.sha256()
    for batch in iter_corpus_batches(path):
        hash_rows(digest, batch.column(0).to_pylist(), batch.column(1).to_pylist())
    return digest.hexdigest()
