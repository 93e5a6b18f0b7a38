"""Finetuning: loss masking, LoRA/QLoRA SFT on the tiny model, checkpoint choice, merging, presets."""

from __future__ import annotations

import dataclasses
import json
import math

import pyarrow as pa
import pytest
from numerics import assert_as_close_as_float32_allows, summation_rtol

from react.agent.trajectory import model_written_spans, parse_trajectory, training_text
from react.io import read_parquet, read_provenance, sha256_file, write_parquet
from react.models import PROVENANCE_FILE
from react.paths import resolve_path
from react.training.checkpoints import checkpoint_losses, merge, pick_checkpoint
from react.training.presets import PRESETS, Hyperparameters
from react.training.tokenize import tokenize_records
from react.training.trainer import LOSS_SCHEMA, RunFiles, finetune, load_model_for_training, make_trainer

N_RECORDS = 20
# Small enough for speed, large enough that most article examples fit: with the tiny
# 1,024-token vocabulary they are 550-830 tokens long, so 7 of the 20 records are cut.
RUN = {"per_device_train_batch_size": 2, "gradient_accumulation_steps": 1, "max_length": 640, "save_steps": 3,
       "learning_rate": 2e-3}


def article_examples(prompt_prefix):
    for block in prompt_prefix.split("Question: ")[1:]:
        question, trajectory = block.split("\n", 1)
        yield question, trajectory.rstrip("\n")


@pytest.fixture(scope="module")
def instruction():
    # The article's prompt_format puts "\nQuestion:" right after the instruction's last line.
    return resolve_path("package:prompts/instruction.txt").read_text(encoding="utf-8").rstrip("\n")


def make_record(i, question, trajectory, instruction):
    return {"id": f"q{i}", "question": question, "answer": "", "trajectory": trajectory,
            "text": training_text(instruction, question, trajectory), "source": "article"}  # fmt: skip


@pytest.fixture(scope="module")
def records(prompt_prefix, instruction):
    examples = list(article_examples(prompt_prefix))
    return [make_record(i, *examples[i % len(examples)], instruction) for i in range(N_RECORDS)]


@pytest.fixture(scope="module")
def tokenizer(tiny_model):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model)


@pytest.fixture(scope="module")
def dataset_jsonl(tmp_path_factory, records):
    path = tmp_path_factory.mktemp("data") / "tiny-set.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def lora_run(tiny_model, dataset_jsonl, tmp_path_factory):
    out = tmp_path_factory.mktemp("lora")
    checkpoints = out / "checkpoints"
    (checkpoints / "checkpoint-999").mkdir(parents=True)  # stale, from an earlier run
    hp = Hyperparameters.from_preset("cpu", RUN)
    summary = finetune(tiny_model, dataset_jsonl, hp, RunFiles(checkpoints, out / "loss.parquet", out / "loss.png"),
                       threads=2, provenance={"step": "finetune", "config": {"run": "test"}})  # fmt: skip
    return {"out": out, "checkpoints": checkpoints, "loss": out / "loss.parquet", "png": out / "loss.png",
            "summary": summary, "hp": hp}  # fmt: skip


# --------------------------------------------------------------------------- masking


def trainable_runs(row, tokenizer):
    """Decoded text of each maximal run of consecutive trainable tokens."""
    runs, current = [], []
    for token, keep in zip(row["input_ids"], row["assistant_masks"], strict=True):
        if keep:
            current.append(token)
        elif current:
            runs.append(current)
            current = []
    if current:
        runs.append(current)
    return [tokenizer.decode(run) for run in runs]


def test_trainable_tokens_are_exactly_what_the_model_wrote(records, tokenizer, instruction):
    record = records[0]  # the article's first example: Colorado orogeny, five steps
    text, trajectory = record["text"], record["trajectory"]
    start = len(text) - len(trajectory)
    spans = model_written_spans(text, start)
    [row] = tokenize_records([record], tokenizer, max_length=4096, mask_observations=True)
    assert not row["truncated"]
    assert trainable_runs(row, tokenizer) == [text[a:b] for a, b in spans]
    assert trainable_runs(row, tokenizer)[0] == (
        " I need to search Colorado orogeny, find the area that the eastern sector of the Colorado orogeny "
        "extends into, then find the elevation range of the area.\nAction 1: Search[Colorado orogeny]\nObservation 1:"
    )
    # Token by token: nothing outside the spans (instruction, question, observations, "Thought i:") is trained.
    offsets = tokenizer(text, return_offsets_mapping=True)["offset_mapping"]
    for (a, b), keep in zip(offsets, row["assistant_masks"], strict=True):
        inside = any(s <= a and b <= e for s, e in spans)
        assert bool(keep) == inside, (text[a:b], keep)
    trained = "".join(trainable_runs(row, tokenizer))
    for step in parse_trajectory(trajectory):
        assert step.observation is None or step.observation not in trained
    assert instruction[:60] not in trained and "Question:" not in trained and "Thought" not in trained
    assert sum(row["assistant_masks"][: len(tokenizer(text[:start])["input_ids"]) - 1]) == 0


def test_without_masking_every_token_is_trained(records, tokenizer):
    [row] = tokenize_records(records[:1], tokenizer, max_length=4096, mask_observations=False)
    assert set(row["assistant_masks"]) == {1}
    assert row["input_ids"] == tokenizer(records[0]["text"])["input_ids"]


def test_truncation_keeps_the_start_and_is_counted(records, tokenizer):
    lengths = [len(tokenizer(r["text"])["input_ids"]) for r in records]
    dataset = tokenize_records(records, tokenizer, max_length=640, mask_observations=True)
    assert sum(dataset["truncated"]) == sum(n > 640 for n in lengths) == 7
    for row, record, n in zip(dataset, records, lengths, strict=True):
        assert len(row["input_ids"]) == min(n, 640) == len(row["assistant_masks"])
        assert row["input_ids"] == tokenizer(record["text"])["input_ids"][:640]


def test_malformed_record_is_named(records, tokenizer, instruction):
    bad = make_record(77, "Q?", "Thought 1: x\nAction 1: Jump[a]", instruction)
    with pytest.raises(ValueError, match=r"'q77'.*invalid action"):
        tokenize_records([records[0], bad], tokenizer, 512, True)
    with pytest.raises(ValueError, match="'q78'.*does not end with"):
        tokenize_records([{**records[0], "id": "q78", "text": records[0]["text"] + " "}], tokenizer, 512, True)


def test_trainer_labels_are_minus_100_on_masked_tokens(records, tokenizer, tiny_model, tmp_path):
    dataset = tokenize_records(records[:3], tokenizer, max_length=640, mask_observations=True)
    masks = dataset["assistant_masks"]
    hp = Hyperparameters.from_preset("cpu", RUN)
    trainer = make_trainer(tiny_model, dataset.select_columns(["input_ids", "assistant_masks"]), tmp_path, hp,
                           tokenizer, "cpu")  # fmt: skip
    prepared = trainer.train_dataset
    assert len(prepared) == 3 and "assistant_masks" not in prepared.column_names
    for row, ids, mask in zip(prepared, dataset["input_ids"], masks, strict=True):
        assert row["input_ids"] == ids
        assert row["labels"] == [t if m else -100 for t, m in zip(ids, mask, strict=True)]
        assert 0 < sum(label != -100 for label in row["labels"]) < len(ids)
    # And what the model sees in a batch: padding is -100 too.
    batch = next(iter(trainer.get_train_dataloader()))
    rows = zip(batch["labels"].tolist(), batch["input_ids"].tolist(), batch["attention_mask"].tolist(), strict=True)
    for labels, ids, attention in rows:
        n = sum(attention)
        k = dataset["input_ids"].index(ids[:n])
        expected = [t if m else -100 for t, m in zip(dataset["input_ids"][k], masks[k], strict=True)]
        assert labels == expected + [-100] * (len(labels) - n)
    # And the loss trl computes is next-token cross-entropy on the model-written tokens only.
    import torch
    import torch.nn.functional as F

    model = trainer.model.eval()
    with torch.no_grad():
        loss = trainer.compute_loss(model, dict(batch))
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, :-1]
        masked = F.cross_entropy(logits.flatten(0, 1), batch["labels"][:, 1:].flatten(), ignore_index=-100)
        everything = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)[:, 1:]
        unmasked = F.cross_entropy(logits.flatten(0, 1), everything.flatten(), ignore_index=-100)
    # The same per-token losses, averaged in another order: float32 summation error, no more.
    n_labelled = int((batch["labels"][:, 1:] != -100).sum())
    torch.testing.assert_close(loss, masked, rtol=summation_rtol(torch.float32, n_labelled), atol=0)
    assert abs(loss - unmasked) > 1e-3


@pytest.mark.parametrize("group_by_length", [True, False])
def test_group_by_length_reaches_the_sampler_and_keeps_the_masks(records, tokenizer, tiny_model, tmp_path,
                                                                 group_by_length):
    from torch.utils.data import RandomSampler
    from transformers.trainer_pt_utils import LengthGroupedSampler

    dataset = tokenize_records(records, tokenizer, max_length=640, mask_observations=True)
    hp = Hyperparameters.from_preset("cpu", {**RUN, "gradient_accumulation_steps": 2, "group_by_length": group_by_length})
    trainer = make_trainer(tiny_model, dataset.select_columns(["input_ids", "assistant_masks"]), tmp_path, hp,
                           tokenizer, "cpu")  # fmt: skip
    assert trainer.args.train_sampling_strategy == ("group_by_length" if group_by_length else "random")
    sampler = trainer._get_train_sampler()
    if group_by_length:  # grouped per optimizer step: batch 2 x 2 accumulation
        assert isinstance(sampler, LengthGroupedSampler) and sampler.batch_size == 4
    else:
        assert isinstance(sampler, RandomSampler)
    # Every example once per epoch, whole, with labels -100 exactly where assistant_masks is 0 and on pads.
    expected = {tuple(ids): [t if m else -100 for t, m in zip(ids, mask, strict=True)]
                for ids, mask in zip(dataset["input_ids"], dataset["assistant_masks"], strict=True)}  # fmt: skip
    seen = []
    for batch in trainer.get_train_dataloader():
        rows = zip(batch["labels"].tolist(), batch["input_ids"].tolist(), batch["attention_mask"].tolist(), strict=True)
        for labels, ids, attention in rows:
            n = sum(attention)
            assert labels == expected[tuple(ids[:n])] + [-100] * (len(labels) - n)
            seen.append(tuple(ids[:n]))
    assert sorted(seen) == sorted(tuple(ids) for ids in dataset["input_ids"])


def test_group_by_length_must_be_a_boolean():
    assert PRESETS["paper"].group_by_length is False  # the article's order: transformers' default, random
    assert PRESETS["cpu"].group_by_length is True  # measured faster, same held-out loss (BENCHMARKS.md)
    with pytest.raises(ValueError, match="'group_by_length': expected true or false"):
        Hyperparameters.from_preset("cpu", {"group_by_length": "yes"})


# --------------------------------------------------------------------------- training


def test_lora_run_keeps_three_checkpoints_ending_at_the_last_step(lora_run):
    summary = lora_run["summary"]
    assert summary["steps"] == 10  # 20 examples, batch 2, one epoch
    kept = sorted(p.name for p in lora_run["checkpoints"].iterdir() if p.name.startswith("checkpoint-"))
    assert kept == ["checkpoint-10", "checkpoint-6", "checkpoint-9"]  # saves at 3, 6, 9 and the final 10
    for name in kept:
        assert (lora_run["checkpoints"] / name / "adapter_model.safetensors").is_file()
    assert summary["n_examples"] == N_RECORDS and summary["n_truncated"] == 7
    assert summary["trainable_parameters"] > 0


def test_lora_run_writes_the_loss_table_and_curve(lora_run, dataset_jsonl):
    table = read_parquet(lora_run["loss"])
    assert table.schema.equals(LOSS_SCHEMA)
    rows = table.to_pylist()
    assert [r["step"] for r in rows] == list(range(1, 11))  # logging_steps 1
    assert all(math.isfinite(r["loss"]) and r["loss"] > 0 for r in rows)
    assert all(r["learning_rate"] == pytest.approx(2e-3) for r in rows)
    provenance = read_provenance(lora_run["loss"])
    training = provenance["training"]
    assert provenance["step"] == "finetune"
    assert training["hyperparameters"] == lora_run["hp"].as_dict()
    assert training["dataset_sha256"] == sha256_file(dataset_jsonl)
    assert training["n_examples"] == N_RECORDS and training["n_truncated"] == 7
    assert training["trainable_parameters"] == lora_run["summary"]["trainable_parameters"]
    # Timings differ between identical runs, so they stay out of provenance, in timing.json.
    assert "wall_seconds" not in training and "tokens_per_second" not in training
    timing = json.loads((lora_run["checkpoints"] / "timing.json").read_text())
    assert timing["wall_seconds"] > 0 and timing["tokens_per_second"] > 0
    assert lora_run["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not [p for p in lora_run["out"].iterdir() if p.name.startswith(".")]  # no temporary files left


def test_qlora_nf4_trains_on_cpu(tiny_model, dataset_jsonl, tmp_path):
    import bitsandbytes as bnb

    hp = Hyperparameters.from_preset("cpu", {**RUN, "method": "qlora", "max_steps": 3})
    model = load_model_for_training(tiny_model, hp, "cpu")
    q_proj = model.model.layers[0].self_attn.q_proj
    assert isinstance(q_proj, bnb.nn.Linear4bit) and q_proj.weight.quant_type == "nf4"
    del model
    summary = finetune(tiny_model, dataset_jsonl, hp, RunFiles(tmp_path / "ckpt", tmp_path / "loss.parquet",
                                                                tmp_path / "loss.png"), threads=2)  # fmt: skip
    assert summary["steps"] == 3
    assert all(math.isfinite(loss) for loss in read_parquet(tmp_path / "loss.parquet").column("loss").to_pylist())
    assert (tmp_path / "ckpt/checkpoint-3/adapter_model.safetensors").is_file()


# --------------------------------------------------------------------------- choosing and merging


def crafted_run(tmp_path, losses, save_steps, kept, provenance=True):
    steps = sorted(losses)
    table = pa.Table.from_pylist(
        [{"step": s, "epoch": s / 10, "loss": losses[s], "learning_rate": 1e-4, "grad_norm": 1.0} for s in steps],
        schema=LOSS_SCHEMA,
    )
    prov = {"training": {"hyperparameters": {"save_steps": save_steps}}} if provenance else None
    write_parquet(table, tmp_path / "loss.parquet", prov)
    for s in kept:
        (tmp_path / "ckpts" / f"checkpoint-{s}").mkdir(parents=True)
        if not provenance:
            (tmp_path / "ckpts" / f"checkpoint-{s}" / "trainer_state.json").write_text(
                json.dumps({"save_steps": save_steps})
            )
    return tmp_path / "ckpts", tmp_path / "loss.parquet"


def test_pick_checkpoint_takes_the_lowest_mean_since_the_previous_save(tmp_path):
    # Saves at 2, 4, 6 and the final step 7; the last three are kept. Windows: (2,4], (4,6], (6,7].
    losses = {1: 5.0, 2: 0.1, 3: 2.0, 4: 2.0, 5: 0.5, 6: 2.5, 7: 1.6}
    ckpts, loss = crafted_run(tmp_path, losses, save_steps=2, kept=[4, 6, 7])
    scored = checkpoint_losses(ckpts, loss)
    assert [(s, p.name, pytest.approx(v)) for s, p, v in scored] == [
        (4, "checkpoint-4", 2.0), (6, "checkpoint-6", 1.5), (7, "checkpoint-7", 1.6),
    ]  # fmt: skip
    step, path, value = pick_checkpoint(ckpts, loss)
    assert (step, path.name, value) == (6, "checkpoint-6", pytest.approx(1.5))  # not 7 (lowest loss at a save)


def test_pick_checkpoint_ties_go_to_the_later_step_and_empty_windows_are_passed_over(tmp_path):
    ckpts, loss = crafted_run(tmp_path / "a", {2: 1.0, 4: 1.0, 6: 1.0}, save_steps=2, kept=[2, 4, 6])
    assert pick_checkpoint(ckpts, loss)[0] == 6
    # Logged every 4 steps, saved every 2: checkpoint 6's window (4, 6] has no loss.
    ckpts, loss = crafted_run(tmp_path / "b", {4: 3.0, 8: 2.0}, save_steps=2, kept=[4, 6, 8], provenance=False)
    scored = checkpoint_losses(ckpts, loss)
    assert math.isnan(scored[1][2])
    assert pick_checkpoint(ckpts, loss)[0] == 8


def test_merged_model_equals_the_adapter_model(lora_run, tiny_model, tokenizer):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    step, checkpoint, loss = pick_checkpoint(lora_run["checkpoints"], lora_run["loss"])
    assert step in (6, 9, 10)
    out = lora_run["out"] / "merged" / "tiny-react"
    merge(tiny_model, checkpoint, out, {"step": "merge"})
    assert not [p for p in out.parent.iterdir() if p != out]  # the temporary folder is gone
    assert (out / "model.safetensors").is_file() and (out / "tokenizer.json").is_file()
    ids = torch.tensor([tokenizer("Question: Which magazine was started first?\nThought 1:")["input_ids"]])
    with torch.no_grad():
        base = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32).eval()
        base_logits = base(ids).logits
        adapted = PeftModel.from_pretrained(base, checkpoint).eval()
        adapted_logits = adapted(ids).logits
        merged_logits = AutoModelForCausalLM.from_pretrained(out).eval()(ids).logits
        # The adapter model in float64: the exact logits, to measure float32's own error against.
        base64 = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float64)
        exact = PeftModel.from_pretrained(base64, checkpoint).double().eval()(ids).logits
    assert (adapted_logits - base_logits).abs().max() > 1e-3  # the adapter does something
    # (W + s·BA)x against Wx + s·B(Ax): the same function, rounded differently (see tests/numerics.py).
    assert_as_close_as_float32_allows(merged_logits, adapted_logits, exact, what="merged model's logits")
    provenance = json.loads((out / PROVENANCE_FILE).read_text())
    assert provenance["step"] == "merge"
    assert provenance["checkpoint"]["step"] == step and provenance["checkpoint"]["loss"] == pytest.approx(loss)
    assert provenance["dataset_sha256"] == lora_run["summary"]["dataset_sha256"]
    assert provenance["hyperparameters"] == lora_run["hp"].as_dict()
    assert provenance["base_model"] == str(tiny_model)


# --------------------------------------------------------------------------- hyperparameters


ARTICLE = {
    "r": 16, "lora_alpha": 32, "lora_dropout": 0.05, "bias": "none", "learning_rate": 5e-5,
    "optim": "paged_adamw_32bit", "per_device_train_batch_size": 2, "gradient_accumulation_steps": 1,
    "num_train_epochs": 1, "warmup_steps": 100, "lr_scheduler_type": "constant", "max_grad_norm": 0.3,
    "max_length": 1200, "packing": False, "save_steps": 25, "save_total_limit": 3, "logging_steps": 25,
    "method": "qlora", "bnb_4bit_quant_type": "nf4", "bnb_4bit_compute_dtype": "float16",
    "bnb_4bit_use_double_quant": False, "bf16": True, "fp16": False,
    "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
}  # fmt: skip


def test_presets_hold_the_articles_values():
    paper = PRESETS["paper"].as_dict()
    assert {k: paper[k] for k in ARTICLE} == ARTICLE
    assert PRESETS["cpu"].target_modules == PRESETS["paper"].target_modules
    # The article trains on every token of the text; the CPU preset on the model-written tokens only.
    assert PRESETS["cpu"].mask_observations and not PRESETS["paper"].mask_observations


def test_overrides_apply_to_a_preset_and_unknown_keys_are_named():
    hp = Hyperparameters.from_preset("cpu", {"learning_rate": 1e-3, "max_steps": 5})
    assert hp.learning_rate == 1e-3 and hp.max_steps == 5 and hp.r == 16
    assert PRESETS["cpu"].learning_rate == 2e-4  # the preset itself is untouched
    with pytest.raises(ValueError, match=r"unknown finetuning hyperparameter 'lr'; allowed: .*learning_rate"):
        Hyperparameters.from_preset("cpu", {"lr": 1e-3})
    with pytest.raises(ValueError, match="unknown finetuning preset 'gpu'"):
        Hyperparameters.from_preset("gpu", {})
    with pytest.raises(ValueError, match="'method'"):
        Hyperparameters.from_preset("paper", {"method": "full"})
    with pytest.raises(ValueError, match="'save_steps'"):
        Hyperparameters.from_preset("cpu", {"save_steps": 0})
    with pytest.raises(ValueError, match="'target_modules': expected a non-empty list"):
        Hyperparameters.from_preset("cpu", {"target_modules": "q_proj"})


def test_hyperparameters_are_recorded_as_the_config_gives_them():
    # A config's list of modules is kept as a tuple (the object is frozen) and recorded as a list.
    hp = Hyperparameters.from_preset("cpu", {"target_modules": ["q_proj", "v_proj"]})
    assert hp.target_modules == ("q_proj", "v_proj")
    recorded = hp.as_dict()
    assert recorded["target_modules"] == ["q_proj", "v_proj"]
    assert list(recorded) == [f.name for f in dataclasses.fields(Hyperparameters)]
    assert Hyperparameters(**recorded) == hp
    with pytest.raises(dataclasses.FrozenInstanceError):
        hp.learning_rate = 1.0


def test_the_paper_preset_needs_a_gpu_for_its_paged_optimizer(tiny_model, dataset_jsonl, tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present: the paged optimizer can run")
    with pytest.raises(ValueError, match="'optim': 'paged_adamw_32bit' needs a CUDA GPU"):
        finetune(tiny_model, dataset_jsonl, Hyperparameters.from_preset("paper", {}),
                 RunFiles(tmp_path / "c", tmp_path / "l.parquet", tmp_path / "l.png"))  # fmt: skip
    assert not (tmp_path / "c").exists()
