"""Teacher generation: sharding, and the gold-path oracle on real HotPotQA rows."""

import pytest

from react.agent.loop import AgentConfig, Task
from react.agent.trajectory import parse_trajectory
from react.config.settings import schema_defaults, teacher_settings
from react.data.hotpotqa import prepare_split
from react.data.oracle import ORACLE_LABEL, gold_titles, lookup_keyword, oracle_episode
from react.environment.offline import WikiEnv
from react.environment.wikis import wiki_settings
from react.io import read_parquet, read_provenance, sha256_file
from react.paths import resolve_path
from react.pipeline.evaluate import Output, Prompt, QuestionSample, WikiFiles
from react.pipeline.generate import generate_shard, shard_tasks
from react.schemas import EPISODE_SCHEMA, SPLIT_SCHEMA
from react.search.index import Corpus, build_index
from react.search.sources.splits import build_from_splits


@pytest.mark.parametrize(("n_tasks", "samples", "shards"), [(10, 1, 3), (7, 2, 4), (3, 1, 5), (5, 3, 1)])
def test_shards_partition_every_question_and_sample_once(n_tasks, samples, shards):
    tasks = [Task(f"q{i}", "?", "a", "train") for i in range(n_tasks)]
    parts = [shard_tasks(tasks, samples, s, shards) for s in range(shards)]
    flat = [(t.id, t.sample) for part in parts for t in part]
    assert flat == [(f"q{i}", k) for i in range(n_tasks) for k in range(samples)]
    assert max(map(len, parts)) - min(map(len, parts)) <= 1


def test_shard_outside_range():
    with pytest.raises(ValueError, match="shard 3 is outside 0..2"):
        shard_tasks([], 1, 3, 3)


@pytest.fixture(scope="module")
def train(tmp_path_factory):
    out = tmp_path_factory.mktemp("train")
    split = out / "train.parquet"
    prepare_split({"source": "bundled", "files": ["train_distractor.jsonl.gz"]}, "train", split, {}, out)
    corpus, index = out / "wiki.parquet", out / "wiki.bm25s"
    build_from_splits([split], corpus)
    build_index(corpus, index)
    return split, corpus, index


def test_oracle_solves_every_bundled_train_question_with_real_observations(train, prompt_prefix):
    split, corpus_path, index = train
    corpus = Corpus.load(corpus_path, index)
    rows = read_parquet(split, SPLIT_SCHEMA).to_pylist()
    lookups = 0
    for row in rows:
        task = Task(row["id"], row["question"], row["answer"], "train", row["index"])
        episode = oracle_episode(task, row, WikiEnv(corpus), prompt_prefix)
        assert episode.finish_reason == "finished" and episode.prediction == row["answer"]
        steps = parse_trajectory(episode.prompt[episode.prefix_len:].split("\n", 1)[1])
        searched = [s.action[len("Search["):-1] for s in steps if s.action.startswith("Search[")]
        assert searched == gold_titles(row["supporting_facts"])
        for step in episode.steps:
            assert not step["observation"].startswith(("Could not find", "Invalid action", "No more results"))
            if step["action_type"] == "lookup":
                lookups += 1
                assert step["observation"].startswith("(Result 1 / ")
    assert lookups > 10  # supporting sentences beyond the first five are looked up


def test_lookup_keyword_prefers_the_answer_and_reaches_the_target():
    page = ["Alpha was born in Paris.", "Alpha moved to Rome.", "In Rome, Alpha met Bono."]
    assert lookup_keyword(page, 2, "Bono") == "Bono"
    assert lookup_keyword(page, 2, "Rome") is not None  # 'Rome' first hits sentence 1; another word works
    assert lookup_keyword(["same", "same"], 1, "same") is None


def test_generate_shard_writes_labelled_oracle_episodes(train, tmp_path, project_dir, prompt_prefix):
    split, corpus, index = train
    teacher = teacher_settings("oracle", schema_defaults("$defs/teacher", {"oracle": True, "n_questions": 20,
                                                                          "shards": 3}))
    assert (teacher.model, teacher.split, teacher.seed, teacher.samples) == (None, "train", 233, 1)
    out = tmp_path / "shard-2-of-3.parquet"
    prompt_file = resolve_path("package:prompts/react/instruction.txt")
    generate_shard(teacher, 1, None, QuestionSample(split, teacher.split, teacher.n_questions, teacher.seed, None),
                   WikiFiles("distractor", wiki_settings("distractor", {"splits": ["train"]}), corpus, index),
                   Prompt(prompt_prefix, "few-shot", (prompt_file,)), AgentConfig(), Output(out, {"t": 1}))
    table = read_parquet(out, EPISODE_SCHEMA)
    assert table.num_rows == 7  # 20 questions in 3 shards: 7, 7, 6
    assert set(table.column("model").to_pylist()) == {"oracle"}
    assert set(table.column("backend").to_pylist()) == {"oracle"}
    assert all(table.column("em").to_pylist()) and set(table.column("n_calls").to_pylist()) == {0}
    provenance = read_provenance(out)
    assert provenance["teacher_label"] == ORACLE_LABEL and provenance["shard"] == 1
    assert provenance["teacher"] == "oracle" and provenance["n_shards"] == 3 and provenance["config"] == {"t": 1}
    assert set(provenance["inputs"]) == {"split", "corpus", "index", "prompt"}  # no model: the oracle has none
    assert provenance["inputs"]["prompt"]["sha256"] == sha256_file(prompt_file)
