-- SQLite's 0006_awaiting: 1 while an active job is held by an async worker (it
-- answered 202 pushq-async), 0 while its attempt is in flight in a pushq node.
ALTER TABLE jobs ADD COLUMN awaiting integer NOT NULL DEFAULT 0;
UPDATE jobs SET awaiting = 1 WHERE state = 'active';
