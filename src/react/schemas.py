"""The file contracts of the pipeline, written down once.

Every Parquet file the workflow writes is built against one of these schemas and
checked with :func:`validate_table` when it is read back, so a file from an older
version or a foreign tool fails with a message naming the file and the column.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

# results/data/hotpotqa/{split}.parquet: one row per question.
SPLIT_SCHEMA = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),  # HotPotQA `_id`
        # Position in the official split file (= Hugging Face row, = ReAct's idx);
        # null when the source does not say (e.g. the bundled train sample).
        pa.field("index", pa.int64()),
        pa.field("question", pa.string(), nullable=False),
        pa.field("answer", pa.string(), nullable=False),
        pa.field("type", pa.string()),  # bridge | comparison
        pa.field("level", pa.string()),  # easy | medium | hard
        # sent_id is null when only the gold titles are known (reconstructed items).
        pa.field(
            "supporting_facts",
            pa.list_(pa.struct([("title", pa.string()), ("sent_id", pa.int32())])),
        ),
        pa.field(
            "context",
            pa.list_(pa.struct([("title", pa.string()), ("sentences", pa.list_(pa.string()))])),
        ),
        pa.field("source", pa.string()),  # where the row came from (file or dataset)
    ]
)

# results/data/wiki/{corpus}.parquet: one row per Wikipedia paragraph.
CORPUS_SCHEMA = pa.schema(
    [
        pa.field("title", pa.string(), nullable=False),
        pa.field("sentences", pa.list_(pa.string()), nullable=False),
    ]
)

STEP_TYPE = pa.struct(
    [
        ("thought", pa.string()),
        ("action", pa.string()),  # the action text as written, e.g. "Search[Milhouse]"
        ("action_type", pa.string()),  # search | lookup | finish | invalid
        ("argument", pa.string()),
        ("observation", pa.string()),
        # ok | no_action_line (the second call wrote the action) | empty_action |
        # invalid_action | context_limit | crashed (the original loop would have raised)
        ("status", pa.string()),
    ]
)

# results/eval/{model}.parquet and trajectory shards: one row per episode.
EPISODE_SCHEMA = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("index", pa.int64()),
        pa.field("split", pa.string(), nullable=False),
        pa.field("sample", pa.int32(), nullable=False),  # k-th sample of this question
        pa.field("question", pa.string(), nullable=False),
        pa.field("answer", pa.string(), nullable=False),
        pa.field("prediction", pa.string()),
        pa.field("em", pa.bool_(), nullable=False),
        pa.field("f1", pa.float64(), nullable=False),
        # finished | step_limit | parse_error | context_limit | crashed | error
        pa.field("finish_reason", pa.string(), nullable=False),
        pa.field("n_steps", pa.int32(), nullable=False),
        pa.field("n_invalid_actions", pa.int32(), nullable=False),
        pa.field("steps", pa.list_(STEP_TYPE), nullable=False),
        # Everything after the few-shot prefix: "Question: ...\nThought 1: ...".
        pa.field("trajectory", pa.string(), nullable=False),
        pa.field("n_calls", pa.int32(), nullable=False),
        pa.field("n_bad_calls", pa.int32(), nullable=False),
        pa.field("error", pa.string()),  # exception text when finish_reason == error
        pa.field("model", pa.string(), nullable=False),
        pa.field("backend", pa.string(), nullable=False),
        pa.field("temperature", pa.float64(), nullable=False),
        pa.field("top_p", pa.float64(), nullable=False),
        pa.field("max_new_tokens", pa.int32(), nullable=False),
        pa.field("max_steps", pa.int32(), nullable=False),
        pa.field("seed", pa.int64(), nullable=False),
        # few-shot (the ReAct prompt) | instruction (the training format); null for imports
        pa.field("prompt", pa.string()),
        # raw | chat | chat-inline: how the prompt reached the model (react.agent.forms); null for imports
        pa.field("format", pa.string()),
        # sha256 of the chat template the prompts were rendered with; null for raw text
        pa.field("chat_template_sha256", pa.string()),
        # react (ReAct's code, character for character) | lenient; null for imports (react.agent.protocol)
        pa.field("protocol", pa.string()),
        pa.field("prompt_sha256", pa.string(), nullable=False),
        pa.field("corpus_sha256", pa.string(), nullable=False),
        # This episode's share of the batched calls it took part in plus its
        # environment time: lockstep batching has no per-question wall clock.
        pa.field("seconds", pa.float64(), nullable=False),
    ]
)

FINISH_REASONS = ("finished", "step_limit", "parse_error", "context_limit", "crashed", "error")

# Bumped whenever a schema changes: the rules that write a file pass its version as
# a parameter, so Snakemake reruns exactly those jobs instead of failing on old files.
SCHEMA_VERSIONS = {"split": 1, "corpus": 1, "episode": 4}


class SchemaError(ValueError):
    """A Parquet file does not follow its contract."""


def validate_table(table: pa.Table, schema: pa.Schema, path: str | Path) -> pa.Table:
    """Check that ``table`` has every column of ``schema`` with the right type.

    Extra columns are allowed (newer writers may add some); missing or mistyped
    ones are an error naming the file and the column. Returns the table with
    its columns in schema order.
    """
    for field in schema:
        if field.name not in table.column_names:
            raise SchemaError(f"{path}: missing column {field.name!r} (expected {field.type})")
        actual = table.schema.field(field.name).type
        if not actual.equals(field.type):
            raise SchemaError(
                f"{path}: column {field.name!r} has type {actual}, expected {field.type}"
            )
        if not field.nullable and table.column(field.name).null_count:
            raise SchemaError(f"{path}: column {field.name!r} has null values")
    return table.select(schema.names)
