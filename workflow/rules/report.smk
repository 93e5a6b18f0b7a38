# The comparison table: DuckDB SQL over the evaluation Parquet files.


rule table:
    input:
        evals=expand(paths.EVAL, model=EVAL["models"]),
        manifests=[info["manifest"] for info in {**finetuned_model_info(), **rl_model_info()}.values()],
        published=(
            [str(resolve_path(config["report"]["published"]))]
            if config["report"]["published"]
            else []
        ),
    output:
        table=report(
            paths.TABLE,
            caption="../report/table.rst",
            category="Results",
            subcategory="Table",
            labels={"table": "comparison table", "format": "CSV"},
        ),
        db=paths.DATABASE,
    params:
        finetuned={**finetuned_model_info(), **rl_model_info()},
    threads: job_threads()
    resources:
        **job_resources(),
    conda:
        "../envs/core.yaml"
    log:
        f"{paths.LOG_DIR}/table.log",
    script:
        "../scripts/make_table.py"


# Figures of the table's numbers (react/plots.py), PNG and SVG, and the table as HTML for the
# report (which shows HTML inline but offers a CSV only as a download); each with a caption.
# Loss curves: every finetune run that is evaluated (the runs the table needs anyway).
PLOTTED_RUNS = list(finetuned_model_info())
FIGURES = {
    # key: (file name, also of its caption report/<name>.rst; report category, subcategory; label)
    "em": ("em_per_model", "Results", "Figures", "EM per model"),
    "steps": ("steps_per_question", "Results", "Figures", "steps per question"),
    "finish": ("finish_reasons", "Results", "Figures", "finish reasons"),
    **(
        {"loss": ("training_loss", "Finetuning", "All runs", "training loss")}
        if PLOTTED_RUNS
        else {}
    ),
}
PLOT_OUTPUTS = {
    f"{key}_{fmt}": report(
        paths.PLOT.format(name=name, ext=fmt),
        caption=f"../report/{name}.rst",
        category=category,
        subcategory=subcategory,
        labels={"figure": label, "format": fmt.upper()},
    )
    for key, (name, category, subcategory, label) in FIGURES.items()
    for fmt in ("png", "svg")
}


rule plots:
    input:
        db=paths.DATABASE,
        losses=[paths.LOSS.format(run=run) for run in PLOTTED_RUNS],
    output:
        **PLOT_OUTPUTS,
        table_html=report(
            paths.TABLE_HTML,
            caption="../report/table.rst",
            category="Results",
            subcategory="Table",
            labels={"table": "comparison table", "format": "HTML"},
        ),
    params:
        runs=PLOTTED_RUNS,
    threads: job_threads()
    resources:
        **job_resources(),
    conda:
        "../envs/core.yaml"
    log:
        f"{paths.LOG_DIR}/plots.log",
    script:
        "../scripts/make_plots.py"
