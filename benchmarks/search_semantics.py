"""How much the offline Wikipedia's search semantics can matter, measured on a finished run.

For every Search and Lookup the models of a run made (results/eval/*.parquet), against
the corpus the run searched (results/data/wiki/<corpus>.parquet):

* searches that found a page, and how many of those only because titles are matched
  after NFKC/casefold/whitespace folding (the exact string is not a title; Wikipedia
  matches the first letter case-insensitively and follows redirects, so some of these
  would land online, others not);
* searches that missed (online, a redirect or Wikipedia's fuzzy match could find some);
* lookups (which see only the abstract offline, the whole article online).

    .venv/bin/python benchmarks/search_semantics.py [--results results] [--corpus distractor]

Prints a table and writes benchmarks/results/search_semantics.json.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq

PROJECT = Path(__file__).resolve().parent.parent


def measure(results: Path, corpus: str) -> dict:
    titles = set(pq.read_table(results / f"data/wiki/{corpus}.parquet", columns=["title"]).column(0).to_pylist())
    per_model = {}
    for path in sorted((results / "eval").glob("*.parquet")):
        counts: Counter[str] = Counter()
        for steps in pq.read_table(path, columns=["steps"]).column(0).to_pylist():
            for step in steps:
                if step["action_type"] == "lookup":
                    counts["lookups"] += 1
                if step["action_type"] != "search":
                    continue
                counts["searches"] += 1
                if step["observation"].startswith("Could not find "):
                    counts["missed"] += 1
                elif step["argument"] in titles:
                    counts["found_exact"] += 1
                else:
                    counts["found_by_folding"] += 1
        per_model[path.stem] = dict(counts)
    return per_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--results", type=Path, default=PROJECT / "results")
    parser.add_argument("--corpus", default="distractor")
    parser.add_argument("--out", type=Path, default=PROJECT / "benchmarks/results/search_semantics.json")
    args = parser.parse_args()
    per_model = measure(args.results, args.corpus)
    print(f"{'model':32} {'searches':>8} {'exact':>6} {'folded':>6} {'missed':>6} {'lookups':>7}")
    for model, c in per_model.items():
        print(f"{model:32} {c.get('searches', 0):8} {c.get('found_exact', 0):6} {c.get('found_by_folding', 0):6} "
              f"{c.get('missed', 0):6} {c.get('lookups', 0):7}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"corpus": args.corpus, "models": per_model}, indent=2) + "\n")


if __name__ == "__main__":
    main()
