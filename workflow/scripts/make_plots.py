"""Snakemake rule plots: results/plots/ (figures, and the table as HTML) from results/results.duckdb and the loss files."""

from react.pipeline.jobs import logged, start

start(snakemake)  # first: the job's thread limit, before numpy sizes its pools

from react.results.plots import plot_em, plot_finish_reasons, plot_losses, plot_steps, write_table_html

with logged(snakemake):
    out = snakemake.output
    db = snakemake.input.db
    plot_em(db, [out.em_png, out.em_svg])
    plot_steps(db, [out.steps_png, out.steps_svg])
    plot_finish_reasons(db, [out.finish_png, out.finish_svg])
    write_table_html(db, out.table_html)
    if snakemake.params.runs:
        losses = dict(zip(snakemake.params.runs, snakemake.input.losses, strict=True))
        plot_losses(losses, [out.loss_png, out.loss_svg], db=db)
