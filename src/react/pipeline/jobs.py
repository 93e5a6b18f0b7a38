"""Glue for the Snakemake scripts: logging into the rule's log file, short errors on the console."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from react.paths import set_project_dir
from react.threads import ThreadChoice, limit_job_threads


def start(snakemake: Any) -> ThreadChoice:
    """What a job script does first: limit its threads to the CPUs it may use (before numpy's
    OpenBLAS sizes its pool from the environment Snakemake set) and learn the workflow's folder.

    Imports nothing heavy, so that scripts can call it before their other imports.
    """
    scriptdir = getattr(snakemake, "scriptdir", None)
    if scriptdir:
        set_project_dir(Path(scriptdir).resolve().parents[1])  # workflow/scripts/ -> the project
    return limit_job_threads(snakemake)


@contextmanager
def logged(snakemake: Any) -> Iterator[ThreadChoice]:
    """Send everything the job prints (engine subprocesses included) to its log file.

    File descriptors 1 and 2 are redirected, so output of child processes (vLLM's
    engine) lands in the log too. On failure the full traceback goes to the log
    and one line naming the rule, the error and the log goes to the console.

    The job's threads are limited to the CPUs it may use (react.threads): from here on
    ``snakemake.threads`` is that figure, and the log's first line says it and why.
    """
    log_path = snakemake.log[0] if len(snakemake.log) else None
    console = os.dup(2)
    if log_path:
        os.makedirs(os.path.dirname(log_path) or ".", exist_ok=True)
        fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
        force=True,
    )
    try:
        choice = start(snakemake)
        logging.getLogger("react.threads").info("%s", choice.describe())
        yield choice
    except BaseException as exc:
        logging.getLogger("react").exception("rule %s failed", snakemake.rule)
        where = f" (full log: {log_path})" if log_path else ""
        os.write(console, f"Error in rule {snakemake.rule}: {exc}{where}\n".encode())
        sys.stderr.flush()
        raise SystemExit(1) from None
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.close(console)


def input_files(snakemake: Any, name: str) -> list[str]:
    """A named input as a list: Snakemake hands a one-file list over as a plain string."""
    value = snakemake.input.get(name, [])
    return [value] if isinstance(value, str) else list(value)
