"""GPU check: the transformers backend on the agent (batched vs one prompt at a time) and LoRA/QLoRA step time.

Made to run as it is on a lent accelerator machine (about 10 minutes on one H200) that has
torch, transformers, peft, pyarrow and numpy but no vLLM, trl, datasets, bitsandbytes,
bm25s, duckdb, jsonschema or snakemake, and no network. Whatever is missing is skipped or
replaced, and the output says what and why (``notes``):

1. agent: the project's TransformersBackend (CUDA, bf16) runs the ReAct agent on the same
   questions (a) one prompt per call, one question after another, and (b) batched in
   lockstep, as the pipeline runs (the code and the comparison of
   benchmarks/agent_speed.py): wall time, the ratio (a)/(b), and how often (a) and (b)
   give the same prediction and the same trajectory. The Wikipedia is the bundled
   questions' own context paragraphs: react.environment.offline's WikiEnv with bm25s; without it a
   stand-in that finds pages by exact title (no similar-title suggestions on a miss).
2. lora / qlora: a short finetune; median step time (first step left out) and peak
   memory (``torch.cuda.max_memory_allocated``; peak RSS on a CPU). With trl (and
   datasets): the project's own trainer (react.training.trainer.make_trainer). Without: a plain
   torch/peft loop with the same LoRA shape, batch and optimizer, labelled as such.
   QLoRA needs bitsandbytes.

The model: ``--model auto`` takes results/models/smollm2-135m when it is there;
otherwise (the default model's GGUF, 98 MB, does not travel within 64 MiB) a randomly
initialised Llama of SmolLM2-135M's shape (30 layers, hidden 576, 9/3 heads, MLP 1536)
with the test suite's small trained tokenizer on CUDA, or the test suite's tiny model on
a CPU. Random weights write noise: every call runs to max_new_tokens, so times are an
upper bound per call and agreement is measured on near-ties more often than a trained
model meets them.

    python3 benchmarks/gpu_check.py --out "$OUT"                        # on the GPU machine
    .venv/bin/python benchmarks/gpu_check.py --device cpu --model tiny --n-questions 2 --max-steps 2
    .venv/bin/python benchmarks/gpu_check.py --wheelhouse .whl           # here: wheels of what that machine lacks

With the wheels carried (``run`` with ``carry: [".whl"]``)::

    python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl \\
      && PYTHONPATH=/tmp/site python3 benchmarks/gpu_check.py --out "$OUT"
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import gzip
import importlib
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from react.training.presets import Hyperparameters

PROJECT = Path(__file__).resolve().parent.parent
for path in (PROJECT / "src", PROJECT / "benchmarks", PROJECT / "tests"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

# What the GPU machine lacks that this script can use, pure Python or small (pip download --no-deps).
# vLLM (hundreds of MB) does not fit the 64 MiB a call may carry; bitsandbytes only with --with-bitsandbytes.
WHEELS = ["trl", "datasets", "dill", "multiprocess", "bm25s", "PyStemmer"]
SMOLLM2_SHAPE = {"hidden_size": 576, "intermediate_size": 1536, "num_hidden_layers": 30, "num_attention_heads": 9,
                 "num_key_value_heads": 3, "head_dim": 64, "rms_norm_eps": 1e-5, "rope_theta": 100000.0,
                 "tie_word_embeddings": True, "initializer_range": 0.02}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default=os.environ.get("OUT"),
                   help="folder for gpu_check.json (default: $OUT, else benchmarks/results/)")
    p.add_argument("--device", choices=["auto", "cuda", "cpu"], default="auto")
    p.add_argument("--dtype", default="auto", help="model dtype (default: bfloat16 on CUDA, float32 on a CPU)")
    p.add_argument("--model", default="auto", help="auto, smollm2-shape, tiny, or a model folder / cached hub id")
    p.add_argument("--config", default="config/config.yaml", help="agent settings and the prompt")
    p.add_argument("--n-questions", type=int, default=16)
    p.add_argument("--max-steps", type=int, default=4, help="agent steps per question")
    p.add_argument("--max-new-tokens", type=int, default=None, help="default: the config's agent.max_new_tokens")
    p.add_argument("--batch-size", type=int, default=None, help="default: the config's backends.transformers.batch_size")
    p.add_argument("--train-steps", type=int, default=20)
    p.add_argument("--skip", default="", help="comma-separated parts to leave out: agent, lora, qlora")
    p.add_argument("--hide", default="", help="comma-separated modules to treat as missing (tests the degraded paths)")
    p.add_argument("--wheelhouse", metavar="DIR", help="instead of the check: download the wheels that the GPU "
                                                        "machine lacks into DIR and print their size")
    p.add_argument("--with-bitsandbytes", action="store_true", help="with --wheelhouse: bitsandbytes too")
    p.add_argument("--python-version", default="3.12", help="with --wheelhouse: the GPU machine's Python")
    return p.parse_args(argv)


# --------------------------------------------------------------------------- what is there


def hide(modules: list[str]) -> None:
    for name in modules:
        sys.modules[name] = None  # type: ignore[assignment]  # `import name` now raises ImportError


def importable(name: str) -> bool:
    try:
        importlib.import_module(name)
        return True
    except Exception:  # noqa: BLE001 - a broken install counts as missing, whatever it raises
        return False


def versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in ("torch", "transformers", "peft", "accelerate", "trl", "datasets", "bitsandbytes", "bm25s", "numpy",
                 "pyarrow"):
        try:
            out[name] = version(name) if sys.modules.get(name, True) is not None else "hidden"
        except PackageNotFoundError:
            out[name] = None
    return out


def machine_info(device: str) -> dict:
    from agent_speed import machine

    info = machine()
    import torch

    info["torch_threads"] = torch.get_num_threads()
    if device == "cuda":
        props = torch.cuda.get_device_properties(0)
        info.update(gpu=props.name, gpu_memory_gib=round(props.total_memory / 2**30, 1),
                    cuda=torch.version.cuda, multiprocessors=props.multi_processor_count)
    return info


class Notes:
    def __init__(self):
        self.items: list[str] = []

    def __call__(self, text: str) -> None:
        self.items.append(text)
        print(f"note: {text}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- inputs


def load_config(path: Path) -> dict:
    import yaml  # transformers needs it: there wherever this script can run

    return yaml.safe_load(path.read_text())


def few_shot_prompt(config: dict) -> str:
    """The config's few-shot prompt: one text file, or ReAct's recipe that react.agent.prompts assembles."""
    from react.agent.prompts import read_prompt
    from react.config.validate import load_schema

    return read_prompt(config.get("prompt") or load_schema()["properties"]["prompt"]["default"])


def training_instruction(config: dict) -> str:
    from react.paths import resolve_path

    path = resolve_path(config.get("instruction", "package:prompts/instruction.txt"))
    return path.read_text(encoding="utf-8").rstrip("\n") if path.is_file() else ""


def bundled_questions(n: int) -> tuple[list[dict], dict[str, list[str]]]:
    """The first ``n`` bundled dev questions and their context paragraphs (title -> sentences)."""
    items, pages = [], {}
    with gzip.open(PROJECT / "resources/hotpotqa/dev_distractor.jsonl.gz", "rt", encoding="utf-8") as fh:
        for line in fh:
            item = json.loads(line)
            items.append(item)
            for title, sentences in item["context"]:
                pages.setdefault(title, sentences)
            if len(items) >= n:
                break
    return items, pages


def prepare_model(choice: str, device: str, workdir: Path, notes: Notes) -> tuple[str, str]:
    """(model folder or hub id, what it is)."""
    real = PROJECT / "results/models/smollm2-135m"
    if choice == "auto":
        choice = str(real) if (real / "config.json").is_file() else "smollm2-shape" if device == "cuda" else "tiny"
    if choice in ("tiny", "smollm2-shape"):
        from tiny_model import build_tiny_model

        out = build_tiny_model(workdir / choice)
        if choice == "tiny":
            return str(out), "tests/tiny_model.py: 2 layers, hidden 128, random weights"
        from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

        tokenizer = AutoTokenizer.from_pretrained(out)
        import torch

        torch.manual_seed(0)
        config = LlamaConfig(vocab_size=len(tokenizer), max_position_embeddings=16384, bos_token_id=0, eos_token_id=0,
                             pad_token_id=0, **SMOLLM2_SHAPE)
        LlamaForCausalLM(config).save_pretrained(out)
        notes("model: SmolLM2-135M's shape with random weights and the tests' 1,024-token tokenizer "
              "(the real model does not travel): timings, not accuracy")
        return str(out), "SmolLM2-135M shape, random weights, tests' tokenizer"
    return choice, "given"


# --------------------------------------------------------------------------- agent


class TitleEnv:
    """Search by exact (case-insensitive) title, Lookup, Finish: a stand-in for react.environment.offline.WikiEnv without bm25s."""

    def __init__(self, pages: dict[str, list[str]]):
        self.pages = {title.lower(): sentences for title, sentences in pages.items()}
        self.reset()

    def reset(self) -> None:
        self.page, self.final, self.answer = None, None, None
        self.keyword, self.hits, self.count = None, [], 0

    def step(self, text: str):
        from react.agent.parsing import parse_action

        action = parse_action(text)
        if self.final is not None:
            return SimpleNamespace(observation=self.final, done=True, action=action, answer=self.answer)
        if action.type == "finish":
            self.answer, self.final = action.argument, "Episode finished."
            return SimpleNamespace(observation=self.final, done=True, action=action, answer=self.answer)
        if action.type == "search":
            sentences = self.pages.get(action.argument.strip().lower())
            if sentences is None:
                observation = f"Could not find [{action.argument}]. Similar: []."
            else:
                self.page = [s.strip() for s in sentences if s.strip()]
                self.keyword, self.hits, self.count = None, [], 0
                observation = " ".join(self.page[:5])
        elif action.type == "lookup":
            if action.argument != self.keyword:
                self.keyword, self.count = action.argument, 0
                self.hits = [s for s in self.page or () if action.argument.lower() in s.lower()]
            if self.count >= len(self.hits):
                observation = "No more results."
            else:
                self.count += 1
                observation = f"(Result {self.count} / {len(self.hits)}) {self.hits[self.count - 1]}"
        else:
            observation = f"Invalid action: {text.strip()}"
        return SimpleNamespace(observation=observation, done=False, action=action, answer=None)


def title_env_factory(pages: dict[str, list[str]]):
    """The stand-in: on react.environment.base's state machine where the project has one, else TitleEnv."""
    try:
        from react.agent.protocol import miss_observation
        from react.environment.base import Found, Missed, ReActEnv
    except ImportError:
        return lambda *protocol: TitleEnv(pages)
    by_title = {title.lower(): sentences for title, sentences in pages.items()}

    class ExactTitleEnv(ReActEnv):
        def find(self, entity: str):
            sentences = by_title.get(entity.strip().lower())
            if sentences is None:
                return Missed(miss_observation(entity, []))
            return Found([s.strip() for s in sentences if s.strip()])

    return lambda *protocol: ExactTitleEnv(*protocol)


def make_env_factory(pages: dict[str, list[str]], notes: Notes):
    """``make_env`` for run_agent (which passes the prompt's protocol where the project has one)."""
    try:
        from react.environment.offline import WikiEnv
        from react.search.index import Corpus

        corpus = Corpus.from_paragraphs(pages)
        return (lambda *protocol: WikiEnv(corpus, *protocol)), "react.environment.offline.WikiEnv over the questions' context paragraphs"
    except ImportError as exc:
        notes(f"wiki: react.environment.offline does not import ({exc}); a stand-in environment finds pages by exact title, "
              "without similar-title suggestions on a miss")
        return title_env_factory(pages), "stand-in: exact-title Search, Lookup, Finish (no bm25s)"


def check_agent(args: argparse.Namespace, config: dict, model_path: str, device: str, dtype: str,
                notes: Notes) -> dict:
    import torch
    from agent_speed import LoadSampler, Meter, agreement, episode_record

    from react.agent.loop import AgentConfig, Task, run_agent
    from react.config.settings import default_engine_settings
    from react.inference.base import Sampling
    from react.inference.transformers import TransformersBackend

    prefix = few_shot_prompt(config)
    items, pages = bundled_questions(args.n_questions)
    tasks = [Task(item["_id"], item["question"], item["answer"], "dev", i) for i, item in enumerate(items)]
    make_env, env_kind = make_env_factory(pages, notes)
    agent = config.get("agent", {})
    sampling = Sampling(max_new_tokens=args.max_new_tokens or agent.get("max_new_tokens", 100),
                        temperature=agent.get("temperature", 0.0), top_p=agent.get("top_p", 1.0))
    # The prompt's protocol (observation and action format) where the project's AgentConfig has one.
    protocol = {"protocol": agent["protocol"]} if "protocol" in agent and "protocol" in {
        f.name for f in dataclasses.fields(AgentConfig)} else {}
    agent_config = AgentConfig(max_steps=args.max_steps, sampling=sampling, seed=agent.get("seed", 0), **protocol)
    batch_size = args.batch_size or config.get("backends", {}).get("transformers", {}).get("batch_size", 8)

    started = time.perf_counter()
    settings = default_engine_settings("transformers", dtype=dtype, device=device, batch_size=batch_size)
    backend = TransformersBackend(model_path, "gpu-check", settings)
    backend.generate(["Question: warm-up\nThought 1:"], ["\n"], Sampling(max_new_tokens=1), [0])
    start_s = time.perf_counter() - started
    runs = {}
    for mode in ("batched", "sequential"):
        backend.clear_prefix_cache()
        meter = Meter(backend)
        if device == "cuda":
            torch.cuda.synchronize()
        print(f"agent: {mode}, {len(tasks)} questions, up to {args.max_steps} steps", file=sys.stderr, flush=True)
        with LoadSampler() as load:
            t0 = time.perf_counter()
            if mode == "batched":
                episodes = run_agent(tasks, meter, make_env, prefix, agent_config)
            else:
                episodes = [e for task in tasks for e in run_agent([task], meter, make_env, prefix, agent_config)]
            wall = time.perf_counter() - t0
        tokens = sum(c["tokens"] for c in meter.calls)
        runs[mode] = {"wall_s": round(wall, 3), "llm_s": round(sum(c["seconds"] for c in meter.calls), 3),
                      "generate_calls": len(meter.calls), "prompts": sum(c["prompts"] for c in meter.calls),
                      "generated_tokens": tokens, "tokens_per_s": round(tokens / wall, 1),
                      "load_1min_mean": round(statistics.mean(load.samples), 2),
                      "episodes": [episode_record(e) for e in episodes]}
        print(f"  {wall:.1f} s, {len(meter.calls)} calls, {tokens} tokens", file=sys.stderr, flush=True)
    backend.close()
    agree = agreement(runs["sequential"]["episodes"], runs["batched"]["episodes"])
    return {"model": model_path, "device": device, "dtype": dtype, "batch_size": batch_size, "environment": env_kind,
            "n_questions": len(tasks), "max_steps": args.max_steps, "max_new_tokens": sampling.max_new_tokens,
            "engine_start_s": round(start_s, 2), "runs": runs,
            "ratio_wall_sequential_over_batched": round(runs["sequential"]["wall_s"] / runs["batched"]["wall_s"], 3),
            **agree}


# --------------------------------------------------------------------------- finetune


def article_examples(prefix: str) -> list[tuple[str, str]]:
    """(question, trajectory) of each few-shot example of the ReAct prompt."""
    out = []
    for block in prefix.split("Question: ")[1:]:
        question, _, trajectory = block.partition("\n")
        out.append((question.strip(), trajectory.rstrip("\n")))
    return out


def training_records(config: dict, n: int) -> list[dict]:
    instruction = training_instruction(config)
    examples = article_examples(few_shot_prompt(config))
    records = []
    for i in range(n):
        question, trajectory = examples[i % len(examples)]
        # react.agent.trajectory.training_text's layout: the instruction, then the question line, then the trajectory.
        text = f"{instruction}\nQuestion: {question}\n{trajectory}"
        records.append({"id": f"ex{i}", "question": question, "trajectory": trajectory, "text": text})
    return records


class StepClock:
    """Wall time at the end of each optimizer step (after the device has finished it)."""

    def __init__(self, device: str):
        self.device, self.stamps = device, [time.perf_counter()]

    def tick(self) -> None:
        if self.device == "cuda":
            import torch

            torch.cuda.synchronize()
        self.stamps.append(time.perf_counter())

    def summary(self) -> dict:
        steps = [b - a for a, b in zip(self.stamps, self.stamps[1:])]
        return {"steps": len(steps), "step_s": [round(s, 4) for s in steps],
                "median_step_s": round(statistics.median(steps[1:] or steps), 4) if steps else None}


def peak_memory(device: str) -> dict:
    if device == "cuda":
        import torch

        return {"peak_gpu_memory_gib": round(torch.cuda.max_memory_allocated() / 2**30, 3)}
    return {"peak_rss_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 3),
            "note": "CPU: peak RSS of the whole process so far"}


def hyperparameters(method: str, device: str, steps: int) -> Hyperparameters:
    from react.training.presets import Hyperparameters

    # LoRA: the pipeline's CPU preset (the default run's finetune); QLoRA: the article's preset.
    hp = Hyperparameters.from_preset("cpu" if method == "lora" else "paper", {})
    hp = dataclasses.replace(hp, max_steps=steps, save_steps=steps + 1000, logging_steps=1, warmup_steps=0)
    if device == "cuda":
        hp = dataclasses.replace(hp, bf16=True, fp16=False)
    elif hp.optim.startswith("paged_"):
        hp = dataclasses.replace(hp, optim="adamw_torch")  # paged optimizers need CUDA
    return hp


def train_with_trl(model_path: str, records: list[dict], hp: Hyperparameters, device: str, workdir: Path) -> dict:
    from transformers import AutoTokenizer, TrainerCallback

    from react.training.tokenize import tokenize_records
    from react.training.trainer import make_trainer

    tokenizer = AutoTokenizer.from_pretrained(model_path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "right"
    dataset = tokenize_records(records, tokenizer, hp.max_length, hp.mask_observations)
    trainer = make_trainer(model_path, dataset.select_columns(["input_ids", "assistant_masks"]), workdir, hp,
                           tokenizer, device)
    clock = StepClock(device)

    class Clock(TrainerCallback):
        def on_train_begin(self, args, state, control, **kwargs):
            clock.stamps = [time.perf_counter()]

        def on_step_end(self, args, state, control, **kwargs):
            clock.tick()

    trainer.add_callback(Clock())
    _reset_peak(device)
    trainer.train()
    return {"trainer": "react.training.trainer.make_trainer (trl SFTTrainer)", **clock.summary(), **peak_memory(device),
            "tokens": sum(len(x) for x in dataset["input_ids"])}


def train_plain(model_path: str, records: list[dict], hp: Hyperparameters, device: str) -> dict:
    """The same LoRA shape, batch and optimizer in a plain loop: labels = inputs on every real token."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    dtype = torch.bfloat16 if device == "cuda" and hp.bf16 else torch.float32
    kwargs: dict = {"dtype": dtype}
    if hp.method == "qlora":
        from peft import prepare_model_for_kbit_training
        from transformers import BitsAndBytesConfig

        # As react.training.trainer.load_model_for_training: the preset's compute dtype on a GPU, float32 on a CPU.
        compute = getattr(torch, hp.bnb_4bit_compute_dtype) if device == "cuda" else torch.float32
        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type=hp.bnb_4bit_quant_type, bnb_4bit_compute_dtype=compute,
            bnb_4bit_use_double_quant=hp.bnb_4bit_use_double_quant)
        kwargs["device_map"] = {"": device}
    _reset_peak(device)
    model = AutoModelForCausalLM.from_pretrained(model_path, **kwargs)
    if hp.method == "qlora":
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=hp.gradient_checkpointing)
    else:
        model.to(device)
    model = get_peft_model(model, LoraConfig(
        r=hp.r, lora_alpha=hp.lora_alpha, lora_dropout=hp.lora_dropout, bias=hp.bias,
        target_modules=list(hp.target_modules), task_type="CAUSAL_LM"))
    model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=hp.learning_rate,
                                  weight_decay=hp.weight_decay)
    micro, accumulate = hp.per_device_train_batch_size, hp.gradient_accumulation_steps
    clock, position, tokens = StepClock(device), 0, 0
    for _ in range(hp.max_steps):
        for _ in range(accumulate):
            batch = [records[(position + i) % len(records)]["text"] for i in range(micro)]
            position += micro
            enc = tokenizer(batch, return_tensors="pt", padding=True, truncation=True, max_length=hp.max_length)
            enc = {k: v.to(device) for k, v in enc.items()}
            labels = enc["input_ids"].masked_fill(enc["attention_mask"] == 0, -100)
            tokens += int(enc["attention_mask"].sum())
            loss = model(**enc, labels=labels).loss / accumulate
            loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), hp.max_grad_norm)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        clock.tick()
    return {"trainer": f"plain torch/peft loop (trl missing): {hp.method}, full-text loss, torch AdamW, same LoRA, "
                       "batch and max_length", **clock.summary(), **peak_memory(device), "tokens": tokens}


def _reset_peak(device: str) -> None:
    if device == "cuda":
        import torch

        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def check_finetune(method: str, args: argparse.Namespace, config: dict, model_path: str, device: str,
                   notes: Notes, workdir: Path) -> dict | None:
    if method == "qlora" and not importable("bitsandbytes"):
        notes("qlora: skipped, bitsandbytes does not import (carry its wheel: --wheelhouse --with-bitsandbytes)")
        return None
    hp = hyperparameters(method, device, args.train_steps)
    micro, accumulate = hp.per_device_train_batch_size, hp.gradient_accumulation_steps
    records = training_records(config, micro * accumulate * args.train_steps)
    print(f"{method}: {args.train_steps} steps of {micro} x {accumulate} examples, max_length {hp.max_length}",
          file=sys.stderr, flush=True)
    if importable("trl") and importable("datasets"):
        try:
            result = train_with_trl(model_path, records, hp, device, workdir / method)
        except ValueError as exc:  # the prompt's examples are not training records the project accepts
            notes(f"{method}: the project's tokenizer refused the prompt's examples ({exc}); timed with a plain "
                  "torch/peft loop instead")
            result = train_plain(model_path, records, hp, device)
    else:
        notes(f"{method}: trl or datasets does not import; timed with a plain torch/peft loop instead of trl's trainer")
        result = train_plain(model_path, records, hp, device)
    keep = ("method", "r", "lora_alpha", "per_device_train_batch_size", "gradient_accumulation_steps", "max_length",
            "optim", "learning_rate", "bf16", "bnb_4bit_quant_type", "bnb_4bit_compute_dtype")
    result["hyperparameters"] = {k: getattr(hp, k) for k in keep}
    print(f"  median step {result['median_step_s']} s, {peak_memory(device)}", file=sys.stderr, flush=True)
    return result


# --------------------------------------------------------------------------- wheelhouse


def build_wheelhouse(dest: Path, python_version: str, with_bitsandbytes: bool) -> int:
    """Download, without dependencies, the wheels of WHEELS (versions as installed here) for the GPU machine."""
    from importlib.metadata import PackageNotFoundError, version

    names = WHEELS + (["bitsandbytes"] if with_bitsandbytes else [])
    specs = []
    for name in names:
        try:
            specs.append(f"{name}=={version(name)}")
        except PackageNotFoundError:
            specs.append(name)
    platforms = [f"--platform=manylinux_2_{n}_x86_64" for n in (17, 24, 27, 28, 31, 34)] + [
        "--platform=manylinux2014_x86_64", "--platform=manylinux1_x86_64"]
    dest.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--implementation", "cp",
           "--python-version", python_version, *platforms, "-d", str(dest), *specs]
    print(" ".join(cmd), file=sys.stderr, flush=True)
    status = subprocess.run(cmd).returncode
    wheels = sorted(dest.glob("*.whl"))
    total = sum(w.stat().st_size for w in wheels)
    for w in wheels:
        print(f"{w.stat().st_size / 2**20:8.2f} MiB  {w.name}")
    print(f"{total / 2**20:8.2f} MiB  in all ({len(wheels)} wheels; a call carries at most 64 MiB with the tree)")
    return status


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.wheelhouse:
        return build_wheelhouse(Path(args.wheelhouse), args.python_version, args.with_bitsandbytes)
    hide([m for m in args.hide.split(",") if m])
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import torch

    notes = Notes()
    device = args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: torch sees no CUDA device")
    dtype = args.dtype if args.dtype != "auto" else ("bfloat16" if device == "cuda" else "float32")
    if device == "cpu":
        notes("no CUDA device: running on the CPU (the check's purpose is a GPU; this is a dry run)")
    for name in ("trl", "datasets", "bitsandbytes", "bm25s"):
        if not importable(name):
            notes(f"{name} does not import here")
    skip = {s for s in args.skip.split(",") if s}
    config = load_config(PROJECT / args.config)
    started = dt.datetime.now()
    report: dict = {"benchmark": "gpu_check", "started": started.isoformat(timespec="seconds"), "command": sys.argv,
                    "machine": machine_info(device), "versions": versions(), "device": device, "dtype": dtype}
    with tempfile.TemporaryDirectory(prefix="gpu_check-") as tmp:
        model_path, model_kind = prepare_model(args.model, device, Path(tmp), notes)
        report["model"] = {"path": model_path, "kind": model_kind}
        sections = [("agent", lambda: check_agent(args, config, model_path, device, dtype, notes))]
        sections += [(m, lambda m=m: check_finetune(m, args, config, model_path, device, notes, Path(tmp)))
                     for m in ("lora", "qlora")]
        for name, run in sections:
            if name in skip:
                notes(f"{name}: skipped (--skip)")
                continue
            t0 = time.perf_counter()
            try:
                result = run()
            except Exception as exc:  # noqa: BLE001 - one part failing must not lose the others' results
                notes(f"{name}: failed: {type(exc).__name__}: {exc}")
                result = {"error": f"{type(exc).__name__}: {exc}"}
            if result is not None:
                result["section_s"] = round(time.perf_counter() - t0, 1)
                report[name] = result
    report["finished"] = dt.datetime.now().isoformat(timespec="seconds")
    report["notes"] = notes.items
    out_dir = Path(args.out) if args.out else PROJECT / "benchmarks/results"
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / ("gpu_check.json" if args.out else f"gpu_check-{device}-{started:%Y-%m-%d}.json")
    out.write_text(json.dumps(report, indent=1))
    summary = {k: report[k] for k in ("device", "dtype") if k in report}
    if "agent" in report and "error" not in report["agent"]:
        a = report["agent"]
        summary["agent"] = (f"sequential/batched wall x{a['ratio_wall_sequential_over_batched']}, same prediction "
                            f"{a['same_prediction']}/{a['n']}, same trajectory {a['same_trajectory']}/{a['n']}")
    for m in ("lora", "qlora"):
        if m in report and "error" not in report[m]:
            mem = report[m].get("peak_gpu_memory_gib", report[m].get("peak_rss_gib"))
            summary[m] = f"median step {report[m]['median_step_s']} s, peak memory {mem} GiB ({report[m]['trainer']})"
    print(json.dumps(summary, indent=1))
    print(f"wrote {out}")
    return 1 if any("error" in report.get(k, {}) for k in ("agent", "lora", "qlora")) else 0


if __name__ == "__main__":
    sys.exit(main())
