-- Several nodes on one database: each heartbeats here (database time, so the
-- nodes' clocks need not agree), and a claim records which node holds the attempt,
-- so that when a node stops heartbeating its attempts are rescued at once.
CREATE TABLE nodes (
    id           text PRIMARY KEY,
    started_at   double precision NOT NULL,
    heartbeat_at double precision NOT NULL
);
ALTER TABLE jobs ADD COLUMN claimed_by text;
CREATE INDEX jobs_by_claimer ON jobs (claimed_by) WHERE state = 'active';
