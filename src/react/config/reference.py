"""The configuration reference in Markdown, generated from src/react/config/schema.yaml.

docs/configuration.md holds its output between two markers; a test keeps the two in sync:
    python -m react config-reference --write docs/configuration.md
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from react.config.validate import load_schema

START = "<!-- config-reference:start (generated from src/react/config/schema.yaml: python -m react config-reference --write docs/configuration.md) -->"
END = "<!-- config-reference:end -->"


def _resolve(node: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    if "$ref" in node:
        target = schema
        for part in node["$ref"].lstrip("#/").split("/"):
            target = target[part]
        return {**target, **{k: v for k, v in node.items() if k != "$ref"}}
    return node


def _type(node: dict[str, Any]) -> str:
    if "enum" in node:
        return " | ".join(json.dumps(v) for v in node["enum"])
    if "const" in node:
        return json.dumps(node["const"])
    kind = node.get("type", "object" if "properties" in node else "")
    return " | ".join(kind) if isinstance(kind, list) else kind


def _cell(text: Any) -> str:
    return re.sub(r"\s+", " ", str(text)).replace("|", "\\|").strip()


def _rows(node: dict[str, Any], path: str, schema: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    node = _resolve(node, schema)
    rows = []
    if path:
        default = json.dumps(node["default"]) if "default" in node else ""
        rows.append((path, _type(node), default, node.get("description", "")))
    for key, child in node.get("properties", {}).items():
        rows += _rows(child, f"{path}.{key}" if path else key, schema)
    extra = node.get("additionalProperties")
    if isinstance(extra, dict) and ("properties" in _resolve(extra, schema) or "$ref" in extra):
        rows += _rows(extra, f"{path}.<name>", schema)
    return rows


def reference_markdown(schema: dict[str, Any] | None = None) -> str:
    schema = schema or load_schema()
    lines = ["| key | type | default | meaning |", "|---|---|---|---|"]
    for key, kind, default, meaning in _rows(schema, "", schema):
        lines.append(f"| `{key}` | {_cell(kind)} | {f'`{_cell(default)}`' if default else ''} | {_cell(meaning)} |")
    return "\n".join(lines) + "\n"


def generated_section(text: str) -> str | None:
    """The generated part of a document, or None when the markers are missing."""
    match = re.search(re.escape(START) + r"\n(.*?)" + re.escape(END), text, flags=re.S)
    return match.group(1) if match else None


def write_into(doc_path: str | Path) -> bool:
    """Replace the document's generated section; True if it changed."""
    path = Path(doc_path)
    text = path.read_text(encoding="utf-8")
    if generated_section(text) is None:
        raise ValueError(f"{path}: markers {START!r} ... {END!r} not found")
    new = re.sub(re.escape(START) + r"\n.*?" + re.escape(END),
                 lambda _: f"{START}\n{reference_markdown()}{END}", text, flags=re.S)
    if new != text:
        path.write_text(new, encoding="utf-8")
    return new != text
