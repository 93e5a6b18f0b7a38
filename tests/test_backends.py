"""Both inference backends on the tiny local model: batching, stop strings, token limits, failures."""

import importlib.util

import pytest

from react.inference.backends import ModelLoadError, Sampling, TransformersBackend, make_backend

GREEDY = Sampling(max_new_tokens=24)


@pytest.fixture(scope="module")
def prompts(prompt_prefix):
    return [f"{prompt_prefix}Question: {q}\nThought 1:" for q in
            ("Who is older?", "Which magazine was started first?", "Were they both American?")]


@pytest.fixture(scope="module")
def hf(tiny_model):
    return TransformersBackend(str(tiny_model), "tiny", batch_size=3)


def test_batched_greedy_equals_one_by_one(hf, prompts):
    batched = hf.generate(prompts, [], GREEDY, [0, 0, 0])
    single = [hf.generate([p], [], GREEDY, [0])[0] for p in prompts]
    assert [g.text for g in batched] == [g.text for g in single]
    assert all(g.n_tokens == 24 and g.finish == "length" for g in batched)


def test_stop_string_is_cut_and_excluded(hf, prompts):
    full = hf.generate(prompts[:1], [], GREEDY, [0])[0].text
    stop = full[5:8]  # a string the model is known to produce
    cut = hf.generate(prompts[:1], [stop], GREEDY, [0])[0]
    assert cut.text == full[: full.index(stop)]
    assert cut.finish == "stop"


def test_sampling_is_reproducible_for_a_seed(hf, prompts):
    sampling = Sampling(max_new_tokens=12, temperature=1.0, top_p=0.9)
    first = hf.generate(prompts, [], sampling, [1, 2, 3])
    again = hf.generate(prompts, [], sampling, [1, 2, 3])
    assert first == again


def test_count_tokens_and_context(hf, prompts):
    counts = hf.count_tokens(prompts)
    assert all(2000 < n < 4000 for n in counts)
    assert hf.max_context == 16384


def test_folder_that_does_not_load_names_the_model(tmp_path):
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(ModelLoadError, match="model 'broken'"):
        TransformersBackend(str(tmp_path), "broken")


def test_unknown_backend():
    with pytest.raises(ValueError, match="unknown backend 'tgi'"):
        make_backend("tgi", "x", "x", {})


@pytest.mark.slow
@pytest.mark.vllm
@pytest.mark.skipif(importlib.util.find_spec("vllm") is None, reason="vllm is not installed")
def test_vllm_matches_transformers_greedy(tiny_model, hf, prompts):
    from react.inference.backends import VLLMBackend

    vllm = VLLMBackend(str(tiny_model), "tiny", max_model_len=8192, kv_cache_gib=1)
    try:
        expected = hf.generate(prompts, [], GREEDY, [0, 0, 0])
        got = vllm.generate(prompts, [], GREEDY, [0, 0, 0])
        assert [g.text for g in got] == [g.text for g in expected]
        stop = expected[0].text[5:8]
        cut = vllm.generate(prompts[:1], [stop], GREEDY, [0])[0]
        assert cut.text == expected[0].text[: expected[0].text.index(stop)] and cut.finish == "stop"
        assert vllm.count_tokens(prompts) == hf.count_tokens(prompts)
    finally:
        vllm.close()
