-- Jobs, their attempts, and idempotency keys.
CREATE TABLE jobs (
    id                   TEXT PRIMARY KEY,
    queue                TEXT NOT NULL,
    url                  TEXT NOT NULL,
    method               TEXT NOT NULL,
    headers              TEXT,             -- JSON object, NULL when empty
    body                 BLOB,             -- JSON text, NULL for no body
    state                TEXT NOT NULL,    -- pending | active | retrying | succeeded | dead | cancelled
    priority             INTEGER NOT NULL DEFAULT 0,
    attempts             INTEGER NOT NULL DEFAULT 0,
    max_attempts         INTEGER NOT NULL,
    backoff_base         REAL NOT NULL,
    backoff_max          REAL NOT NULL,
    backoff_jitter       INTEGER NOT NULL,
    timeout              REAL NOT NULL,
    created_at           REAL NOT NULL,
    run_at               REAL NOT NULL,
    finished_at          REAL,
    failed_at            REAL,
    lease                TEXT,
    lease_expires_at     REAL,
    attempt_started_at   REAL,
    last_error           TEXT,             -- JSON {"status", "message", "at"}
    result               TEXT,             -- JSON {"status", "body"}
    progress             TEXT,             -- JSON, what the worker last reported
    idempotency_key      TEXT,
    unique_key           TEXT,
    ordering_key         TEXT,
    callback_url         TEXT,
    failure_callback_url TEXT
);

-- Claiming walks this index from the front: O(log n) however many jobs are stored.
CREATE INDEX jobs_due ON jobs (priority DESC, run_at, id)
    WHERE state IN ('pending', 'retrying');
-- The rescuer finds expired leases without scanning.
CREATE INDEX jobs_leases ON jobs (lease_expires_at) WHERE state = 'active';
-- Listing by queue (and state), newest first.
-- At most one unfinished job per unique key and queue; enqueue returns it.
CREATE UNIQUE INDEX jobs_unique ON jobs (queue, unique_key)
    WHERE unique_key IS NOT NULL AND state IN ('pending', 'active', 'retrying');
CREATE INDEX jobs_by_queue ON jobs (queue, state, id);
CREATE INDEX jobs_by_state ON jobs (state, id);
-- The DLQ, newest failure first.
CREATE INDEX jobs_dead ON jobs (failed_at DESC, id DESC) WHERE state = 'dead';

-- Every attempt ever made; a redriven job starts numbering again, history kept.
CREATE TABLE attempts (
    job_id        TEXT NOT NULL,
    number        INTEGER NOT NULL,
    started_at    REAL NOT NULL,
    duration_ms   REAL NOT NULL,
    status        INTEGER,
    error         TEXT,
    response_body TEXT
);
CREATE INDEX attempts_by_job ON attempts (job_id);

CREATE TABLE idempotency_keys (
    key        TEXT PRIMARY KEY,
    job_id     TEXT NOT NULL,
    expires_at REAL NOT NULL
) WITHOUT ROWID;
CREATE INDEX idempotency_keys_expiry ON idempotency_keys (expires_at);

-- Small key/value facts about this database; /health writes here to prove writability.
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;
