"""Published ReAct trajectory sets as episode rows (react.schemas.EPISODE_SCHEMA).

Two sets are supported:

* ``xz56/react-llama`` (the article's finetuning set): llama2-70b (Q5_K_M) trajectories on
  HotPotQA train questions, columns ``id, question, correct_answer, trajectory`` where the
  trajectory is ReAct text from ``Thought 1:`` on.
* FireAct's GPT-4 HotPotQA trajectories (anchen1011/FireAct, OpenAI chat format). Their
  observations are Google/SerpAPI search snippets, **not** Wikipedia paragraphs, so they
  differ from what our offline ``WikiEnv`` (and the article's Wikipedia API) would return.

A record that lacks a required key is an error naming the file, line and key. A
trajectory that does not follow the ReAct format is *not* dropped here: it becomes a
row with ``finish_reason == "parse_error"``, the well-formed steps before the problem,
``em`` False and the reason in ``error``, so the dataset builder drops and counts it.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa

from react.agent.metrics import exact_match, f1_score, normalize_answer
from react.agent.parsing import parse_action
from react.agent.trajectory import TrajectoryFormatError, format_step, parse_prefix, parse_trajectory
from react.io import PROVENANCE_KEY, DataFileError, iter_jsonl, read_parquet, sha256_file, write_parquet
from react.schemas import EPISODE_SCHEMA, SPLIT_SCHEMA

REACT_LLAMA_MODEL = "llama2-70b Q5_K_M (xz56/react-llama)"
FIREACT_MODEL = "gpt-4 (FireAct)"

# The agent settings of the article (what the published sets were generated with, as far as known).
# Prompt and corpus hashes are unknown for imported trajectories.
_CONSTANTS = {
    "index": None, "split": "train", "n_bad_calls": 0, "error": None, "backend": "import",
    "temperature": 0.0, "top_p": 1.0, "max_new_tokens": 100, "max_steps": 7, "seed": 0,
    "prompt": None, "format": None, "chat_template_sha256": None, "protocol": None, "prompt_sha256": "",
    "corpus_sha256": "", "seconds": 0.0,
}  # fmt: skip

_FIREACT_STEP = re.compile(r"Thought:[ \t]*(.*)\nAction:[ \t]*(.*)", re.DOTALL)
_FIREACT_END = re.compile(r"Episode finished, reward = (.*)")


# --- one trajectory -> one episode row ---------------------------------------------------


def _step(thought: str, action: str, observation: str | None) -> dict[str, str]:
    parsed = parse_action(action)
    return {"thought": thought, "action": action, "action_type": parsed.type, "argument": parsed.argument,
            "observation": observation or "", "status": "ok"}


def episode_from_text(
    id: str, question: str, answer: str, trajectory: str, model: str,
    judged: bool | None = None, problem: str | None = None, index: int | None = None, sample: int = 0,
) -> dict[str, Any]:
    """An episode row from ReAct text (from ``Thought 1:``).

    ``judged``: the source's own verdict, used for ``em`` instead of comparing with
    ``answer`` (f1 is then 1.0 or 0.0). ``problem``: a format error found before
    parsing (the row becomes a parse_error with that reason).
    """
    trajectory = trajectory if trajectory.endswith("\n") else trajectory + "\n"
    row = {**_CONSTANTS, "id": id, "index": index, "sample": sample, "question": question, "answer": answer,
           "model": model, "trajectory": f"Question: {question.strip()}\n{trajectory}"}
    try:
        if problem:
            raise TrajectoryFormatError(problem)
        parsed = parse_trajectory(trajectory)
    except TrajectoryFormatError as exc:
        steps = [_step(s.thought, s.action, s.observation) for s in parse_prefix(trajectory)[0]]
        row.update(steps=steps, prediction="", em=False, f1=0.0, finish_reason="parse_error",
                   error=f"TrajectoryFormatError: {exc}")
    else:
        steps = [_step(s.thought, s.action, s.observation) for s in parsed]
        prediction = steps[-1]["argument"]
        if judged is None:
            em, f1 = exact_match(prediction, answer), f1_score(prediction, answer)[0]
        else:
            em, f1 = judged, float(judged)
        row.update(steps=steps, prediction=prediction, em=em, f1=f1, finish_reason="finished")
    row.update(n_steps=len(steps), n_invalid_actions=0, n_calls=len(steps))
    return row


def _to_table(rows: list[dict[str, Any]], info: dict[str, Any]) -> pa.Table:
    """Rows as an EPISODE_SCHEMA table; ``sample`` numbers repeated ids; counts go into ``info``."""
    seen: Counter[str] = Counter()
    for row in rows:
        row["sample"] = seen[row["id"]]
        seen[row["id"]] += 1
    info = {**info, "rows": len(rows),
            "finish_reasons": dict(sorted(Counter(r["finish_reason"] for r in rows).items()))}
    table = pa.Table.from_pylist(rows, schema=EPISODE_SCHEMA)
    return table.replace_schema_metadata({PROVENANCE_KEY: json.dumps(info, sort_keys=True).encode()})


def import_info(table: pa.Table) -> dict[str, Any]:
    """What an importer recorded about its source (file sha256 or dataset id, counts)."""
    raw = (table.schema.metadata or {}).get(PROVENANCE_KEY)
    return json.loads(raw) if raw else {}


def _require(obj: dict, key: str, where: str, types: tuple = (str,)) -> Any:
    if key not in obj:
        raise DataFileError(f"{where}: missing key {key!r}")
    value = obj[key]
    if not isinstance(value, types) or isinstance(value, bool):
        expected = " or ".join(t.__name__ for t in types)
        raise DataFileError(f"{where}: key {key!r} should be {expected}, got {type(value).__name__}")
    return value


# --- xz56/react-llama --------------------------------------------------------------------


def _records(source: dict) -> tuple[Iterator[tuple[str, dict]], dict[str, Any]]:
    """(where, record) pairs of a react-llama source, and what identifies the source."""
    if "path" in source:
        path = Path(source["path"])
        if path.suffix == ".parquet":
            table = read_parquet(path)
            records = ((f"{path}: row {i}", r) for i, r in enumerate(table.to_pylist()))
        else:
            records = ((f"{path}:{line}", obj) for line, obj in iter_jsonl(path))
        return records, {"file": path.name, "sha256": sha256_file(path)}
    if "hf_id" in source:
        from react.data.hotpotqa import open_huggingface  # errors name the dataset

        split = source.get("split", "train")
        dataset = open_huggingface(source["hf_id"], source.get("config"), split)
        dataset_id = f"{source['hf_id']}:{split}"
        records = ((f"{dataset_id} row {i}", r) for i, r in enumerate(dataset))
        return records, {"dataset": dataset_id, "fingerprint": getattr(dataset, "_fingerprint", None)}
    raise ValueError(f"react-llama source needs 'path' or 'hf_id', got {sorted(source)}")


def import_react_llama(source: dict) -> pa.Table:
    """Episode rows of xz56/react-llama: ``{"path": file}`` (Parquet, JSONL(.gz)) or ``{"hf_id": ..., "split": ...}``."""
    records, identity = _records(source)
    rows = []
    for where, record in records:
        id_ = _require(record, "id", where, (int, str))
        question = _require(record, "question", where)
        answer = _require(record, "correct_answer", where)
        trajectory = _require(record, "trajectory", where)
        rows.append(episode_from_text(f"react-llama-{id_}", question, answer, trajectory,
                                      REACT_LLAMA_MODEL))
    return _to_table(rows, {"importer": "react-llama", "source": identity})


# --- FireAct -----------------------------------------------------------------------------


def _action_name(action: str) -> str:
    """``search[x]`` -> ``Search[x]``; an unknown action is kept as written (and fails to parse)."""
    parsed = parse_action(action)
    return action if parsed.type == "invalid" else f"{parsed.type.capitalize()}[{parsed.argument}]"


def fireact_trajectory(messages: list[dict]) -> tuple[str, bool | None, str | None]:
    """FireAct chat messages (question first) -> (ReAct text, the source's verdict, format problem).

    The text holds the steps converted before a problem was found (message numbers
    count from 1 = the question); the verdict is the final ``Episode finished,
    reward = True|1`` (None when there is none).
    """
    text, verdict = "", None
    for k in range(1, len(messages), 2):  # messages[k]: assistant, messages[k + 1]: its observation
        step, reply = (k + 1) // 2, messages[k]
        if reply["role"] != "assistant":
            return text, None, f"message {k + 1}: expected an assistant message, got {reply['role']!r}"
        match = _FIREACT_STEP.fullmatch(reply["content"].strip())
        if not match:
            return text, None, f"message {k + 1}: no 'Thought: ...' followed by an 'Action: ...' line"
        thought, action = match.group(1).strip(), _action_name(match.group(2).strip())
        if k + 1 == len(messages):  # no observation: the trajectory stops at the action
            text += f"Thought {step}: {thought}\nAction {step}: {action}\n"
            break
        observation = messages[k + 1]["content"]
        if messages[k + 1]["role"] != "user" or not observation.startswith("Observation:"):
            return text, None, f"message {k + 2}: expected a user message 'Observation: ...'"
        observation = observation[len("Observation:"):].strip()
        end = _FIREACT_END.fullmatch(observation)
        if end:
            verdict = end.group(1).strip() in ("True", "1")
            observation = "Episode finished."
        text += format_step(step, thought, action, observation)
    return text, verdict, None


def _fireact_messages(obj: dict, where: str) -> list[dict]:
    messages = _require(obj, "messages", where, (list,))
    if not messages:
        raise DataFileError(f"{where}: key 'messages' is empty")
    for i, message in enumerate(messages, start=1):
        if not isinstance(message, dict):
            raise DataFileError(f"{where}: message {i} should be an object, got {type(message).__name__}")
        _require(message, "role", f"{where}: message {i}")
        _require(message, "content", f"{where}: message {i}")
    if messages[0]["role"] != "user":
        raise DataFileError(f"{where}: message 1 should be the user's question, got role {messages[0]['role']!r}")
    return messages


def _gold(train_split: str | Path | None) -> dict[str, dict]:
    """Normalised question -> split row (the first by id when a question occurs twice)."""
    if train_split is None:
        return {}
    gold: dict[str, dict] = {}
    for row in sorted(read_parquet(train_split, SPLIT_SCHEMA).to_pylist(), key=lambda r: r["id"]):
        gold.setdefault(normalize_answer(row["question"]), row)
    return gold


def import_fireact(path: str | Path, train_split: str | Path | None = None) -> pa.Table:
    """Episode rows of a FireAct chat-format JSONL file (e.g. data/finetune/gpt_format/hotpotqa.jsonl).

    Each assistant message ``Thought: ...\\nAction: search[...]`` and the following user
    message ``Observation: ...`` become step i (``Thought i:``, ``Action i: Search[...]``,
    ``Observation i: ...``); the final ``Episode finished, reward = ...`` becomes
    ``Episode finished.`` as in our environment. Note that FireAct's observations are
    Google/SerpAPI snippets, not Wikipedia paragraphs.

    Gold answers: a question found (by normalised text) in ``train_split`` (a SPLIT_SCHEMA
    Parquet) takes that row's id, index and answer, and em/f1 are computed. Otherwise the
    id is ``fireact-<sha256(normalised question)[:12]>``, the answer is the finish argument
    and em is the source's own verdict (reward True/1). The counts of both cases are in
    the table's provenance (``n_gold_matched``, ``n_source_judged``).
    """
    path = Path(path)
    gold = _gold(train_split)
    rows, n_matched = [], 0
    for line, obj in iter_jsonl(path):
        where = f"{path}:{line}"
        messages = _fireact_messages(obj, where)
        question = messages[0]["content"]
        text, verdict, problem = fireact_trajectory(messages)
        if not text and problem is None:
            problem = "no assistant message"
        key = normalize_answer(question)
        if key in gold:
            n_matched += 1
            match = gold[key]
            rows.append(episode_from_text(match["id"], question, match["answer"], text, FIREACT_MODEL,
                                          problem=problem, index=match["index"]))
        else:
            id_ = "fireact-" + hashlib.sha256(key.encode()).hexdigest()[:12]
            finish = _finish_argument(text)
            rows.append(episode_from_text(id_, question, finish, text, FIREACT_MODEL,
                                          judged=bool(verdict), problem=problem))
    info: dict[str, Any] = {"importer": "fireact", "source": {"file": path.name, "sha256": sha256_file(path)},
                            "n_gold_matched": n_matched, "n_source_judged": len(rows) - n_matched}
    if train_split is not None:
        info["train_split"] = {"file": Path(train_split).name, "sha256": sha256_file(train_split)}
    return _to_table(rows, info)


def _finish_argument(text: str) -> str:
    """The argument of the last ``Finish[...]`` action in the text ("" if none)."""
    actions = [parse_action(a) for a in re.findall(r"(?:^|\n)Action \d+: (.*)", text)]
    finishes = [a.argument for a in actions if a.type == "finish"]
    return finishes[-1] if finishes else ""


# --- writing -----------------------------------------------------------------------------


def write_import(table: pa.Table, out_path: str | Path, provenance: dict[str, Any]) -> None:
    """Write an imported table atomically; its source (file sha256 or dataset id) and counts join ``provenance``."""
    write_parquet(table, out_path, {**provenance, **import_info(table)})

