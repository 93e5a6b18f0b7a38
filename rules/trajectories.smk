# Teacher trajectories on a split (one job per shard) and published sets converted to episode rows.


rule generate_trajectories:
    input:
        split="results/data/hotpotqa/{split}.parquet",
        corpus=lambda wildcards: f"results/data/wiki/{TEACHERS[wildcards.teacher]['corpus']}.parquet",
        index=lambda wildcards: f"results/data/wiki/{TEACHERS[wildcards.teacher]['corpus']}.bm25s",
        prompt=PROMPT,
        model=teacher_model_files,
    output:
        "results/trajectories/{teacher}/{split}/shard-{i}-of-{n}.parquet",
    params:
        spec=lambda wildcards: TEACHERS[wildcards.teacher],
        model=lambda wildcards: model_spec(m) if (m := teacher_model(wildcards)) else None,
        location=lambda wildcards: model_location(m) if (m := teacher_model(wildcards)) else None,
        population=lambda wildcards: config["data"][wildcards.split]["population"],
        agent=config["agent"],
        backends=config["backends"],
        schema=SCHEMA_VERSIONS["episode"],
    # A model teacher uses every core; the oracle needs one.
    threads: lambda wildcards: workflow.cores if teacher_model(wildcards) else 1
    log:
        "results/logs/generate/{teacher}/{split}/shard-{i}-of-{n}.log",
    script:
        "../scripts/generate_trajectories.py"


rule import_trajectories:
    input:
        source=lambda wildcards: [str(resolve_path(IMPORTS[wildcards.name]["path"]))] if "path" in IMPORTS[wildcards.name] else [],
        gold=lambda wildcards: (
            [f"results/data/hotpotqa/{IMPORTS[wildcards.name]['gold_split']}.parquet"]
            if IMPORTS[wildcards.name]["gold_split"] else []
        ),
    output:
        "results/imports/{name}.parquet",
    params:
        spec=lambda wildcards: IMPORTS[wildcards.name],
        schema=SCHEMA_VERSIONS["episode"],
    log:
        "results/logs/import/{name}.log",
    script:
        "../scripts/import_trajectories.py"
