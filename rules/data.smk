# HotPotQA splits and the offline Wikipedia built from their context paragraphs.


rule prepare_split:
    input:
        split_files,
    output:
        "results/data/hotpotqa/{split}.parquet",
    params:
        spec=lambda wildcards: config["data"][wildcards.split],
        schema=SCHEMA_VERSIONS["split"],
    threads: job_threads()
    resources:
        **job_resources(),
    conda:
        "../envs/core.yaml"
    log:
        "results/logs/prepare_split/{split}.log",
    script:
        "../scripts/prepare_split.py"


rule build_corpus:
    input:
        corpus_splits,
    output:
        "results/data/wiki/{corpus}.parquet",
    params:
        schema=SCHEMA_VERSIONS["corpus"],
    threads: job_threads()
    resources:
        **job_resources(),
    conda:
        "../envs/core.yaml"
    log:
        "results/logs/build_corpus/{corpus}.log",
    script:
        "../scripts/build_corpus.py"


rule build_index:
    input:
        "results/data/wiki/{corpus}.parquet",
    output:
        directory("results/data/wiki/{corpus}.bm25s"),
    threads: job_threads()
    resources:
        **job_resources(),
    conda:
        "../envs/core.yaml"
    log:
        "results/logs/build_index/{corpus}.log",
    script:
        "../scripts/build_index.py"
