# One job per model: the question sample advances in lockstep, one batched call per step.


rule evaluate:
    input:
        unpack(lambda wildcards: wiki_files(EVAL["corpus"])),
        split=paths.SPLIT.format(split=EVAL["split"]),
        prompt=lambda wildcards: PROMPT if model_spec(wildcards.model)["prompt"] == "few-shot" else [INSTRUCTION],
        model=model_files,
    output:
        paths.EVAL,
    params:
        location=lambda wildcards: model_location(wildcards.model),
        model=lambda wildcards: model_spec(wildcards.model),
        prompt=config["prompt"],
        instruction=INSTRUCTION,
        agent=config["agent"],
        evaluation={k: v for k, v in EVAL.items() if k != "models"},
        corpus=config["corpus"][EVAL["corpus"]],
        population=config["data"][EVAL["split"]]["population"],
        backends=config["backends"],
        schema=SCHEMA_VERSIONS["episode"],
    # The engine uses every core it is given; two at once would only compete.
    threads: job_threads("evaluate", model_resources)
    resources:
        **job_resources("evaluate", model_resources),
    conda:
        "../envs/vllm.yaml"
    log:
        paths.LOG.format(rule="evaluate", job="{model}"),
    script:
        "../scripts/evaluate.py"
