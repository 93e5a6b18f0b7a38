"""GRPO after SFT on a CPU: what a `config/rl.yaml` run measured (BENCHMARKS.md 11).

    snakemake results/table.csv --cores 2 --configfile config/rl.yaml
    python benchmarks/rl_cpu.py .

Reads the run's results/rl/<run>/ (steps.parquet, run.json) and results/table.csv and prints:
the reward curve as the mean reward of the first and the last fifth of the steps, each with a
95% interval (Wilson's for an EM reward), and their difference (Newcombe's interval; Welch's for
other rewards; react.rl.trainer.reward_fifths); per
fifth EM and finished %; the wall time; and EM on the dev questions of every model in the table, each trained model paired
against the model it started from (McNemar's exact test, the table's own). Writes the figures
to benchmarks/results/rl_cpu-<date>.json.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

from result_file import write_result  # benchmarks/, beside this script

PROJECT = Path(__file__).resolve().parent.parent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", type=Path, help="the folder the config/rl.yaml run wrote results/ into")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    sys.path.insert(0, str(PROJECT / "src"))
    from react.io import read_parquet
    from react.rl.settings import RewardSettings
    from react.rl.trainer import reward_fifths

    runs = {}
    for folder in sorted((args.run_dir / "results/rl").iterdir()):
        if not (folder / "steps.parquet").is_file():
            continue
        steps = read_parquet(folder / "steps.parquet").to_pylist()
        summary = json.loads((folder / "run.json").read_text())
        curve = reward_fifths(steps, binary=RewardSettings(**summary["rl"]["settings"]["reward"]).binary)
        runs[folder.name] = {"settings": summary["rl"]["settings"], "n_questions": summary["rl"]["n_questions"],
                             "timing": summary["timing"], "fifths": curve,
                             "policy_tokens": sum(s["policy_tokens"] for s in steps),
                             "environment_tokens": sum(s["environment_tokens"] for s in steps)}
        print(f"{folder.name}: {len(steps)} steps in {summary['timing']['wall_seconds']:.0f} s "
              f"({summary['timing']['seconds_per_step']:.1f} s/step)")
        for name in ("first", "last"):
            f = curve[name]
            print(f"  {name} fifth (steps {f['steps'][0]}-{f['steps'][1]}, {f['rollouts']} rollouts): reward "
                  f"{f['mean']:.3f} [{f['ci'][0]:.3f}, {f['ci'][1]:.3f}], EM {f['em']:.1f}%, finished "
                  f"{f['finished_pct']:.1f}%, {f['steps_all_failed']} steps with every rollout failed")
        d = curve["difference"]
        print(f"  last - first: {d['mean']:+.3f} [{d['ci'][0]:+.3f}, {d['ci'][1]:+.3f}]")
    table = [r for r in csv.DictReader((args.run_dir / "results/table.csv").open()) if r["kind"] == "measured"]
    print(f"\n{'model':28} {'method':9} {'vs':22} {'n':>4} {'EM %':>6} {'diff':>6} {'p':>7}")
    for r in table:
        print(f"{r['model']:28} {r['method']:9} {r['base_model']:22} {r['n']:>4} {r['em']:>6} {r['em_diff']:>6} "
              f"{r['p_value']:>7}")
    write_result("rl_cpu", args.out, run_dir=str(args.run_dir), runs=runs, table=table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
