"""A GRPO run's files, its resumption after a kill, and the determinism of its rollouts (tiny model, CPU)."""

import dataclasses
import json
import os
import signal
import subprocess
import sys
import textwrap

import pytest

from react.agent.loop import AgentConfig, Task
from react.environment.offline import WikiEnv
from react.inference.base import Sampling
from react.io import PROVENANCE_KEY, read_parquet
from react.rl.rollout import Rollouts
from react.rl.settings import PRESETS, LoraSettings, RewardSettings, SettingsError, grpo_settings
from react.rl.trainer import RLFiles, metrics_table, train_grpo
from react.schemas import EPISODE_SCHEMA
from react.search.index import Corpus

QUESTIONS = {"q0": "Who was Milhouse named after?", "q1": "Which president named Milhouse?"}


def rollouts() -> Rollouts:
    corpus = Corpus.from_paragraphs({"Milhouse": ["Milhouse is a boy.", " He was named after Richard Nixon."]})
    tasks = {i: Task(i, q, "Richard Nixon", "train") for i, q in QUESTIONS.items()}
    agent = AgentConfig(max_steps=2, sampling=Sampling(max_new_tokens=12, temperature=1.0))
    return Rollouts(tasks, lambda protocol: WikiEnv(corpus, protocol), "INSTRUCTION\n", agent, 4096,
                    strip_question=True, model="tiny-grpo", prompt_kind="instruction", prompt_sha256="p" * 64,
                    corpus_sha256="c" * 64)


def settings(steps: int = 2, **changes):
    # F1 with a format penalty: the tiny model never answers right, but its rewards still differ.
    return dataclasses.replace(PRESETS["cpu"], **{
        "n_questions": None, "steps": steps, "questions_per_step": 2, "group_size": 2, "learning_rate": 1e-3,
        "temperature": 1.0, "save_steps": 1, "save_total_limit": 5, "lora": LoraSettings(4, 8, 0.0, ("q_proj", "v_proj")),
        "reward": RewardSettings("f1", 0.5), **changes})


def files(root) -> RLFiles:
    return RLFiles(root / "checkpoints", root / "rollouts", root / "adapter", root / "steps.parquet",
                   root / "curves.png", root / "run.json")


def test_a_grpo_run_writes_its_steps_rollouts_curves_and_adapter(tmp_path, tiny_model, caplog):
    caplog.set_level("INFO")
    out = files(tmp_path)
    summary = train_grpo(tiny_model, rollouts(), settings(), out, provenance={"config": {"run": "x"}})
    steps = read_parquet(out.metrics)
    assert steps.column("step").to_pylist() == [1, 2]
    assert steps.column("n_rollouts").to_pylist() == [4, 4]
    row = steps.to_pylist()[0]
    assert row["loss"] is not None and row["kl"] is None  # beta 0: no reference model
    assert row["policy_tokens"] > 0 and row["environment_tokens"] > 0
    assert -0.5 <= row["reward"] <= 1.0
    for step in (1, 2):
        episodes = read_parquet(out.rollouts / f"step-{step:05d}.parquet", EPISODE_SCHEMA)
        assert sorted(episodes.column("id").to_pylist()) == ["q0", "q0", "q1", "q1"]
        meta = json.loads(episodes.schema.metadata[PROVENANCE_KEY])
        assert meta["rl_step"] == step and meta["config"] == {"run": "x"}
        assert set(episodes.column("model").to_pylist()) == {"tiny-grpo"}
    assert (out.adapter / "adapter_model.safetensors").is_file() and out.curves.stat().st_size > 0
    assert json.loads(out.summary.read_text())["rl"]["steps"] == 2
    assert summary["reward_fifths"]["first"]["rollouts"] == 4 and summary["reward_fifths"]["last"]["steps"] == [2, 2]
    provenance = json.loads(steps.schema.metadata[PROVENANCE_KEY])
    assert provenance["config"] == {"run": "x"} and provenance["rl"]["settings"]["group_size"] == 2
    assert any("step 1 rollouts: 4 episodes" in r.message for r in caplog.records)


def test_a_step_whose_rollouts_all_fail_says_so(tmp_path, tiny_model, caplog):
    caplog.set_level("WARNING")
    out = files(tmp_path)
    train_grpo(tiny_model, rollouts(), settings(steps=1, reward=RewardSettings("em", 0.0)), out)
    assert read_parquet(out.metrics).column("all_failed").to_pylist() == [True]  # the tiny model never answers
    assert any("all 4 rollouts failed" in r.message for r in caplog.records)


def episodes(path):
    return sorted((r["id"], r["sample"], r["trajectory"]) for r in read_parquet(path).to_pylist())


def test_the_rollouts_of_a_step_are_the_same_given_the_seed(tmp_path, tiny_model):
    first, second = files(tmp_path / "a"), files(tmp_path / "b")
    train_grpo(tiny_model, rollouts(), settings(steps=1), first)
    train_grpo(tiny_model, rollouts(), settings(steps=1), second)
    a, b = episodes(first.rollouts / "step-00001.parquet"), episodes(second.rollouts / "step-00001.parquet")
    assert a == b
    other = files(tmp_path / "c")
    train_grpo(tiny_model, rollouts(), settings(steps=1, seed=1), other)
    assert episodes(other.rollouts / "step-00001.parquet") != a


KILLED_RUN = textwrap.dedent("""
    import os, signal, sys
    sys.path.insert(0, {tests!r})
    from pathlib import Path
    from transformers import TrainerCallback
    from test_rl_trainer import files, rollouts, settings
    from react.rl.trainer import train_grpo

    class KillAfterFirstCheckpoint(TrainerCallback):
        def on_save(self, args, state, control, **kwargs):
            if state.global_step == 1:
                os.kill(os.getpid(), signal.SIGKILL)  # as a scheduler's kill: no cleanup of any kind

    train_grpo(Path({model!r}), rollouts(), settings(steps=3), files(Path({root!r})),
               callbacks=[KillAfterFirstCheckpoint()])
""")


def test_a_killed_run_resumes_from_its_last_checkpoint_and_ends_as_an_uninterrupted_one(tmp_path, tiny_model,
                                                                                        caplog):
    import torch
    from safetensors.torch import load_file

    caplog.set_level("INFO")
    killed = files(tmp_path / "killed")
    script = KILLED_RUN.format(tests=os.path.dirname(__file__), model=str(tiny_model), root=str(tmp_path / "killed"))
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600)
    assert done.returncode == -signal.SIGKILL, done.stderr[-2000:]
    assert (killed.checkpoints / "checkpoint-1").is_dir() and not (killed.checkpoints / "checkpoint-2").exists()
    assert not killed.metrics.exists()

    summary = train_grpo(tiny_model, rollouts(), settings(steps=3), killed)
    assert summary["resumed_from"] == "checkpoint-1"
    assert any("resuming from" in r.message for r in caplog.records)
    whole = files(tmp_path / "whole")
    train_grpo(tiny_model, rollouts(), settings(steps=3), whole)
    for step in (1, 2, 3):  # the same episodes (the order of a step's questions is the sampler's business)
        name = f"step-{step:05d}.parquet"
        assert episodes(killed.rollouts / name) == episodes(whole.rollouts / name)
    a, b = load_file(killed.adapter / "adapter_model.safetensors"), load_file(whole.adapter / "adapter_model.safetensors")
    assert a.keys() == b.keys() and all(torch.allclose(a[k], b[k], atol=1e-5) for k in a)


def test_changed_settings_start_afresh_instead_of_resuming(tmp_path, tiny_model):
    out = files(tmp_path)
    train_grpo(tiny_model, rollouts(), settings(steps=1), out)
    summary = train_grpo(tiny_model, rollouts(), settings(steps=1, learning_rate=5e-4), out)
    assert summary["resumed_from"] is None
    assert metrics_table(out.rollouts, [], settings(steps=1)).num_rows == 1


def test_settings_come_from_the_preset_and_refuse_a_group_of_one():
    run = {"preset": "cpu", "group_size": None, "steps": 5, "lora": {"r": 8}, "reward": {"metric": "f1"}}
    s = grpo_settings(run)
    assert (s.steps, s.group_size, s.lora.r, s.lora.alpha, s.reward.metric) == (5, PRESETS["cpu"].group_size, 8,
                                                                                PRESETS["cpu"].lora.alpha, "f1")
    assert grpo_settings({"preset": "paper"}).rollout_backend == "vllm"
    with pytest.raises(SettingsError, match="group of one") as error:
        grpo_settings({"preset": "cpu", "group_size": 1})
    assert error.value.key == "group_size"
    with pytest.raises(SettingsError, match="does not divide"):
        grpo_settings({"preset": "cpu", "micro_batch_size": 3})


def test_the_reward_curve_is_summed_up_by_its_first_and_last_fifth_with_honest_intervals():
    from react.rl.trainer import reward_fifths

    def step(k, successes):  # 4 rollouts with an EM reward
        p = successes / 4
        return {"step": k, "n_rollouts": 4, "reward": p, "reward_std": (p * (1 - p)) ** 0.5, "em": 100 * p,
                "finished_pct": 100.0, "all_failed": successes == 0}

    steps = [step(k, 0) for k in range(1, 5)] + [step(k, 1) for k in range(5, 17)] + [step(k, 2) for k in range(17, 21)]
    fifths = reward_fifths(steps, binary=True)
    assert fifths["first"]["steps"] == [1, 4] and fifths["last"]["steps"] == [17, 20]
    assert fifths["first"]["mean"] == 0.0 and fifths["first"]["ci"][0] == 0.0
    assert 0.19 < fifths["first"]["ci"][1] < 0.2  # Wilson at 0 of 16: not a point
    assert fifths["last"]["mean"] == 0.5 and fifths["first"]["steps_all_failed"] == 4
    low, high = fifths["difference"]["ci"]
    assert fifths["difference"]["mean"] == 0.5 and 0.1 < low < 0.5 < high < 0.8
    normal = reward_fifths(steps)
    assert normal["first"]["ci"] == [0.0, 0.0] and normal["last"]["mean"] == 0.5
