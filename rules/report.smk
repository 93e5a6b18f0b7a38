# The comparison table: DuckDB SQL over the evaluation Parquet files.


rule table:
    input:
        evals=expand("results/eval/{model}.parquet", model=EVAL["models"]),
        manifests=[info["manifest"] for info in finetuned_model_info().values()],
        published=(
            [str(resolve_path(config["report"]["published"]))]
            if config["report"]["published"]
            else []
        ),
    output:
        table="results/table.csv",
        db="results/results.duckdb",
    params:
        finetuned=finetuned_model_info(),
    threads: job_threads()
    resources:
        **job_resources(),
    conda:
        "../envs/core.yaml"
    log:
        "results/logs/table.log",
    script:
        "../scripts/make_table.py"
