# Training sets, LoRA/QLoRA finetuning, and merging the best kept checkpoint.


rule build_dataset:
    input:
        sources=dataset_sources,
        instruction=INSTRUCTION,
        eval_split=paths.SPLIT.format(split=EVAL["split"]),
    output:
        jsonl=paths.DATASET,
        manifest=paths.MANIFEST,
    params:
        spec=lambda wildcards: DATASETS[wildcards.dataset],
        sources=lambda wildcards: {s: source_files(s) for s in DATASETS[wildcards.dataset]["sources"]},
    threads: job_threads()
    resources:
        **job_resources(),
    conda:
        "../envs/core.yaml"
    log:
        paths.LOG.format(rule="build_dataset", job="{dataset}"),
    script:
        "../scripts/build_dataset.py"


rule finetune:
    input:
        base=lambda wildcards: files_of_model(RUNS[wildcards.run]["base"]),
        dataset=lambda wildcards: paths.DATASET.format(dataset=RUNS[wildcards.run]["dataset"]),
    output:
        checkpoints=directory(paths.CHECKPOINTS),
        loss=paths.LOSS,
        plot=report(paths.LOSS_PLOT, category="Finetuning", subcategory="Per run",
                    caption="../report/run_loss.rst", labels={"run": "{run}"}),
    params:
        base=lambda wildcards: model_location(RUNS[wildcards.run]["base"]),
        run=lambda wildcards: RUNS[wildcards.run],
    threads: job_threads("finetune", run_resources)
    resources:
        **job_resources("finetune", run_resources),
    conda:
        "../envs/train.yaml"
    log:
        paths.LOG.format(rule="finetune", job="{run}"),
    script:
        "../scripts/finetune.py"


rule merge:
    input:
        base=lambda wildcards: files_of_model(RUNS[wildcards.run]["base"]),
        checkpoints=paths.CHECKPOINTS,
        loss=paths.LOSS,
        dataset=lambda wildcards: paths.DATASET.format(dataset=RUNS[wildcards.run]["dataset"]),
    output:
        directory(paths.MODEL.format(model="{run}")),
    params:
        base=lambda wildcards: model_location(RUNS[wildcards.run]["base"]),
        run=lambda wildcards: RUNS[wildcards.run],
    threads: job_threads("merge")
    resources:
        **job_resources("merge"),
    conda:
        "../envs/train.yaml"
    log:
        paths.LOG.format(rule="merge", job="{run}"),
    script:
        "../scripts/merge.py"
