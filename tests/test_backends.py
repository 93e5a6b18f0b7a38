"""The local inference engines on the tiny model (batching, stop strings, token limits, failures), and the registry."""

import importlib.util
from dataclasses import MISSING, asdict, fields

import pytest

from react.config.settings import default_engine_settings, engine_settings, schema_defaults
from react.config.validate import load_schema
from react.inference.base import EngineSettings, ModelLoadError, Sampling
from react.inference.registry import ENGINES, ModelRef, engine_class, settings_type, start_engine
from react.inference.transformers import TransformersBackend, TransformersSettings

GREEDY = Sampling(max_new_tokens=24)


@pytest.fixture(scope="module")
def prompts(prompt_prefix):
    return [f"{prompt_prefix}Question: {q}\nThought 1:" for q in
            ("Who is older?", "Which magazine was started first?", "Were they both American?")]


@pytest.fixture(scope="module")
def hf(tiny_model):
    return TransformersBackend(str(tiny_model), "tiny", default_engine_settings("transformers", batch_size=3))


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
        TransformersBackend(str(tmp_path), "broken", default_engine_settings("transformers"))


def test_unknown_backend_names_the_valid_ones():
    with pytest.raises(ValueError, match="unknown backend 'tgi' \\(expected 'transformers', 'vllm' or 'openai'\\)"):
        engine_class("tgi")


def test_the_registry_has_an_engine_for_every_backend_the_schema_allows():
    allowed = load_schema()["$defs"]["model"]["properties"]["backend"]["enum"]
    assert set(allowed) == set(ENGINES)
    for name in allowed:
        engine = engine_class(name)
        assert engine.name == name
        assert issubclass(settings_type(name), EngineSettings)
        for method in ("generate", "count_tokens", "close"):
            assert callable(getattr(engine, method)), (name, method)


def test_settings_have_no_defaults_of_their_own():
    """The schema is the single source of defaults: no settings field may carry one."""
    for name in ENGINES:
        for field in fields(settings_type(name)):
            assert field.default is MISSING and field.default_factory is MISSING, (name, field.name)


def test_settings_come_from_the_model_entry_and_the_backends_section():
    backends = schema_defaults("backends")
    backends["transformers"]["batch_size"] = 3
    model = schema_defaults("$defs/model", {"path": "m", "backend": "transformers", "dtype": "bfloat16",
                                            "quantization": "nf4"})
    settings = engine_settings(model, backends, 1)
    assert settings == TransformersSettings(dtype="bfloat16", threads=1, quantization="nf4", trust_remote_code=False,
                                            device="auto", batch_size=3, prefix_cache=True)
    assert engine_settings(model, backends, 10_000).threads < 10_000  # at most the CPUs the process may use
    # vLLM: the model's own context length and tensor parallelism win over backends.vllm
    vllm = schema_defaults("$defs/model", {"hf_id": "a/b", "max_model_len": 2048})
    assert asdict(engine_settings(vllm, backends, None)) == {
        "dtype": "float32", "threads": None, "quantization": None, "trust_remote_code": False,
        "max_model_len": 2048, "enforce_eager": True, "prefix_caching": True, "kv_cache_gib": 4,
        "gpu_memory_utilization": 0.9, "tensor_parallel_size": 1}
    served = schema_defaults("$defs/model", {"url": "http://h:1/v1", "backend": "openai", "hf_id": "a/b"})
    settings = engine_settings(served, backends, None)
    assert (settings.base_url, settings.served_model, settings.tokenizer, settings.max_concurrency) == (
        "http://h:1/v1", None, "a/b", 8)


def test_start_engine_refuses_settings_of_another_engine():
    with pytest.raises(TypeError, match="model 'x': backend 'vllm' takes VLLMSettings, not TransformersSettings"):
        start_engine(ModelRef("x", "nowhere", "vllm", default_engine_settings("transformers")))


@pytest.mark.slow
@pytest.mark.vllm
@pytest.mark.skipif(importlib.util.find_spec("vllm") is None, reason="vllm is not installed")
def test_vllm_matches_transformers_greedy(tiny_model, hf, prompts):
    from react.inference.vllm import VLLMBackend

    vllm = VLLMBackend(str(tiny_model), "tiny", default_engine_settings("vllm", max_model_len=8192, kv_cache_gib=1))
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
