"""The policy being trained as a `Backend` of the agent loop, recording each episode's rollout as tokens.

The agent (react.agent.loop.run_agent) drives the episodes exactly as in evaluation; this
backend generates with the policy's current weights (a transformers model, LoRA adapters
included), feeds each episode the token sequence it has read so far (react.rl.tokens), and
records what the policy wrote with its log-probabilities. Episodes are told apart by their
seed (one per question and sample, react.agent.loop.hash_seed). No prefix cache: the weights
change between rollouts.
"""

from __future__ import annotations

from typing import Any

from react.agent.parsing import truncate_at_stop
from react.inference.base import Generation, Prompt, Sampling
from react.rl.tokens import EpisodeTokens


class PolicyBackend:
    name = "policy"
    chat_template = None  # raw text only for now

    def __init__(self, model: Any, tokenizer: Any, max_context: int) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.max_context = max_context
        self.rollouts: dict[int, EpisodeTokens] = {}

    def count_tokens(self, prompts: list[Prompt]) -> list[int]:
        """What each episode would read: its sequence so far and the loop's new text."""
        counts = []
        for prompt in prompts:
            rollout = next((r for r in self.rollouts.values() if prompt.startswith(r.text)), None)
            counts.append(len(rollout.resolve(prompt)) if rollout else
                          len(self.tokenizer(prompt, add_special_tokens=True)["input_ids"]))
        return counts

    def generate(self, prompts: list[Prompt], stop: list[str], sampling: Sampling,
                 seeds: list[int]) -> list[Generation]:
        import torch

        if any(not isinstance(p, str) for p in prompts):
            raise TypeError("the policy backend takes raw text prompts")
        if len(set(seeds)) != len(seeds):
            raise ValueError("two episodes of one call share a seed; rollouts are told apart by it")
        rollouts = []
        for prompt, seed in zip(prompts, seeds):
            if seed in self.rollouts:
                self.rollouts[seed].commit(prompt)
            else:
                self.rollouts[seed] = EpisodeTokens.start(self.tokenizer, prompt)
            rollouts.append(self.rollouts[seed])
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.tokenizer.eos_token_id
        width = max(len(r.input_ids) for r in rollouts)
        input_ids = torch.tensor([[pad] * (width - len(r.input_ids)) + r.input_ids for r in rollouts])
        mask = torch.tensor([[0] * (width - len(r.input_ids)) + [1] * len(r.input_ids) for r in rollouts])
        kwargs: dict[str, Any] = {"max_new_tokens": sampling.max_new_tokens, "use_cache": True,
                                  "return_dict_in_generate": True, "output_scores": True}
        if sampling.temperature > 0:
            kwargs.update(do_sample=True, temperature=sampling.temperature, top_p=sampling.top_p, top_k=0)
        else:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.random.fork_rng(), torch.no_grad():
                torch.manual_seed(seeds[0])  # one generator per call, as the transformers engine does
                out = self.model.generate(input_ids=input_ids.to(self.model.device),
                                          attention_mask=mask.to(self.model.device), stop_strings=stop or None,
                                          tokenizer=self.tokenizer, pad_token_id=pad, **kwargs)
        finally:
            self.model.train(was_training)
        new = out.sequences[:, width:].tolist()
        # The sampling distribution's log-probability of each chosen token (scores are after temperature/top-p).
        logprobs = torch.stack(out.scores, dim=1).float().log_softmax(-1)
        gens = []
        for row, (rollout, ids) in enumerate(zip(rollouts, new)):
            ids = _until_end(ids, self.tokenizer.eos_token_id, pad)
            chosen = [float(logprobs[row, k, token]) for k, token in enumerate(ids)]
            rollout.generated(ids, chosen)
            text = self.tokenizer.decode(ids, skip_special_tokens=True).rstrip("\ufffd")
            cut = truncate_at_stop(text, stop)
            finish = "stop" if len(cut) < len(text) or len(ids) < sampling.max_new_tokens else "length"
            gens.append(Generation(cut, len(ids), finish))
        return gens

    def finish(self, seed: int, text: str) -> EpisodeTokens:
        """The episode's rollout, closed on the loop's final text (its last observation included)."""
        rollout = self.rollouts.pop(seed)
        rollout.commit(text)
        return rollout

    def close(self) -> None:
        self.rollouts.clear()


def _until_end(ids: list[int], eos: int | None, pad: int) -> list[int]:
    """Generated ids up to and including the first end-of-sequence token; the batch's padding after it dropped."""
    for k, token in enumerate(ids):
        if token == eos:
            return ids[:k + 1]
    while ids and ids[-1] == pad and pad != eos:
        ids = ids[:-1]
    return ids
