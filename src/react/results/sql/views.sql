-- Views for ad-hoc queries:  duckdb results/results.duckdb -c "from summary"

-- One row per (model, question, sample): the episode contract of react/schemas.py.
CREATE VIEW episodes AS
SELECT * FROM episode_rows;

-- Trained vs the model its training started from (base, or the SFT model for RL after SFT)
-- on the questions both answered: EM difference and McNemar's
-- exact test (two-sided binomial test on the discordant pairs).
CREATE VIEW paired AS
WITH pairs AS (
    SELECT
        f.model,
        ft.base_model,
        count(*) AS n_paired,
        sum((f.em AND NOT b.em)::INTEGER) AS gained,
        sum((b.em AND NOT f.em)::INTEGER) AS lost,
        avg(f.em::INTEGER) - avg(b.em::INTEGER) AS em_diff
    FROM finetuned_rows ft
    JOIN episode_rows f ON f.model = ft.model
    JOIN episode_rows b ON b.model = ft.base_model AND b.id = f.id AND b.sample = f.sample
    GROUP BY f.model, ft.base_model
),
tail AS (
    -- P(X <= min(gained, lost)) for X ~ Binomial(gained + lost, 1/2), summed term by term.
    SELECT model, sum(exp(
        lgamma(gained + lost + 1) - lgamma(k + 1) - lgamma(gained + lost - k + 1) - (gained + lost) * ln(2)
    )) AS p_one_sided
    FROM pairs, LATERAL range((least(gained, lost) + 1)::BIGINT) AS t(k)
    GROUP BY model
)
SELECT pairs.*, least(1.0, 2 * p_one_sided) AS p_value
FROM pairs JOIN tail USING (model);

-- One row per model (measured; each base model followed by its finetuned models),
-- then the published figures (kind 'published'). EM and F1 in percent; the EM
-- interval is the 95% Wilson score interval (z = 1.96), which behaves at small n
-- and at 0% / 100%; em_diff is in percentage points against the base model.
CREATE VIEW summary AS
WITH per_model AS (
    SELECT
        model,
        string_agg(DISTINCT backend, ',' ORDER BY backend) AS backend,
        string_agg(DISTINCT prompt, ',' ORDER BY prompt) AS prompt,
        string_agg(DISTINCT format, ',' ORDER BY format) AS format,
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
        w.model,
        coalesce(ft.method, 'base') AS method,
        ft.base_model,
        ft.dataset,
        ft.n_train,
        w.backend,
        w.prompt,
        w.format,
        w.n,
        round(100 * w.p, 1) AS em,
        round(100 * greatest(w.centre - w.half_width, 0), 1) AS em_ci_low,
        round(100 * least(w.centre + w.half_width, 1), 1) AS em_ci_high,
        round(100 * pr.em_diff, 1) AS em_diff,
        pr.n_paired,
        round(pr.p_value, 4) AS p_value,
        round(100 * w.f1, 1) AS f1,
        round(w.mean_steps, 2) AS mean_steps,
        round(100 * w.finished, 1) AS finished_pct,
        round(100 * coalesce(w.invalid_actions, 0), 1) AS invalid_action_pct,
        NULL::VARCHAR AS source,
        ft.root_model
    FROM wilson w
    LEFT JOIN finetuned_rows ft USING (model)
    LEFT JOIN paired pr USING (model)
),
published AS (
    SELECT 'published' AS kind, model, NULL::VARCHAR AS backend, 'few-shot' AS prompt, 'raw' AS format, n::BIGINT AS n, em, source
    FROM published_rows
)
SELECT * EXCLUDE (root_model) FROM (FROM measured UNION ALL BY NAME FROM published)
ORDER BY kind = 'published', coalesce(root_model, model), base_model IS NOT NULL, model;
