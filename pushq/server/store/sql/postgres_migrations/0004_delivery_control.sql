-- SQLite's 0007_delivery_control: fan-out topics, per-key flow control and the
-- circuit breaker's state per destination origin. Flags are integers and JSON is
-- text, as in the rest of this schema, so both stores read rows alike.

-- A topic: a named list of endpoints, each {"url", "name"?, "headers"?} (JSON array).
CREATE TABLE topics (
    name       text PRIMARY KEY,
    endpoints  text NOT NULL,
    created_at double precision NOT NULL,
    updated_at double precision NOT NULL
);

-- A flow key's own limits (PUT /v1/flow-keys/{key}); NULL: the queue's key_* default.
-- tokens/tokens_at: its token bucket as last saved (NULL: full).
CREATE TABLE flow_keys (
    key         text PRIMARY KEY,
    concurrency integer,
    rate_limit  text,
    paused      integer NOT NULL DEFAULT 0,
    tokens      double precision,
    tokens_at   double precision,
    bucket_rate text,
    updated_at  double precision NOT NULL
);
CREATE INDEX flow_keys_paused ON flow_keys (key) WHERE paused = 1;
CREATE INDEX flow_keys_spent ON flow_keys (tokens_at) WHERE tokens_at IS NOT NULL;

-- Per-key limits every flow key of a queue gets unless the key sets its own.
ALTER TABLE queues ADD COLUMN key_concurrency integer;
ALTER TABLE queues ADD COLUMN key_rate_limit text;

-- Active jobs per flow key (the claim counts in-flight jobs of limited keys).
CREATE INDEX jobs_active_by_flow_key ON jobs (flow_key)
    WHERE state = 'active' AND flow_key IS NOT NULL;

-- The circuit breaker per destination origin, so an open circuit survives a restart.
CREATE TABLE circuits (
    origin     text PRIMARY KEY,
    state      text NOT NULL,   -- closed | open | half_open
    failures   integer NOT NULL DEFAULT 0,
    opened     integer NOT NULL DEFAULT 0,  -- times opened in a row: the cool-down grows with it
    open_until double precision,
    updated_at double precision NOT NULL
);
