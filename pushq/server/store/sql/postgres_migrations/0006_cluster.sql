-- Several nodes (branch cluster): what the nodes share beyond the jobs.

-- delivered_last_minute / failed_last_minute for the whole cluster, counted from
-- the database instead of each node's memory: recent successes and recent attempts
-- are read by time range.
CREATE INDEX jobs_recently_succeeded ON jobs (finished_at) WHERE state = 'succeeded';
CREATE INDEX attempts_by_start ON attempts (started_at);

-- The circuit breaker's half-open probe, one for the whole cluster: the node that
-- takes it and until when (past that, the probe is taken to be lost).
ALTER TABLE circuits ADD COLUMN probe_by text;
ALTER TABLE circuits ADD COLUMN probe_until double precision;

-- A queue's own say over delivery to each origin: whether the origins' adaptive
-- (AIMD) in-flight limits apply to its jobs, and its most deliveries in flight to
-- any one origin.
ALTER TABLE queues ADD COLUMN adaptive_concurrency integer NOT NULL DEFAULT 1;
ALTER TABLE queues ADD COLUMN endpoint_concurrency integer;
