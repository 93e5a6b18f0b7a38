# One job per model: the question sample advances in lockstep, one batched call per step.


rule evaluate:
    input:
        split=f"results/data/hotpotqa/{EVAL['split']}.parquet",
        corpus=f"results/data/wiki/{EVAL['corpus']}.parquet",
        index=f"results/data/wiki/{EVAL['corpus']}.bm25s",
        prompt=lambda wildcards: PROMPT if model_spec(wildcards.model)["prompt"] == "few-shot" else INSTRUCTION,
        model=model_files,
    output:
        "results/eval/{model}.parquet",
    params:
        location=lambda wildcards: model_location(wildcards.model),
        model=lambda wildcards: model_spec(wildcards.model),
        agent=config["agent"],
        evaluation={k: v for k, v in EVAL.items() if k != "models"},
        population=config["data"][EVAL["split"]]["population"],
        backends=config["backends"],
        schema=SCHEMA_VERSIONS["episode"],
    # The engine uses every core it is given; two at once would only compete.
    threads: workflow.cores
    log:
        "results/logs/evaluate/{model}.log",
    script:
        "../scripts/evaluate.py"
