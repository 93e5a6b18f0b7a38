# HotPotQA splits and the offline Wikipedias: from the splits' context paragraphs or a corpus source.


rule prepare_split:
    input:
        split_files,
    output:
        paths.SPLIT,
    params:
        spec=lambda wildcards: config["data"][wildcards.split],
        schema=SCHEMA_VERSIONS["split"],
    threads: job_threads()
    resources:
        **job_resources(),
    conda:
        "../envs/core.yaml"
    log:
        paths.LOG.format(rule="prepare_split", job="{split}"),
    script:
        "../scripts/prepare_split.py"


# An archive a corpus entry downloads (`url`), checked by its md5/sha256. Run where the
# workflow is started: cluster nodes often cannot reach the internet.
rule download_corpus:
    output:
        paths.DOWNLOAD,
    params:
        spec=archive_spec,
    localrule: True
    conda:
        "../envs/core.yaml"
    log:
        paths.LOG.format(rule="download_corpus", job="{archive}"),
    script:
        "../scripts/download_corpus.py"


rule build_corpus:
    input:
        corpus_inputs,
    output:
        paths.CORPUS,
    params:
        spec=lambda wildcards: config["corpus"][wildcards.corpus],  # a dict: Snakemake sees it change
        schema=SCHEMA_VERSIONS["corpus"],
    threads: job_threads()
    resources:
        **job_resources(),
    conda:
        "../envs/core.yaml"
    log:
        paths.LOG.format(rule="build_corpus", job="{corpus}"),
    script:
        "../scripts/build_corpus.py"


rule build_index:
    input:
        paths.CORPUS,
    output:
        directory(paths.INDEX),
    threads: job_threads()
    resources:
        **job_resources(),
    conda:
        "../envs/core.yaml"
    log:
        paths.LOG.format(rule="build_index", job="{corpus}"),
    script:
        "../scripts/build_index.py"
