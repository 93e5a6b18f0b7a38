"""HotPotQA answer metrics, exactly as the official evaluation script (hotpot_evaluate_v1.py)."""

from __future__ import annotations

import re
import string
from collections import Counter

_PUNCTUATION = set(string.punctuation)


def normalize_answer(s: str) -> str:
    """Lower case, strip punctuation, drop a/an/the, collapse white space."""
    s = s.lower()
    s = "".join(ch for ch in s if ch not in _PUNCTUATION)
    s = re.sub(r"\b(a|an|the)\b", " ", s)
    return " ".join(s.split())


def exact_match(prediction: str, gold: str) -> bool:
    return normalize_answer(prediction) == normalize_answer(gold)


def f1_score(prediction: str, gold: str) -> tuple[float, float, float]:
    """(f1, precision, recall) over normalised tokens; yes/no/noanswer must match exactly."""
    pred, truth = normalize_answer(prediction), normalize_answer(gold)
    zero = (0.0, 0.0, 0.0)
    special = ("yes", "no", "noanswer")
    if pred in special and pred != truth:
        return zero
    if truth in special and pred != truth:
        return zero
    pred_tokens, truth_tokens = pred.split(), truth.split()
    common = Counter(pred_tokens) & Counter(truth_tokens)
    num_same = sum(common.values())
    if num_same == 0:
        return zero
    precision = num_same / len(pred_tokens)
    recall = num_same / len(truth_tokens)
    return 2 * precision * recall / (precision + recall), precision, recall
