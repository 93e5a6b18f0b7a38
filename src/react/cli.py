"""Command line: `python -m react <command>` to read results without writing code.

    python -m react show results/eval/smollm2-135m.parquet            # one line per question
    python -m react show smollm2-135m --id 5a8b57f25542995d1e6f1371   # one trajectory, step by step
    python -m react compare smollm2-135m smollm2-135m-react           # fixed and broken questions
    python -m react ask --model smollm2-135m "Who was Milhouse named after?"   # live, step by step
    python -m react diff A.parquet B.parquet                          # same rows? if not, why
    python -m react config-reference                                  # every config key, from the schema

A model name stands for results/eval/<name>.parquet.
"""

from __future__ import annotations

import argparse
import math
import shutil
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from react import paths
from react.io import DataFileError, read_parquet, read_provenance
from react.provenance import explain_difference

# Columns that measure the run, not its result: ignored when comparing rows.
TIMING_COLUMNS = ("seconds",)


class CliError(Exception):
    """A user error: printed as one line, exit status 2."""


# --------------------------------------------------------------------------- reading results


def eval_file(name_or_path: str) -> Path:
    """A Parquet path, or a model name meaning results/eval/<name>.parquet."""
    path = Path(name_or_path)
    if path.suffix == ".parquet" or path.exists():
        return path
    candidate = Path(paths.EVAL.format(model=name_or_path))
    if not candidate.exists():
        known = sorted(p.stem for p in Path(paths.EVAL_DIR).glob("*.parquet"))
        raise CliError(f"no results for {name_or_path!r}: {candidate} does not exist "
                       f"(evaluated models: {', '.join(known) or 'none yet'})")
    return candidate


def read_rows(name_or_path: str) -> list[dict[str, Any]]:
    from react.schemas import EPISODE_SCHEMA

    return read_parquet(eval_file(name_or_path), EPISODE_SCHEMA).to_pylist()


def find_row(rows: list[dict[str, Any]], question_id: str, source: str) -> dict[str, Any]:
    matches = [r for r in rows if r["id"] == question_id or str(r["index"]) == question_id]
    if not matches:
        raise CliError(f"{source}: no question with id or index {question_id!r} "
                       f"(first ids: {', '.join(r['id'] for r in rows[:3])}, ...)")
    return matches[0]


# --------------------------------------------------------------------------- printing


def _width() -> int:
    return max(60, min(120, shutil.get_terminal_size((100, 24)).columns))


def _wrap(label: str, text: str, width: int) -> str:
    body = textwrap.fill(" ".join(str(text).split()), width=width, initial_indent=label,
                         subsequent_indent=" " * len(label)) if text else label.rstrip()
    return body


def mark(row: dict[str, Any]) -> str:
    return "right" if row["em"] else "wrong"


def format_step(i: int, step: dict[str, Any], width: int) -> list[str]:
    status = "" if step["status"] == "ok" else f"   [{step['status']}]"
    return [_wrap(f"Thought {i}: ", step["thought"], width),
            _wrap(f"Action {i}: ", f"{step['action']}{status}", width),
            _wrap(f"Observation {i}: ", step["observation"], width)]


def format_episode(row: dict[str, Any], width: int | None = None) -> str:
    width = width or _width()
    head = [
        f"{row['model']} ({row['backend']}, {row.get('prompt') or 'few-shot'} prompt"
        + (f", {row['format']} format" if row.get("format") not in (None, "raw") else "") + f") - question {row['id']}"
        + (f", index {row['index']}" if row["index"] is not None else ""),
        _wrap("Question: ", row["question"], width),
        _wrap("Gold: ", row["answer"], width),
        _wrap("Predicted: ", row["prediction"] or "(none)", width)
        + f"   -> {mark(row).upper()} (EM {int(row['em'])}, F1 {row['f1']:.2f})",
        f"Finish: {row['finish_reason']}; {row['n_steps']} steps, {row['n_calls']} LLM calls "
        f"({row['n_bad_calls']} without an action line), {row['n_invalid_actions']} invalid actions"
        + (f"; error: {row['error']}" if row.get("error") else ""),
        "",
    ]
    lines = list(head)
    for i, step in enumerate(row["steps"], 1):
        lines += format_step(i, step, width)
    return "\n".join(lines)


def format_listing(rows: list[dict[str, Any]], source: str) -> str:
    right = sum(r["em"] for r in rows)
    lines = [f"{source}: {len(rows)} questions, EM {right}/{len(rows)} = {100 * right / max(1, len(rows)):.1f}%",
             f"{'id':26} {'em':5} {'finish':12} {'steps':5} question"]
    for r in rows:
        lines.append(f"{r['id']:26} {mark(r):5} {r['finish_reason']:12} {r['n_steps']:<5} "
                     f"{textwrap.shorten(r['question'], 70)}")
    return "\n".join(lines)


def compare_rows(a: list[dict[str, Any]], b: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Questions both answered, grouped: only A right, only B right, both right, both wrong."""
    by_id = {r["id"]: r for r in b}
    groups: dict[str, list[dict[str, Any]]] = {"only_a": [], "only_b": [], "both": [], "neither": []}
    for row in a:
        other = by_id.get(row["id"])
        if other is None:
            continue
        key = {(True, False): "only_a", (False, True): "only_b", (True, True): "both",
               (False, False): "neither"}[(bool(row["em"]), bool(other["em"]))]
        groups[key].append(row | {"other": other})
    return groups


def mcnemar_p(gained: int, lost: int) -> float:
    """McNemar's exact test: two-sided binomial test on the discordant pairs (as the `paired` view)."""
    n = gained + lost
    tail = sum(math.comb(n, k) for k in range(min(gained, lost) + 1)) / 2**n
    return min(1.0, 2 * tail)


def format_comparison(groups: dict[str, list[dict[str, Any]]], a: str, b: str) -> str:
    n = sum(len(g) for g in groups.values())
    only_a, only_b = len(groups["only_a"]), len(groups["only_b"])
    lines = [f"{n} questions answered by both: {a} right on {only_a + len(groups['both'])}, "
             f"{b} right on {only_b + len(groups['both'])}; both right {len(groups['both'])}, "
             f"both wrong {len(groups['neither'])}",
             f"EM difference {b} - {a}: {100 * (only_b - only_a) / max(1, n):+.1f} points; "
             f"McNemar's exact test p = {mcnemar_p(only_b, only_a):.3g}"]
    for key, title in (("only_b", f"{b} right, {a} wrong"), ("only_a", f"{a} right, {b} wrong")):
        lines += ["", f"{title} ({len(groups[key])}):"]
        for row in groups[key]:
            lines.append(f"  {row['id']:26} gold {textwrap.shorten(row['answer'], 30)!r}; "
                         f"{a}: {textwrap.shorten(row['prediction'] or '-', 25)!r}, "
                         f"{b}: {textwrap.shorten(row['other']['prediction'] or '-', 25)!r}")
            lines.append(f"  {'':26} {textwrap.shorten(row['question'], 90)}")
    if groups["only_b"] or groups["only_a"]:
        example = (groups["only_b"] or groups["only_a"])[0]["id"]
        lines += ["", f"Read both trajectories: python -m react compare {a} {b} --id {example}"]
    return "\n".join(lines)


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


# --------------------------------------------------------------------------- ask: one question, live


def ask(question: str, model_name: str, config_path: Path, answer: str | None, out: TextIO) -> dict[str, Any]:
    """Run one question through the configured model and environment, printing each step as it happens."""
    from react.agent.loop import Task, episode_row, run_agent
    from react.agent.prompts import read_prefix
    from react.config.settings import agent_settings, model_ref
    from react.config.validate import load_config, model_location, model_spec
    from react.environment.wikis import open_wiki, wiki_settings
    from react.inference.registry import start_engine
    from react.io import sha256_text

    config = load_config(config_path)
    if model_name not in config["models"] and model_name not in config["finetune"]:
        raise CliError(f"unknown model {model_name!r} in {config_path} "
                       f"(models: {', '.join(sorted([*config['models'], *config['finetune']]))})")
    spec = model_spec(config, model_name)
    location = model_location(config, model_name)
    if spec["backend"] != "openai" and "hf_id" not in spec and not Path(location).exists():
        raise CliError(f"model {model_name!r}: {location} does not exist yet; make it with "
                       f"`snakemake --cores 2 {location}`")
    corpus_name = config["evaluation"]["corpus"]
    corpus_spec = config["corpus"][corpus_name]
    files = {} if "live" in corpus_spec else {"corpus_path": paths.CORPUS.format(corpus=corpus_name),
                                               "index_path": paths.INDEX.format(corpus=corpus_name)}
    for path in files.values():
        if not Path(path).exists():
            raise CliError(f"corpus {corpus_name!r}: {path} does not exist yet; make it with "
                           f"`snakemake --cores 2 {path}`")
    prefix = read_prefix(spec["prompt"], config["prompt"], config["instruction"])
    agent = agent_settings(config["agent"])
    model = model_ref(model_name, location, spec, config["backends"], None)
    wiki = open_wiki(corpus_name, wiki_settings(corpus_name, corpus_spec), **files)
    form = "" if spec["format"] == "raw" else f", {spec['format']} format"
    print(f"{model_name} ({model.backend}, {spec['prompt']} prompt{form}) on {corpus_name}; starting the engine ...",
          file=out, flush=True)
    backend = start_engine(model)
    width = _width()
    print(_wrap("Question: ", question, width), file=out, flush=True)
    shown = 0

    def on_step(step: int, episodes: list) -> None:
        nonlocal shown
        for i, s in enumerate(episodes[0].steps[shown:], shown + 1):
            print("\n".join(format_step(i, s, width)), file=out, flush=True)
        shown = len(episodes[0].steps)

    try:
        task = Task("ask", question, answer or "", "ask")
        [episode] = run_agent([task], backend, wiki.new_env, prefix, agent, on_step=on_step,
                              strip_question=spec["prompt"] == "instruction", form=spec["format"])
        template = backend.chat_template.sha256 if spec["format"] != "raw" and backend.chat_template else None
    finally:
        backend.close()
        wiki.close()
    row = episode_row(episode, model=model_name, backend=model.backend, config=agent, prompt=spec["prompt"],
                      prompt_sha256=sha256_text(prefix), corpus_sha256=wiki.sha256, chat_template_sha256=template)
    verdict = f"   -> {mark(row).upper()} (gold {answer!r})" if answer else ""
    print(f"Answer: {row['prediction'] or '(none)'} [{row['finish_reason']}]{verdict}", file=out, flush=True)
    return row


# --------------------------------------------------------------------------- entry point


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m react", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    show = commands.add_parser("show", help="list a model's questions, or print one trajectory (--id)")
    show.add_argument("results", help="a model name (results/eval/<name>.parquet) or a Parquet file")
    show.add_argument("--id", help="question id (or its index in the official split)")
    show.add_argument("--wrong", action="store_true", help="list only the questions answered wrongly")
    compare = commands.add_parser("compare", help="questions one model gets right and the other wrong")
    compare.add_argument("a", help="model name or Parquet file")
    compare.add_argument("b", help="model name or Parquet file")
    compare.add_argument("--id", help="print both trajectories of this question")
    ask_cmd = commands.add_parser("ask", help="run one question live and print each step as it happens")
    ask_cmd.add_argument("question")
    ask_cmd.add_argument("--model", required=True, help="a model or finetune run of the config")
    ask_cmd.add_argument("--config", type=Path, default=Path("config/config.yaml"))
    ask_cmd.add_argument("--answer", help="the gold answer, to score the prediction")
    reference = commands.add_parser("config-reference", help="print the configuration reference (Markdown)")
    reference.add_argument("--write", type=Path, metavar="FILE",
                           help="replace the generated section of this file (docs/configuration.md)")
    diff = commands.add_parser("diff", help="compare two result Parquet files and say why they differ")
    diff.add_argument("a", type=Path)
    diff.add_argument("b", type=Path)
    return parser


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    args = build_parser().parse_args(argv)
    try:
        if args.command == "show":
            rows = read_rows(args.results)
            if args.id:
                print(format_episode(find_row(rows, args.id, args.results)), file=out)
            else:
                print(format_listing([r for r in rows if not (args.wrong and r["em"])], args.results), file=out)
        elif args.command == "compare":
            a, b = read_rows(args.a), read_rows(args.b)
            if args.id:
                print(format_episode(find_row(a, args.id, args.a)), file=out)
                print("\n" + "=" * 40 + "\n", file=out)
                print(format_episode(find_row(b, args.id, args.b)), file=out)
            else:
                names = (Path(args.a).stem, Path(args.b).stem)
                print(format_comparison(compare_rows(a, b), *names), file=out)
        elif args.command == "ask":
            ask(args.question, args.model, args.config, args.answer, out)
        elif args.command == "config-reference":
            from react.config.reference import reference_markdown, write_into

            if args.write:
                changed = write_into(args.write)
                print(f"{args.write}: {'updated' if changed else 'already up to date'}", file=out)
            else:
                print(reference_markdown(), end="", file=out)
        elif args.command == "diff":
            same, lines = diff_files(args.a, args.b)
            print("\n".join(lines), file=out)
            return 0 if same else 1
    except (CliError, DataFileError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `... | head`
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
