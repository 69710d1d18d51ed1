-- Named queries of the SQLite store. Each starts with "-- name: <name>".

-- name: insert_job
INSERT INTO jobs (
    id, queue, url, method, headers, body, state, priority, attempts, max_attempts,
    backoff_base, backoff_max, backoff_jitter, timeout, created_at, run_at,
    idempotency_key, unique_key, ordering_key, callback_url, failure_callback_url
) VALUES (
    :id, :queue, :url, :method, :headers, :body, 'pending', :priority, 0, :max_attempts,
    :backoff_base, :backoff_max, :backoff_jitter, :timeout, :created_at, :run_at,
    :idempotency_key, :unique_key, :ordering_key, :callback_url, :failure_callback_url
);

-- name: find_idempotency_key
SELECT job_id FROM idempotency_keys WHERE key = :key AND expires_at > :now;

-- name: put_idempotency_key
INSERT INTO idempotency_keys (key, job_id, expires_at) VALUES (:key, :job_id, :expires_at)
ON CONFLICT (key) DO UPDATE SET job_id = excluded.job_id, expires_at = excluded.expires_at;

-- name: find_unique_job
SELECT * FROM jobs
WHERE queue = :queue AND unique_key = :unique_key AND state IN ('pending', 'active', 'retrying');

-- name: prune_idempotency_keys
DELETE FROM idempotency_keys
WHERE key IN (SELECT key FROM idempotency_keys WHERE expires_at <= :now LIMIT :limit);

-- name: get_job
SELECT * FROM jobs WHERE id = :id;

-- name: list_attempts
SELECT * FROM attempts WHERE job_id = :job_id ORDER BY rowid;

-- name: cancel
UPDATE jobs
SET state = 'cancelled', finished_at = :now, lease = NULL, lease_expires_at = NULL
WHERE id = :id AND state IN ('pending', 'active', 'retrying')
RETURNING *;

-- name: claim_due
UPDATE jobs
SET state = 'active',
    attempts = attempts + 1,
    lease = :lease,
    attempt_started_at = :now,
    lease_expires_at = :now + timeout + :lease_margin
WHERE id IN (
    -- The planner would rather filter by jobs_by_state and sort every due job;
    -- walking jobs_due from its front stops after :limit rows.
    SELECT id FROM jobs INDEXED BY jobs_due
    WHERE state IN ('pending', 'retrying') AND run_at <= :now
    ORDER BY priority DESC, run_at, id
    LIMIT :limit
)
RETURNING *;

-- name: complete
UPDATE jobs
SET state = 'succeeded', finished_at = :now, result = :result,
    lease = NULL, lease_expires_at = NULL
WHERE id = :id AND state = 'active' AND lease = :lease AND attempts = :attempt;

-- name: schedule_retry
UPDATE jobs
SET state = 'retrying', run_at = :run_at, last_error = :error,
    lease = NULL, lease_expires_at = NULL
WHERE id = :id AND state = 'active' AND lease = :lease AND attempts = :attempt;

-- name: kill
UPDATE jobs
SET state = 'dead', finished_at = :now, failed_at = :now, last_error = :error,
    lease = NULL, lease_expires_at = NULL
WHERE id = :id AND state = 'active' AND lease = :lease AND attempts = :attempt;

-- name: await_completion
UPDATE jobs
SET lease_expires_at = :deadline
WHERE id = :id AND state = 'active' AND lease = :lease AND attempts = :attempt;

-- name: insert_attempt
INSERT INTO attempts (job_id, number, started_at, duration_ms, status, error, response_body)
VALUES (:job_id, :number, :started_at, :duration_ms, :status, :error, :response_body);

-- name: rescue_expired
UPDATE jobs
SET state = CASE WHEN attempts >= max_attempts THEN 'dead' ELSE 'retrying' END,
    run_at = :now,
    finished_at = CASE WHEN attempts >= max_attempts THEN :now END,
    failed_at = CASE WHEN attempts >= max_attempts THEN :now END,
    last_error = :error,
    lease = NULL,
    lease_expires_at = NULL
WHERE id IN (
    SELECT id FROM jobs
    WHERE state = 'active' AND lease_expires_at < :now
    LIMIT :limit
)
RETURNING *;

-- name: redrive
UPDATE jobs
SET state = 'pending', attempts = 0, run_at = :now, finished_at = NULL, failed_at = NULL
WHERE id = :id AND state = 'dead'
RETURNING *;

-- name: redrive_all
UPDATE jobs
SET state = 'pending', attempts = 0, run_at = :now, finished_at = NULL, failed_at = NULL
WHERE state = 'dead'
  AND (unique_key IS NULL OR NOT EXISTS (
      SELECT 1 FROM jobs AS holder
      WHERE holder.queue = jobs.queue AND holder.unique_key = jobs.unique_key
        AND holder.state IN ('pending', 'active', 'retrying')));

-- name: redrive_queue
UPDATE jobs
SET state = 'pending', attempts = 0, run_at = :now, finished_at = NULL, failed_at = NULL
WHERE state = 'dead' AND queue = :queue
  AND (unique_key IS NULL OR NOT EXISTS (
      SELECT 1 FROM jobs AS holder
      WHERE holder.queue = jobs.queue AND holder.unique_key = jobs.unique_key
        AND holder.state IN ('pending', 'active', 'retrying')));

-- name: delete_dead
DELETE FROM jobs WHERE id = :id AND state = 'dead';

-- name: delete_attempts
DELETE FROM attempts WHERE job_id = :job_id;

-- name: count_by_state
SELECT queue,
       CASE WHEN state = 'pending' AND run_at > :now THEN 'scheduled' ELSE state END AS state,
       count(*) AS n
FROM jobs
GROUP BY 1, 2;

-- name: ping
INSERT INTO meta (key, value) VALUES ('health_checked_at', :now)
ON CONFLICT (key) DO UPDATE SET value = excluded.value;
