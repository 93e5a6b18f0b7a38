-- Base tables of results/results.duckdb. Variables set by react.report:
--   eval_files: list of results/eval/*.parquet files (one per model).
-- The episode rows are copied in, so the database works wherever it is opened.
CREATE TABLE episode_rows AS
SELECT * EXCLUDE (filename), parse_filename(filename, true) AS eval_file
FROM read_parquet(getvariable('eval_files'), union_by_name = true, filename = true);

-- Trained models: what they were trained from (filled by react.results.tables from the config and
-- manifests). base_model: the model training started from (for RL after SFT, the SFT model); method:
-- sft, grpo or sft+grpo; root_model: the base model at the start of the chain; n_train: training
-- examples (sft) or questions (grpo).
CREATE TABLE finetuned_rows (
    model VARCHAR PRIMARY KEY,
    base_model VARCHAR NOT NULL,
    dataset VARCHAR NOT NULL,
    n_train INTEGER NOT NULL,
    method VARCHAR NOT NULL,
    root_model VARCHAR NOT NULL
);

-- Published figures (ReAct README); only ever shown as rows of kind 'published'.
CREATE TABLE published_rows (
    model VARCHAR NOT NULL,
    em DOUBLE NOT NULL,
    n INTEGER,
    protocol VARCHAR,
    source VARCHAR NOT NULL
);
