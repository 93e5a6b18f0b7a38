"""Snakemake rule generate_trajectories: one shard of teacher episodes on a split."""

from react.pipeline.jobs import input_files, logged, start

if __name__ == "__main__":  # not in the engine vLLM spawns, which re-runs this file as __mp_main__
    start(snakemake)  # first: the job's thread limit, before numpy sizes its pools


def main(snakemake) -> None:
    # Imported here, not at the top: see scripts/evaluate.py on vLLM's spawned engine.
    from react.agent.prompts import read_prompt
    from react.config.settings import agent_settings, model_ref, teacher_agent, teacher_settings
    from react.environment.wikis import wiki_settings
    from react.pipeline.evaluate import Output, Prompt, QuestionSample, WikiFiles
    from react.pipeline.generate import generate_shard

    params, wildcards = snakemake.params, snakemake.wildcards
    teacher = teacher_settings(wildcards.teacher, params.spec)
    if wildcards.split != teacher.split or int(wildcards.n) != teacher.shards:
        raise ValueError(f"teacher {teacher.name!r} is configured for split {teacher.split!r} in "
                         f"{teacher.shards} shards, not {wildcards.split!r} in {wildcards.n}")
    model = None
    if params.model is not None:
        model = model_ref(teacher.model, params.location, params.model, params.backends, snakemake.threads)
    generate_shard(
        teacher,
        int(wildcards.i) - 1,
        model,
        QuestionSample(snakemake.input.split, teacher.split, teacher.n_questions, teacher.seed, params.population),
        WikiFiles(teacher.corpus, wiki_settings(teacher.corpus, dict(params.corpus)),
                  snakemake.input.get("corpus"), snakemake.input.get("index")),
        Prompt(read_prompt(params.prompt), "few-shot", tuple(input_files(snakemake, "prompt")),
               params.model["format"] if params.model is not None else "raw"),
        teacher_agent(agent_settings(params.agent), teacher),
        Output(snakemake.output[0], {"teacher": dict(params.spec), "model": params.model, "agent": params.agent}),
    )


if __name__ == "__main__":
    with logged(snakemake):
        main(snakemake)
