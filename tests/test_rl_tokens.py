"""A rollout as one token sequence: the loop's text exactly, the policy's tokens marked token by token."""

import importlib.util

import pytest

from react.rl.tokens import EpisodeTokens, RolloutTokenError

QUESTION = "Question: Who was Milhouse named after?\nThought 1:"


@pytest.fixture(scope="module")
def tokenizer(tiny_model):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model)


def ids(tokenizer, text):
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def written(tokenizer, rollout):
    """The text of the mask-1 tokens, run by run."""
    runs, current = [], []
    for token, mask in zip(rollout.completion_ids, rollout.env_mask):
        if mask:
            current.append(token)
        elif current:
            runs.append(tokenizer.decode(current))
            current = []
    return runs + ([tokenizer.decode(current)] if current else [])


def test_a_step_keeps_what_the_loop_kept_and_masks_the_rest(tokenizer):
    rollout = EpisodeTokens.start(tokenizer, QUESTION)
    generated = ids(tokenizer, " I need to search Milhouse.\nAction 1: Search[Milhouse]\nObservation")
    rollout.generated(generated, [-0.5] * len(generated))
    step2 = QUESTION + " I need to search Milhouse.\nAction 1: Search[Milhouse]\nObservation 1: A boy.\nThought 2:"
    read = rollout.resolve(step2)
    assert tokenizer.decode(read) == step2 and read[:len(rollout.prompt_ids)] == rollout.prompt_ids
    rollout.commit(step2)
    assert rollout.input_ids == read  # what the policy reads next is what resolve said
    assert tokenizer.decode(rollout.input_ids) == step2 == rollout.text
    assert len(rollout.completion_ids) == len(rollout.env_mask) == len(rollout.logprobs)
    # The policy's tokens, as it wrote them: thought, action and the stop marker it began (which
    # the loop's text keeps as written); the observation's number and text are the environment's.
    assert written(tokenizer, rollout) == [" I need to search Milhouse.\nAction 1: Search[Milhouse]\nObservation"]
    assert rollout.dropped == 0
    assert [p for p, m in zip(rollout.logprobs, rollout.env_mask) if m] == [-0.5] * sum(rollout.env_mask)
    assert all(p == 0.0 for p, m in zip(rollout.logprobs, rollout.env_mask) if not m)


def test_text_the_loop_rewrote_is_not_trained_on(tokenizer):
    """ReAct strips the thought: two leading spaces become one; the fallback keeps only the first line."""
    rollout = EpisodeTokens.start(tokenizer, QUESTION)
    generated = ids(tokenizer, "  Milhouse is a boy.\nHe lives in Springfield.")
    rollout.generated(generated, [-1.0] * len(generated))
    fallback = QUESTION + " Milhouse is a boy.\nAction 1:"
    rollout.commit(fallback)
    assert tokenizer.decode(rollout.input_ids) == fallback
    assert "".join(written(tokenizer, rollout)) in ("", " ")  # nothing the model wrote survives as written
    assert rollout.dropped == len(generated) - sum(rollout.env_mask)


def test_a_split_character_is_left_to_the_environment(tokenizer):
    rollout = EpisodeTokens.start(tokenizer, QUESTION)
    generated = ids(tokenizer, " Ünïcödé ☃ snow")
    rollout.generated(generated, [-0.1] * len(generated))
    rollout.commit(QUESTION + " Ünïcödé ☃")
    assert tokenizer.decode(rollout.input_ids) == QUESTION + " Ünïcödé ☃"
    assert "\ufffd" not in "".join(written(tokenizer, rollout))


def test_a_prompt_that_does_not_extend_the_sequence_is_refused(tokenizer):
    rollout = EpisodeTokens.start(tokenizer, QUESTION)
    with pytest.raises(RolloutTokenError, match="part at character 14"):
        rollout.commit("Question: Who else?")
    rollout.generated([1, 2], [0.0, 0.0])
    with pytest.raises(RolloutTokenError, match="two generations"):
        rollout.generated([3], [0.0])


def test_a_bos_the_tokenizer_adds_is_read_but_not_part_of_the_text(tmp_path, tiny_model):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    tokenizer.add_bos_token = True
    tokenizer.save_pretrained(tmp_path)
    tokenizer = AutoTokenizer.from_pretrained(tmp_path)
    rollout = EpisodeTokens.start(tokenizer, QUESTION)
    assert rollout.prompt_ids[0] == tokenizer.bos_token_id and rollout.lead == tokenizer.bos_token
    generated = ids(tokenizer, " Search it.\nAction 1: Search[Milhouse]")
    rollout.generated(generated, [-0.2] * len(generated))
    rollout.commit(QUESTION + " Search it.\nAction 1: Search[Milhouse]\nObservation 1: x\nThought 2:")
    assert sum(rollout.env_mask) == len(generated) and rollout.dropped == 0


def test_a_rollout_is_the_text_the_evaluation_writes_for_the_same_completions(tiny_model, scripted):
    """The policy drives the agent with sampled completions; replaying them through the same loop gives the
    same episodes, and each rollout's tokens decode to exactly the episode's text."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from react.agent.loop import AgentConfig, Task, run_agent
    from react.environment.offline import WikiEnv
    from react.inference.base import Sampling
    from react.rl.policy import PolicyBackend
    from react.search.index import Corpus

    corpus = Corpus.from_paragraphs({"Milhouse": ["Milhouse is a boy.", " He was named after Richard Nixon."]})
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    policy = PolicyBackend(AutoModelForCausalLM.from_pretrained(tiny_model), tokenizer, max_context=16384)
    completions = []
    generate = policy.generate

    def recording(prompts, stop, sampling, seeds):
        gens = generate(prompts, stop, sampling, seeds)
        completions.extend((prompt, tuple(stop), g.text) for prompt, g in zip(prompts, gens))
        return gens

    policy.generate = recording
    tasks = [Task(f"q{k}", q, "Richard Nixon", "train") for k, q in
             enumerate(["Who was Milhouse named after?", "Which president named Milhouse?"])]
    agent = AgentConfig(max_steps=3, sampling=Sampling(max_new_tokens=24, temperature=1.0))
    episodes = run_agent(tasks, policy, lambda p: WikiEnv(corpus, p), "PREFIX\n", agent)
    replies = {(prompt, stop): text for prompt, stop, text in completions}
    replayed = run_agent(tasks, scripted(lambda prompt, stop: replies[(prompt, tuple(stop))]),
                         lambda p: WikiEnv(corpus, p), "PREFIX\n", agent)
    assert [e.prompt for e in replayed] == [e.prompt for e in episodes]
    kept = []
    for episode in episodes:
        rollout = policy.finish(episode.seed, episode.prompt)
        assert tokenizer.decode(rollout.input_ids) == episode.prompt == rollout.text
        assert len(rollout.completion_ids) == len(rollout.env_mask) == len(rollout.logprobs)
        assert all(p <= 0.0 for p in rollout.logprobs)
        kept.append(sum(rollout.env_mask))
    assert sum(kept) > 0  # some of what the policy wrote is trained on
    assert not policy.rollouts


@pytest.mark.slow
@pytest.mark.vllm
@pytest.mark.skipif(importlib.util.find_spec("vllm") is None, reason="vllm is not installed")
def test_vllm_rollouts_sample_what_the_policy_samples_and_decode_to_the_episode(tiny_model):
    """The sampler of the paper preset (a vLLM engine with the policy's weights): greedy, the same tokens as the
    policy itself; sampled, rollouts that decode to their episodes with the chosen tokens' log-probabilities."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from react.agent.loop import AgentConfig, Task, run_agent
    from react.config.settings import default_engine_settings
    from react.environment.offline import WikiEnv
    from react.inference.base import Sampling
    from react.inference.vllm import VLLMBackend
    from react.rl.policy import PolicyBackend, TransformersSampler, VllmSampler
    from react.search.index import Corpus

    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    engine = VLLMBackend(str(tiny_model), "tiny", default_engine_settings("vllm", max_model_len=4096, kv_cache_gib=1))
    try:
        sampler = VllmSampler(engine.llm)
        sequences = [tokenizer("PREFIX\nQuestion: who?\nThought 1:")["input_ids"], tokenizer("Action 2:")["input_ids"]]
        greedy = Sampling(max_new_tokens=12, temperature=0.0)
        reference = TransformersSampler(AutoModelForCausalLM.from_pretrained(tiny_model), tokenizer)
        assert [ids for ids, _ in sampler.sample(sequences, [], greedy, [1, 2])] == \
            [ids for ids, _ in reference.sample(sequences, [], greedy, [1, 2])]

        corpus = Corpus.from_paragraphs({"Milhouse": ["Milhouse is a boy.", " He was named after Richard Nixon."]})
        policy = PolicyBackend(None, tokenizer, max_context=4096, sampler=sampler)
        tasks = [Task("q0", "Who was Milhouse named after?", "Richard Nixon", "train")]
        agent = AgentConfig(max_steps=3, sampling=Sampling(max_new_tokens=24, temperature=1.0))
        (episode,) = run_agent(tasks, policy, lambda p: WikiEnv(corpus, p), "PREFIX\n", agent)
        rollout = policy.finish(episode.seed, episode.prompt)
        assert tokenizer.decode(rollout.input_ids) == episode.prompt
        assert sum(rollout.env_mask) > 0 and all(p <= 0.0 for p in rollout.logprobs)
        assert any(p < 0.0 for p, m in zip(rollout.logprobs, rollout.env_mask) if m)
    finally:
        engine.close()


def test_an_episode_that_ends_without_writing_its_last_call_drops_what_the_policy_wrote_there(tokenizer):
    """An action the original crashes on ends the episode with its prompt as it was before that step."""
    rollout = EpisodeTokens.start(tokenizer, QUESTION)
    first = ids(tokenizer, " Search it.\nAction 1: Search[Milhouse]\nObservation")
    rollout.generated(first, [-0.5] * len(first))
    after_one = QUESTION + " Search it.\nAction 1: Search[Milhouse]\nObservation 1: A boy.\n"
    rollout.commit(after_one + "Thought 2:")
    second = ids(tokenizer, " Look.\nAction 2: Lookup[x\nObservation")
    rollout.generated(second, [-0.25] * len(second))
    kept_before = sum(rollout.env_mask)
    rollout.close(after_one)  # the loop did not write step 2
    assert tokenizer.decode(rollout.input_ids) == rollout.text and after_one.startswith(rollout.text)
    assert len(after_one) - len(rollout.text) <= len("\n")  # cut back to a token boundary within the text
    assert sum(rollout.env_mask) == kept_before and all(p == 0.0 for p in rollout.logprobs[kept_before:])
    assert rollout.dropped == len(second)
    assert written(tokenizer, rollout) == [" Search it.\nAction 1: Search[Milhouse]\nObservation"]

    crashed_at_once = EpisodeTokens.start(tokenizer, QUESTION)
    crashed_at_once.generated(second, [-0.25] * len(second))
    crashed_at_once.close(QUESTION.removesuffix("Thought 1:"))  # the first prompt stays: it was read
    assert crashed_at_once.completion_ids == [] and crashed_at_once.dropped == len(second)
    with pytest.raises(RolloutTokenError, match="part at character"):
        EpisodeTokens.start(tokenizer, QUESTION).close("Question: Who else?")
