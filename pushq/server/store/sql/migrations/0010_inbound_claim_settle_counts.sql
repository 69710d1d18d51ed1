-- Claims and settles count their jobs themselves: the claim round once per queue
-- (pending -n, active +n), a group commit's settles once per (queue, state), both
-- through the writer's count_jobs, in the same transaction. The trigger, which cost
-- ~11 µs per state change (two per delivered job), now leaves those transitions to
-- them and still counts every other state change (cancel, redrive, run now,
-- promotion, unblocking), whichever statement makes it.
--
-- The transitions left out are the ones only these statements make: pending ->
-- active (claim_from_queue, claim_ids) and active -> succeeded, retrying, dead,
-- pending, scheduled (complete, schedule_retry, kill, release_interrupted,
-- rescue_many, release). A new statement making one of them must count it too
-- (tests/store/test_counts.py checks every path against a count of the table).
DROP TRIGGER jobs_count_update;
CREATE TRIGGER jobs_count_update AFTER UPDATE OF state, queue ON jobs
WHEN (OLD.state IS NOT NEW.state OR OLD.queue IS NOT NEW.queue)
 AND NOT (OLD.queue IS NEW.queue AND (
        (OLD.state = 'pending' AND NEW.state = 'active')
     OR (OLD.state = 'active'
         AND NEW.state IN ('succeeded', 'retrying', 'dead', 'pending', 'scheduled'))))
BEGIN
    UPDATE job_counts SET n = n - 1 WHERE queue = OLD.queue AND state = OLD.state;
    INSERT INTO job_counts (queue, state, n) VALUES (NEW.queue, NEW.state, 1)
    ON CONFLICT (queue, state) DO UPDATE SET n = n + 1;
END;
