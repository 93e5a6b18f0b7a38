"""The transformers backend's few-shot prefix KV cache: same outputs as without it, less work.

Greedy outputs with the cache must equal the uncached path's exactly; beyond the
argmax, the logits of every generated position are compared, which shows that the
``[prefix][pads][suffix]`` layout gives each token the same positions and the same
attended tokens as the uncached ``[pads][prefix][suffix]`` layout.
"""

import os

import pytest
import torch
from numerics import assert_as_close_as_float32_allows
from transformers import AutoModelForCausalLM

from react.agent.loop import AgentConfig, Task, run_agent
from react.config.settings import default_engine_settings
from react.environment.offline import WikiEnv
from react.inference.base import Sampling
from react.inference.transformers import TransformersBackend
from react.search.index import Corpus

GREEDY = Sampling(max_new_tokens=24)
STEPS = [
    "",
    " I need to search Arthur's Magazine.\nAction 1: Search[Arthur's Magazine]\nObservation 1: Arthur's Magazine "
    "(1844-1846) was an American literary periodical.\nThought 2:",
    " I should look up the founding year.\nAction 1: Lookup[founded]\nObservation 1: No more results.\n"
    "Thought 2: Maybe the other magazine.\nAction 2: Search[First for Women]\nObservation 2: First for Women is a "
    "woman's magazine published by Bauer Media Group in the USA. The magazine was started in 1989.\nThought 3:",
]


@pytest.fixture(scope="module")
def prompts(prompt_prefix):
    """ReAct prompts sharing the few-shot prefix, with suffixes of very different lengths."""
    questions = ("Who is older?", "Which magazine was started first?", "Were they both American?",
                 "What government position was held by the woman who portrayed Corliss Archer?")
    return [f"{prompt_prefix}Question: {q}\nThought 1:{STEPS[i % len(STEPS)]}" for i, q in enumerate(questions)]


@pytest.fixture(scope="module")
def uncached(tiny_model):
    return TransformersBackend(str(tiny_model), "tiny", default_engine_settings("transformers", batch_size=3,
                                                                                prefix_cache=False))


def cached_backend(tiny_model, prefix_cache_entries=4):
    settings = default_engine_settings("transformers", batch_size=3, prefix_cache=True)
    return TransformersBackend(str(tiny_model), "tiny", settings, prefix_cache_entries=prefix_cache_entries)


@pytest.fixture(scope="module")
def reference(uncached, prompts):
    """Each prompt alone, no cache: the article's one-prompt-per-call path."""
    return [uncached.generate([p], [], GREEDY, [0])[0] for p in prompts]


def test_cache_is_on_by_default_and_off_on_request(tiny_model, uncached):
    assert TransformersBackend(str(tiny_model), "tiny", default_engine_settings("transformers")).prefix_cache
    uncached.generate(["Question: a\nThought 1:", "Question: b\nThought 1:"], [], GREEDY, [0, 0])
    assert uncached.stats["cached_calls"] == 0 and not uncached._prefixes


def test_batched_greedy_with_cache_equals_uncached(tiny_model, uncached, prompts, reference):
    backend = cached_backend(tiny_model)
    batched = backend.generate(prompts, [], GREEDY, [0] * len(prompts))  # two batches: 3 + 1
    assert batched == uncached.generate(prompts, [], GREEDY, [0] * len(prompts))
    assert batched == reference  # text, 24 tokens, "length"
    assert backend.stats["cached_calls"] == 1
    # The few-shot prefix (plus the common "Question: ") was computed once, for the first batch only.
    shared = backend._shared_prefix_length(backend.tokenizer(prompts)["input_ids"])
    assert backend.stats["prefix_tokens_computed"] == shared
    assert backend.stats["prefix_tokens_reused"] == shared  # the second batch


def test_stop_strings_with_cache(tiny_model, uncached, prompts, reference):
    backend = cached_backend(tiny_model)
    stops = [reference[0].text[5:8], "\nObservation 1:"]
    expected = uncached.generate(prompts, stops, GREEDY, [0] * len(prompts))
    got = backend.generate(prompts, stops, GREEDY, [0] * len(prompts))
    assert got == expected
    assert got[0].finish == "stop" and got[0].text == reference[0].text[: reference[0].text.index(stops[0])]


def test_one_prompt_calls_reuse_the_prefix_and_equal_uncached(tiny_model, prompts, reference):
    backend = cached_backend(tiny_model)
    got = [backend.generate([p], [], GREEDY, [0])[0] for p in prompts]
    assert got == reference
    assert backend.stats["cached_calls"] == len(prompts)
    # Only the first prompt paid for the few-shot prefix; later ones computed their own suffix only.
    ids = backend.tokenizer(prompts)["input_ids"]
    shared = len(os.path.commonprefix(ids))
    assert shared > 2000
    assert backend.stats["prefix_tokens_computed"] <= sum(len(i) - 1 for i in ids) - (len(ids) - 1) * shared
    assert len(backend._prefixes) <= backend.prefix_cache_entries


def test_a_sequential_episode_computes_only_its_new_tokens(tiny_model, uncached, prompt_prefix):
    """Step i+1's prompt extends step i's: the cached entry is extended, not recomputed."""
    backend = cached_backend(tiny_model)
    prompt = f"{prompt_prefix}Question: Which magazine was started first?\nThought 1:"
    backend.generate([prompt], [], GREEDY, [0])
    first = backend.stats["prefix_tokens_computed"]
    assert first == backend.count_tokens([prompt])[0] - 1
    longer = prompt + STEPS[1]
    got = backend.generate([longer], [], GREEDY, [0])
    assert got == uncached.generate([longer], [], GREEDY, [0])
    new_tokens = backend.stats["prefix_tokens_computed"] - first
    assert 0 < new_tokens <= backend.count_tokens([longer])[0] - first
    assert new_tokens < 100
    # The shorter entry is subsumed by the longer one (which serves it cropped).
    assert len(backend._prefixes) == 1


def test_cache_entries_are_not_written_by_generation(tiny_model, prompts):
    backend = cached_backend(tiny_model)
    backend.generate(prompts[:2], [], GREEDY, [0, 0])
    [(ids, states)] = backend._prefixes.items()
    before = [(k.clone(), v.clone()) for k, v in states]
    backend.generate(prompts, [], GREEDY, [0] * len(prompts))
    backend.generate(prompts[1:2], [], GREEDY, [0])
    for (k0, v0), (k1, v1) in zip(before, backend._prefixes.get(ids, states)):
        assert k1.shape[2] >= len(ids)
        assert torch.equal(k0, k1[:, :, : k0.shape[2]]) and torch.equal(v0, v1[:, :, : v0.shape[2]])


def test_lru_keeps_a_few_distinct_prefixes(tiny_model, uncached):
    backend = cached_backend(tiny_model, prefix_cache_entries=2)
    heads = ["Alpha beta gamma delta. ", "Totally different words here. ", "Third prefix of its own. "]
    for head in heads:
        batch = [f"{head}Question: {q}\nThought 1:" for q in ("one?", "two?")]
        assert backend.generate(batch, [], GREEDY, [0, 0]) == uncached.generate(batch, [], GREEDY, [0, 0])
    assert len(backend._prefixes) == 2
    kept = [backend.tokenizer.decode(list(ids)) for ids in backend._prefixes]
    assert all(k.startswith(h) for k, h in zip(kept, heads[1:]))


def test_no_common_prefix_uses_the_uncached_path(tiny_model, uncached):
    backend = cached_backend(tiny_model)
    batch = ["Who is older?", "Zebra"]
    assert backend.generate(batch, [], GREEDY, [0, 0]) == uncached.generate(batch, [], GREEDY, [0, 0])
    assert backend.stats["cached_calls"] == 0


def test_common_text_ending_inside_a_token_is_cut_at_a_token_boundary(tiny_model, uncached, prompt_prefix):
    """The shared text ends mid-word; the shared ids stop before the first differing token."""
    batch = [f"{prompt_prefix}Question: Which magazine{end}" for end in ("s", "zine", " was started first?")]
    ids = [uncached.tokenizer(p)["input_ids"] for p in batch]
    backend = cached_backend(tiny_model)
    shared = backend._shared_prefix_length(ids)
    assert all(i[:shared] == ids[0][:shared] for i in ids)
    assert backend.generate(batch, [], GREEDY, [0] * 3) == uncached.generate(batch, [], GREEDY, [0] * 3)


def test_sampling_with_cache_is_reproducible(tiny_model, prompts):
    backend = cached_backend(tiny_model)
    sampling = Sampling(max_new_tokens=12, temperature=1.0, top_p=0.9)
    assert backend.generate(prompts, [], sampling, [1, 2, 3, 4]) == backend.generate(prompts, [], sampling,
                                                                                       [1, 2, 3, 4])


def test_logits_of_every_generated_position_match(tiny_model, uncached, prompts):
    """Beyond the argmax: the cached layout computes the same function (up to float rounding)."""
    backend = cached_backend(tiny_model)
    batch = prompts[:3]
    ids = backend.tokenizer(batch)["input_ids"]
    shared = backend._shared_prefix_length(ids)
    captured = {}
    generate = backend.model.generate

    def spy(**kwargs):
        out = generate(**kwargs, return_dict_in_generate=True, output_logits=True)
        captured["cached"] = torch.stack(out.logits, 1)
        return out.sequences

    backend.model.generate = spy
    try:
        backend._generate_batch_cached(ids, shared, [], GREEDY)
    finally:
        backend.model.generate = generate
    enc = uncached.tokenizer(batch, return_tensors="pt", padding=True)
    with torch.inference_mode():
        out = uncached.model.generate(**enc, max_new_tokens=GREEDY.max_new_tokens, do_sample=False,
                                      pad_token_id=uncached.tokenizer.pad_token_id,
                                      return_dict_in_generate=True, output_logits=True)
    reference = torch.stack(out.logits, 1)
    assert captured["cached"].shape == reference.shape
    # The exact logits: the same tokens read by the model in float64, positions as generate() gives them.
    n_new = reference.shape[1]
    mask = torch.cat([enc["attention_mask"], torch.ones(len(batch), n_new, dtype=torch.long)], 1)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    model64 = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float64).eval()
    with torch.inference_mode():
        full = model64(input_ids=out.sequences, attention_mask=mask, position_ids=positions).logits
    start = enc["input_ids"].shape[1] - 1
    exact = full[:, start:start + n_new]
    assert_as_close_as_float32_allows(captured["cached"], reference, exact, what="cached logits")


def test_agent_trajectories_are_the_same_with_and_without_cache(tiny_model, uncached, prompt_prefix):
    """The lockstep agent (batched calls, fallback calls) and the sequential loop, cache on vs off."""
    corpus = Corpus.from_paragraphs({
        "Arthur's Magazine": ["Arthur's Magazine (1844-1846) was an American literary periodical."],
        "First for Women": ["First for Women is a woman's magazine published by Bauer Media Group in the USA."],
    })
    tasks = [Task(f"q{i}", q, "x", "dev") for i, q in enumerate(
        ("Which magazine was started first?", "Who is older?", "Were they both American?"))]
    config = AgentConfig(max_steps=3, sampling=Sampling(max_new_tokens=20))

    def trajectories(backend, sequential):
        groups = [[t] for t in tasks] if sequential else [tasks]
        episodes = [e for group in groups
                    for e in run_agent(group, backend, lambda protocol: WikiEnv(corpus, protocol), prompt_prefix, config)]
        return [(e.prompt, e.n_calls, e.prediction, e.finish_reason) for e in episodes]

    expected = trajectories(uncached, sequential=False)
    backend = cached_backend(tiny_model)
    assert trajectories(backend, sequential=False) == expected
    assert trajectories(backend, sequential=True) == trajectories(uncached, sequential=True)
    assert backend.stats["cached_calls"] == backend.stats["calls"]
