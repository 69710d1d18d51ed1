-- Delivery control (issue 13): fan-out topics, per-key flow control and the
-- circuit breaker's state per destination origin.

-- A topic: a named list of endpoints, each {"url", "name"?, "headers"?} (JSON array).
CREATE TABLE topics (
    name       TEXT PRIMARY KEY,
    endpoints  TEXT NOT NULL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
) WITHOUT ROWID;

-- A flow key's own limits (PUT /v1/flow-keys/{key}); NULL: the queue's key_* default.
-- tokens/tokens_at: its token bucket as last saved (NULL: full).
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

-- Per-key limits every flow key of a queue gets unless the key sets its own.
ALTER TABLE queues ADD COLUMN key_concurrency INTEGER;
ALTER TABLE queues ADD COLUMN key_rate_limit TEXT;

-- Active jobs per flow key (the claim counts in-flight jobs of limited keys).
CREATE INDEX jobs_active_by_flow_key ON jobs (flow_key) WHERE state = 'active' AND flow_key IS NOT NULL;

-- The circuit breaker per destination origin, so an open circuit survives a restart.
CREATE TABLE circuits (
    origin     TEXT PRIMARY KEY,
    state      TEXT NOT NULL,   -- closed | open | half_open
    failures   INTEGER NOT NULL DEFAULT 0,
    opened     INTEGER NOT NULL DEFAULT 0,  -- times opened in a row: the cool-down grows with it
    open_until REAL,
    updated_at REAL NOT NULL
) WITHOUT ROWID;
