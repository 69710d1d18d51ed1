-- The SQLite schema as it is now, written out by hand: what every migration in
-- migrations/ adds up to. tests/store/test_migrations.py checks that migrating an
-- empty database gives exactly this; a new migration changes this file too.

CREATE TABLE jobs (
    id                   TEXT PRIMARY KEY,
    queue                TEXT NOT NULL,
    url                  TEXT NOT NULL,
    method               TEXT NOT NULL,
    headers              TEXT,
    body                 BLOB,
    -- scheduled | pending | blocked | active | retrying | succeeded | dead | cancelled
    state                TEXT NOT NULL,
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
    last_error           TEXT,
    result               TEXT,
    progress             TEXT,
    idempotency_key      TEXT,
    unique_key           TEXT,
    ordering_key         TEXT,
    callback_url         TEXT,
    failure_callback_url TEXT,
    permanent_statuses   TEXT,             -- JSON array of statuses that end the job at once
    tags                 TEXT,             -- JSON array of strings, NULL when none
    flow_key             TEXT,
    schedule             TEXT,             -- what made it: a schedule, a topic, a replay
    topic                TEXT,
    replay_of            TEXT,
    redrives             INTEGER NOT NULL DEFAULT 0,
    meta                 TEXT,             -- what /v2 (QStash) knows of the job, JSON; NULL for /v1
    awaiting             INTEGER NOT NULL DEFAULT 0  -- 1: held by an async worker (202)
);
CREATE INDEX jobs_ready ON jobs (queue, priority DESC, run_at, id) WHERE state = 'pending';
CREATE INDEX jobs_waiting ON jobs (run_at) WHERE state IN ('scheduled', 'retrying');
CREATE INDEX jobs_leases ON jobs (lease_expires_at) WHERE state = 'active';
CREATE UNIQUE INDEX jobs_unique ON jobs (queue, unique_key)
    WHERE unique_key IS NOT NULL
      AND state IN ('scheduled', 'pending', 'blocked', 'active', 'retrying');
CREATE INDEX jobs_ordering ON jobs (queue, ordering_key, id)
    WHERE ordering_key IS NOT NULL
      AND state IN ('scheduled', 'pending', 'blocked', 'active', 'retrying');
CREATE INDEX jobs_by_queue ON jobs (queue, state, id);
CREATE INDEX jobs_by_state ON jobs (state, id);
CREATE INDEX jobs_dead ON jobs (failed_at DESC, id DESC) WHERE state = 'dead';
CREATE INDEX jobs_by_flow_key ON jobs (flow_key, id) WHERE flow_key IS NOT NULL;
CREATE INDEX jobs_by_schedule ON jobs (schedule, id) WHERE schedule IS NOT NULL;
CREATE INDEX jobs_by_topic ON jobs (topic, id) WHERE topic IS NOT NULL;
CREATE INDEX jobs_by_url ON jobs (url, id);
CREATE INDEX jobs_active_by_flow_key ON jobs (flow_key) WHERE state = 'active' AND flow_key IS NOT NULL;

CREATE TABLE job_tags (
    tag    TEXT NOT NULL,
    job_id TEXT NOT NULL,
    PRIMARY KEY (tag, job_id)
) WITHOUT ROWID;

CREATE TRIGGER jobs_tags_insert AFTER INSERT ON jobs WHEN NEW.tags IS NOT NULL
BEGIN
    INSERT OR IGNORE INTO job_tags (tag, job_id) SELECT value, NEW.id FROM json_each(NEW.tags);
END;

CREATE TRIGGER jobs_tags_delete AFTER DELETE ON jobs WHEN OLD.tags IS NOT NULL
BEGIN
    DELETE FROM job_tags
    WHERE job_id = OLD.id AND tag IN (SELECT value FROM json_each(OLD.tags));
END;

CREATE TABLE attempts (
    job_id        TEXT NOT NULL,
    number        INTEGER NOT NULL,
    started_at    REAL NOT NULL,
    duration_ms   REAL NOT NULL,
    status        INTEGER,
    error         TEXT,
    response_body TEXT,
    redrive       INTEGER NOT NULL DEFAULT 0   -- the redrive it belongs to: 0 before any
);
CREATE INDEX attempts_by_job ON attempts (job_id);

CREATE TABLE idempotency_keys (
    key        TEXT PRIMARY KEY,
    job_id     TEXT NOT NULL,
    expires_at REAL NOT NULL
) WITHOUT ROWID;
CREATE INDEX idempotency_keys_expiry ON idempotency_keys (expires_at);

CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;

CREATE TABLE queues (
    name            TEXT PRIMARY KEY,
    concurrency     INTEGER,
    rate_limit      TEXT,
    max_attempts    INTEGER,
    backoff_base    REAL,
    backoff_max     REAL,
    backoff_jitter  INTEGER,
    timeout         REAL,
    max_size        INTEGER,
    paused          INTEGER NOT NULL DEFAULT 0,
    priority        INTEGER NOT NULL DEFAULT 0,
    unfinished      INTEGER NOT NULL DEFAULT 0,
    tokens          REAL,
    tokens_at       REAL,
    created_at      REAL NOT NULL,
    updated_at      REAL NOT NULL,
    permanent_statuses TEXT,
    key_concurrency INTEGER,
    key_rate_limit  TEXT,
    adaptive_concurrency INTEGER NOT NULL DEFAULT 1,
    endpoint_concurrency INTEGER
) WITHOUT ROWID;

CREATE TABLE schedules (
    name         TEXT PRIMARY KEY,
    cron         TEXT NOT NULL,
    timezone     TEXT NOT NULL,
    job          TEXT NOT NULL,
    next_run_at  REAL NOT NULL,
    last_run_at  REAL,
    created_at   REAL NOT NULL,
    updated_at   REAL NOT NULL,
    paused       INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
CREATE INDEX schedules_due ON schedules (next_run_at);

CREATE TABLE topics (
    name       TEXT PRIMARY KEY,
    endpoints  TEXT NOT NULL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
) WITHOUT ROWID;

CREATE TABLE flow_keys (
    key         TEXT PRIMARY KEY,
    concurrency INTEGER,
    rate_limit  TEXT,
    paused      INTEGER NOT NULL DEFAULT 0,
    tokens      REAL,
    tokens_at   REAL,
    bucket_rate TEXT,
    updated_at  REAL NOT NULL
) WITHOUT ROWID;
CREATE INDEX flow_keys_paused ON flow_keys (key) WHERE paused = 1;
CREATE INDEX flow_keys_spent ON flow_keys (tokens_at) WHERE tokens_at IS NOT NULL;

CREATE TABLE circuits (
    origin     TEXT PRIMARY KEY,
    state      TEXT NOT NULL,
    failures   INTEGER NOT NULL DEFAULT 0,
    opened     INTEGER NOT NULL DEFAULT 0,
    open_until REAL,
    updated_at REAL NOT NULL
) WITHOUT ROWID;

-- Jobs per queue and stored state (count_by_state): enqueue adds to it, the triggers
-- below follow every state change and delete.
CREATE TABLE job_counts (
    queue TEXT NOT NULL,
    state TEXT NOT NULL,
    n     INTEGER NOT NULL,
    PRIMARY KEY (queue, state)
) WITHOUT ROWID;

CREATE TRIGGER jobs_count_update AFTER UPDATE OF state, queue ON jobs
WHEN (OLD.state IS NOT NEW.state OR OLD.queue IS NOT NEW.queue)
 AND NOT (OLD.queue IS NEW.queue AND (
        (OLD.state = 'pending' AND NEW.state = 'active')
     OR (OLD.state = 'active'
         AND NEW.state IN ('succeeded', 'retrying', 'dead', 'pending', 'scheduled'))))
BEGIN
    UPDATE job_counts SET n = n - 1 WHERE queue = OLD.queue AND state = OLD.state;
    INSERT INTO job_counts (queue, state, n) VALUES (NEW.queue, NEW.state, 1)
    ON CONFLICT (queue, state) DO UPDATE SET n = n + 1;
END;

CREATE TRIGGER jobs_count_delete AFTER DELETE ON jobs
BEGIN
    UPDATE job_counts SET n = n - 1 WHERE queue = OLD.queue AND state = OLD.state;
END;

CREATE INDEX jobs_blocked ON jobs (queue, run_at) WHERE state = 'blocked';
