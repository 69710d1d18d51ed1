-- Flow control: queue settings, token buckets, counters; cron schedules; and the
-- states that keep claiming O(log n): 'scheduled' (future run_at) and 'blocked'
-- (behind an earlier job with the same ordering key) are stored, so the claim
-- index holds only jobs that are ready to go.

CREATE TABLE queues (
    name            TEXT PRIMARY KEY,
    concurrency     INTEGER,            -- max jobs in flight; NULL = no limit of its own
    rate_limit      TEXT,               -- "10/m"; NULL = none
    max_attempts    INTEGER,
    backoff_base    REAL,
    backoff_max     REAL,
    backoff_jitter  INTEGER,
    timeout         REAL,
    max_size        INTEGER,            -- unfinished jobs before enqueue answers 429
    paused          INTEGER NOT NULL DEFAULT 0,
    priority        INTEGER NOT NULL DEFAULT 0,
    unfinished      INTEGER NOT NULL DEFAULT 0,  -- kept in step by every state change
    tokens          REAL,               -- the rate limit's token bucket
    tokens_at       REAL,
    created_at      REAL NOT NULL,
    updated_at      REAL NOT NULL
) WITHOUT ROWID;

INSERT INTO queues (name, unfinished, created_at, updated_at)
SELECT queue,
       sum(state IN ('pending', 'active', 'retrying')),
       (julianday('now') - 2440587.5) * 86400.0,
       (julianday('now') - 2440587.5) * 86400.0
FROM jobs GROUP BY queue;

UPDATE jobs SET state = 'scheduled'
WHERE state = 'pending' AND run_at > (julianday('now') - 2440587.5) * 86400.0;

-- Version 1 stored ordering keys without enforcing them: only the oldest
-- unfinished job of each key may go on, the rest wait their turn.
UPDATE jobs SET state = 'blocked'
WHERE ordering_key IS NOT NULL
  AND state IN ('scheduled', 'pending', 'retrying')
  AND EXISTS (
      SELECT 1 FROM jobs AS older
      WHERE older.queue = jobs.queue AND older.ordering_key = jobs.ordering_key
        AND older.id < jobs.id
        AND older.state IN ('scheduled', 'pending', 'retrying', 'active', 'blocked')
  );

DROP INDEX jobs_due;
-- Ready jobs per queue, in claim order: the claim walks it from the front.
CREATE INDEX jobs_ready ON jobs (queue, priority DESC, run_at, id) WHERE state = 'pending';
-- Jobs waiting for their time (delayed or between retries), to promote when due.
CREATE INDEX jobs_waiting ON jobs (run_at) WHERE state IN ('scheduled', 'retrying');

DROP INDEX jobs_unique;
CREATE UNIQUE INDEX jobs_unique ON jobs (queue, unique_key)
    WHERE unique_key IS NOT NULL
      AND state IN ('scheduled', 'pending', 'blocked', 'active', 'retrying');

-- Unfinished jobs per ordering key, oldest first: who holds the key, who is next.
CREATE INDEX jobs_ordering ON jobs (queue, ordering_key, id)
    WHERE ordering_key IS NOT NULL
      AND state IN ('scheduled', 'pending', 'blocked', 'active', 'retrying');

CREATE TABLE schedules (
    name         TEXT PRIMARY KEY,
    cron         TEXT NOT NULL,
    timezone     TEXT NOT NULL,
    job          TEXT NOT NULL,          -- the job request template, JSON
    next_run_at  REAL NOT NULL,
    last_run_at  REAL,
    created_at   REAL NOT NULL,
    updated_at   REAL NOT NULL
) WITHOUT ROWID;
CREATE INDEX schedules_due ON schedules (next_run_at);
