"""Chat templates against ReAct's raw prompt: the paired comparisons of a `config/chat.yaml` run.

    snakemake --cores 8 --configfile config/chat.yaml --directory results-chat
    python benchmarks/chat_comparison.py results-chat

Reads the run's evaluation Parquet files and prints, for each pair below, EM of both on the
questions both answered, the difference and McNemar's exact test (as the table's `paired`
view computes it against a base model). Writes the figures to
benchmarks/results/chat_comparison-<date>.json (BENCHMARKS.md 10).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from result_file import write_result  # benchmarks/, beside this script

PROJECT = Path(__file__).resolve().parent.parent
PAIRS = [  # (a, b, what b - a measures)
    ("smollm2-135m", "smollm2-135m-chat", "base: raw -> chat template"),
    ("smollm2-135m", "smollm2-135m-chat-inline", "base: raw -> chat, trajectory in one assistant turn"),
    ("smollm2-135m-chat-inline", "smollm2-135m-chat", "base: chat layouts, inline -> turns"),
    ("smollm2-135m", "smollm2-135m-react", "finetune in instruction format (raw)"),
    ("smollm2-135m-chat", "smollm2-135m-react-chat", "finetune in chat form (chat)"),
    ("smollm2-135m-react", "smollm2-135m-react-chat", "finetuned: instruction format -> chat form"),
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", type=Path, help="the --directory of the config/chat.yaml run")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    sys.path.insert(0, str(PROJECT / "src"))
    from react.cli import compare_rows, mcnemar_p
    from react.io import read_parquet
    from react.schemas import EPISODE_SCHEMA

    rows = {}
    for path in sorted((args.run_dir / "results/eval").glob("*.parquet")):
        rows[path.stem] = read_parquet(path, EPISODE_SCHEMA).to_pylist()
    models = []
    print(f"{'model':26} {'format':12} {'prompt':12} {'n':>4} {'EM %':>6} {'finished %':>10} {'invalid %':>9}")
    for name, episodes in rows.items():
        n, steps = len(episodes), sum(e["n_steps"] for e in episodes)
        model = {"model": name, "format": episodes[0]["format"], "prompt": episodes[0]["prompt"], "n": n,
                 "em": 100 * sum(e["em"] for e in episodes) / n,
                 "finished": 100 * sum(e["finish_reason"] == "finished" for e in episodes) / n,
                 "invalid_actions": 100 * sum(e["n_invalid_actions"] for e in episodes) / max(1, steps),
                 "chat_template_sha256": episodes[0]["chat_template_sha256"]}
        models.append(model)
        print(f"{name:26} {model['format']:12} {model['prompt']:12} {n:>4} {model['em']:>6.1f} "
              f"{model['finished']:>10.1f} {model['invalid_actions']:>9.1f}")
    pairs = []
    print(f"\n{'a':26} {'b':26} {'n':>4} {'b-a pts':>8} {'b only':>6} {'a only':>6} {'p':>7}  measures")
    for a, b, what in PAIRS:
        if a not in rows or b not in rows:
            continue
        groups = compare_rows(rows[a], rows[b])
        n = sum(len(g) for g in groups.values())
        only_a, only_b = len(groups["only_a"]), len(groups["only_b"])
        pair = {"a": a, "b": b, "measures": what, "n_paired": n, "em_diff": 100 * (only_b - only_a) / n,
                "only_b": only_b, "only_a": only_a, "p_value": mcnemar_p(only_b, only_a)}
        pairs.append(pair)
        print(f"{a:26} {b:26} {n:>4} {pair['em_diff']:>+8.1f} {only_b:>6} {only_a:>6} {pair['p_value']:>7.3f}  {what}")
    write_result("chat_comparison", args.out, run_dir=str(args.run_dir), models=models, pairs=pairs)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
