"""Teacher generation: sharding, and the gold-path oracle on real HotPotQA rows."""

import pytest

from react.agent.loop import AgentConfig, Task
from react.agent.trajectory import parse_trajectory
from react.data.hotpotqa import prepare_split
from react.data.oracle import ORACLE_LABEL, gold_titles, lookup_keyword, oracle_episode
from react.io import read_parquet, read_provenance
from react.pipeline.generate import generate_shard, shard_tasks
from react.schemas import EPISODE_SCHEMA, SPLIT_SCHEMA
from react.search.index import Corpus, WikiEnv, build_corpus, build_index


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
    build_corpus([split], corpus)
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
    spec = {"split": "train", "n_questions": 20, "seed": 233, "population": None, "samples": 1}
    out = tmp_path / "shard-2-of-3.parquet"
    generate_shard(teacher="oracle", spec=spec, model=None, split_path=split, corpus_name="distractor",
                   corpus_spec={"splits": ["train"]}, corpus_path=corpus, index_path=index, prefix=prompt_prefix, prompt_files=[project_dir / "package:prompts/react/instruction.txt"],
                   agent=AgentConfig(), shard=1, n_shards=3, out_path=out, provenance_config={"t": 1})
    table = read_parquet(out, EPISODE_SCHEMA)
    assert table.num_rows == 7  # 20 questions in 3 shards: 7, 7, 6
    assert set(table.column("model").to_pylist()) == {"oracle"}
    assert set(table.column("backend").to_pylist()) == {"oracle"}
    assert all(table.column("em").to_pylist()) and set(table.column("n_calls").to_pylist()) == {0}
    provenance = read_provenance(out)
    assert provenance["teacher_label"] == ORACLE_LABEL and provenance["shard"] == 1
