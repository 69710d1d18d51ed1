-- Operators' actions and job search (issue 14).

-- What made a job (a schedule, a topic, a replay of another job), its tags and
-- its flow key; and how many times it was redriven, so attempt numbers that
-- restart after a redrive stay readable.
ALTER TABLE jobs ADD COLUMN tags TEXT;        -- JSON array of strings, NULL when none
ALTER TABLE jobs ADD COLUMN flow_key TEXT;
ALTER TABLE jobs ADD COLUMN schedule TEXT;
ALTER TABLE jobs ADD COLUMN topic TEXT;
ALTER TABLE jobs ADD COLUMN replay_of TEXT;
ALTER TABLE jobs ADD COLUMN redrives INTEGER NOT NULL DEFAULT 0;

-- Each attempt names the redrive it belongs to: 0 before any, 1 after the first...
ALTER TABLE attempts ADD COLUMN redrive INTEGER NOT NULL DEFAULT 0;

-- List filters, newest first, each walked from an index (never a table scan).
CREATE INDEX jobs_by_flow_key ON jobs (flow_key, id) WHERE flow_key IS NOT NULL;
CREATE INDEX jobs_by_schedule ON jobs (schedule, id) WHERE schedule IS NOT NULL;
CREATE INDEX jobs_by_topic ON jobs (topic, id) WHERE topic IS NOT NULL;
CREATE INDEX jobs_by_url ON jobs (url, id);

-- One row per (tag, job): a tag filter walks (tag, job_id) newest first. Kept in
-- step with jobs by triggers, so no write path can forget it.
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

-- A paused schedule does not fire until it is resumed.
ALTER TABLE schedules ADD COLUMN paused INTEGER NOT NULL DEFAULT 0;
