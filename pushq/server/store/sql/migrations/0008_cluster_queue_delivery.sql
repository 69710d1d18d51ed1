-- A queue's own say over delivery to each origin (branch cluster): whether the
-- origins' adaptive (AIMD) in-flight limits apply to its jobs, and its own most
-- deliveries in flight to any one origin.
ALTER TABLE queues ADD COLUMN adaptive_concurrency INTEGER NOT NULL DEFAULT 1;
ALTER TABLE queues ADD COLUMN endpoint_concurrency INTEGER;
