"""Snakemake rule import_trajectories: a published trajectory set as episode rows."""

from react.pipeline.jobs import logged, start

start(snakemake)  # first: the job's thread limit, before numpy sizes its pools

from react.data.imports import import_fireact, import_react_llama, write_import
from react.provenance import make_provenance

with logged(snakemake):
    spec = dict(snakemake.params.spec)
    if spec["format"] == "fireact":
        gold = snakemake.input.gold[0] if snakemake.input.gold else None
        table = import_fireact(snakemake.input.source[0], train_split=gold)
    else:
        source = {"path": snakemake.input.source[0]} if snakemake.input.source else {
            "hf_id": spec["hf_id"], "split": spec["split"]}
        table = import_react_llama(source)
    write_import(table, snakemake.output[0], make_provenance("import", spec))
