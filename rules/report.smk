# The comparison table: DuckDB SQL over the evaluation Parquet files.


rule table:
    input:
        evals=expand("results/eval/{model}.parquet", model=EVAL["models"]),
        published=(
            [str(resolve_path(config["report"]["published"]))]
            if config["report"]["published"]
            else []
        ),
    output:
        table="results/table.csv",
        db="results/results.duckdb",
    log:
        "results/logs/table.log",
    script:
        "../scripts/make_table.py"
