-- The PostgreSQL schema as of SQLite's migrations 0001-0005 (sqlite_schema.sql):
-- the same tables and columns, so both stores read rows alike. Times are epoch
-- seconds (double precision), JSON fields are text as in SQLite.

CREATE TABLE jobs (
    id                   text PRIMARY KEY,
    queue                text NOT NULL,
    url                  text NOT NULL,
    method               text NOT NULL,
    headers              text,
    body                 bytea,
    -- scheduled | pending | blocked | active | retrying | succeeded | dead | cancelled
    state                text NOT NULL,
    priority             integer NOT NULL DEFAULT 0,
    attempts             integer NOT NULL DEFAULT 0,
    max_attempts         integer NOT NULL,
    backoff_base         double precision NOT NULL,
    backoff_max          double precision NOT NULL,
    backoff_jitter       integer NOT NULL,
    timeout              double precision NOT NULL,
    created_at           double precision NOT NULL,
    run_at               double precision NOT NULL,
    finished_at          double precision,
    failed_at            double precision,
    lease                text,
    lease_expires_at     double precision,
    attempt_started_at   double precision,
    last_error           text,
    result               text,
    progress             text,
    idempotency_key      text,
    unique_key           text,
    ordering_key         text,
    callback_url         text,
    failure_callback_url text,
    permanent_statuses   text,
    tags                 text,
    flow_key             text,
    schedule             text,
    topic                text,
    replay_of            text,
    redrives             integer NOT NULL DEFAULT 0,
    meta                 text
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
CREATE INDEX jobs_by_url ON jobs (url text_pattern_ops, id);

CREATE TABLE job_tags (
    tag    text NOT NULL,
    job_id text NOT NULL,
    PRIMARY KEY (tag, job_id)
);

CREATE FUNCTION jobs_tags_sync() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO job_tags (tag, job_id)
        SELECT value, NEW.id FROM jsonb_array_elements_text(NEW.tags::jsonb)
        ON CONFLICT DO NOTHING;
        RETURN NEW;
    END IF;
    DELETE FROM job_tags WHERE job_id = OLD.id;
    RETURN OLD;
END;
$$;
CREATE TRIGGER jobs_tags_insert AFTER INSERT ON jobs
    FOR EACH ROW WHEN (NEW.tags IS NOT NULL) EXECUTE FUNCTION jobs_tags_sync();
CREATE TRIGGER jobs_tags_delete AFTER DELETE ON jobs
    FOR EACH ROW WHEN (OLD.tags IS NOT NULL) EXECUTE FUNCTION jobs_tags_sync();

CREATE TABLE attempts (
    seq           bigserial PRIMARY KEY,   -- the order recorded (SQLite's rowid)
    job_id        text NOT NULL,
    number        integer NOT NULL,
    started_at    double precision NOT NULL,
    duration_ms   double precision NOT NULL,
    status        integer,
    error         text,
    response_body text,
    redrive       integer NOT NULL DEFAULT 0
);
CREATE INDEX attempts_by_job ON attempts (job_id, seq);

CREATE TABLE idempotency_keys (
    key        text PRIMARY KEY,
    job_id     text NOT NULL,
    expires_at double precision NOT NULL
);
CREATE INDEX idempotency_keys_expiry ON idempotency_keys (expires_at);

CREATE TABLE meta (
    key   text PRIMARY KEY,
    value text NOT NULL
);

CREATE TABLE queues (
    name               text PRIMARY KEY,
    concurrency        integer,
    rate_limit         text,
    max_attempts       integer,
    backoff_base       double precision,
    backoff_max        double precision,
    backoff_jitter     integer,
    timeout            double precision,
    max_size           integer,
    paused             integer NOT NULL DEFAULT 0,
    priority           integer NOT NULL DEFAULT 0,
    unfinished         integer NOT NULL DEFAULT 0,
    tokens             double precision,
    tokens_at          double precision,
    created_at         double precision NOT NULL,
    updated_at         double precision NOT NULL,
    permanent_statuses text
);

CREATE TABLE schedules (
    name         text PRIMARY KEY,
    cron         text NOT NULL,
    timezone     text NOT NULL,
    job          text NOT NULL,
    next_run_at  double precision NOT NULL,
    last_run_at  double precision,
    created_at   double precision NOT NULL,
    updated_at   double precision NOT NULL,
    paused       integer NOT NULL DEFAULT 0
);
CREATE INDEX schedules_due ON schedules (next_run_at);
