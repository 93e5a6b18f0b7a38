# Benchmark (and, in later stages, finetune) language models as ReAct agents on HotPotQA.
#   snakemake --cores 8 results/table.csv
# See README.md for the data flow and config/schema.yaml for every configuration key.
from snakemake.utils import min_version

min_version("9.0")


# A preset given with --configfile is complete on its own (validated, with
# defaults); the embedded default is read only when none is given.
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"


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
    default_target: True
