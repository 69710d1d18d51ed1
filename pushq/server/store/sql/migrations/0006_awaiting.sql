-- 1 while an active job is held by an async worker (it answered 202 pushq-async and
-- finishes with /complete or /fail), 0 while its attempt is in flight in pushq. After
-- a crash, start-up recovery retries the in-flight ones at once and leaves these to
-- their worker. Jobs active at this migration are counted as held (the old rule:
-- their leases run out), since a clean stop leaves no attempt in flight.
ALTER TABLE jobs ADD COLUMN awaiting INTEGER NOT NULL DEFAULT 0;
UPDATE jobs SET awaiting = 1 WHERE state = 'active';
