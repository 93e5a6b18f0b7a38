"""The figures of react/plots.py and the Snakemake report: files written, and their numbers are the table's."""

import base64
import csv
import re
import statistics
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from react.agent.loop import AgentConfig, Task, episode_row, run_agent
from react.environment.offline import WikiEnv
from react.io import write_parquet
from react.results.plots import (
    KeptCheckpoints,
    plot_em,
    plot_finish_reasons,
    plot_losses,
    plot_run_loss,
    plot_steps,
    read_losses,
    write_table_html,
)
from react.results.tables import build_results
from react.schemas import EPISODE_SCHEMA, FINISH_REASONS
from react.search.index import Corpus

PNG = b"\x89PNG\r\n\x1a\n"
MAX_STEPS = 4
# Per question, the action written at each step (the last one repeats); gold answer 'a1'
# (not "a": an article normalises to "", which ReAct's forced `finish[]` would match).
RIGHT, WRONG, TWO_STEPS = ["Finish[a1]"], ["Finish[b]"], ["Search[A]", "Finish[a1]"]
CRASH = ["<no action line, then an empty action>"]  # ReAct's loop would raise: `crashed`
SEARCHES, BOGUS = ["Search[A]"], ["Bogus[x]"]
FAIL = ["<engine refuses>"]  # the backend raises on this question's prompts: finish reason `error`
TOO_LONG = ["<prompt too long>"]  # a question longer than the context: `context_limit`


def eval_file(path, scripted, model, plans):
    """An evaluation file where question i follows plans[i] (see above)."""
    corpus = Corpus.from_paragraphs({"A": ["A is a page."]})
    tasks = [Task(f"q{i}", f"Question {i}?" + (" very long" * 150 if plan == TOO_LONG else ""), "a1", "dev",
                  index=i) for i, plan in enumerate(plans)]

    def question(prompt):
        return int(prompt.split("Question: Question ")[-1].split("?")[0])

    def script(prompt, stop):
        step = prompt.count("Thought ")
        plan = plans[question(prompt)]
        if plan == CRASH:
            return "" if stop == ["\n"] else " think"
        return f" think\nAction {step}: {plan[min(step, len(plan)) - 1]}"

    config = AgentConfig(max_steps=MAX_STEPS)
    backend = scripted(script, max_context=400, fail=lambda prompt: plans[question(prompt)] == FAIL)
    episodes = run_agent(tasks, backend, lambda protocol: WikiEnv(corpus, protocol), "P\n", config)
    rows = [episode_row(e, model=model, backend="scripted", config=config, prompt_sha256="p", corpus_sha256="c")
            for e in episodes]
    write_parquet(pa.Table.from_pylist(rows, schema=EPISODE_SCHEMA), path, {"step": "test"})
    return path


def loss_file(path, losses):
    table = pa.table({"step": list(range(1, len(losses) + 1)), "epoch": [i / 10 for i in range(len(losses))],
                      "loss": losses, "learning_rate": [2e-4] * len(losses), "grad_norm": [1.0] * len(losses)})
    pq.write_table(table, path)
    return path


@pytest.fixture
def results(tmp_path, scripted, project_dir):
    """A results database: a base model, a model finetuned from it, another base; every finish reason."""
    evals = [
        eval_file(tmp_path / "base.parquet", scripted, "base",
                  [RIGHT] * 3 + [WRONG] * 2 + [TWO_STEPS] * 2 + [SEARCHES, BOGUS, FAIL]),
        eval_file(tmp_path / "base-react.parquet", scripted, "base-react",
                  [RIGHT] * 2 + [TWO_STEPS] * 5 + [WRONG, SEARCHES, TOO_LONG]),
        eval_file(tmp_path / "other.parquet", scripted, "other", [WRONG] * 4 + [BOGUS, CRASH]),
    ]
    table, db = tmp_path / "table.csv", tmp_path / "results.duckdb"
    build_results(evals, project_dir / "config/published.csv", table, db,
                  finetuned=[("base-react", "base", "gold", 6)])
    episodes = pa.concat_tables([pq.read_table(p) for p in evals])
    return db, list(csv.DictReader(table.open())), episodes, tmp_path


def number(text):
    return None if text == "" else float(text)


def assert_figures(*paths):
    for path in paths:
        data = path.read_bytes()
        if path.suffix == ".png":
            assert data.startswith(PNG) and len(data) > 5000, path
        else:
            assert ET.fromstring(data).tag == "{http://www.w3.org/2000/svg}svg", path
    assert not list(paths[0].parent.glob(".*.tmp")), "a temporary file was left behind"


def test_em_figure_shows_the_tables_numbers(results):
    db, table, _, tmp = results
    png, svg = tmp / "plots/em.png", tmp / "plots/em.svg"
    plotted = plot_em(db, [png, svg])
    assert_figures(png, svg)
    assert [(r["kind"], r["model"]) for r in plotted] == [(r["kind"], r["model"]) for r in table]
    for drawn, row in zip(plotted, table, strict=True):
        for key in ("n", "em", "em_ci_low", "em_ci_high", "em_diff", "p_value"):
            assert drawn[key] == number(row[key]), (row["model"], key)
    # The finetuned model sits right of its base; the published rows are references.
    assert [r["model"] for r in plotted] == ["base", "base-react", "other",
                                            "GPT-3 text-davinci-002 (ReAct)", "PaLM-540B (ReAct)"]
    assert plotted[2]["em"] == 0.0 and plotted[2]["em_ci_low"] == 0.0


def test_steps_histogram_counts_every_episode(results):
    db, table, episodes, tmp = results
    paths = [tmp / "steps.png", tmp / "steps.svg"]
    plotted = plot_steps(db, paths)
    assert_figures(*paths)
    rows = episodes.to_pylist()
    assert list(plotted) == ["base", "base-react", "other"]
    for row in table[:3]:
        mine = [r["n_steps"] for r in rows if r["model"] == row["model"]]
        drawn = plotted[row["model"]]
        assert drawn["counts"] == dict(Counter(mine))
        assert drawn["n"] == sum(drawn["counts"].values()) == int(row["n"])
        assert drawn["mean_steps"] == float(row["mean_steps"]) == round(statistics.mean(mine), 2)
        assert drawn["max_steps"] == MAX_STEPS


def test_finish_reasons_cover_every_episode(results):
    db, table, episodes, tmp = results
    paths = [tmp / "finish.png", tmp / "finish.svg"]
    plotted = plot_finish_reasons(db, paths)
    assert_figures(*paths)
    rows = episodes.to_pylist()
    for row in table[:3]:
        counts = plotted[row["model"]]["counts"]
        assert list(counts) == list(FINISH_REASONS)
        assert {k: v for k, v in counts.items() if v} == dict(Counter(
            r["finish_reason"] for r in rows if r["model"] == row["model"]))
        assert round(100 * counts["finished"] / plotted[row["model"]]["n"], 1) == float(row["finished_pct"])
    # The fixture reaches every reason, so each colour of the figure is exercised.
    assert {k for d in plotted.values() for k, v in d["counts"].items() if v} == set(FINISH_REASONS)


def test_loss_curves_of_all_runs_in_one_figure(results):
    db, _, _, tmp = results
    short = loss_file(tmp / "short.parquet", [1.5, 1.2, None, 0.9])
    long = loss_file(tmp / "long.parquet", [2.0 / (1 + i / 10) for i in range(120)])  # drawn smoothed
    paths = [tmp / "loss.png", tmp / "loss.svg"]
    # A run in the database (base-react) takes its model's colour; one that is not still gets drawn.
    plotted = plot_losses({"base-react": short, "not-evaluated": long}, paths, db=db)
    assert_figures(*paths)
    assert plotted["base-react"] == [(1, 1.5), (2, 1.2), (4, 0.9)]
    assert plotted["not-evaluated"] == [(i + 1, pytest.approx(2.0 / (1 + i / 10))) for i in range(120)]
    assert plot_losses({"base-react": short}, [tmp / "alone.png"]) == read_losses({"base-react": short})
    assert_figures(tmp / "alone.png")


def test_one_runs_loss_curve_is_the_same_drawing_with_its_checkpoints_marked(tmp_path):
    losses = [2.0, 1.5, 1.2, 1.4, 1.1]
    points = list(enumerate(losses, start=1))
    # Without checkpoints, a run's figure is the all-runs figure of that run alone: one drawing function.
    plot_losses({"training loss": loss_file(tmp_path / "loss.parquet", losses)}, [tmp_path / "all.svg"])
    assert plot_run_loss(points, [tmp_path / "run.svg"], "Training loss of the finetune runs (1 run)") == points
    assert (tmp_path / "run.svg").read_bytes() == (tmp_path / "all.svg").read_bytes()
    # Kept checkpoints (one without a logged loss in its window) and the chosen one are drawn, the same each time.
    kept = KeptCheckpoints([(2, 1.75), (4, float("nan")), (5, 1.1)], chosen=5, save_steps=2)
    first, second = [tmp_path / "a.png", tmp_path / "a.svg"], [tmp_path / "b.png", tmp_path / "b.svg"]
    for paths in (first, second):
        assert plot_run_loss(points, paths, "Training loss of the finetune runs (1 run)", kept) == points
    assert_figures(*first)
    for a, b in zip(first, second, strict=True):
        assert a.read_bytes() == b.read_bytes()
    assert first[1].read_bytes() != (tmp_path / "run.svg").read_bytes()
    plot_run_loss([], [tmp_path / "empty.png"], "no steps logged", kept)  # a run too short to log a loss
    assert_figures(tmp_path / "empty.png")


def test_table_page_holds_the_csv(results):
    db, _, _, tmp = results
    rows = write_table_html(db, tmp / "table.html")
    assert rows == list(csv.reader((tmp / "table.csv").open()))
    page = (tmp / "table.html").read_text()
    assert page.startswith("<!doctype html>") and page.count("<tr") == len(rows)
    assert '<tr class="published"><td class="text">published</td><td class="text">PaLM-540B (ReAct)</td>' in page


def test_figures_are_byte_identical_when_redrawn(results):
    db, _, _, tmp = results
    for draw in (plot_em, plot_steps, plot_finish_reasons):
        first, second = [tmp / "a.png", tmp / "a.svg"], [tmp / "b.png", tmp / "b.svg"]
        draw(db, first)
        draw(db, second)
        for a, b in zip(first, second, strict=True):
            assert a.read_bytes() == b.read_bytes(), (draw.__name__, a.suffix)


def test_missing_inputs_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.duckdb: no such results database"):
        plot_em(tmp_path / "nope.duckdb", [tmp_path / "em.png"])
    with pytest.raises(FileNotFoundError, match="loss.parquet: no such loss file"):
        plot_losses({"run": tmp_path / "loss.parquet"}, [tmp_path / "loss.png"])
    with pytest.raises(ValueError, match="no suffix"):
        plot_losses({}, [tmp_path / "figure"])
    assert not list(tmp_path.iterdir())


# --------------------------------------------------------------------------- the rule, its script, the report


def test_rule_draws_loss_curves_only_when_a_finetune_run_is_evaluated(project_dir, tmp_path):
    from test_workflow import finetune_config, snakemake, tiny_config

    model = tmp_path / "model"  # a dry run only looks for the folder's config.json
    model.mkdir()
    (model / "config.json").write_text("{}")
    for config, runs in ((tiny_config(model), []), (finetune_config(model), ["tiny-react"])):
        dag = snakemake(project_dir, tmp_path, config, "-n", target="all")  # `all` wants the figures
        assert dag.returncode == 0, dag.stderr[-3000:]
        assert "rule plots:" in dag.stdout
        assert ("results/plots/training_loss.png" in dag.stdout) == bool(runs), dag.stdout[-3000:]
        assert [f"results/finetune/{run}/loss.parquet" in dag.stdout for run in runs] == [True] * len(runs)
        assert "results/plots/em_per_model.svg" in dag.stdout and "results/plots/table.html" in dag.stdout


def test_script_writes_every_output_of_the_rule(results, project_dir):
    """workflow/scripts/make_plots.py as Snakemake runs it (its `snakemake` object faked), in a child process."""
    import subprocess
    import sys

    db, _, _, tmp = results
    loss = loss_file(tmp / "loss.parquet", [1.0, 0.8, 0.7])
    names = {"em": "em_per_model", "steps": "steps_per_question", "finish": "finish_reasons", "loss": "training_loss"}
    outputs = {f"{key}_{fmt}": str(tmp / "plots" / f"{name}.{fmt}") for key, name in names.items()
               for fmt in ("png", "svg")}
    outputs["table_html"] = str(tmp / "plots/table.html")
    driver = f"""
import runpy, sys, types
ns = types.SimpleNamespace
snakemake = ns(input=ns(db={str(db)!r}, losses=[{str(loss)!r}]), output=ns(**{outputs!r}),
               params=ns(runs=["base-react"]), log=[{str(tmp / "plots.log")!r}], rule="plots")
runpy.run_path({str(project_dir / "workflow/scripts/make_plots.py")!r}, init_globals={{"snakemake": snakemake}})
"""
    result = subprocess.run([sys.executable, "-c", driver], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:] + (tmp / "plots.log").read_text()[-3000:]
    assert sorted(p.name for p in (tmp / "plots").iterdir()) == sorted(Path(p).name for p in outputs.values())
    assert_figures(*(Path(p) for p in outputs.values() if not p.endswith(".html")))
    assert "wrote" in (tmp / "plots.log").read_text()


# --------------------------------------------------------------------------- the workflow and its report


# A phrase of each caption (workflow/report/*.rst); the workflow's description with the tiny config's numbers filled in.
CAPTIONS = [
    "open language models as ReAct agents on HotPotQA",
    "Each model answers the same 3 questions of the",
    "one row per model, measured rows first",
    "Exact match (EM, % of questions answered exactly right) per measured model",
    "How many Thought/Action/Observation steps each question took, one panel per model",
    "How each model's episodes ended, as stacked shares of its",
]


@pytest.mark.slow
def test_workflow_draws_the_figures_and_the_report_shows_them(project_dir, tiny_model, tmp_path):
    from test_workflow import snakemake, tiny_config

    config = tiny_config(tiny_model)
    result = snakemake(project_dir, tmp_path, config, target="all")
    assert result.returncode == 0, result.stderr[-4000:]
    plots = tmp_path / "results/plots"
    names = ["em_per_model", "steps_per_question", "finish_reasons"]
    assert sorted(p.name for p in plots.iterdir()) == sorted(
        [f"{n}.{fmt}" for n in names for fmt in ("png", "svg")] + ["table.html"])
    assert_figures(*(plots / f"{n}.{fmt}" for n in names for fmt in ("png", "svg")))
    # No finetune run: no loss-curve figure (and nothing of it in the report).
    assert "Nothing to be done" in snakemake(project_dir, tmp_path, config, target="all").stderr

    report = tmp_path / "report.html"
    result = snakemake(project_dir, tmp_path, config, "--report", str(report), target="all")
    assert result.returncode == 0, result.stderr[-4000:]
    html = report.read_text()
    text = " ".join(html.replace("\\n", " ").split())  # captions sit in JSON strings, lines joined by \n
    for caption in CAPTIONS:
        assert caption in text, caption
    for path in ["results/table.csv", "results/plots/table.html",
                 *(f"results/plots/{n}.{fmt}" for n in names for fmt in ("png", "svg"))]:
        assert f'"{path}"' in html, path
    assert "training_loss" not in html
    assert '"Results": {"Table"' in html and "rulegraph" in html
    # The files themselves are embedded (base64 data URIs), byte for byte.
    embedded = {name: base64.b64decode(data) for name, data in re.findall(
        r"data:[^;,]+;charset=[^;,]+;filename=([^;,]+);base64,([A-Za-z0-9+/=]+)", html)}
    assert embedded["table.csv"] == (tmp_path / "results/table.csv").read_bytes()
    assert embedded["table.html"] == (plots / "table.html").read_bytes()
    assert b'<td class="text">tiny</td>' in embedded["table.html"]
    for name in names:
        assert embedded[f"{name}.png"] == (plots / f"{name}.png").read_bytes(), name
