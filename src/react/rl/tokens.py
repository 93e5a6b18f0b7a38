"""One rollout as a single token sequence: what the policy read, and which tokens it wrote.

Reinforcement learning on the ReAct environment (issue 15) trains on a rollout's tokens with
the environment's tokens masked out. ReAct's loop does not simply concatenate what the model
generated: it cuts at the stop string, strips the thought and the action, rebuilds the step
with ``format_step`` and, in the fallback, keeps only the first line. So a rollout cannot be
the concatenation of generated tokens, nor a re-tokenisation of the final text (the model did
not read those ids). :class:`EpisodeTokens` keeps the running sequence the policy reads and,
each time the loop writes its next prompt, takes from the tokens just generated the longest
run that the prompt keeps as written (mask 1, with their log-probabilities); the rest of the
prompt is the environment's and the loop's text, tokenized and masked out (mask 0). Generated
tokens the loop dropped are counted (``dropped``), never trained on.

The invariant, checked at every step: the decoded sequence is exactly the loop's text, so a
rollout's text is what the evaluation writes for the same completions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


class RolloutTokenError(ValueError):
    """The loop's next prompt does not extend the sequence the policy read; the message says where."""


@dataclass
class EpisodeTokens:
    tokenizer: Any
    prompt_ids: list[int]  # the first prompt, as the engine tokenizes raw text
    text: str  # what prompt_ids + completion_ids decode to
    completion_ids: list[int] = field(default_factory=list)
    env_mask: list[int] = field(default_factory=list)  # 1: written by the policy
    logprobs: list[float] = field(default_factory=list)  # the policy's, on mask-1 tokens; 0.0 elsewhere
    dropped: int = 0  # generated tokens the loop did not keep
    lead: str = ""  # the decoded special tokens the tokenizer puts before the text (a BOS), read but not written
    _pending: list[int] = field(default_factory=list)
    _pending_logprobs: list[float] = field(default_factory=list)

    @classmethod
    def start(cls, tokenizer: Any, prompt: str) -> EpisodeTokens:
        """The rollout of an episode whose first prompt is ``prompt`` (special tokens added, as for any text)."""
        ids = list(tokenizer(prompt, add_special_tokens=True)["input_ids"])
        tokens = cls(tokenizer, ids, prompt)
        decoded = tokens._decode(ids)
        if decoded.endswith(prompt):
            tokens.lead = decoded[:len(decoded) - len(prompt)]
        tokens._check(prompt)
        return tokens

    @property
    def input_ids(self) -> list[int]:
        """The whole sequence so far: what the policy reads next."""
        return self.prompt_ids + self.completion_ids

    def generated(self, ids: list[int], logprobs: list[float]) -> None:
        """The policy wrote ``ids`` after the sequence (with these log-probabilities); the next prompt decides
        which of them stay."""
        if len(ids) != len(logprobs):
            raise ValueError(f"{len(ids)} generated tokens but {len(logprobs)} log-probabilities")
        if self._pending:
            raise RolloutTokenError("two generations without a prompt between them")
        self._pending, self._pending_logprobs = list(ids), list(logprobs)

    def resolve(self, prompt: str) -> list[int]:
        """The ids the policy reads for ``prompt`` (the sequence, the kept generated tokens, the loop's text)."""
        kept, tail = self._split(prompt)
        return self.input_ids + self._pending[:kept] + self._encode(tail)

    def commit(self, prompt: str) -> None:
        """The loop's next prompt (or its final text): keep what it kept of the generation, add its own text."""
        kept, tail = self._split(prompt)
        tail_ids = self._encode(tail)
        self.completion_ids += self._pending[:kept] + tail_ids
        self.env_mask += [1] * kept + [0] * len(tail_ids)
        self.logprobs += self._pending_logprobs[:kept] + [0.0] * len(tail_ids)
        self.dropped += len(self._pending) - kept
        self._pending, self._pending_logprobs = [], []
        self.text = prompt
        self._check(prompt)

    def close(self, text: str) -> None:
        """The episode's final text. It extends the sequence unless the loop ended the episode without writing its
        last call (an action the original crashes on, a failed call): then the sequence is cut back to the last
        token boundary within ``text``, and what the policy wrote after it is dropped, never trained on. (An
        episode that ends so at its first call keeps its first prompt, which ``text`` does not reach.)"""
        if text.startswith(self.text):
            self.commit(text)
            return
        if not self.text.startswith(text):
            self._split(text)  # raises, saying where they part
        self.dropped += len(self._pending)
        self._pending, self._pending_logprobs = [], []
        keep = len(self.completion_ids)
        while keep and not (self.lead + text).startswith(self._decode(self.prompt_ids + self.completion_ids[:keep])):
            keep -= 1
        self.dropped += sum(self.env_mask[keep:])
        del self.completion_ids[keep:], self.env_mask[keep:], self.logprobs[keep:]
        self.text = self._decode(self.input_ids)[len(self.lead):]

    def _split(self, prompt: str) -> tuple[int, str]:
        """How many pending tokens ``prompt`` keeps as written, and the text after them."""
        if not prompt.startswith(self.text):
            at = next((i for i, (a, b) in enumerate(zip(prompt, self.text)) if a != b), min(len(prompt),
                                                                                       len(self.text)))
            raise RolloutTokenError(f"the next prompt does not extend the sequence the policy read: they part at "
                                    f"character {at} ({self.text[at:at + 40]!r} vs {prompt[at:at + 40]!r})")
        rest = prompt[len(self.text):]
        kept = 0
        for k in range(len(self._pending), 0, -1):
            written = self._decode(self._pending[:k])
            if "\ufffd" not in written and rest.startswith(written):
                kept, rest = k, rest[len(written):]
                break
        return kept, rest

    def _encode(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"]) if text else []

    def _decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)

    def _check(self, text: str) -> None:
        decoded = self._decode(self.input_ids)
        if decoded != self.lead + text:
            raise RolloutTokenError(f"the token sequence decodes to {len(decoded)} characters that differ from the "
                                    f"loop's {len(text)}; the tokenizer does not round-trip this text")
