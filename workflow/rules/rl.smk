# Reinforcement learning on the ReAct environment (GRPO), from a base model or after a finetune
# run, and the merge of its adapter. The run's checkpoints and per-step rollouts (params) are
# not outputs: Snakemake would delete them when a job is killed, and a rerun resumes from them.


rule rl:
    input:
        unpack(lambda wildcards: wiki_files(rl_corpus(wildcards.rl))),
        start=lambda wildcards: files_of_model(RL[wildcards.rl]["start"]),
        split=lambda wildcards: paths.SPLIT.format(split=RL[wildcards.rl]["split"]),
        eval_split=paths.SPLIT.format(split=EVAL["split"]),
        prompt=lambda wildcards: PROMPT if model_spec(wildcards.rl)["prompt"] == "few-shot" else [INSTRUCTION],
    output:
        adapter=directory(paths.RL_ADAPTER),
        metrics=paths.RL_METRICS,
        curves=report(paths.RL_CURVES, category="Reinforcement learning", subcategory="Per run",
                      caption="../report/rl_curves.rst", labels={"run": "{rl}"}),
        summary=paths.RL_SUMMARY,
    params:
        run=lambda wildcards: RL[wildcards.rl],
        start_location=lambda wildcards: model_location(RL[wildcards.rl]["start"]),
        model=lambda wildcards: model_spec(wildcards.rl),
        max_context=lambda wildcards: rl_max_context(wildcards.rl),
        corpus_name=lambda wildcards: rl_corpus(wildcards.rl),
        corpus=lambda wildcards: config["corpus"][rl_corpus(wildcards.rl)],
        population=lambda wildcards: config["data"][RL[wildcards.rl]["split"]]["population"],
        prompt=config["prompt"],
        instruction=INSTRUCTION,
        agent=config["agent"],
        checkpoints=lambda wildcards: paths.RL_CHECKPOINTS.format(rl=wildcards.rl),
        rollouts=lambda wildcards: paths.RL_ROLLOUTS.format(rl=wildcards.rl),
    threads: job_threads("rl", rl_resources)
    resources:
        **job_resources("rl", rl_resources),
    conda:
        "../envs/train.yaml"
    log:
        paths.LOG.format(rule="rl", job="{rl}"),
    script:
        "../scripts/train_rl.py"


rule merge_rl:
    input:
        start=lambda wildcards: files_of_model(RL[wildcards.rl]["start"]),
        adapter=paths.RL_ADAPTER,
        metrics=paths.RL_METRICS,
    output:
        directory(paths.MODEL.format(model="{rl}")),
    params:
        start=lambda wildcards: model_location(RL[wildcards.rl]["start"]),
        run=lambda wildcards: RL[wildcards.rl],
    threads: job_threads("merge")
    resources:
        **job_resources("merge"),
    conda:
        "../envs/train.yaml"
    log:
        paths.LOG.format(rule="merge_rl", job="{rl}"),
    script:
        "../scripts/merge_rl.py"
