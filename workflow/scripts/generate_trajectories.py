"""Snakemake rule generate_trajectories: one shard of teacher episodes on a split."""

from react.pipeline.jobs import input_files, logged, start

start(snakemake)  # first: the job's thread limit, before numpy sizes its pools


def main(snakemake) -> None:
    # Imported here, not at the top: see scripts/evaluate.py on vLLM's spawned engine.
    from dataclasses import replace

    from react.agent.prompts import read_prompt
    from react.pipeline.evaluate import ModelRef, agent_config
    from react.pipeline.generate import generate_shard

    params, wildcards = snakemake.params, snakemake.wildcards
    if wildcards.split != params.spec["split"] or int(wildcards.n) != params.spec["shards"]:
        raise ValueError(f"teacher {wildcards.teacher!r} is configured for split {params.spec['split']!r} in "
                         f"{params.spec['shards']} shards, not {wildcards.split!r} in {wildcards.n}")
    spec = {**params.spec, "split": wildcards.split, "population": params.population}
    agent = agent_config(params.agent)
    if spec["temperature"] is not None:
        agent = replace(agent, sampling=replace(agent.sampling, temperature=spec["temperature"]))
    model = None
    if params.model is not None:
        model = ModelRef.from_config(spec["model"], params.location, params.model, params.backends,
                                     snakemake.threads)
    generate_shard(
        teacher=wildcards.teacher,
        spec=spec,
        model=model,
        split_path=snakemake.input.split,
        corpus_name=spec["corpus"],
        corpus_spec=dict(params.corpus),
        corpus_path=snakemake.input.get("corpus"),
        index_path=snakemake.input.get("index"),
        prefix=read_prompt(params.prompt),
        prompt_files=input_files(snakemake, "prompt"),
        agent=agent,
        shard=int(wildcards.i) - 1,
        n_shards=int(wildcards.n),
        out_path=snakemake.output[0],
        provenance_config={"teacher": dict(params.spec), "model": params.model, "agent": params.agent},
    )


if __name__ == "__main__":
    with logged(snakemake):
        main(snakemake)
