-- Views for ad-hoc queries:  duckdb results/results.duckdb -c "from summary"

-- One row per (model, question, sample): the episode contract of react/schemas.py.
CREATE VIEW episodes AS
SELECT * FROM episode_rows;

-- One row per model (measured), then the published figures (kind 'published'),
-- each group ordered by model name. EM and F1 in percent; the EM interval is the 95% Wilson
-- score interval (z = 1.96), which behaves at small n and at 0% / 100%.
CREATE VIEW summary AS
WITH per_model AS (
    SELECT
        model,
        string_agg(DISTINCT backend, ',' ORDER BY backend) AS backend,
        count(*) AS n,
        avg(em::INTEGER) AS p,
        avg(f1) AS f1,
        avg(n_steps) AS mean_steps,
        avg((finish_reason = 'finished')::INTEGER) AS finished,
        sum(n_invalid_actions) / nullif(sum(n_steps), 0) AS invalid_actions
    FROM episodes
    GROUP BY model
),
wilson AS (
    SELECT *,
        1.959964 AS z,
        (p + z * z / (2 * n)) / (1 + z * z / n) AS centre,
        z * sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n) AS half_width
    FROM per_model
),
measured AS (
    SELECT
        'measured' AS kind,
        model,
        backend,
        n,
        round(100 * p, 1) AS em,
        round(100 * greatest(centre - half_width, 0), 1) AS em_ci_low,
        round(100 * least(centre + half_width, 1), 1) AS em_ci_high,
        round(100 * f1, 1) AS f1,
        round(mean_steps, 2) AS mean_steps,
        round(100 * finished, 1) AS finished_pct,
        round(100 * coalesce(invalid_actions, 0), 1) AS invalid_action_pct,
        NULL::VARCHAR AS source
    FROM wilson
),
published AS (
    SELECT 'published' AS kind, model, NULL::VARCHAR AS backend, n::BIGINT AS n, em, source
    FROM published_rows
)
SELECT * FROM (FROM measured UNION ALL BY NAME FROM published)
ORDER BY kind = 'published', model;
