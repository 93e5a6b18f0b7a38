# Teacher trajectories on a split (one job per shard) and published sets converted to episode rows.


rule generate_trajectories:
    input:
        unpack(lambda wildcards: wiki_files(TEACHERS[wildcards.teacher]["corpus"])),
        split=paths.SPLIT,
        prompt=PROMPT,
        model=teacher_model_files,
    output:
        paths.SHARD,
    params:
        spec=lambda wildcards: TEACHERS[wildcards.teacher],
        corpus=lambda wildcards: config["corpus"][TEACHERS[wildcards.teacher]["corpus"]],
        model=lambda wildcards: model_spec(m) if (m := teacher_model(wildcards)) else None,
        location=lambda wildcards: model_location(m) if (m := teacher_model(wildcards)) else None,
        population=lambda wildcards: config["data"][wildcards.split]["population"],
        prompt=config["prompt"],
        agent=config["agent"],
        backends=config["backends"],
        schema=SCHEMA_VERSIONS["episode"],
    # A model teacher uses every core (or its GPUs); the oracle needs one core.
    threads: job_threads("generate", teacher_resources)
    resources:
        **job_resources("generate", teacher_resources),
    conda:
        "../envs/vllm.yaml"
    log:
        paths.LOG.format(rule="generate", job="{teacher}/{split}/shard-{i}-of-{n}"),
    script:
        "../scripts/generate_trajectories.py"


rule import_trajectories:
    input:
        source=lambda wildcards: [str(resolve_path(IMPORTS[wildcards.name]["path"]))] if "path" in IMPORTS[wildcards.name] else [],
        gold=lambda wildcards: (
            [paths.SPLIT.format(split=IMPORTS[wildcards.name]["gold_split"])]
            if IMPORTS[wildcards.name]["gold_split"] else []
        ),
    output:
        paths.IMPORT,
    params:
        spec=lambda wildcards: IMPORTS[wildcards.name],
        schema=SCHEMA_VERSIONS["episode"],
    threads: job_threads()
    resources:
        **job_resources(),
    conda:
        "../envs/core.yaml"
    log:
        paths.LOG.format(rule="import", job="{name}"),
    script:
        "../scripts/import_trajectories.py"
