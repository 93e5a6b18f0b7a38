# HotPotQA splits and the offline Wikipedias: from the splits' context paragraphs or a corpus source.


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


# An archive a corpus entry downloads (`url`), checked by its md5/sha256. Run where the
# workflow is started: cluster nodes often cannot reach the internet.
rule download_corpus:
    output:
        "results/downloads/{archive}",
    params:
        spec=archive_spec,
    localrule: True
    conda:
        "../envs/core.yaml"
    log:
        "results/logs/download_corpus/{archive}.log",
    script:
        "../scripts/download_corpus.py"


rule build_corpus:
    input:
        corpus_inputs,
    output:
        "results/data/wiki/{corpus}.parquet",
    params:
        spec=lambda wildcards: config["corpus"][wildcards.corpus],
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
