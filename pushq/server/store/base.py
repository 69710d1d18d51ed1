"""The storage seam: everything pushq asks of a database, as one narrow protocol.

The author of a new backend reads this file and nothing else. The rules every
verb keeps:

- Keyword-only arguments; the clock is passed in (`now`, epoch seconds), a
  store never reads the time itself, so tests drive it with plain floats.
- Every state change is one guarded statement: a claim takes a lease, and each
  settle (complete, schedule_retry, kill, rescue) applies only while the job is
  still active under that lease and attempt, so a stale attempt can never
  overwrite a job the rescuer has already handed to someone else. A guard that
  does not match is not an error: the verb returns False (or skips the job).
- Policy stays above the store: the claim plan (policy.claim_plan), the
  retry-or-dead decision (policy.backoff.retry_or_dead) and the rescue decision
  are made by the caller; the store reads what they need and applies what they
  decided.
- Errors: the API's answers (pushq.errors NotFound, Conflict, RateLimited) as
  each verb says; a failure of the database itself as the store-neutral errors
  of store/errors.py (StoreUnavailable when trying again may help: busy,
  locked, I/O, connection; StoreConflict for a broken constraint). A driver's
  own exception never leaves the store.
- Cursors are the store's: list verbs hand out next_cursor strings in a
  format of the backend's choosing and raise InvalidCursor (a 400) for one
  they did not make.
- A job's stored states: scheduled (run_at in the future), pending (ready),
  blocked (behind an earlier unfinished job of its ordering key), active,
  retrying (waiting for run_at after a failure), succeeded, dead, cancelled.
  Each queue keeps an exact `unfinished` count (scheduled, pending, blocked,
  active, retrying) that every verb moving a job in or out of those states
  updates in the same transaction, and a job that leaves them frees its
  ordering key: the oldest blocked job of the key goes on.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from ...policy.claim_plan import ClaimPlan, QueueSnapshot
from ...policy.flow_keys import KeySnapshot
from ..models import (
    AttemptRecord,
    CircuitRecord,
    DeadFilter,
    EnqueueResult,
    FlowKeyRecord,
    JobDefaults,
    JobFilter,
    JobRecord,
    NewJob,
    QueueSettings,
    ScheduleRecord,
    TopicRecord,
)


@dataclass(frozen=True, slots=True)
class JobPage:
    """One page of a listing; pass next_cursor back for the next (None: the last page)."""

    jobs: list[JobRecord]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class Promotion:
    """What promote_due did: how many jobs became pending, and when the next one is due."""

    promoted: int
    next_at: float | None


@dataclass(frozen=True, slots=True)
class Rescue:
    """The rescuer's decision for one job whose lease expired, made above the store."""

    job_id: str
    lease: str  # the lease it was read under: the guard
    attempt: int  # the interrupted attempt (job.attempts as read): the guard
    run_at: float | None  # when it runs again; None: to the DLQ
    callback: NewJob | None = None  # its failure callback, stored with the kill
    # read by orphaned_attempts: applied although its lease has not run out yet
    orphaned: bool = False


class Store(Protocol):
    def listen(self, on_due: Callable[[float | None], None]) -> None:
        """Call `on_due` whenever a write made jobs due: `None` when jobs became
        pending (claim now), a time when jobs will be due then (promote then).

        SQLite calls it in-process after each enqueue, retry and rescue commits;
        PostgreSQL will forward LISTEN/NOTIFY. Callbacks run on the event loop
        and must not block. A hint, not a guarantee: the promoter and the
        dispatcher still poll.
        """

    async def open(self) -> None:
        """Connect and apply pending migrations (each all or nothing, once);
        StoreUnavailable (with everything closed again) when the database is
        corrupt or cannot be written."""

    async def close(self) -> None:
        """Finish queued writes and release connections; the store is unusable after."""

    async def ping(self) -> None:
        """Raise (StoreUnavailable when the cause is known) unless the database
        accepts a write now. Any write method raises StoreUnavailable while the
        database cannot take writes (disk full, read-only, I/O error)."""

    # -- producers ---------------------------------------------------------
    async def enqueue(
        self,
        *,
        jobs: Sequence[NewJob],
        now: float,
        idempotency_ttl: float,
        defaults: JobDefaults,
        backpressure: bool = True,
    ) -> list[EnqueueResult]:
        """Store all jobs in one transaction (all or nothing).

        A job whose idempotency key was used within the TTL, or whose unique
        key names an unfinished job of its queue, returns that job instead.
        What neither the job nor its queue sets comes from `defaults`. A queue
        over its max_size (or pushq over defaults.max_unfinished) raises
        RateLimited and stores nothing, unless `backpressure` is off (callbacks).
        """

    async def get(self, *, job_id: str) -> JobRecord | None:
        """The job as stored, or None."""

    async def list_jobs(
        self, *, queue: str | None, state: str | None, limit: int, cursor: str | None, now: float
    ) -> JobPage:
        """Up to `limit` jobs, newest id first, after `cursor` (a next_cursor of this verb).

        `queue` and `state` filter (None: any). `state` is a public state: "pending"
        includes scheduled and blocked jobs whose run_at <= now, "scheduled"
        those (and blocked ones) still in the future. InvalidCursor for a cursor
        this store did not make.
        """

    async def list_attempts(self, *, job_id: str) -> list[AttemptRecord]:
        """Every recorded attempt of the job, in the order recorded ([] if none or unknown)."""

    async def cancel(self, *, job_id: str, now: float) -> JobRecord:
        """Cancel an unfinished job (any of its states, active too: its lease is cleared,
        so the attempt in flight settles stale) and return it; NotFound for an unknown
        job, Conflict (code job_finished) for a finished one."""

    # -- the dispatcher ------------------------------------------------------
    async def claim_snapshot(self, *, limit: int, count_active: bool) -> list[QueueSnapshot]:
        """Every unpaused queue, ordered by name, as a claim round needs to see it.

        Each snapshot holds the queue's priority, concurrency, rate limit and saved
        token bucket (tokens, tokens_at), its flow keys' default limits
        (key_concurrency, key_rate_limit), its pending jobs counted up to `limit`
        (never more: the count must stay cheap under any backlog) and its active
        jobs, counted for queues with a concurrency limit, or for every queue
        when `count_active`. A read: nothing changes. The Claimer hands the
        snapshot to policy.claim_plan.plan_claim and the plan to `claim`.
        """

    async def flow_key_snapshot(self, *, now: float) -> list[KeySnapshot]:
        """The flow keys a claim round must know, in any order: every key with
        active jobs (`active` counted across all queues), every key with its own
        settings (put_flow_key: concurrency, rate_limit, paused), and every key
        whose bucket was saved after now - 3600 (older buckets have refilled).
        The saved bucket comes with the rate it was counted for (bucket_rate).
        Keys that only have pending jobs are not read: they wait under their
        queue's defaults, so the read stays small with any number of keys waiting.
        """

    async def claim(
        self, *, plan: ClaimPlan, now: float, lease: str, lease_margin: float
    ) -> list[JobRecord]:
        """Apply a claim plan in one transaction; return the jobs claimed, in plan order.

        For each (queue, n) of `plan.takes`, mark up to n of the queue's pending
        jobs active (highest priority, then oldest run_at, then id), only while
        the queue is unpaused: attempts + 1, lease = `lease`, attempt_started_at =
        now, lease_expires_at = now + job timeout + `lease_margin`, awaiting False. Save each of
        `plan.buckets` only while the queue's rate_limit is still the bucket's.
        Jobs sharing an ordering key are never pending together (the others are
        blocked), so a claim delivers them one at a time, oldest first.

        Flow keys: for a queue in `plan.keys`, never take a job whose flow_key is
        in its KeyLimits.held, nor a job of a paused key (checked in the claiming
        statement itself), and take the jobs in the same order but through
        policy.flow_keys.pick, one `taken` count per key shared by every queue of
        the round: a key that fills up is skipped and the claim reads on past it,
        so one key's backlog never holds back another's. Then save, for each key
        that took jobs, the bucket policy.flow_keys.spent_buckets returns (key,
        rate, tokens, tokens_at; a row for the key is made if need be, its
        settings untouched). A queue not in `plan.keys` claims as before.
        """

    async def complete(
        self,
        *,
        job_id: str,
        lease: str,
        attempt: AttemptRecord,
        result: dict[str, Any],
        now: float,
        callback: NewJob | None = None,
        defaults: JobDefaults | None = None,
    ) -> bool:
        """Succeed the job (result, finished_at = now) and record `attempt`; enqueue
        `callback` in the same transaction (never refused for backpressure, filled in
        from `defaults`). False, nothing written, unless the job is active under
        `lease` and attempt number `attempt.number`."""

    async def schedule_retry(
        self,
        *,
        job_id: str,
        lease: str,
        attempt: AttemptRecord,
        run_at: float,
        error: dict[str, Any],
    ) -> bool:
        """Make the job `retrying` until `run_at`, with `last_error` = `error`, the lease
        cleared and `attempt` recorded; False (nothing written) unless the job is active
        under `lease` and attempt number `attempt.number`. Announces `run_at` to the
        listeners. The job stays unfinished and keeps its ordering key."""

    async def kill(
        self,
        *,
        job_id: str,
        lease: str,
        attempt: AttemptRecord,
        error: dict[str, Any],
        now: float,
        callback: NewJob | None = None,
        defaults: JobDefaults | None = None,
    ) -> bool:
        """Move the job to the DLQ (last_error = `error`, finished_at = failed_at = now)
        and record `attempt`; enqueue `callback` with it, as complete does. Guarded and
        False like complete."""

    async def release_interrupted(
        self, *, job_id: str, lease: str, attempt: AttemptRecord, error: dict[str, Any]
    ) -> bool:
        """Give back an attempt pushq cut off itself (the shutdown grace ran out): the job
        is pending again at once, in its old place (run_at kept), with `attempts` one
        less so that the interrupted attempt is not charged to max_attempts; `attempt`
        is recorded (its number is used again by the next attempt), `last_error` =
        `error`, the lease cleared, the ordering key kept. Guarded and False like
        complete. Tells the listeners that a job is due (None)."""

    async def report_progress(
        self, *, job_id: str, lease: str, attempt: int, progress: Any, deadline: float
    ) -> bool:
        """Store the worker's progress and hold the lease at least until `deadline`
        (never shortened); False unless the job is active under `lease` and `attempt`."""

    async def prune_finished(
        self, *, succeeded_before: float, dead_before: float, limit: int
    ) -> int:
        """Delete, with their attempts, up to `limit` succeeded or cancelled jobs that
        finished before `succeeded_before` and up to `limit` dead jobs that failed
        before `dead_before`, oldest first; returns how many went. Unfinished jobs
        are never touched."""

    async def await_completion(
        self, *, job_id: str, lease: str, attempt: int, deadline: float
    ) -> bool:
        """Keep an active job (the worker answered 202 async) until `deadline`: its lease
        expires then unless progress or /complete comes first. Guarded like a settle.
        From then on the job reads `awaiting` (its worker holds it, pushq does not) until
        its next claim: orphaned_attempts leaves it alone, and an expired lease of an
        awaiting job is the worker's failure (backoff), not pushq's."""

    async def promote_due(self, *, now: float, limit: int) -> Promotion:
        """Make up to `limit` scheduled or retrying jobs whose run_at has come pending.

        Returns how many moved and the run_at of the earliest job still waiting
        (None: none waits), which is when the promoter should look again.
        """

    async def expired_leases(self, *, now: float, limit: int) -> list[JobRecord]:
        """Up to `limit` active jobs whose lease expired before `now`, soonest expired first.

        A read: nothing changes. The rescuer decides what becomes of each and
        hands the decisions to `rescue`.
        """

    async def orphaned_attempts(self, *, limit: int) -> list[JobRecord]:
        """Up to `limit` active jobs whose attempt was in flight in a pushq process that is
        gone (killed mid-delivery), oldest attempt first, however long their lease has
        left; never a job an async worker holds (await_completion): its worker still
        has it.

        A read: nothing changes. serve.py calls it at start-up, before the dispatcher
        claims anything; the Rescuer decides what becomes of each (due again at once,
        or the DLQ on its last attempt) and applies it with `rescue`, each Rescue
        marked `orphaned`. Until they are rescued their leases count toward their
        queue's concurrency, which is why this runs first.

        Only leases that no live process can hold may be returned. SQLite: every such
        job, since `pushq serve` holds an exclusive lock on the data dir, so the
        process that took those leases has exited. A shared database (PostgreSQL)
        returns only the leases of this node's own previous run (or none); never
        those of another node, which may still be delivering them: the rescuer's
        lease expiry (or the dead node's missed heartbeats) returns those.
        """

    async def rescue(
        self,
        *,
        rescues: Sequence[Rescue],
        error: dict[str, Any],
        now: float,
        defaults: JobDefaults,
    ) -> list[JobRecord]:
        """Apply the rescuer's decisions in one transaction, each guarded like a settle.

        A rescue applies only while its job is still active under `lease` and
        `attempt` and the lease is still expired at `now` (otherwise it is
        skipped: the job moved on); an `orphaned` rescue needs no expiry, only that
        the job is still in flight (not since handed to an async worker). An
        applied rescue records the interrupted
        attempt (status None, `error["message"]`), sets `last_error`, clears the
        lease, and either makes the job `retrying` at `run_at` or moves it to the
        DLQ (finished_at = failed_at = now), freeing its ordering key, with its
        `callback` enqueued in the same transaction (never refused for
        backpressure). Returns the jobs as they now are.
        """

    async def prune_idempotency_keys(self, *, now: float, limit: int) -> int:
        """Forget up to `limit` idempotency keys whose window has passed."""

    # -- the dead-letter queue -----------------------------------------------
    async def list_dead(
        self,
        *,
        queue: str | None,
        limit: int,
        cursor: str | None,
        match: DeadFilter | None = None,
    ) -> JobPage:
        """Up to `limit` dead jobs, latest failure first (failed_at, then id), after
        `cursor`; InvalidCursor for a cursor this store did not make.
        `match` narrows the list as it does a bulk redrive (`queue`, when given, wins)."""

    async def redrive(self, *, job_id: str, now: float) -> JobRecord:
        """Dead job back to pending (blocked if an unfinished job holds its ordering
        key) with attempts reset and its history kept; NotFound unless dead, Conflict
        (code unique_key_taken) when an unfinished job of its queue holds its unique key."""

    async def redrive_many(self, *, queue: str | None, now: float) -> int:
        """Redrive every dead job (of `queue`, or all), oldest first so jobs of one
        ordering key keep their order; a job whose unique key an unfinished job
        holds stays dead. Returns how many went back."""

    async def delete_dead(self, *, job_id: str) -> bool:
        """Delete a dead job and its attempts; False unless it was dead."""

    async def delete_dead_matching(self, *, match: DeadFilter) -> int:
        """Delete the dead jobs the filter matches, with their attempts; how many."""

    # -- queues and schedules ----------------------------------------------------
    async def get_queue(self, *, name: str) -> QueueSettings | None:
        """The queue's settings and unfinished count, or None if it was never named."""

    async def list_queues(self) -> list[QueueSettings]:
        """Every queue, by name. A queue exists once a job or a put_queue named it."""

    async def put_queue(self, *, name: str, changes: dict[str, Any], now: float) -> QueueSettings:
        """Create the queue if need be and change the given settings (QueueSettings
        field names); a changed rate_limit starts a new, full token bucket. Returns
        the queue as it now is."""

    async def oldest_pending(self) -> dict[str, float]:
        """{queue: run_at of its oldest pending job}, for queues with pending jobs."""

    async def put_schedule(
        self,
        *,
        name: str,
        cron: str,
        timezone: str,
        job: dict[str, Any],
        next_run_at: float,
        now: float,
    ) -> ScheduleRecord:
        """Create or replace the schedule `name` (its last_run_at kept on replace)."""

    async def get_schedule(self, *, name: str) -> ScheduleRecord | None:
        """The schedule, or None."""

    async def list_schedules(self) -> list[ScheduleRecord]:
        """Every schedule, by name."""

    async def delete_schedule(self, *, name: str) -> bool:
        """Delete the schedule; False if there was none."""

    async def due_schedules(self, *, now: float) -> list[ScheduleRecord]:
        """Schedules whose next_run_at <= now (the scheduler fires each with fire_schedule)."""

    async def next_schedule_at(self) -> float | None:
        """The earliest next_run_at of any schedule (None: no schedules)."""

    async def fire_schedule(
        self,
        *,
        schedule: ScheduleRecord,
        next_run_at: float,
        job: NewJob,
        now: float,
        idempotency_ttl: float,
        defaults: JobDefaults,
    ) -> EnqueueResult | None:
        """Enqueue one firing and advance the schedule atomically; None if already fired."""

    # -- observability -------------------------------------------------------
    async def count_by_state(self, *, now: float) -> dict[tuple[str, str], int]:
        """{(queue, public state): count} over every stored job."""

    # -- operators' actions and search ------------------------------------------
    async def find_jobs(
        self, *, match: JobFilter, limit: int, cursor: str | None, now: float
    ) -> JobPage:
        """Jobs the filter matches, newest first, each filter served by an index."""

    async def run_now(self, *, job_id: str, now: float) -> JobRecord:
        """Make a waiting job (scheduled, pending, retrying) due now without adding an
        attempt, or redrive a dead one; NotFound, or Conflict (active, succeeded,
        cancelled)."""

    async def delete_job(self, *, job_id: str) -> None:
        """Remove a finished job and its attempts; NotFound, or Conflict if unfinished."""

    async def cancel_matching(self, *, match: JobFilter, now: float) -> int:
        """Cancel every unfinished job the filter matches; how many."""

    async def delete_queue(self, *, name: str, force: bool, now: float) -> int:
        """Forget a queue; Conflict while it holds unfinished jobs unless `force`, which
        cancels them first (their number is returned). Finished jobs stay until pruned."""

    async def count_dead(self, *, match: DeadFilter) -> int:
        """How many dead jobs the filter matches (a bulk redrive's dry run)."""

    async def redrive_matching(self, *, match: DeadFilter, now: float, interval: float) -> int:
        """Redrive the dead jobs the filter matches, oldest first, the n-th due at
        now + n * interval; those whose unique key is held stay dead. How many went."""

    async def set_schedule_paused(
        self, *, name: str, paused: bool, next_run_at: float | None, now: float
    ) -> ScheduleRecord:
        """Pause or resume a schedule (moving its next firing to `next_run_at` if given);
        NotFound for an unknown name."""

    # -- fan-out topics --------------------------------------------------------------
    # Publishing is no verb of its own: the API builds one NewJob per endpoint (with
    # `topic` set) and stores them all with one `enqueue` (one transaction).
    async def put_topic(
        self, *, name: str, endpoints: list[dict[str, Any]], now: float
    ) -> TopicRecord:
        """Create or replace the topic `name` with `endpoints` (a JSON-able list of
        {"url", "name"?, "headers"?}, already validated; stored and returned as given,
        in order); created_at is kept on replace, updated_at = now."""

    async def get_topic(self, *, name: str) -> TopicRecord | None:
        """The topic, or None."""

    async def list_topics(self) -> list[TopicRecord]:
        """Every topic, by name."""

    async def delete_topic(self, *, name: str) -> bool:
        """Forget the topic (its jobs stay, with `topic` set); False if there was none."""

    # -- flow keys ---------------------------------------------------------------------
    async def get_flow_key(self, *, key: str) -> FlowKeyRecord:
        """The key's own settings (None / False where it has none: the queue's
        key_* defaults apply) and live counts: in_flight (active jobs of the key,
        every queue) and waiting (scheduled, pending, blocked and retrying ones).
        Any key can be read, set or not."""

    async def list_flow_keys(self, *, limit: int) -> list[FlowKeyRecord]:
        """Up to `limit` keys that have settings of their own (a limit, or paused),
        by key, each with its live counts."""

    async def put_flow_key(self, *, key: str, changes: dict[str, Any], now: float) -> FlowKeyRecord:
        """Create or change the key's own settings (any of concurrency, rate_limit,
        paused; None clears a limit); a changed rate starts a full bucket. Returns
        the key as get_flow_key does."""

    # -- endpoints (the circuit breaker) -------------------------------------------------
    async def release(self, *, job_id: str, lease: str, attempt: int, run_at: float) -> bool:
        """Hand back a job the dispatcher claimed but did not send (its origin's
        circuit is open, or it asked to be left alone with Retry-After): the job
        becomes `scheduled` at `run_at` with attempts - 1 (the claim's attempt taken
        back: holding costs no attempt), lease cleared, nothing recorded; it keeps
        its ordering key. Guarded like a settle (active under `lease` and attempt
        number `attempt`), else False. Announces `run_at` to the listeners."""

    async def save_circuit(self, *, circuit: CircuitRecord, now: float) -> None:
        """Store one origin's circuit (replacing what was stored for it), and forget
        circuits closed more than a day ago. With several nodes the last writer wins."""

    async def load_circuits(self) -> list[CircuitRecord]:
        """Every stored circuit that is not closed, by origin (read at start-up)."""
