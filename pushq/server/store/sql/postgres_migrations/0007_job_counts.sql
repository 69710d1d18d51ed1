-- How many jobs each queue holds in each stored state, so /metrics, GET /v1/queues
-- and the dashboard read a few rows instead of counting the jobs table
-- (count_by_state: seconds at 10 M rows).
--
-- Every statement that inserts, deletes or updates jobs adds rows to
-- job_count_deltas (statement-level triggers: one aggregate per statement, whatever
-- its number of rows). Those rows are only ever inserted, never updated, so the
-- enqueues, claims and settles of several nodes never wait on a shared counter row.
-- The maintenance leader moves them into job_counts (fold_job_counts); a read sums
-- both in one statement, so it sees every committed change once.
CREATE TABLE job_counts (
    queue text NOT NULL,
    state text NOT NULL,
    n     bigint NOT NULL,
    PRIMARY KEY (queue, state)
);
CREATE TABLE job_count_deltas (
    queue text NOT NULL,
    state text NOT NULL,
    n     bigint NOT NULL
);

CREATE FUNCTION job_counts_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO job_count_deltas (queue, state, n)
    SELECT queue, state, count(*) FROM new_jobs GROUP BY 1, 2;
    RETURN NULL;
END $$;

CREATE FUNCTION job_counts_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO job_count_deltas (queue, state, n)
    SELECT queue, state, -count(*) FROM old_jobs GROUP BY 1, 2;
    RETURN NULL;
END $$;

-- An UPDATE that changes no job's state (progress, a lease's end) adds nothing.
CREATE FUNCTION job_counts_updated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO job_count_deltas (queue, state, n)
    SELECT queue, state, sum(n) FROM (
        SELECT queue, state, 1 AS n FROM new_jobs
        UNION ALL
        SELECT queue, state, -1 FROM old_jobs
    ) AS changes
    GROUP BY 1, 2 HAVING sum(n) != 0;
    RETURN NULL;
END $$;

CREATE FUNCTION job_counts_truncated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM job_count_deltas;
    DELETE FROM job_counts;
    RETURN NULL;
END $$;

-- The triggers first: they lock jobs against writes (SHARE ROW EXCLUSIVE) until
-- this migration commits, so the count below and the deltas after it add up.
CREATE TRIGGER jobs_count_insert AFTER INSERT ON jobs
    REFERENCING NEW TABLE AS new_jobs
    FOR EACH STATEMENT EXECUTE FUNCTION job_counts_inserted();
CREATE TRIGGER jobs_count_delete AFTER DELETE ON jobs
    REFERENCING OLD TABLE AS old_jobs
    FOR EACH STATEMENT EXECUTE FUNCTION job_counts_deleted();
CREATE TRIGGER jobs_count_update AFTER UPDATE ON jobs
    REFERENCING OLD TABLE AS old_jobs NEW TABLE AS new_jobs
    FOR EACH STATEMENT EXECUTE FUNCTION job_counts_updated();
CREATE TRIGGER jobs_count_truncate AFTER TRUNCATE ON jobs
    FOR EACH STATEMENT EXECUTE FUNCTION job_counts_truncated();

INSERT INTO job_counts (queue, state, n) SELECT queue, state, count(*) FROM jobs GROUP BY 1, 2;

-- Blocked jobs read as scheduled while their run_at is ahead: this finds those few
-- without reading the others.
CREATE INDEX jobs_blocked ON jobs (queue, run_at) WHERE state = 'blocked';
