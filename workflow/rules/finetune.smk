# Training sets, LoRA/QLoRA finetuning, and merging the best kept checkpoint.


rule build_dataset:
    input:
        sources=dataset_sources,
        instruction=INSTRUCTION,
        eval_split=f"results/data/hotpotqa/{EVAL['split']}.parquet",
    output:
        jsonl="results/datasets/{dataset}.jsonl",
        manifest="results/datasets/{dataset}.manifest.json",
    params:
        spec=lambda wildcards: DATASETS[wildcards.dataset],
        sources=lambda wildcards: {s: source_files(s) for s in DATASETS[wildcards.dataset]["sources"]},
    threads: job_threads()
    resources:
        **job_resources(),
    conda:
        "../envs/core.yaml"
    log:
        "results/logs/build_dataset/{dataset}.log",
    script:
        "../scripts/build_dataset.py"


rule finetune:
    input:
        base=lambda wildcards: files_of_model(RUNS[wildcards.run]["base"]),
        dataset=lambda wildcards: f"results/datasets/{RUNS[wildcards.run]['dataset']}.jsonl",
    output:
        checkpoints=directory("results/finetune/{run}/checkpoints"),
        loss="results/finetune/{run}/loss.parquet",
        plot=report("results/finetune/{run}/loss.png", category="Finetuning", subcategory="Per run",
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
        "results/logs/finetune/{run}.log",
    script:
        "../scripts/finetune.py"


rule merge:
    input:
        base=lambda wildcards: files_of_model(RUNS[wildcards.run]["base"]),
        checkpoints="results/finetune/{run}/checkpoints",
        loss="results/finetune/{run}/loss.parquet",
        dataset=lambda wildcards: f"results/datasets/{RUNS[wildcards.run]['dataset']}.jsonl",
    output:
        directory("results/models/{run}"),
    params:
        base=lambda wildcards: model_location(RUNS[wildcards.run]["base"]),
        run=lambda wildcards: RUNS[wildcards.run],
    threads: job_threads("merge")
    resources:
        **job_resources("merge"),
    conda:
        "../envs/train.yaml"
    log:
        "results/logs/merge/{run}.log",
    script:
        "../scripts/merge.py"
