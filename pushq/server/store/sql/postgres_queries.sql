-- Named queries of the PostgreSQL store (:name parameters become $n at load time). Each starts with "-- name: <name>".

-- name: insert_job
INSERT INTO jobs (
    id, queue, url, method, headers, body, state, priority, attempts, max_attempts,
    backoff_base, backoff_max, backoff_jitter, timeout, created_at, run_at,
    idempotency_key, unique_key, ordering_key, callback_url, failure_callback_url,
    tags, flow_key, schedule, topic, replay_of, permanent_statuses, meta
) VALUES (
    :id, :queue, :url, :method, :headers, :body, :state, :priority, 0, :max_attempts,
    :backoff_base, :backoff_max, :backoff_jitter, :timeout, :created_at, :run_at,
    :idempotency_key, :unique_key, :ordering_key, :callback_url, :failure_callback_url,
    :tags, :flow_key, :schedule, :topic, :replay_of, :permanent_statuses, :meta
);

-- name: find_idempotency_key
SELECT job_id FROM idempotency_keys WHERE key = :key AND expires_at > :now;

-- name: put_idempotency_key
INSERT INTO idempotency_keys (key, job_id, expires_at) VALUES (:key, :job_id, :expires_at)
ON CONFLICT (key) DO UPDATE SET job_id = excluded.job_id, expires_at = excluded.expires_at;

-- name: find_unique_job
SELECT * FROM jobs
WHERE queue = :queue AND unique_key = :unique_key
  AND state IN ('scheduled', 'pending', 'blocked', 'active', 'retrying');

-- name: prune_idempotency_keys
WITH old AS MATERIALIZED (
    SELECT key FROM idempotency_keys WHERE expires_at <= :now LIMIT :limit
    FOR UPDATE SKIP LOCKED
)
DELETE FROM idempotency_keys USING old
WHERE idempotency_keys.key = old.key AND idempotency_keys.expires_at <= :now;

-- name: get_job
SELECT * FROM jobs WHERE id = :id;

-- name: list_attempts
SELECT * FROM attempts WHERE job_id = :job_id ORDER BY seq;

-- name: cancel
UPDATE jobs
SET state = 'cancelled', finished_at = :now::float8, lease = NULL, lease_expires_at = NULL
WHERE id = :id AND state IN ('scheduled', 'pending', 'blocked', 'active', 'retrying')
RETURNING *;

-- name: promote_due
WITH due AS MATERIALIZED (
    SELECT id FROM jobs
    WHERE state IN ('scheduled', 'retrying') AND run_at <= :now
    LIMIT :limit
    FOR UPDATE SKIP LOCKED
)
UPDATE jobs SET state = 'pending'
FROM due
WHERE jobs.id = due.id AND jobs.state IN ('scheduled', 'retrying');

-- name: next_waiting_at
SELECT min(run_at) FROM jobs WHERE state IN ('scheduled', 'retrying');

-- name: claim_snapshot
-- Every unpaused queue with its pending jobs counted up to :limit (O(limit) on the
-- jobs_ready index, however long the backlog) and, where a limit needs them, its
-- active jobs.
SELECT name, priority, concurrency, rate_limit, tokens, tokens_at, key_concurrency, key_rate_limit,
    (SELECT count(*) FROM (
        SELECT 1 FROM jobs
        WHERE queue = queues.name AND state = 'pending'
        LIMIT :limit
    ) AS ready_jobs) AS ready,
    CASE WHEN concurrency IS NOT NULL OR :count_active::boolean THEN (
        SELECT count(*) FROM jobs
        WHERE queue = queues.name AND state = 'active'
    ) ELSE 0 END AS active,
    -- false: flow_key_snapshot would find no key (none has settings or a bucket,
    -- none is in flight), so the claim round skips reading it
    (EXISTS (SELECT 1 FROM flow_keys)
     OR EXISTS (SELECT 1 FROM jobs WHERE state = 'active' AND flow_key IS NOT NULL)) AS any_flow
FROM queues
WHERE paused = 0
ORDER BY name;

-- name: claim_from_queue
-- One step of a claim plan, guarded: only pending jobs, only while the queue is
-- unpaused. SKIP LOCKED: two nodes claiming at once take different jobs, never wait.
-- (A MATERIALIZED CTE is evaluated once: `id IN (SELECT … LIMIT n)` may be rescanned
-- by the planner and take more than n.)
WITH picked AS MATERIALIZED (
    SELECT id FROM jobs
    WHERE queue = :queue AND state = 'pending'
      AND EXISTS (SELECT 1 FROM queues WHERE name = :queue AND paused = 0)
    ORDER BY priority DESC, run_at, id
    LIMIT :limit
    FOR UPDATE SKIP LOCKED
)
UPDATE jobs
SET state = 'active',
    attempts = attempts + 1,
    lease = :lease,
    attempt_started_at = :now::float8,
    lease_expires_at = :now::float8 + timeout + :lease_margin::float8,
    claimed_by = :node,
    awaiting = 0
FROM picked
WHERE jobs.id = picked.id AND jobs.state = 'pending'
RETURNING jobs.*;

-- name: complete
-- A success clears last_error (also after a redrive); the attempts keep the history.
UPDATE jobs
SET state = 'succeeded', finished_at = :now, result = :result, lease_expires_at = NULL,
    last_error = NULL
WHERE id = :id AND state = 'active' AND lease = :lease AND attempts = :attempt
RETURNING queue, ordering_key;

-- name: schedule_retry
UPDATE jobs
SET state = 'retrying', run_at = :run_at, last_error = :error,
    lease = NULL, lease_expires_at = NULL
WHERE id = :id AND state = 'active' AND lease = :lease AND attempts = :attempt
RETURNING queue, ordering_key;

-- name: kill
UPDATE jobs
SET state = 'dead', finished_at = :now, failed_at = :now, last_error = :error,
    lease_expires_at = NULL
WHERE id = :id AND state = 'active' AND lease = :lease AND attempts = :attempt
RETURNING queue, ordering_key;

-- name: await_completion
-- The worker holds the job now: start-up recovery and dead-node rescue leave it be.
UPDATE jobs
SET lease_expires_at = :deadline, awaiting = 1
WHERE id = :id AND state = 'active' AND lease = :lease AND attempts = :attempt;

-- name: insert_attempt
-- Each attempt records which redrive of its job it belongs to.
INSERT INTO attempts (
    job_id, number, started_at, duration_ms, status, error, response_body, redrive
) VALUES (
    :job_id, :number, :started_at, :duration_ms, :status, :error, :response_body,
    coalesce((SELECT redrives FROM jobs WHERE id = :job_id), 0)
);

-- name: expired_leases
-- Active jobs whose lease ran out (pushq stopped mid-attempt, an async job went quiet).
SELECT * FROM jobs
WHERE state = 'active' AND lease_expires_at < :now
ORDER BY lease_expires_at
LIMIT :limit;

-- name: rescue_many
-- The rescuer's decisions for a batch, as a JSON array of {id, lease, attempt, run_at},
-- applied in one statement; each only while the job is still active under the lease
-- and attempt that was read and that lease is still expired. run_at null: to the DLQ.
UPDATE jobs
SET state = CASE WHEN r.run_at IS NULL THEN 'dead' ELSE 'retrying' END,
    run_at = coalesce(r.run_at, :now::float8),
    finished_at = CASE WHEN r.run_at IS NULL THEN :now::float8 END,
    failed_at = CASE WHEN r.run_at IS NULL THEN :now::float8 END,
    last_error = :error,
    lease = NULL,
    lease_expires_at = NULL
FROM jsonb_to_recordset(:rescues::jsonb)
    AS r (id text, lease text, attempt integer, run_at float8, orphaned boolean)
WHERE jobs.id = r.id
  AND jobs.state = 'active'
  AND jobs.lease = r.lease
  AND jobs.attempts = r.attempt
  AND (jobs.lease_expires_at < :now::float8 OR (r.orphaned AND jobs.awaiting = 0))
RETURNING jobs.*;

-- name: redrive
UPDATE jobs
SET state = :state, attempts = 0, run_at = :run_at, finished_at = NULL, failed_at = NULL,
    redrives = redrives + 1
WHERE id = :id AND state = 'dead'
RETURNING *;

-- name: dead_jobs
-- Oldest first, so that jobs sharing an ordering key keep their enqueue order.
SELECT id FROM jobs
WHERE state = 'dead' AND (:queue::text IS NULL OR queue = :queue::text)
ORDER BY id;

-- name: delete_dead
DELETE FROM jobs WHERE id = :id AND state = 'dead';

-- name: delete_attempts
DELETE FROM attempts WHERE job_id = :job_id;

-- name: count_by_state
-- The triggers' counts per stored state (folded, plus the deltas not folded yet),
-- and the two corrections that make them the public states: scheduled jobs already
-- due (the promoter's lag: few) and blocked jobs whose run_at is ahead (rare),
-- counted from their partial indexes. One statement, so all parts read the same
-- snapshot: a fold or a write committing meanwhile is seen whole or not at all.
SELECT queue, state, sum(n)::bigint AS n FROM (
    SELECT queue, state, n FROM job_counts
    UNION ALL
    SELECT queue, state, n FROM job_count_deltas
) AS stored
GROUP BY 1, 2 HAVING sum(n) != 0
UNION ALL
SELECT queue, 'scheduled_due', count(*) FROM jobs
WHERE state IN ('scheduled', 'retrying') AND run_at <= :now::float8 AND state = 'scheduled'
GROUP BY queue
UNION ALL
SELECT queue, 'blocked_ahead', count(*) FROM jobs
WHERE state = 'blocked' AND run_at > :now::float8
GROUP BY queue;

-- name: fold_job_counts
-- The triggers' deltas into job_counts, in one statement: a reader sees each change
-- either still as a delta or already in the total. Rows of transactions still open
-- are not seen and wait for the next fold; two folds at once (a change of leader)
-- cannot move a row twice, the second DELETE skips what the first took.
WITH moved AS (
    DELETE FROM job_count_deltas RETURNING queue, state, n
), sums AS (
    SELECT queue, state, sum(n) AS n FROM moved GROUP BY 1, 2
)
INSERT INTO job_counts (queue, state, n) SELECT queue, state, n FROM sums
ON CONFLICT (queue, state) DO UPDATE SET n = job_counts.n + excluded.n;

-- name: drop_empty_job_counts
DELETE FROM job_counts WHERE n = 0;

-- name: ping
INSERT INTO meta (key, value) VALUES ('health_checked_at', :now)
ON CONFLICT (key) DO UPDATE SET value = excluded.value;


-- name: ordering_key_busy
SELECT 1 FROM jobs
WHERE queue = :queue AND ordering_key = :key
  AND state IN ('scheduled', 'pending', 'blocked', 'active', 'retrying')
LIMIT 1;

-- name: unblock_next
-- The oldest blocked job of a key goes on once no other job holds the key.
-- (Each subquery repeats the partial index's condition so that the planner uses it.)
UPDATE jobs SET state = CASE WHEN run_at > :now::float8 THEN 'scheduled' ELSE 'pending' END
WHERE id = (
    SELECT id FROM jobs
    WHERE queue = :queue AND ordering_key = :key
      AND state IN ('scheduled', 'pending', 'blocked', 'active', 'retrying')
      AND state = 'blocked'
    ORDER BY id LIMIT 1
)
AND NOT EXISTS (
    SELECT 1 FROM jobs
    WHERE queue = :queue AND ordering_key = :key
      AND state IN ('scheduled', 'pending', 'blocked', 'active', 'retrying')
      AND state != 'blocked'
);

-- name: get_queue
-- (unfinished_delta: the counter's changes not yet folded into the row)
SELECT *, (SELECT coalesce(sum(delta), 0) FROM queue_unfinished WHERE queue = queues.name) AS unfinished_delta
FROM queues WHERE name = :name;

-- name: list_queues
SELECT *, (SELECT coalesce(sum(delta), 0) FROM queue_unfinished WHERE queue = queues.name) AS unfinished_delta
FROM queues ORDER BY name;

-- name: ensure_queue
INSERT INTO queues (name, created_at, updated_at) VALUES (:name, :now, :now)
ON CONFLICT (name) DO NOTHING;

-- name: update_queue
UPDATE queues
SET concurrency = :concurrency, rate_limit = :rate_limit, max_attempts = :max_attempts,
    backoff_base = :backoff_base, backoff_max = :backoff_max, backoff_jitter = :backoff_jitter,
    timeout = :timeout, max_size = :max_size, paused = :paused, priority = :priority,
    permanent_statuses = :permanent_statuses, key_concurrency = :key_concurrency,
    key_rate_limit = :key_rate_limit, tokens = :tokens, tokens_at = :tokens_at, updated_at = :now,
    adaptive_concurrency = :adaptive_concurrency, endpoint_concurrency = :endpoint_concurrency
WHERE name = :name
RETURNING *, (SELECT coalesce(sum(delta), 0) FROM queue_unfinished WHERE queue = queues.name) AS unfinished_delta;

-- name: add_unfinished
-- A change of a queue's unfinished count, as a row of its own: no lock on the
-- queue's row, so enqueues and settles of one queue do not wait on each other's
-- commits. The leader folds them into queues.unfinished (fold_unfinished).
INSERT INTO queue_unfinished (queue, delta) VALUES (:name, :delta);

-- name: lock_unfinished
-- Held to COMMIT: the enqueues checked against max_unfinished go one at a time.
SELECT pg_advisory_xact_lock(:key::integer, hashtext(current_schema()));

-- name: total_unfinished
SELECT (SELECT coalesce(sum(unfinished), 0) FROM queues)
     + (SELECT coalesce(sum(delta), 0) FROM queue_unfinished);

-- name: fold_unfinished
-- The counter changes into the queues' rows, skipping a row an enqueue holds (its
-- changes wait for the next fold). One statement: a reader sees the changes
-- either still as rows or already in the counter, never both or neither.
WITH folded AS MATERIALIZED (
    SELECT name FROM queues
    WHERE EXISTS (SELECT 1 FROM queue_unfinished WHERE queue = queues.name)
    FOR NO KEY UPDATE SKIP LOCKED
), moved AS (
    DELETE FROM queue_unfinished USING folded
    WHERE queue_unfinished.queue = folded.name
    RETURNING queue_unfinished.queue, queue_unfinished.delta
), sums AS (
    SELECT queue, sum(delta) AS delta FROM moved GROUP BY queue
)
UPDATE queues SET unfinished = queues.unfinished + sums.delta
FROM sums WHERE queues.name = sums.queue;

-- name: lock_keys
-- Ordering and unique keys ("o/queue/key", "u/queue/key") locked until COMMIT, in
-- one order; per schema, as several pushq may share a database.
SELECT pg_advisory_xact_lock(hashtextextended(current_schema() || '/' || k, 0))
FROM (SELECT unnest(:keys::text[]) AS k ORDER BY 1) AS sorted;

-- name: save_tokens
-- Guarded by the rate the bucket was computed for: a new limit starts a new bucket.
UPDATE queues SET tokens = :tokens, tokens_at = :tokens_at
WHERE name = :name AND rate_limit = :rate_limit;

-- name: oldest_pending
-- The earliest run_at of each queue's pending jobs, by seeking the ready index
-- (queue, priority DESC, run_at): one step per (queue, priority) it holds, the
-- first entry of each, instead of reading every pending job (200,000 of them at
-- 10 M rows).
WITH RECURSIVE seek AS (
    (SELECT queue, priority FROM jobs WHERE state = 'pending'
     ORDER BY queue, priority DESC LIMIT 1)
    UNION ALL
    SELECT next.queue, next.priority FROM seek, LATERAL (
        (SELECT queue, priority FROM jobs
         WHERE state = 'pending' AND queue = seek.queue AND priority < seek.priority
         ORDER BY queue, priority DESC LIMIT 1)
        UNION ALL
        (SELECT queue, priority FROM jobs
         WHERE state = 'pending' AND queue > seek.queue
         ORDER BY queue, priority DESC LIMIT 1)
        LIMIT 1
    ) AS next
)
SELECT queue, min((
    SELECT run_at FROM jobs
    WHERE state = 'pending' AND queue = seek.queue AND priority = seek.priority
    ORDER BY queue, priority DESC, run_at LIMIT 1
)) AS oldest
FROM seek GROUP BY queue;

-- name: get_schedule
SELECT * FROM schedules WHERE name = :name;

-- name: list_schedules
SELECT * FROM schedules ORDER BY name;

-- name: put_schedule
INSERT INTO schedules (name, cron, timezone, job, next_run_at, last_run_at, created_at, updated_at)
VALUES (:name, :cron, :timezone, :job, :next_run_at, NULL, :now, :now)
ON CONFLICT (name) DO UPDATE SET
    cron = excluded.cron, timezone = excluded.timezone, job = excluded.job,
    next_run_at = excluded.next_run_at, updated_at = excluded.updated_at
RETURNING *;

-- name: delete_schedule
DELETE FROM schedules WHERE name = :name;

-- name: due_schedules
SELECT * FROM schedules WHERE next_run_at <= :now AND paused = 0;

-- name: advance_schedule
UPDATE schedules SET last_run_at = :fired_at, next_run_at = :next_run_at
WHERE name = :name AND next_run_at = :expected;

-- name: next_schedule_at
SELECT min(next_run_at) FROM schedules WHERE paused = 0;

-- name: report_progress
UPDATE jobs
SET progress = :progress, lease_expires_at = greatest(lease_expires_at, :deadline::float8)
WHERE id = :id AND state = 'active' AND lease = :lease AND attempts = :attempt;

-- name: expired_jobs
-- Finished jobs past their retention, oldest first, a batch at a time.
SELECT id FROM (
    SELECT id FROM jobs
    WHERE state IN ('succeeded', 'cancelled') AND finished_at < :succeeded_before
    ORDER BY state, id LIMIT :limit
) AS done
UNION ALL
SELECT id FROM (
    SELECT id FROM jobs
    WHERE state = 'dead' AND failed_at < :dead_before
    ORDER BY failed_at, id LIMIT :limit
) AS dead;

-- name: delete_job
DELETE FROM jobs WHERE id = :id;

-- name: run_now
-- "Run now": a job waiting for its time (or its next retry) becomes due at once,
-- no attempt added; one behind its ordering key stays behind it.
UPDATE jobs
SET state = CASE WHEN state = 'blocked' THEN 'blocked' ELSE 'pending' END, run_at = :now
WHERE id = :id AND state IN ('scheduled', 'pending', 'blocked', 'retrying')
RETURNING *;

-- name: delete_finished
DELETE FROM jobs WHERE id = :id AND state IN ('succeeded', 'dead', 'cancelled');

-- name: queue_unfinished_jobs
SELECT count(*) FROM jobs
WHERE queue = :name AND state IN ('scheduled', 'pending', 'blocked', 'active', 'retrying');

-- name: delete_queue
WITH counts AS (DELETE FROM queue_unfinished WHERE queue = :name)
DELETE FROM queues WHERE name = :name;

-- name: set_schedule_paused
UPDATE schedules
SET paused = :paused, next_run_at = coalesce(:next_run_at::float8, next_run_at), updated_at = :now
WHERE name = :name
RETURNING *;

-- name: lock_queues
-- The queues rows whose limits (max_size) or settings a transaction checks or
-- changes, locked in name order (so two transactions never wait on each other in a
-- cycle), with their counts. NO KEY UPDATE: enqueues' FOR KEY SHARE does not wait.
SELECT *, (SELECT coalesce(sum(delta), 0) FROM queue_unfinished WHERE queue = queues.name) AS unfinished_delta
FROM queues WHERE name = ANY(:names::text[]) ORDER BY name FOR NO KEY UPDATE;

-- name: lock_queue_to_delete
-- FOR UPDATE: waits for the enqueues into the queue (they hold FOR KEY SHARE) to end.
SELECT * FROM queues WHERE name = :name FOR UPDATE;

-- name: share_queue
-- An enqueue's hold on its queue: FOR KEY SHARE keeps the row from being deleted
-- under it (delete_queue), and blocks no other enqueue, claim or settle.
-- (Its count is not read: only a limited queue's is, under lock_queues.)
SELECT * FROM queues WHERE name = :name FOR KEY SHARE;

-- name: lock_limited_queues
-- A claim locks only the queues whose limits it must check (concurrency, a token
-- bucket); claims from unlimited queues do not wait on enqueues.
SELECT * FROM queues
WHERE name = ANY(:names::text[]) AND (concurrency IS NOT NULL OR rate_limit IS NOT NULL)
ORDER BY name
FOR NO KEY UPDATE;

-- name: count_active
SELECT count(*) FROM jobs WHERE queue = :queue AND state = 'active';

-- name: claim_idempotency_key
-- Race-free: of two transactions given one key, the second waits for the first and
-- then finds the key taken (no row returned).
INSERT INTO idempotency_keys (key, job_id, expires_at) VALUES (:key, :job_id, :expires_at)
ON CONFLICT (key) DO UPDATE SET job_id = excluded.job_id, expires_at = excluded.expires_at
WHERE idempotency_keys.expires_at <= :now::float8
RETURNING job_id;

-- name: notify
SELECT pg_notify(:channel, :payload);

-- name: heartbeat
INSERT INTO nodes (id, started_at, heartbeat_at)
VALUES (:node, extract(epoch FROM clock_timestamp()), extract(epoch FROM clock_timestamp()))
ON CONFLICT (id) DO UPDATE SET heartbeat_at = excluded.heartbeat_at;

-- name: leave
DELETE FROM nodes WHERE id = :node;

-- name: expire_dead_nodes
-- The attempts of nodes silent for :timeout seconds (or gone from the table) are
-- made expired now, so the rescuer takes them at its next round; then the silent
-- nodes are forgotten. A node that comes back heartbeats itself in again, and its
-- stale settles are refused by the lease guard.
WITH dead AS (
    DELETE FROM nodes
    WHERE heartbeat_at < extract(epoch FROM clock_timestamp()) - :timeout::float8
    RETURNING id
)
UPDATE jobs SET lease_expires_at = 0
WHERE state = 'active' AND awaiting = 0 AND claimed_by IS NOT NULL AND claimed_by <> :node
  AND (claimed_by IN (SELECT id FROM dead)
       OR claimed_by NOT IN (SELECT id FROM nodes));

-- name: try_lead
SELECT pg_try_advisory_lock(:key::integer, hashtext(current_schema()));

-- name: release_interrupted
-- An attempt pushq cut off itself (shutdown): pending again at once, in its old place
-- (run_at kept), the attempt not counted. Guarded like a settle.
UPDATE jobs
SET state = 'pending', attempts = attempts - 1, last_error = :error,
    lease = NULL, lease_expires_at = NULL, awaiting = 0
WHERE id = :id AND state = 'active' AND lease = :lease AND attempts = :attempt
RETURNING queue, ordering_key;

-- name: orphaned_attempts
-- This node's own attempts in flight (not those an async worker holds), whatever
-- their lease says; never another node's, which may still be delivering them.
SELECT * FROM jobs
WHERE state = 'active' AND awaiting = 0 AND claimed_by = :node
ORDER BY attempt_started_at, id
LIMIT :limit;

-- name: put_topic
INSERT INTO topics (name, endpoints, created_at, updated_at) VALUES (:name, :endpoints, :now, :now)
ON CONFLICT (name) DO UPDATE SET endpoints = excluded.endpoints, updated_at = excluded.updated_at
RETURNING *;

-- name: get_topic
SELECT * FROM topics WHERE name = :name;

-- name: list_topics
SELECT * FROM topics ORDER BY name;

-- name: delete_topic
DELETE FROM topics WHERE name = :name;

-- name: flow_key_snapshot
-- The flow keys a claim round must know: keys with jobs in flight (counted across
-- every queue), keys with their own settings, and keys whose token bucket was
-- spent within the last hour (the longest rate period: older buckets are full).
-- Any other key waits under its queue's defaults, however many there are.
WITH active AS (
    SELECT flow_key AS key, count(*) AS n FROM jobs
    WHERE state = 'active' AND flow_key IS NOT NULL
    GROUP BY flow_key
), relevant AS (
    SELECT key FROM active
    UNION SELECT key FROM flow_keys
    WHERE concurrency IS NOT NULL OR rate_limit IS NOT NULL OR paused = 1
    UNION SELECT key FROM flow_keys WHERE tokens_at > :since
)
SELECT relevant.key AS key, f.concurrency, f.rate_limit, coalesce(f.paused, 0) AS paused,
    coalesce(active.n, 0) AS active, f.tokens, f.tokens_at, f.bucket_rate
FROM relevant
LEFT JOIN flow_keys AS f ON f.key = relevant.key
LEFT JOIN active ON active.key = relevant.key;

-- name: lock_flow_keys
-- Held to COMMIT: claims of limited flow keys count the keys' jobs in flight one at
-- a time across the cluster.
SELECT pg_advisory_xact_lock(:key::integer, hashtext(current_schema()));

-- name: queue_key_defaults
SELECT name, key_concurrency, key_rate_limit FROM queues WHERE name = ANY(:names::text[]);

-- name: claim_candidates
-- A queue's next pending jobs in claim order, skipping the keys that take nothing.
-- A read: the claim_ids statement locks (SKIP LOCKED) and guards what is picked.
SELECT id, flow_key FROM jobs
WHERE queue = :queue AND state = 'pending'
  AND (flow_key IS NULL OR flow_key <> ALL (:held::text[]))
ORDER BY priority DESC, run_at, id
LIMIT :scan;

-- name: claim_ids
-- The jobs a flow-key-aware claim picked, guarded: still pending, the queue and
-- the key unpaused. SKIP LOCKED: a job another node is claiming is left to it.
WITH picked AS MATERIALIZED (
    SELECT id FROM jobs
    WHERE id = ANY (:ids::text[])
      AND queue = :queue AND state = 'pending'
      AND EXISTS (SELECT 1 FROM queues WHERE name = :queue AND paused = 0)
      AND NOT EXISTS (SELECT 1 FROM flow_keys WHERE key = jobs.flow_key AND paused = 1)
    FOR UPDATE SKIP LOCKED
)
UPDATE jobs
SET state = 'active',
    attempts = attempts + 1,
    lease = :lease,
    attempt_started_at = :now::float8,
    lease_expires_at = :now::float8 + timeout + :lease_margin::float8,
    claimed_by = :node,
    awaiting = 0
FROM picked
WHERE jobs.id = picked.id AND jobs.state = 'pending'
RETURNING jobs.*;

-- name: save_key_tokens
INSERT INTO flow_keys (key, tokens, tokens_at, bucket_rate, updated_at)
VALUES (:key, :tokens, :tokens_at, :bucket_rate, :tokens_at)
ON CONFLICT (key) DO UPDATE SET
    tokens = excluded.tokens, tokens_at = excluded.tokens_at, bucket_rate = excluded.bucket_rate;

-- name: get_flow_key
SELECT * FROM flow_keys WHERE key = :key;

-- name: lock_flow_key
SELECT * FROM flow_keys WHERE key = :key FOR UPDATE;

-- name: list_flow_keys
SELECT * FROM flow_keys
WHERE concurrency IS NOT NULL OR rate_limit IS NOT NULL OR paused = 1
ORDER BY key LIMIT :limit;

-- name: put_flow_key
INSERT INTO flow_keys (key, concurrency, rate_limit, paused, updated_at)
VALUES (:key, :concurrency, :rate_limit, :paused, :now)
ON CONFLICT (key) DO UPDATE SET
    concurrency = excluded.concurrency, rate_limit = excluded.rate_limit,
    paused = excluded.paused, updated_at = excluded.updated_at;

-- name: flow_key_counts
SELECT
    (SELECT count(*) FROM jobs
     WHERE flow_key = :key AND state = 'active') AS in_flight,
    (SELECT count(*) FROM jobs
     WHERE flow_key = :key AND state IN ('scheduled', 'pending', 'blocked', 'retrying')) AS waiting;

-- name: save_circuit
-- An opened or closed circuit ends any half-open probe taken for it.
INSERT INTO circuits (origin, state, failures, opened, open_until, updated_at)
VALUES (:origin, :state, :failures, :opened, :open_until, :now)
ON CONFLICT (origin) DO UPDATE SET
    state = excluded.state, failures = excluded.failures, opened = excluded.opened,
    open_until = excluded.open_until, updated_at = excluded.updated_at,
    probe_by = NULL, probe_until = NULL;

-- name: take_probe
-- The half-open probe, one for the cluster: taken when the cool-down is over and no
-- other node's probe is alive (or this node holds it already). No row: refused.
INSERT INTO circuits (origin, state, failures, opened, open_until, updated_at, probe_by, probe_until)
VALUES (:origin, 'half_open', 0, 0, :now::float8, :now::float8, :node, :until::float8)
ON CONFLICT (origin) DO UPDATE SET
    state = 'half_open', probe_by = excluded.probe_by, probe_until = excluded.probe_until,
    updated_at = excluded.updated_at
WHERE (circuits.state = 'open' AND coalesce(circuits.open_until, 0) <= :now::float8)
   OR (circuits.state = 'half_open'
       AND (coalesce(circuits.probe_until, 0) <= :now::float8 OR circuits.probe_by = :node))
RETURNING origin;

-- name: get_circuit
SELECT * FROM circuits WHERE origin = :origin;

-- name: forget_closed_circuits
DELETE FROM circuits WHERE state = 'closed' AND updated_at < :before;

-- name: load_circuits
SELECT * FROM circuits WHERE state <> 'closed' ORDER BY origin;

-- name: release
-- Hand a claimed job back unsent (its origin is held): the claim's attempt is
-- taken back, guarded like a settle.
UPDATE jobs
SET state = 'scheduled', attempts = attempts - 1, run_at = :run_at,
    lease = NULL, lease_expires_at = NULL, attempt_started_at = NULL
WHERE id = :id AND state = 'active' AND lease = :lease AND attempts = :attempt
RETURNING id;

-- name: recent_activity
-- Per queue, the jobs that succeeded and the attempts that failed since :since, in
-- the whole cluster (an attempt pushq cut off itself at shutdown is no failure).
SELECT queue, sum(delivered)::bigint AS delivered, sum(failed)::bigint AS failed FROM (
    SELECT queue, count(*) AS delivered, 0 AS failed FROM jobs
    WHERE state = 'succeeded' AND finished_at > :since::float8
    GROUP BY queue
    UNION ALL
    SELECT jobs.queue, 0, count(*) FROM attempts JOIN jobs ON jobs.id = attempts.job_id
    WHERE attempts.started_at > :since::float8 AND attempts.error IS NOT NULL
      AND attempts.error NOT LIKE 'interrupted:%'
    GROUP BY jobs.queue
) AS recent
GROUP BY queue;

-- name: put_meta
INSERT INTO meta (key, value) VALUES (:key, :value)
ON CONFLICT (key) DO UPDATE SET value = excluded.value;

-- name: insert_job_notify
-- insert_job for a single job, with its count in the queue's and the NOTIFY that
-- wakes every node (sent at COMMIT) in the same statement; no NOTIFY when :payload
-- is null (a blocked job).
WITH inserted AS (
    INSERT INTO jobs (
        id, queue, url, method, headers, body, state, priority, attempts, max_attempts,
        backoff_base, backoff_max, backoff_jitter, timeout, created_at, run_at,
        idempotency_key, unique_key, ordering_key, callback_url, failure_callback_url,
        tags, flow_key, schedule, topic, replay_of, permanent_statuses, meta
    ) VALUES (
        :id, :queue, :url, :method, :headers, :body, :state, :priority, 0, :max_attempts,
        :backoff_base, :backoff_max, :backoff_jitter, :timeout, :created_at, :run_at,
        :idempotency_key, :unique_key, :ordering_key, :callback_url, :failure_callback_url,
        :tags, :flow_key, :schedule, :topic, :replay_of, :permanent_statuses, :meta
    )
    RETURNING queue
), counted AS (
    INSERT INTO queue_unfinished (queue, delta) SELECT queue, 1 FROM inserted
)
SELECT pg_notify(:channel, :payload::text) FROM inserted WHERE :payload::text IS NOT NULL;

-- name: complete_recorded
-- complete, with its attempt recorded and the queue's count taken down, in one
-- statement.
WITH done AS (
    UPDATE jobs
    SET state = 'succeeded', finished_at = :now, result = :result, lease_expires_at = NULL,
        last_error = NULL
    WHERE id = :id AND state = 'active' AND lease = :lease AND attempts = :attempt
    RETURNING queue, ordering_key, redrives
), recorded AS (
    INSERT INTO attempts (
        job_id, number, started_at, duration_ms, status, error, response_body, redrive
    )
    SELECT :id, :number::integer, :started_at::float8, :duration_ms::float8, :status::integer,
           :error::text, :response_body::text, redrives
    FROM done
), counted AS (
    INSERT INTO queue_unfinished (queue, delta) SELECT queue, -1 FROM done
)
SELECT queue, ordering_key FROM done;

-- name: kill_recorded
-- kill, with its attempt and the queue's count, as complete_recorded.
WITH done AS (
    UPDATE jobs
    SET state = 'dead', finished_at = :now, failed_at = :now, last_error = :error_json,
        lease_expires_at = NULL
    WHERE id = :id AND state = 'active' AND lease = :lease AND attempts = :attempt
    RETURNING queue, ordering_key, redrives
), recorded AS (
    INSERT INTO attempts (
        job_id, number, started_at, duration_ms, status, error, response_body, redrive
    )
    SELECT :id, :number::integer, :started_at::float8, :duration_ms::float8, :status::integer,
           :error::text, :response_body::text, redrives
    FROM done
), counted AS (
    INSERT INTO queue_unfinished (queue, delta) SELECT queue, -1 FROM done
)
SELECT queue, ordering_key FROM done;

-- name: claim_unlimited
-- claim_from_queue as one statement outside a transaction, for a queue the snapshot
-- found without concurrency or rate limit: guarded by that too, so a limit set since
-- makes it take nothing this round (the next round locks and counts).
WITH picked AS MATERIALIZED (
    SELECT id FROM jobs
    WHERE queue = :queue AND state = 'pending'
      AND EXISTS (SELECT 1 FROM queues WHERE name = :queue AND paused = 0
                  AND concurrency IS NULL AND rate_limit IS NULL)
    ORDER BY priority DESC, run_at, id
    LIMIT :limit
    FOR UPDATE SKIP LOCKED
)
UPDATE jobs
SET state = 'active',
    attempts = attempts + 1,
    lease = :lease,
    attempt_started_at = :now::float8,
    lease_expires_at = :now::float8 + timeout + :lease_margin::float8,
    claimed_by = :node,
    awaiting = 0
FROM picked
WHERE jobs.id = picked.id AND jobs.state = 'pending'
RETURNING jobs.*;

-- name: complete_unordered
-- complete_recorded as one statement outside a transaction, for a job without an
-- ordering key (nothing to unblock after it); no row: stale, or a key to unblock
-- (the caller settles it in a transaction then).
WITH done AS (
    UPDATE jobs
    SET state = 'succeeded', finished_at = :now, result = :result, lease_expires_at = NULL,
        last_error = NULL
    WHERE id = :id AND state = 'active' AND lease = :lease AND attempts = :attempt
      AND ordering_key IS NULL
    RETURNING queue, redrives
), recorded AS (
    INSERT INTO attempts (
        job_id, number, started_at, duration_ms, status, error, response_body, redrive
    )
    SELECT :id, :number::integer, :started_at::float8, :duration_ms::float8, :status::integer,
           :error::text, :response_body::text, redrives
    FROM done
), counted AS (
    INSERT INTO queue_unfinished (queue, delta) SELECT queue, -1 FROM done
)
SELECT queue FROM done;

-- name: enqueue_plain
-- A single job without unique or ordering key into an existing queue with no
-- max_size to check, in one statement outside a transaction: the queue held FOR KEY
-- SHARE, the idempotency key (if any) claimed, the job stored with the queue's and
-- the server's defaults (resolve_backoff's rules: the first level that sets a field
-- wins, the max raised to the base), counted, and every node woken. No row: the
-- queue is missing or limited, or the key is taken; the transaction path decides.
WITH q AS (
    SELECT * FROM queues
    WHERE name = :queue AND (max_size IS NULL OR NOT :backpressure::boolean)
    FOR KEY SHARE
), claimed AS (
    INSERT INTO idempotency_keys (key, job_id, expires_at)
    SELECT :idempotency_key::text, :id, :expires_at::float8 FROM q
    WHERE :idempotency_key::text IS NOT NULL
    ON CONFLICT (key) DO UPDATE SET job_id = excluded.job_id, expires_at = excluded.expires_at
    WHERE idempotency_keys.expires_at <= :now::float8
    RETURNING job_id
), inserted AS (
    INSERT INTO jobs (
        id, queue, url, method, headers, body, state, priority, attempts, max_attempts,
        backoff_base, backoff_max, backoff_jitter, timeout, created_at, run_at,
        idempotency_key, callback_url, failure_callback_url,
        tags, flow_key, schedule, topic, replay_of, permanent_statuses, meta
    )
    SELECT :id, :queue, :url, :method, :headers, :body, :state, :priority, 0,
        coalesce(:max_attempts::integer, q.max_attempts, :default_max_attempts::integer),
        b.base,
        greatest(coalesce(:backoff_max::float8, q.backoff_max, :default_backoff_max::float8),
                 b.base),
        coalesce(:backoff_jitter::integer, q.backoff_jitter, :default_backoff_jitter::integer),
        coalesce(:timeout::float8, q.timeout, :default_timeout::float8),
        :created_at, :run_at, :idempotency_key::text, :callback_url, :failure_callback_url,
        :tags, :flow_key, :schedule, :topic, :replay_of,
        coalesce(:permanent_statuses::text, q.permanent_statuses), :meta
    FROM q
    CROSS JOIN LATERAL (
        SELECT coalesce(:backoff_base::float8, q.backoff_base, :default_backoff_base::float8)
            AS base
    ) AS b
    WHERE :idempotency_key::text IS NULL OR EXISTS (SELECT 1 FROM claimed)
    RETURNING *
), counted AS (
    INSERT INTO queue_unfinished (queue, delta) SELECT queue, 1 FROM inserted
), notified AS (
    SELECT pg_notify(:channel, :payload::text) FROM inserted WHERE :payload::text IS NOT NULL
)
SELECT inserted.*, (SELECT count(*) FROM notified) AS notified FROM inserted;
