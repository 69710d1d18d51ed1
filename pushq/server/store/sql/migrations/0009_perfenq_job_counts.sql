-- How many jobs each queue holds in each stored state, so /metrics and GET /v1/queues
-- read a few rows instead of counting the jobs table (count_by_state). Enqueue adds
-- its jobs' counts once per group commit (a trigger per inserted row cost a third
-- more per insert); the triggers below see every state change and delete, whichever
-- statement makes it. Filled once here from the jobs already stored.
CREATE TABLE job_counts (
    queue TEXT NOT NULL,
    state TEXT NOT NULL,
    n     INTEGER NOT NULL,
    PRIMARY KEY (queue, state)
) WITHOUT ROWID;
INSERT INTO job_counts (queue, state, n) SELECT queue, state, count(*) FROM jobs GROUP BY 1, 2;

CREATE TRIGGER jobs_count_update AFTER UPDATE OF state, queue ON jobs
WHEN OLD.state IS NOT NEW.state OR OLD.queue IS NOT NEW.queue
BEGIN
    UPDATE job_counts SET n = n - 1 WHERE queue = OLD.queue AND state = OLD.state;
    INSERT INTO job_counts (queue, state, n) VALUES (NEW.queue, NEW.state, 1)
    ON CONFLICT (queue, state) DO UPDATE SET n = n + 1;
END;

CREATE TRIGGER jobs_count_delete AFTER DELETE ON jobs
BEGIN
    UPDATE job_counts SET n = n - 1 WHERE queue = OLD.queue AND state = OLD.state;
END;

-- Blocked jobs read as scheduled while their run_at is ahead: this finds those few
-- without reading the others.
CREATE INDEX jobs_blocked ON jobs (queue, run_at) WHERE state = 'blocked';
