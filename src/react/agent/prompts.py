"""The texts every question is appended to: ReAct's few-shot prompt and the article's training instruction.

The config's ``prompt`` is either one text file used as it is, or ReAct's own
recipe: ``instruction`` (a text file) followed by the string ``key`` of the JSON
file ``examples`` (hotpotqa.ipynb: ``instruction + prompts_naive.json["webthink_simple6"]``).
The default is that recipe over the files shipped in package:prompts/react/, which
gives the paper's prompt byte for byte (mis-encoded dashes included).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from react.io import DataFileError, read_text
from react.paths import resolve_path

PROMPT_KINDS = ("few-shot", "instruction")


def prompt_files(spec: str | dict[str, Any]) -> list[Path]:
    """The files the prompt ``spec`` is made of (rule inputs: editing one reruns the jobs)."""
    if isinstance(spec, str):
        return [resolve_path(spec)]
    return [resolve_path(spec["instruction"]), *([resolve_path(spec["examples"])] if spec.get("examples") else [])]


def read_prompt(spec: str | dict[str, Any]) -> str:
    """The few-shot prompt a ``prompt`` spec describes, exactly."""
    if isinstance(spec, str):
        return read_text(resolve_path(spec))
    text = read_text(resolve_path(spec["instruction"]))
    if not spec.get("examples"):
        return text
    path = resolve_path(spec["examples"])
    try:
        examples = json.loads(read_text(path))
    except json.JSONDecodeError as exc:
        raise DataFileError(f"{path}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from exc
    key = spec["key"]
    if not isinstance(examples, dict) or not isinstance(examples.get(key), str):
        found = ", ".join(sorted(examples)) if isinstance(examples, dict) else type(examples).__name__
        raise DataFileError(f"{path}: no string under key {key!r} (found: {found})")
    return text + examples[key]


def read_prefix(kind: str, prompt: str | dict[str, Any], instruction: str | Path) -> str:
    """The text every question is appended to.

    ``few-shot``: the ReAct prompt as it is (it ends with its last example's line).
    ``instruction``: the article's training instruction followed by one newline, so
    that prompts match the training text ``{instruction}\\nQuestion: ...``.
    """
    if kind == "few-shot":
        return read_prompt(prompt)
    if kind == "instruction":
        return read_text(resolve_path(instruction)).rstrip("\n") + "\n"
    raise ValueError(f"unknown prompt kind {kind!r} (expected one of {PROMPT_KINDS})")
