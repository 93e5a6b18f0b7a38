# Benchmark and finetune language models as ReAct agents on HotPotQA.
#   snakemake --cores 8 results/table.csv     (the table; `snakemake --cores 8` adds results/plots/)
#   snakemake --report report.html            (afterwards: table, figures, captions, rule graph)
# See README.md for the data flow and config/schema.yaml for every configuration key.
from snakemake.utils import min_version

min_version("9.0")


# A preset given with --configfile is complete on its own (validated, with
# defaults); the embedded default is read only when none is given.
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"


# The front page of `snakemake --report report.html` (or .zip); the results and their
# captions come from the report() flags in rules/report.smk and rules/finetune.smk.
report: "report/workflow.rst"


include: "rules/common.smk"
include: "rules/data.smk"
include: "rules/models.smk"
include: "rules/trajectories.smk"
include: "rules/finetune.smk"
include: "rules/evaluate.smk"
include: "rules/report.smk"


rule all:
    input:
        "results/table.csv",
        rules.plots.output,
    default_target: True
