"""What every benchmark's JSON under benchmarks/results/ starts with: its name, the machine, the date."""

from __future__ import annotations

import datetime as dt
import json
import platform
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def cpu_name() -> str:
    """The CPU's model name (/proc/cpuinfo), else what platform knows."""
    info = Path("/proc/cpuinfo")
    if info.exists():
        for line in info.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor()


def write_result(benchmark: str, out: Path | None, **fields: Any) -> Path:
    """``fields`` with the benchmark's name and the machine, to ``out`` (default results/<name>-<date>.json)."""
    out = out or RESULTS / f"{benchmark}-{dt.date.today():%Y-%m-%d}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"benchmark": benchmark, "machine": {"cpu": cpu_name(), "platform": platform.platform()},
                               **fields}, indent=1))
    print(f"\nwrote {out}")
    return out
