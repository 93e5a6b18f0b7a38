"""The policy being trained as a `Backend` of the agent loop, recording each episode's rollout as tokens.

The agent (react.agent.loop.run_agent) drives the episodes exactly as in evaluation; this
backend generates with the policy's current weights (a transformers model, LoRA adapters
included), feeds each episode the token sequence it has read so far (react.rl.tokens), and
records what the policy wrote with its log-probabilities. Episodes are told apart by their
seed (one per question and sample, react.agent.loop.hash_seed). No prefix cache: the weights
change between rollouts. What samples is a sampler: the policy itself (TransformersSampler) or
a vLLM engine carrying its weights (VllmSampler, trl's colocated engine on a GPU).
"""

from __future__ import annotations

from typing import Any

from react.agent.parsing import truncate_at_stop
from react.inference.base import Generation, Prompt, Sampling
from react.rl.tokens import EpisodeTokens


class TransformersSampler:
    """Samples from the policy itself (its current weights, in process): any device, no second copy."""

    name = "policy"

    def __init__(self, model: Any, tokenizer: Any) -> None:
        self.model = model
        self.tokenizer = tokenizer

    def sample(self, sequences: list[list[int]], stop: list[str], sampling: Sampling,
               seeds: list[int]) -> list[tuple[list[int], list[float]]]:
        """For each token sequence, the ids the policy writes next and their log-probabilities."""
        import torch

        tokenizer = self.tokenizer
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        width = max(len(ids) for ids in sequences)
        input_ids = torch.tensor([[pad] * (width - len(ids)) + ids for ids in sequences])
        mask = torch.tensor([[0] * (width - len(ids)) + [1] * len(ids) for ids in sequences])
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
                                          tokenizer=tokenizer, pad_token_id=pad, **kwargs)
        finally:
            self.model.train(was_training)
        new = out.sequences[:, width:].tolist()
        # The sampling distribution's log-probability of each chosen token (scores are after temperature/top-p).
        logprobs = torch.stack(out.scores, dim=1).float().log_softmax(-1)
        samples = []
        for row, ids in enumerate(new):
            ids = _until_end(ids, tokenizer.eos_token_id, pad)
            samples.append((ids, [float(logprobs[row, k, token]) for k, token in enumerate(ids)]))
        return samples


class VllmSampler:
    """Samples with a vLLM engine holding the policy's weights (trl's colocated engine, synced each step).

    Token ids in, token ids and the sampled tokens' log-probabilities out (``logprobs=0``: the
    chosen token's alone), one seed per episode.
    """

    name = "vllm"

    def __init__(self, llm: Any) -> None:
        self.llm = llm

    def sample(self, sequences: list[list[int]], stop: list[str], sampling: Sampling,
               seeds: list[int]) -> list[tuple[list[int], list[float]]]:
        from vllm import SamplingParams

        params = [SamplingParams(max_tokens=sampling.max_new_tokens, temperature=sampling.temperature,
                                 top_p=sampling.top_p, stop=stop or None, include_stop_str_in_output=True,
                                 logprobs=0, seed=seed) for seed in seeds]
        outputs = self.llm.generate([{"prompt_token_ids": ids} for ids in sequences], params, use_tqdm=False)
        samples = []
        for output in outputs:
            completion = output.outputs[0]
            ids = list(completion.token_ids)
            chosen = [float(step[token].logprob) for step, token in zip(completion.logprobs, ids, strict=True)]
            samples.append((ids, chosen))
        return samples


class PolicyBackend:
    chat_template = None  # raw text only for now

    def __init__(self, model: Any, tokenizer: Any, max_context: int, sampler: Any = None) -> None:
        self.tokenizer = tokenizer
        self.max_context = max_context
        self.sampler = sampler or TransformersSampler(model, tokenizer)
        self.name = self.sampler.name
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
        samples = self.sampler.sample([r.input_ids for r in rollouts], stop, sampling, seeds)
        gens = []
        for rollout, (ids, logprobs) in zip(rollouts, samples, strict=True):
            rollout.generated(ids, logprobs)
            text = self.tokenizer.decode(ids, skip_special_tokens=True).rstrip("\ufffd")
            cut = truncate_at_stop(text, stop)
            finish = "stop" if len(cut) < len(text) or len(ids) < sampling.max_new_tokens else "length"
            gens.append(Generation(cut, len(ids), finish))
        return gens

    def finish(self, seed: int, text: str) -> EpisodeTokens:
        """The episode's rollout, closed on the loop's final text (its last observation included)."""
        rollout = self.rollouts.pop(seed)
        rollout.close(text)
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
