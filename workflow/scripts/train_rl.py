"""Snakemake rule rl: GRPO from the start model, the rollouts played by the project's agent."""

from react.pipeline.jobs import input_files, logged, start

start(snakemake)  # first: the job's thread limit, before numpy sizes its pools

from react.agent.prompts import read_prefix
from react.config.settings import agent_settings
from react.data.training_sets import check_leakage
from react.environment.wikis import wiki_settings
from react.io import sha256_text
from react.pipeline.evaluate import Prompt, QuestionSample, WikiFiles, run_inputs
from react.provenance import make_provenance
from react.rl.rollout import Rollouts
from react.rl.settings import grpo_settings
from react.rl.trainer import RLFiles, train_grpo

with logged(snakemake):
    params, name = snakemake.params, snakemake.wildcards.rl
    run = params.run
    settings = grpo_settings(run)
    questions = QuestionSample(snakemake.input.split, run["split"], settings.n_questions, run["seed"],
                               params.population)
    tasks = questions.tasks()
    # The same guard as for a training set: no question of the evaluation split, by id or normalised text.
    check_leakage([{"id": t.id, "question": t.question} for t in tasks], snakemake.input.eval_split,
                  f"rl.{name}.split ({run['split']})")
    kind = params.model["prompt"]
    prefix = read_prefix(kind, params.prompt, params.instruction)
    wiki_files = WikiFiles(params.corpus_name, wiki_settings(params.corpus_name, dict(params.corpus)),
                           snakemake.input.get("corpus"), snakemake.input.get("index"))
    wiki = wiki_files.open()
    try:
        rollouts = Rollouts({t.id: t for t in tasks}, wiki.new_env, prefix, agent_settings(params.agent),
                            params.max_context, strip_question=kind == "instruction", model=name, prompt_kind=kind,
                            prompt_sha256=sha256_text(prefix), corpus_sha256=wiki.sha256)
        inputs = run_inputs(questions, wiki_files, Prompt(prefix, kind, tuple(input_files(snakemake, "prompt"))))
        inputs.update(start=params.start_location, eval_split=snakemake.input.eval_split)
        provenance = make_provenance("rl", {"run": name, **run, "agent": params.agent}, inputs)
        train_grpo(params.start_location, rollouts, settings,
                   RLFiles(params.checkpoints, params.rollouts, snakemake.output.adapter, snakemake.output.metrics,
                           snakemake.output.curves, snakemake.output.summary),
                   threads=snakemake.threads, provenance=provenance)
    finally:
        wiki.close()
