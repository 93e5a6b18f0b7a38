"""GRPO through trl with rollouts played by the project's agent loop (issue 15, the trainer's core)."""


import pytest

from react.agent.loop import AgentConfig, Task
from react.environment.offline import WikiEnv
from react.inference.base import Sampling
from react.rl.rollout import Rollouts, make_reward_func, make_rollout_func
from react.rl.settings import RewardSettings
from react.search.index import Corpus

QUESTIONS = {"q0": "Who was Milhouse named after?", "q1": "Which president named Milhouse?"}
IDS = list(QUESTIONS)
exact_match_reward = make_reward_func(RewardSettings("em", 0.0))


@pytest.fixture
def rollout_func():
    corpus = Corpus.from_paragraphs({"Milhouse": ["Milhouse is a boy.", " He was named after Richard Nixon."]})
    tasks = {i: Task(i, q, "Richard Nixon", "train") for i, q in QUESTIONS.items()}
    agent = AgentConfig(max_steps=2, sampling=Sampling(max_new_tokens=16, temperature=1.0))
    return make_rollout_func(Rollouts(tasks, lambda protocol: WikiEnv(corpus, protocol), "INSTRUCTION\n", agent,
                                      16384, strip_question=True, model="tiny", prompt_kind="instruction",
                                      prompt_sha256="p" * 64, corpus_sha256="c" * 64))


def test_grpo_steps_train_the_policy_on_its_own_tokens(tmp_path, tiny_model, rollout_func, monkeypatch):
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoTokenizer
    from trl import GRPOConfig, GRPOTrainer

    monkeypatch.setenv("TRL_EXPERIMENTAL_SILENCE", "1")
    seen = []

    def length_reward(completions, completion_ids, n_steps, **kwargs):
        # A reward that varies within a group (the tiny model never answers right), so advantages are non-zero.
        seen.append(list(n_steps))
        return [len(ids) / 100 for ids in completion_ids]

    args = GRPOConfig(output_dir=str(tmp_path / "out"), max_steps=2, per_device_train_batch_size=4,
                      gradient_accumulation_steps=1, num_generations=4, num_iterations=1, beta=0.0, temperature=1.0,
                      top_p=1.0, top_k=0, mask_truncated_completions=False, learning_rate=1e-3, bf16=False,
                      use_cpu=True, gradient_checkpointing=False, logging_steps=1, save_strategy="steps",
                      save_steps=1, report_to=[], seed=0, remove_unused_columns=False, dataloader_pin_memory=False)
    trainer = GRPOTrainer(model=str(tiny_model), reward_funcs=[exact_match_reward, length_reward], args=args,
                          train_dataset=Dataset.from_dict({"prompt": IDS}),
                          processing_class=AutoTokenizer.from_pretrained(tiny_model),
                          peft_config=LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"],
                                                 task_type="CAUSAL_LM"),
                          rollout_func=rollout_func)
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters() if "lora_B" in n}
    trainer.train()
    logged = [h for h in trainer.state.log_history if "reward" in h]
    assert [h["step"] for h in logged] == [1, 2]
    assert all("rewards/em_reward/mean" in h for h in logged)
    assert len(seen) == 2 and all(len(batch) == 4 for batch in seen)
    changed = [n for n, p in trainer.model.named_parameters() if n in before and not p.detach().equal(before[n])]
    assert changed  # the policy's own tokens carried a loss
    assert (tmp_path / "out/checkpoint-2").is_dir()


def test_the_rollouts_of_a_step_are_one_per_prompt_in_order_and_masked(tiny_model, rollout_func):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    class Trainer:  # what rollout_func reads of trl's trainer
        model = AutoModelForCausalLM.from_pretrained(tiny_model)
        processing_class = AutoTokenizer.from_pretrained(tiny_model)

        class state:
            global_step = 3

    prompts = ["q0", "q0", "q1", "q1"]
    out = rollout_func(prompts, Trainer)
    assert {k: len(v) for k, v in out.items()} == {k: 4 for k in out}
    tokenizer = Trainer.processing_class
    for prompt, ids, completion, mask, logprobs in zip(prompts, out["prompt_ids"], out["completion_ids"],
                                                       out["env_mask"], out["logprobs"]):
        assert tokenizer.decode(ids) == f"INSTRUCTION\nQuestion: {QUESTIONS[prompt]}\nThought 1:"
        assert len(completion) == len(mask) == len(logprobs) > 0
        assert all(p == 0.0 for p, m in zip(logprobs, mask) if not m)
    assert out["prompt_ids"][0] == out["prompt_ids"][1] and out["completion_ids"][0] != out["completion_ids"][1]
    again = rollout_func(prompts, Trainer)  # the same step: the same rollouts
    assert again["completion_ids"] == out["completion_ids"]
