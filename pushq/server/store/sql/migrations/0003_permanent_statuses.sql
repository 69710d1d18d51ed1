-- Statuses that end a job at once instead of being retried (a JSON array of
-- integers): the job's own list, resolved from its queue's at enqueue, and the
-- queue's default. NULL: none beyond 410 Gone and pushq-retry: false.
ALTER TABLE jobs ADD COLUMN permanent_statuses TEXT;
ALTER TABLE queues ADD COLUMN permanent_statuses TEXT;
