"""Command line: `python -m react <command>` for looking at results without writing code.

    python -m react diff A.parquet B.parquet   # same rows? if not, why (provenance)
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from react.io import DataFileError, read_parquet, read_provenance
from react.provenance import explain_difference

# Columns that measure the run, not its result: ignored when comparing rows.
TIMING_COLUMNS = ("seconds",)


def diff_files(a: Path, b: Path) -> tuple[bool, list[str]]:
    """Whether two Parquet files hold the same rows (timing columns aside), and the report lines."""
    left, right = read_parquet(a), read_parquet(b)
    drop = [c for c in TIMING_COLUMNS if c in left.column_names and c in right.column_names]
    left, right = left.drop(drop), right.drop(drop)
    same = left.schema.equals(right.schema) and left.equals(right)
    lines = [f"rows: {'identical' if same else 'DIFFERENT'} ({left.num_rows} vs {right.num_rows} rows"
             + (f"; {', '.join(drop)} ignored)" if drop else ")")]
    if not same and left.column_names == right.column_names and "id" in left.column_names:
        by_id = dict(zip(right.column("id").to_pylist(), right.to_pylist(), strict=False))
        changed = [r["id"] for r in left.to_pylist() if by_id.get(r["id"]) != r]
        lines.append(f"rows that differ: {len(changed)} (first ids: {', '.join(map(str, changed[:5]))})")
    explanation = explain_difference(read_provenance(a), read_provenance(b))
    lines += explanation or ["provenance: identical"]
    return same, lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m react", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    diff = commands.add_parser("diff", help="compare two result Parquet files and say why they differ")
    diff.add_argument("a", type=Path)
    diff.add_argument("b", type=Path)
    args = parser.parse_args(argv)
    try:
        if args.command == "diff":
            same, lines = diff_files(args.a, args.b)
            print("\n".join(lines))
            return 0 if same else 1
    except DataFileError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 2


if __name__ == "__main__":
    sys.exit(main())
