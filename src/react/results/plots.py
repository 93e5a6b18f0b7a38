"""Figures of the results, from results/results.duckdb and the finetune runs' loss files.

Each ``plot_*`` function reads its numbers with SQL from the database the table is
made from (views ``summary`` and ``episodes``, table ``finetuned_rows``; see
src/react/results/sql/), draws one figure, writes it to every path it is given (the format
follows the suffix: .png, .svg, .pdf) atomically, and returns the rows it plotted,
so that a test can hold them against ``results/table.csv``. :func:`write_table_html`
writes the table itself as a page for the Snakemake report. The training loss is drawn
by one function, for all runs (:func:`plot_losses`) and for one run as its finetune job
writes it, with the kept checkpoints marked (:func:`plot_run_loss`).

Figures are drawn on a bare :class:`matplotlib.figure.Figure` (the Agg renderer, no
pyplot, no display), and written without timestamps, so that the same database gives
the same files. Every model keeps its colour in every figure (:func:`model_colours`);
a finetuned model sits right of its base model and its bars are hatched.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING, Any

import matplotlib
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator, PercentFormatter

from react.io import atomic_path
from react.schemas import FINISH_REASONS

if TYPE_CHECKING:
    import duckdb

log = logging.getLogger(__name__)

PathLike = str | Path

# Colour of each finish reason (the finish-reason figure colours reasons, not models).
REASON_COLOURS = {
    "finished": "#4c9a2a",
    "step_limit": "#f0a030",
    "parse_error": "#d43d3d",
    "context_limit": "#8e5bb5",
    "crashed": "#b5651d",
    "error": "#7f7f7f",
}
REASON_LABELS = {
    "finished": "finished (Finish[...])",
    "step_limit": "step limit reached",
    "parse_error": "parse error (no well-formed action)",
    "context_limit": "context limit (prompt outgrew the model)",
    "crashed": "crashed (ReAct's loop would raise; wrong)",
    "error": "error (engine refused the prompt)",
}
FINETUNED_HATCH = "///"
DPI = 120
# Fixed: SVG element ids and no dates, so that a figure is byte-identical across runs.
RC = {"svg.hashsalt": "react-bench", "svg.fonttype": "path", "font.size": 9, "axes.titlesize": 10,
      "hatch.color": "white", "hatch.linewidth": 1.2}


# --------------------------------------------------------------------------- data


def connect(db: PathLike) -> duckdb.DuckDBPyConnection:
    """A read-only connection to results/results.duckdb (fails naming the file if it is missing)."""
    if not Path(db).is_file():
        raise FileNotFoundError(f"{db}: no such results database (made by the rule table)")
    import duckdb  # here: the finetune job draws its loss curve where duckdb is not installed

    return duckdb.connect(str(db), read_only=True)


def _rows(con: duckdb.DuckDBPyConnection, query: str, params: list | None = None) -> list[dict[str, Any]]:
    cursor = con.execute(query, params or [])
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def measured_models(con: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    """The measured rows of the table (view ``summary``), in the table's order: each base, then its finetuned."""
    return _rows(con, "SELECT * FROM summary WHERE kind = 'measured'")


def model_colours(models: Iterable[str]) -> dict[str, Any]:
    """One colour per model, in the table's order (tab10, then tab20 beyond ten models)."""
    models = list(dict.fromkeys(models))
    cmap = matplotlib.colormaps["tab10" if len(models) <= 10 else "tab20"]
    return {model: cmap(i % cmap.N) for i, model in enumerate(models)}


def _colours(con: duckdb.DuckDBPyConnection, extra: Iterable[str] = ()) -> dict[str, Any]:
    return model_colours([*(r["model"] for r in measured_models(con)), *extra])


def _groups(rows: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Rows grouped by base model (a base model first, then the models finetuned from it)."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(row["base_model"] or row["model"], []).append(row)
    return list(groups.values())


def _positions(groups: list[list[Any]], gap: float = 0.6) -> list[float]:
    """x positions of the bars: adjacent within a group, ``gap`` between groups."""
    xs, x = [], 0.0
    for group in groups:
        for _ in group:
            xs.append(x)
            x += 1
        x += gap
    return xs


def _model_label(row: dict[str, Any]) -> str:
    lines = [row["model"]]
    if row.get("base_model"):
        n_train = f", {row['n_train']} ex." if row.get("n_train") is not None else ""
        lines.append(f"finetuned on {row['dataset']}{n_train}")
    form = f" ({row['format']})" if row.get("format") not in (None, "", "raw") else ""
    prompt = f"{row['prompt']} prompt{form}, " if row.get("prompt") else ""
    lines.append(f"{prompt}n = {row['n']}")
    return "\n".join(lines)


# --------------------------------------------------------------------------- writing


def save(fig: Figure, paths: Iterable[PathLike]) -> list[Path]:
    """Write ``fig`` to each path atomically, in the format its suffix names."""
    written = []
    for path in map(Path, paths):
        fmt = path.suffix.lstrip(".").lower()
        if not fmt:
            raise ValueError(f"{path}: no suffix to tell the figure's format (.png, .svg, ...)")
        metadata = {"Date": None} if fmt in ("svg", "pdf") else None
        with matplotlib.rc_context(RC), atomic_path(path) as tmp:
            fig.savefig(tmp, format=fmt, dpi=DPI, metadata=metadata)
        log.info("wrote %s", path)
        written.append(path)
    return written


def _figure(width: float, height: float) -> Figure:
    with matplotlib.rc_context(RC):
        return Figure(figsize=(width, height), dpi=DPI, layout="constrained")


def _draw_or_explain(paths: Iterable[PathLike], size: tuple[float, float], draw: Callable[[Figure], None] | None,
                     title: str, missing: str) -> None:
    """One figure of ``size`` drawn by ``draw``, or, when there is nothing to draw (None), saying why."""
    with matplotlib.rc_context(RC):
        fig = _figure(*size)
        if draw is None:
            _empty(fig, title, missing)
        else:
            draw(fig)
    save(fig, paths)


def _empty(fig: Figure, title: str, message: str) -> None:
    ax = fig.subplots()
    ax.set_axis_off()
    ax.set_title(title)
    ax.text(0.5, 0.5, message, ha="center", va="center", transform=ax.transAxes, color="dimgrey")


# --------------------------------------------------------------------------- EM per model


def plot_em(db: PathLike, paths: Iterable[PathLike]) -> list[dict[str, Any]]:
    """Exact match per model with its 95% Wilson interval; published figures as reference lines.

    Returns the rows plotted (``summary``'s kind, model, base_model, n, em, em_ci_low,
    em_ci_high, em_diff, p_value), measured then published, as in the table.
    """
    with connect(db) as con:
        measured = measured_models(con)
        published = _rows(con, "SELECT * FROM summary WHERE kind = 'published'")
        colours = _colours(con)
    _draw_or_explain(paths, (max(6.5, 1.6 + 1.9 * len(measured)), 6.0),
                     (lambda fig: _draw_em(fig, measured, published, colours)) if measured else None,
                     "Exact match per model", "no measured model")
    keys = ("kind", "model", "base_model", "n", "em", "em_ci_low", "em_ci_high", "em_diff", "p_value")
    return [{k: row.get(k) for k in keys} for row in [*measured, *published]]


def _draw_em(fig: Figure, measured, published, colours) -> None:
    ax = fig.subplots()
    groups = _groups(measured)
    xs = _positions(groups)
    top = 0.0
    for x, row in zip(xs, measured, strict=True):
        em, low, high = row["em"], row["em_ci_low"], row["em_ci_high"]
        ax.bar(x, em, width=0.7, color=colours[row["model"]], edgecolor="black", linewidth=0.6,
               hatch=FINETUNED_HATCH if row["base_model"] else None, zorder=2)
        ax.errorbar(x, em, yerr=[[em - low], [high - em]], fmt="none", ecolor="black", capsize=6, lw=1.2, zorder=3)
        text = f"{em:.1f}%\n[{low:.1f}, {high:.1f}]"
        if row["em_diff"] is not None:
            text += f"\n{row['em_diff']:+.1f} pts vs base\nMcNemar p = {row['p_value']:.2g}"
        ax.annotate(text, (x, high), textcoords="offset points", xytext=(0, 4), ha="center", va="bottom",
                    fontsize=8, zorder=4)
        top = max(top, high)
    styles = ["--", ":", "-.", (0, (5, 1, 1, 1, 1, 1))]
    for i, row in enumerate(published):
        ax.axhline(row["em"], color="0.35", lw=1.1, ls=styles[i % len(styles)], zorder=1,
                   label=f"published: {row['model']}, {row['em']:.1f}% (n = {row['n']})")
        top = max(top, row["em"])
    ax.set_xticks(xs, [_model_label(r) for r in measured], fontsize=8)
    for tick, row in zip(ax.get_xticklabels(), measured, strict=True):
        tick.set_color(colours[row["model"]])
    ax.set_xlim(xs[0] - 0.8, xs[-1] + 0.8)
    # Room above the highest interval for its (up to four-line) label; ticks stop at 100%.
    ax.set_ylim(0, top + max(10.0, 0.3 * top))
    ax.yaxis.set_major_locator(MaxNLocator(nbins=8, steps=[1, 2, 2.5, 5, 10]))
    ax.set_yticks([t for t in ax.get_yticks() if 0 <= t <= 100])
    ax.yaxis.set_major_formatter(PercentFormatter(decimals=0))
    ax.set_ylabel("exact match (% of questions)")
    ax.set_title("Exact match per model, with its 95% Wilson interval")
    ax.grid(axis="y", alpha=0.3, zorder=0)
    handles, labels = ax.get_legend_handles_labels()
    if any(r["base_model"] for r in measured):
        handles.append(Patch(facecolor="0.6", edgecolor="black", hatch=FINETUNED_HATCH))
        labels.append("finetuned (right of its base model)")
    if handles:  # below the axes, clear of the bars and their labels
        ax.legend(handles, labels, fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.17), frameon=False,
                  ncols=1 if len(measured) < 3 else 2)


# --------------------------------------------------------------------------- steps per question


def plot_steps(db: PathLike, paths: Iterable[PathLike]) -> dict[str, dict[str, Any]]:
    """Histogram of the steps each question took, one panel per model (finetuned beside their base).

    Returns per model: ``n``, ``max_steps``, ``counts`` ({n_steps: episodes}) and ``mean_steps``.
    """
    with connect(db) as con:
        measured = measured_models(con)
        colours = _colours(con)
        counts = _rows(con, "SELECT model, n_steps, count(*) AS episodes FROM episodes GROUP BY ALL ORDER BY ALL")
        limits = dict(con.execute("SELECT model, max(max_steps) FROM episodes GROUP BY model").fetchall())
    data = {
        row["model"]: {"n": row["n"], "max_steps": limits[row["model"]], "mean_steps": row["mean_steps"],
                       "counts": {c["n_steps"]: c["episodes"] for c in counts if c["model"] == row["model"]}}
        for row in measured
    }
    groups = _groups(measured)
    ncols = max((len(g) for g in groups), default=1)
    _draw_or_explain(paths, (max(6.0, 3.6 * ncols), 0.6 + 2.8 * max(len(groups), 1)),
                     (lambda fig: _draw_steps(fig, groups, ncols, data, colours)) if measured else None,
                     "Steps per question", "no measured model")
    return data


def _draw_steps(fig: Figure, groups, ncols, data, colours) -> None:
    axes = fig.subplots(len(groups), ncols, sharey=True, squeeze=False)
    limit = max(d["max_steps"] for d in data.values())
    first = 0 if any(d["counts"].get(0) for d in data.values()) else 1  # 0: ended before its first step
    steps = list(range(first, limit + 1))
    top = max(100 * c / d["n"] for d in data.values() for c in d["counts"].values())
    for r, (axes_row, group) in enumerate(zip(axes, groups, strict=True)):
        for ax in axes_row[len(group):]:
            ax.set_visible(False)
        for c, (ax, row) in enumerate(zip(axes_row, group)):
            d = data[row["model"]]
            share = [100 * d["counts"].get(s, 0) / d["n"] for s in steps]
            bars = ax.bar(steps, share, width=0.8, color=colours[row["model"]], edgecolor="black", linewidth=0.5,
                          hatch=FINETUNED_HATCH if row["base_model"] else None, zorder=2)
            ax.bar_label(bars, labels=[str(d["counts"][s]) if d["counts"].get(s) else "" for s in steps],
                         fontsize=7, padding=1)
            # The mean (the table's mean_steps) as a marker on the axis, clear of the bar labels.
            ax.plot([d["mean_steps"]], [0], marker="^", ms=8, color="black", ls="none", clip_on=False, zorder=4,
                    label=f"mean: {d['mean_steps']:.2f} steps")
            ax.axvline(d["max_steps"] + 0.5, color="0.4", ls=":", lw=1, zorder=3,
                       label=f"step limit ({d['max_steps']})")
            title = f"{row['model']} (n = {d['n']})"
            if row["base_model"]:
                title += f"\nfinetuned from {row['base_model']}"
            ax.set_title(title, color=colours[row["model"]], fontsize=9)
            ax.legend(fontsize=7, loc="upper right")
            ax.grid(axis="y", alpha=0.3, zorder=0)
            ax.set_xticks(steps)
            ax.set_xlim(first - 0.7, limit + 0.9)
            ax.set_ylim(0, min(100.0, top * 1.3 + 2))
            ax.yaxis.set_major_formatter(PercentFormatter(decimals=0))
            if c == 0:
                ax.set_ylabel("% of questions")
            if not any(len(g) > c for g in groups[r + 1:]):  # the lowest panel of its column
                ax.set_xlabel("steps taken (bar labels: questions)")
    fig.suptitle("Steps per question (Thought/Action/Observation rounds until the episode ended)", fontsize=10)


# --------------------------------------------------------------------------- finish reasons


def plot_finish_reasons(db: PathLike, paths: Iterable[PathLike]) -> dict[str, dict[str, Any]]:
    """Stacked bars: how each model's episodes ended, as a share of its questions.

    Returns per model: ``n`` and ``counts`` ({finish_reason: episodes}, every reason, zeros included).
    """
    with connect(db) as con:
        measured = measured_models(con)
        colours = _colours(con)
        counts = _rows(con, "SELECT model, finish_reason, count(*) AS episodes FROM episodes GROUP BY ALL ORDER BY ALL")
    seen = [c["finish_reason"] for c in counts]
    reasons = [*FINISH_REASONS, *sorted(set(seen) - set(FINISH_REASONS))]
    data = {row["model"]: {"n": row["n"], "counts": {
        reason: sum(c["episodes"] for c in counts if c["model"] == row["model"] and c["finish_reason"] == reason)
        for reason in reasons}} for row in measured}
    _draw_or_explain(paths, (max(6.0, 1.6 + 2.1 * len(measured)), 5.8),
                     (lambda fig: _draw_finish(fig, measured, reasons, data, colours)) if measured else None,
                     "How the episodes ended", "no measured model")
    return data


def _draw_finish(fig: Figure, measured, reasons, data, colours) -> None:
    ax = fig.subplots()
    xs = _positions(_groups(measured))
    width = 0.45
    bottoms = [0.0] * len(measured)
    small: list[list[tuple[float, str, str]]] = [[] for _ in measured]  # thin segments, labelled beside the bar
    for reason in reasons:
        counts = [data[r["model"]]["counts"][reason] for r in measured]
        share = [100 * c / data[r["model"]]["n"] for c, r in zip(counts, measured, strict=True)]
        colour = REASON_COLOURS.get(reason, "#bbbbbb")
        bars = ax.bar(xs, share, bottom=bottoms, width=width, color=colour, edgecolor="white", linewidth=0.8,
                      label=REASON_LABELS.get(reason, reason), zorder=2)
        ax.bar_label(bars, labels=[f"{s:.0f}% ({c})" if s >= 5 else "" for s, c in zip(share, counts, strict=True)],
                     label_type="center", fontsize=8, color="black" if reason == "step_limit" else "white")
        for i, (s, c) in enumerate(zip(share, counts, strict=True)):
            if 0 < s < 5:
                small[i].append((bottoms[i] + s / 2, f"{s:.0f}% ({c}) {reason}", colour))
        bottoms = [b + s for b, s in zip(bottoms, share, strict=True)]
    for x, labels in zip(xs, small, strict=True):
        ys = [y for y, _, _ in labels]
        for k in range(1, len(ys)):  # keep the labels 4 points apart, below the top
            ys[k] = max(ys[k], ys[k - 1] + 4)
        for k in range(len(ys) - 1, -1, -1):
            ys[k] = min(ys[k], 98 - 4 * (len(ys) - 1 - k))
        for y, (_, text, colour) in zip(ys, labels, strict=True):
            ax.annotate(text, (x + width / 2, y), xytext=(4, 0), textcoords="offset points", va="center",
                        fontsize=7.5, color=colour, fontweight="bold")
    ax.set_xticks(xs, [_model_label(r) for r in measured], fontsize=8)
    for tick, row in zip(ax.get_xticklabels(), measured, strict=True):
        tick.set_color(colours[row["model"]])
    ax.set_xlim(xs[0] - 0.55, xs[-1] + 1.0)
    ax.set_ylim(0, 100)
    ax.yaxis.set_major_formatter(PercentFormatter(decimals=0))
    ax.set_ylabel("% of questions")
    ax.set_title("How the episodes ended, per model")
    ax.grid(axis="y", alpha=0.3, zorder=0)
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncols=2, title="finish reason",
              title_fontsize=8, frameon=False)


# --------------------------------------------------------------------------- the table, for the report

TABLE_CSS = """
body { font-family: sans-serif; font-size: 13px; margin: 1em; }
table { border-collapse: collapse; }
th, td { border: 1px solid #ccc; padding: 3px 7px; text-align: right; white-space: nowrap; }
th { background: #f2f2f2; position: sticky; top: 0; }
td.text { text-align: left; }
tr.published td { color: #666; font-style: italic; }
caption { caption-side: bottom; text-align: left; padding-top: 0.6em; color: #444; }
"""


def _cell(value: Any) -> str:
    return "" if value is None else str(value)


def write_table_html(db: PathLike, path: PathLike) -> list[list[str]]:
    """The comparison table (view ``summary``, what results/table.csv holds) as an HTML page.

    The Snakemake report shows HTML inline but offers a CSV only as a download. Returns
    the header and rows written, as strings (the CSV's spelling of each value).
    """
    with connect(db) as con:
        cursor = con.execute("FROM summary")
        header = [d[0] for d in cursor.description]
        rows = [[_cell(v) for v in row] for row in cursor.fetchall()]
    text_columns = {"kind", "model", "base_model", "dataset", "backend", "prompt", "format", "source"}
    lines = ["<!doctype html>", '<html lang="en"><head><meta charset="utf-8">',
             "<title>react-bench: comparison table</title>", f"<style>{TABLE_CSS}</style></head><body>",
             "<table>", "<thead><tr>" + "".join(f"<th>{escape(h)}</th>" for h in header) + "</tr></thead>", "<tbody>"]
    for row in rows:
        kind = row[header.index("kind")]
        cells = "".join(f'<td class="text">{escape(v)}</td>' if h in text_columns else f"<td>{escape(v)}</td>"
                        for h, v in zip(header, row, strict=True))
        lines.append(f'<tr class="{escape(kind)}">{cells}</tr>')
    lines += ["</tbody>",
              "<caption>EM and F1 in percent; em_ci_low-em_ci_high: 95% Wilson interval; em_diff: percentage "
              "points against the base model on n_paired questions, p_value: McNemar's exact test. Published rows "
              "(grey) are the cited papers' figures, not measured here.</caption>",
              "</table></body></html>", ""]
    with atomic_path(path) as tmp:
        tmp.write_text("\n".join(lines), encoding="utf-8")
    log.info("wrote %s (%d rows)", path, len(rows))
    return [header, *rows]


# --------------------------------------------------------------------------- training loss


@dataclass(frozen=True)
class KeptCheckpoints:
    """A run's kept checkpoints, as its loss figure marks them."""

    losses: Sequence[tuple[int, float]]  # (step, mean loss since the save before it; NaN if none was logged)
    chosen: int | None = None  # the step merged
    save_steps: int | None = None  # to draw the window each loss is the mean of


def read_losses(loss_files: Mapping[str, PathLike]) -> dict[str, list[tuple[int, float]]]:
    """(step, loss) per finetune run from its loss.parquet (steps without a loss left out)."""
    import duckdb

    out = {}
    for run, path in loss_files.items():
        if not Path(path).is_file():
            raise FileNotFoundError(f"{path}: no such loss file (made by the rule finetune)")
        rows = duckdb.execute("SELECT step, loss FROM read_parquet(?) WHERE loss IS NOT NULL ORDER BY step",
                              [str(path)]).fetchall()
        out[run] = [(int(step), float(loss)) for step, loss in rows]
    return out


def plot_losses(loss_files: Mapping[str, PathLike], paths: Iterable[PathLike],
                db: PathLike | None = None) -> dict[str, list[tuple[int, float]]]:
    """Training loss per step of every finetune run, in one figure (a run keeps its model's colour).

    ``loss_files`` maps a run's name to its results/finetune/{run}/loss.parquet; ``db``
    (optional) gives each run's colour, base model, dataset and number of examples.
    Returns the (step, loss) points plotted per run.
    """
    data = read_losses(loss_files)
    info: dict[str, dict[str, Any]] = {}
    colours = model_colours(data)
    if db is not None:
        with connect(db) as con:
            info = {r["model"]: r for r in _rows(con, "SELECT * FROM finetuned_rows")}
            colours = _colours(con, extra=data)
    labels = {run: f"{run} ({info[run]['base_model']} on {info[run]['dataset']}, {info[run]['n_train']} ex.)"
              for run in data if run in info}
    title = f"Training loss of the finetune runs ({len(data)} run{'s' if len(data) != 1 else ''})"
    _plot_losses(data, paths, title, labels, colours)
    return data


def plot_run_loss(points: Sequence[tuple[int, float]], paths: Iterable[PathLike], title: str,
                  kept: KeptCheckpoints | None = None) -> list[tuple[int, float]]:
    """One finetune run's training loss per step (results/finetune/{run}/loss.png), its kept checkpoints marked.

    The figure of :func:`plot_losses`, for one run, with each kept checkpoint's mean loss
    over its window and the one chosen for merging highlighted. Returns the points plotted.
    """
    run = "training loss"
    data = {run: [(int(step), float(loss)) for step, loss in points if loss is not None]}
    _plot_losses(data, paths, title, {}, model_colours(data), {run: kept} if kept else {})
    return data[run]


def _plot_losses(data, paths, title, labels, colours, kept: Mapping[str, KeptCheckpoints] | None = None) -> None:
    _draw_or_explain(paths, (8.0, 4.8),
                     (lambda fig: _draw_losses(fig, data, labels, colours, title, kept or {})) if any(data.values()) else None,
                     "Training loss", "no finetune run logged a loss")


def _smooth(values: list[float], window: int) -> list[float]:
    out, total = [], 0.0
    for i, v in enumerate(values):
        total += v
        if i >= window:
            total -= values[i - window]
        out.append(total / min(i + 1, window))
    return out


def _draw_losses(fig: Figure, data, labels, colours, title, kept: Mapping[str, KeptCheckpoints]) -> None:
    ax = fig.subplots()
    for run, points in data.items():
        if not points:
            continue
        steps, losses = zip(*points, strict=True)
        label = f"{labels.get(run, run)}: {steps[-1]} steps, last loss {losses[-1]:.3f}"
        colour = colours[run]
        window = max(1, len(points) // 20)
        if window > 1:  # long runs: the raw loss faint, its moving average bold
            ax.plot(steps, losses, color=colour, lw=0.8, alpha=0.3)
            ax.plot(steps, _smooth(list(losses), window), color=colour, lw=1.8, label=f"{label} (line: mean of {window} steps)")
        else:
            ax.plot(steps, losses, color=colour, lw=1.5, marker="o", ms=3, label=label)
        if run in kept:
            _mark_checkpoints(ax, kept[run])
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("training loss (cross-entropy per token)")
    ax.set_ylim(bottom=0)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper right")


def _mark_checkpoints(ax, kept: KeptCheckpoints) -> None:
    for step, loss in kept.losses:
        ax.axvline(step, color="grey", lw=0.8, ls=":", zorder=0)
        if math.isnan(loss):
            continue
        colour = "tab:red" if step == kept.chosen else "tab:orange"
        if kept.save_steps:
            ax.hlines(loss, ((step - 1) // kept.save_steps) * kept.save_steps, step, lw=2, color=colour, alpha=0.6)
        ax.plot([step], [loss], marker="*" if step == kept.chosen else "o", ms=14 if step == kept.chosen else 7,
                color=colour, zorder=3)
        ax.annotate(f"ckpt {step}\n{loss:.3f}", (step, loss), textcoords="offset points", xytext=(4, 8),
                    fontsize=8, color="tab:red" if step == kept.chosen else "dimgrey")
    if kept.losses:
        ax.plot([], [], "o", color="tab:orange", label="kept checkpoint: mean loss since the previous save")
    if kept.chosen is not None:
        ax.plot([], [], "*", ms=12, color="tab:red", label=f"chosen for merging: step {kept.chosen}")


def plot_rl_curves(steps: Mapping[str, Sequence[Any]], path: PathLike, title: str) -> None:
    """A GRPO run's per-step numbers (results/rl/{run}/steps.parquet as columns) in four panels.

    Reward (mean, its spread across the step's rollouts, and a moving average); EM and
    finished %; invalid-action %; loss and, when a reference model is run, KL.
    """
    _draw_or_explain([path], (10.0, 7.0), (lambda fig: _draw_rl(fig, steps, title)) if steps["step"] else None,
                     "GRPO", "no step was recorded")


def _draw_rl(fig: Figure, data: Mapping[str, Sequence[Any]], title: str) -> None:
    x = list(data["step"])
    (reward, quality), (invalid, loss) = fig.subplots(2, 2, sharex=True)
    mean, sd = list(data["reward"]), list(data["reward_std"])
    reward.fill_between(x, [m - s for m, s in zip(mean, sd)], [m + s for m, s in zip(mean, sd)], color="tab:blue",
                        alpha=0.15, label="± sd of the step's rollouts")
    reward.plot(x, mean, color="tab:blue", lw=0.8, marker="o", ms=2, label="mean reward")
    window = max(1, len(x) // 5)
    if window > 1:
        reward.plot(x, _smooth(mean, window), color="tab:blue", lw=2, label=f"mean of {window} steps")
    failed = [s for s, f in zip(x, data["all_failed"]) if f]
    if failed:
        reward.plot(failed, [0] * len(failed), "x", color="tab:red", label="every rollout failed")
    reward.set_ylabel("reward")
    quality.plot(x, data["em"], color="tab:green", label="EM %")
    quality.plot(x, data["finished_pct"], color="tab:orange", label="finished %")
    quality.set_ylabel("% of the step's rollouts")
    invalid.plot(x, data["invalid_action_pct"], color="tab:red", label="invalid actions % of steps")
    invalid.set_ylabel("%")
    loss.plot(x, [v if v is not None else math.nan for v in data["loss"]], color="tab:purple", label="loss")
    loss.set_ylabel("GRPO loss")
    if any(v is not None for v in data["kl"]):
        kl = loss.twinx()
        kl.plot(x, [v if v is not None else math.nan for v in data["kl"]], color="tab:grey", label="KL")
        kl.set_ylabel("KL to the start model")
        kl.legend(fontsize=8, loc="upper right")
    for ax in (reward, quality, invalid, loss):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="upper left")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    invalid.set_xlabel("GRPO step")
    loss.set_xlabel("GRPO step")
    fig.suptitle(title, fontsize=10)
