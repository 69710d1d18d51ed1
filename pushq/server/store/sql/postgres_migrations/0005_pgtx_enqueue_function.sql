-- Transactional enqueue (docs/scaling.md "Enqueue in your own transaction"): an
-- application sharing this database calls pushq_enqueue() inside its own
-- transaction, so the job exists if and only if that transaction commits.
--
-- The function applies the store's enqueue rules (pushq/server/store/postgres.py,
-- _Enqueue) to one job: the queue is created if missing (its row locked only when
-- it has a max_size or the server a max_unfinished), the job's ordering and unique
-- keys are locked as every enqueue and settle locks them (so what is decided about
-- each is decided one transaction at a time); the idempotency key is
-- claimed by INSERT ... ON CONFLICT (of two transactions given one key, the second
-- waits for the first and then returns its job); the queue's and the server's
-- defaults fill what the job leaves out; and NOTIFY wakes every node's dispatcher,
-- which PostgreSQL delivers only when the transaction commits.
--
-- The server's defaults (max_attempts, timeout, backoff, max_unfinished, the
-- idempotency TTL, the body limit, its reserved headers) are read from meta
-- 'enqueue_settings', which every node writes at start-up; the row below stands in
-- until one has.

-- A queue's unfinished count changes as rows of their own (+n by an enqueue, -1 by
-- a job that ends), folded into queues.unfinished by the leader: enqueues and
-- settles of one queue then never wait on each other's commits for its row, which
-- made one queue's jobs one commit at a time. A queue's count is its row's plus
-- these; its row is locked only where a limit is checked (max_size,
-- max_unfinished), and ordering and unique keys by advisory locks of their own.
CREATE TABLE queue_unfinished (
    queue text NOT NULL,
    delta integer NOT NULL
);
CREATE INDEX queue_unfinished_by_queue ON queue_unfinished (queue);

INSERT INTO meta (key, value) VALUES (
    'enqueue_settings',
    '{"max_attempts": 13, "timeout": 30.0, "backoff_base": 30.0, "backoff_max": 28800.0,'
    ' "backoff_jitter": true, "max_unfinished": null, "idempotency_ttl": 86400.0,'
    ' "max_body_size": 1048576, "reserved_headers": ["connection", "content-length",'
    ' "expect", "host", "keep-alive", "proxy-authenticate", "proxy-authorization",'
    ' "proxy-connection", "te", "trailer", "trailers", "transfer-encoding", "upgrade",'
    ' "user-agent"]}'
) ON CONFLICT (key) DO NOTHING;

-- A job id as pushq/server/models.py new_job_id makes it: 48 bits of milliseconds
-- then 80 random bits, 26 characters of Crockford base32 (the 128 bits padded at
-- the end), so ids sort by creation time; above `after` when that is given (the
-- newest unfinished id of an ordering key: its jobs go in enqueue order).
CREATE FUNCTION pushq_job_id(after text DEFAULT NULL) RETURNS text
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    alphabet constant text := '0123456789ABCDEFGHJKMNPQRSTVWXYZ';
    value numeric;
    floor_value numeric := 0;
    digit integer;
    result text := '';
BEGIN
    value := floor(extract(epoch FROM clock_timestamp()) * 1000)::numeric * 2::numeric ^ 80
        + floor(random()::numeric * 2::numeric ^ 40) * 2::numeric ^ 40
        + floor(random()::numeric * 2::numeric ^ 40);
    IF after IS NOT NULL AND length(after) = 26 THEN
        FOR i IN 1 .. 26 LOOP
            floor_value := floor_value * 32 + (strpos(alphabet, substr(after, i, 1)) - 1);
        END LOOP;
        floor_value := div(floor_value, 4);  -- the 2 bits of padding
        IF value <= floor_value THEN
            value := floor_value + 1;
        END IF;
    END IF;
    value := value * 4;
    FOR i IN 1 .. 26 LOOP
        digit := mod(value, 32)::integer;
        result := substr(alphabet, digit + 1, 1) || result;
        value := div(value, 32);
    END LOOP;
    RETURN result;
END;
$$;

-- Raise the error the SDK turns into pushq.BadRequest: SQLSTATE 22023
-- (invalid_parameter_value), the message naming the field.
CREATE FUNCTION pushq_refuse(message text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = 'pushq: ' || message,
        HINT = 'the fields are those of POST /v1/jobs, durations in seconds and run_at '
               'in Unix seconds';
END;
$$;

-- `job`: the fields of POST /v1/jobs as JSON (url required; queue, method, headers,
-- delay or run_at, priority, max_attempts, backoff {base, max, jitter}, timeout,
-- idempotency_key, unique_key, ordering_key, callback_url, failure_callback_url,
-- tags, flow_key, permanent_statuses), durations in seconds and run_at in Unix
-- seconds; `body`: the bytes delivered (the SDK sends the JSON encoding of its body).
-- Returns the job (created false: the job an idempotency or unique key already named).
CREATE FUNCTION pushq_enqueue(job jsonb, body bytea DEFAULT NULL)
RETURNS TABLE (job_id text, job_queue text, job_state text, job_run_at double precision,
               created boolean)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    settings jsonb;
    now_at double precision := extract(epoch FROM clock_timestamp());
    q queues%ROWTYPE;
    found_job jobs%ROWTYPE;
    v_queue text;
    v_url text;
    v_method text;
    v_headers jsonb;
    v_key text;
    v_unique text;
    v_ordering text;
    v_flow text;
    v_tags jsonb;
    v_statuses jsonb;
    v_backoff jsonb;
    v_priority integer;
    v_max_attempts integer;
    v_timeout double precision;
    v_run_at double precision;
    v_base double precision;
    v_max double precision;
    v_jitter boolean;
    v_id text;
    v_state text;
    v_after text;
    v_existing text;
    v_total bigint;
    v_unfinished bigint;
    field text;
    header record;
BEGIN
    -- The shape of the request (the SDK checks every rule of POST /v1/jobs first;
    -- these keep rows the dispatcher reads well formed, whoever calls).
    IF job IS NULL OR jsonb_typeof(job) <> 'object' THEN
        PERFORM pushq_refuse('job must be a JSON object');
    END IF;
    SELECT k INTO field FROM jsonb_object_keys(job) AS k
    WHERE k NOT IN ('url', 'queue', 'method', 'headers', 'delay', 'run_at', 'priority',
                    'max_attempts', 'backoff', 'timeout', 'idempotency_key', 'unique_key',
                    'ordering_key', 'callback_url', 'failure_callback_url', 'tags',
                    'flow_key', 'permanent_statuses')
    LIMIT 1;
    IF field IS NOT NULL THEN
        PERFORM pushq_refuse(format('%s: not a field of a job', field));
    END IF;
    FOREACH field IN ARRAY ARRAY['url', 'callback_url', 'failure_callback_url'] LOOP
        IF job ? field AND jsonb_typeof(job -> field) <> 'null' THEN
            IF jsonb_typeof(job -> field) <> 'string'
               OR length(job ->> field) > 2048
               OR (job ->> field) !~ '^[Hh][Tt][Tt][Pp][Ss]?://[A-Za-z0-9._~:%\[\]-]+([/?#][^[:space:][:cntrl:]]*)?$'
            THEN
                PERFORM pushq_refuse(format(
                    '%s: must be an http:// or https:// URL with a host, without credentials, '
                    'spaces or control characters, of at most 2048 characters', field));
            END IF;
        END IF;
    END LOOP;
    v_url := job ->> 'url';
    IF v_url IS NULL THEN
        PERFORM pushq_refuse('url: required');
    END IF;
    FOREACH field IN ARRAY ARRAY['queue', 'method', 'idempotency_key', 'unique_key',
                                 'ordering_key', 'flow_key'] LOOP
        IF job ? field AND jsonb_typeof(job -> field) NOT IN ('string', 'null') THEN
            PERFORM pushq_refuse(format('%s: must be a string', field));
        END IF;
    END LOOP;
    v_queue := coalesce(job ->> 'queue', 'default');
    IF v_queue !~ '^[A-Za-z0-9_.-]{1,64}$' THEN
        PERFORM pushq_refuse('queue: 1 to 64 letters, digits, "_", "." or "-"');
    END IF;
    v_method := upper(coalesce(job ->> 'method', 'POST'));
    IF v_method NOT IN ('POST', 'PUT', 'PATCH', 'DELETE', 'GET') THEN
        PERFORM pushq_refuse('method: one of POST, PUT, PATCH, DELETE, GET');
    END IF;
    v_key := job ->> 'idempotency_key';
    v_unique := job ->> 'unique_key';
    v_ordering := job ->> 'ordering_key';
    v_flow := job ->> 'flow_key';
    FOREACH field IN ARRAY ARRAY['idempotency_key', 'unique_key', 'ordering_key'] LOOP
        IF (job ->> field) IS NOT NULL AND (length(job ->> field) > 255
                                            OR (job ->> field) ~ '[[:cntrl:]]') THEN
            PERFORM pushq_refuse(format(
                '%s: at most 255 characters, no control characters', field));
        END IF;
    END LOOP;
    IF v_flow IS NOT NULL AND (length(v_flow) NOT BETWEEN 1 AND 256 OR v_flow ~ '[[:cntrl:]]') THEN
        PERFORM pushq_refuse('flow_key: 1 to 256 characters, no control characters');
    END IF;

    SELECT value::jsonb INTO settings FROM meta WHERE key = 'enqueue_settings';

    v_headers := coalesce(job -> 'headers', '{}'::jsonb);
    IF jsonb_typeof(v_headers) = 'null' THEN
        v_headers := '{}'::jsonb;
    END IF;
    IF jsonb_typeof(v_headers) <> 'object' THEN
        PERFORM pushq_refuse('headers: must be an object of strings');
    END IF;
    IF (SELECT count(*) FROM jsonb_object_keys(v_headers)) > 64 THEN
        PERFORM pushq_refuse('headers: at most 64 headers');
    END IF;
    FOR header IN SELECT key AS name, value FROM jsonb_each(v_headers) LOOP
        IF jsonb_typeof(header.value) <> 'string'
           OR length(header.value #>> '{}') > 8192
           OR (header.value #>> '{}') !~ '^[\t\x20-\x7e]*$' THEN
            PERFORM pushq_refuse(format(
                'headers: the value of %s must be printable ASCII of at most 8192 characters',
                header.name));
        END IF;
        IF length(header.name) > 256 OR header.name !~ '^[!#$%&''*+.^_`|~0-9A-Za-z-]+$' THEN
            PERFORM pushq_refuse(format('headers: %s is not a valid header name', header.name));
        END IF;
        IF lower(header.name) LIKE 'pushq-%' OR lower(header.name) LIKE 'webhook-%'
           OR settings -> 'reserved_headers' ? lower(header.name) THEN
            PERFORM pushq_refuse(format(
                'headers: %s is set by pushq and cannot be overridden', header.name));
        END IF;
    END LOOP;

    FOREACH field IN ARRAY ARRAY['priority', 'max_attempts', 'timeout', 'delay', 'run_at'] LOOP
        IF job ? field AND jsonb_typeof(job -> field) NOT IN ('number', 'null') THEN
            PERFORM pushq_refuse(format('%s: must be a number', field));
        END IF;
    END LOOP;
    IF (job ->> 'priority') IS NOT NULL AND ((job ->> 'priority')::numeric % 1 <> 0
        OR (job ->> 'priority')::numeric NOT BETWEEN -1000000 AND 1000000) THEN
        PERFORM pushq_refuse('priority: an integer from -1000000 to 1000000');
    END IF;
    v_priority := coalesce((job ->> 'priority')::numeric::integer, 0);
    IF (job ->> 'max_attempts') IS NOT NULL AND ((job ->> 'max_attempts')::numeric % 1 <> 0
        OR (job ->> 'max_attempts')::numeric NOT BETWEEN 1 AND 1000) THEN
        PERFORM pushq_refuse('max_attempts: an integer from 1 to 1000');
    END IF;
    IF (job ->> 'timeout') IS NOT NULL
       AND NOT ((job ->> 'timeout')::double precision > 0
                AND (job ->> 'timeout')::double precision <= 3600) THEN
        PERFORM pushq_refuse('timeout: seconds, above 0 to 3600');
    END IF;
    IF (job ->> 'delay') IS NOT NULL AND (job ->> 'run_at') IS NOT NULL THEN
        PERFORM pushq_refuse('give either delay or run_at, not both');
    END IF;
    IF (job ->> 'delay') IS NOT NULL
       AND (job ->> 'delay')::double precision NOT BETWEEN 0 AND 10 * 366 * 86400 THEN
        PERFORM pushq_refuse('delay: seconds, from 0 to ten years');
    END IF;
    IF (job ->> 'run_at') IS NOT NULL
       AND (job ->> 'run_at')::double precision NOT BETWEEN 0 AND 4102444800 THEN
        PERFORM pushq_refuse('run_at: Unix seconds between 1970 and 2099');
    END IF;

    v_backoff := job -> 'backoff';
    IF v_backoff IS NOT NULL AND jsonb_typeof(v_backoff) <> 'null' THEN
        IF jsonb_typeof(v_backoff) <> 'object'
           OR EXISTS (SELECT 1 FROM jsonb_object_keys(v_backoff) AS k
                      WHERE k NOT IN ('base', 'max', 'jitter'))
           OR jsonb_typeof(v_backoff -> 'base') NOT IN ('number', 'null')
           OR jsonb_typeof(v_backoff -> 'max') NOT IN ('number', 'null')
           OR jsonb_typeof(v_backoff -> 'jitter') NOT IN ('boolean', 'null')
           OR (v_backoff ->> 'base')::double precision NOT BETWEEN 0.001 AND 7 * 86400
           OR (v_backoff ->> 'max')::double precision NOT BETWEEN 0.001 AND 7 * 86400 THEN
            PERFORM pushq_refuse(
                'backoff: {"base", "max"} in seconds (up to 7 days) and "jitter" true or false');
        END IF;
    ELSE
        v_backoff := NULL;
    END IF;

    v_tags := job -> 'tags';
    IF v_tags IS NOT NULL AND jsonb_typeof(v_tags) <> 'null' THEN
        IF jsonb_typeof(v_tags) <> 'array' OR jsonb_array_length(v_tags) > 10
           OR EXISTS (SELECT 1 FROM jsonb_array_elements(v_tags) AS t
                      WHERE jsonb_typeof(t) <> 'string' OR length(t #>> '{}') NOT BETWEEN 1 AND 64
                         OR (t #>> '{}') ~ '[[:cntrl:]]') THEN
            PERFORM pushq_refuse('tags: up to 10 strings of 1 to 64 characters');
        END IF;
        -- a tag given twice counts once, in the order given
        SELECT coalesce(jsonb_agg(t ORDER BY n), '[]'::jsonb) INTO v_tags FROM (
            SELECT t, min(n) AS n FROM jsonb_array_elements_text(v_tags) WITH ORDINALITY AS e(t, n)
            GROUP BY t
        ) AS distinct_tags;
        IF jsonb_array_length(v_tags) = 0 THEN
            v_tags := NULL;
        END IF;
    ELSE
        v_tags := NULL;
    END IF;

    v_statuses := job -> 'permanent_statuses';
    IF v_statuses IS NOT NULL AND jsonb_typeof(v_statuses) <> 'null' THEN
        IF jsonb_typeof(v_statuses) <> 'array' OR jsonb_array_length(v_statuses) > 50
           OR EXISTS (SELECT 1 FROM jsonb_array_elements(v_statuses) AS s
                      WHERE jsonb_typeof(s) <> 'number' OR (s #>> '{}')::numeric % 1 <> 0
                         OR (s #>> '{}')::numeric NOT BETWEEN 300 AND 599) THEN
            PERFORM pushq_refuse('permanent_statuses: up to 50 HTTP statuses from 300 to 599');
        END IF;
        SELECT coalesce(jsonb_agg(DISTINCT s::integer ORDER BY s::integer), '[]'::jsonb)
        INTO v_statuses FROM jsonb_array_elements_text(v_statuses) AS s;
    ELSE
        v_statuses := NULL;
    END IF;

    IF body IS NOT NULL AND octet_length(body) > (settings ->> 'max_body_size')::bigint THEN
        RAISE EXCEPTION USING ERRCODE = '54000',
            MESSAGE = format('pushq: body is %s bytes; the limit is %s',
                             octet_length(body), settings ->> 'max_body_size');
    END IF;

    -- The queue, created if missing; its row locked (until this transaction ends:
    -- call pushq_enqueue late in it) only where a limit is checked, as every
    -- enqueue of the queue does. Then the job's keys, as the store locks them.
    INSERT INTO queues (name, created_at, updated_at) VALUES (v_queue, now_at, now_at)
    ON CONFLICT (name) DO NOTHING;
    IF (settings ->> 'max_unfinished') IS NOT NULL
       OR EXISTS (SELECT 1 FROM queues WHERE name = v_queue AND max_size IS NOT NULL) THEN
        SELECT * INTO q FROM queues WHERE name = v_queue FOR NO KEY UPDATE;
    ELSE
        SELECT * INTO q FROM queues WHERE name = v_queue FOR KEY SHARE;  -- not deleted under it
    END IF;
    IF (settings ->> 'max_unfinished') IS NOT NULL THEN
        -- max_unfinished counts every queue: the enqueues under it take turns, as
        -- the store's do (UNFINISHED_LOCK, after the queue row, before the keys).
        PERFORM pg_advisory_xact_lock(1718971500, hashtext(current_schema()));
    END IF;
    IF q.max_size IS NOT NULL THEN  -- the count, only where it is checked
        SELECT q.unfinished + coalesce(sum(delta), 0) INTO v_unfinished
        FROM queue_unfinished WHERE queue = v_queue;
    END IF;
    PERFORM pg_advisory_xact_lock(hashtextextended(current_schema() || '/' || k, 0))
    FROM (SELECT k FROM unnest(ARRAY['o/' || v_queue || '/' || v_ordering,
                                     'u/' || v_queue || '/' || v_unique]) AS k
          WHERE k IS NOT NULL ORDER BY 1) AS sorted;

    v_after := NULL;
    IF v_ordering IS NOT NULL THEN
        SELECT max(id) INTO v_after FROM jobs
        WHERE queue = v_queue AND ordering_key = v_ordering
          AND state IN ('scheduled', 'pending', 'blocked', 'active', 'retrying');
    END IF;
    v_id := pushq_job_id(v_after);

    IF v_key IS NOT NULL THEN
        INSERT INTO idempotency_keys AS k (key, job_id, expires_at)
        VALUES (v_key, v_id, now_at + (settings ->> 'idempotency_ttl')::double precision)
        ON CONFLICT (key) DO UPDATE SET job_id = excluded.job_id, expires_at = excluded.expires_at
        WHERE k.expires_at <= now_at
        RETURNING k.job_id INTO v_existing;
        IF v_existing IS NULL THEN  -- the key is another job's
            SELECT jobs.* INTO found_job FROM idempotency_keys AS k JOIN jobs ON jobs.id = k.job_id
            WHERE k.key = v_key AND k.expires_at > now_at;
            IF found_job.id IS NOT NULL THEN
                RETURN QUERY SELECT found_job.id, found_job.queue, found_job.state,
                                    found_job.run_at, false;
                RETURN;
            END IF;
            -- the key's job was pruned: the key is this job's now
            INSERT INTO idempotency_keys (key, job_id, expires_at)
            VALUES (v_key, v_id, now_at + (settings ->> 'idempotency_ttl')::double precision)
            ON CONFLICT (key) DO UPDATE
            SET job_id = excluded.job_id, expires_at = excluded.expires_at;
        END IF;
    END IF;

    IF v_unique IS NOT NULL THEN
        SELECT * INTO found_job FROM jobs
        WHERE queue = v_queue AND unique_key = v_unique
          AND state IN ('scheduled', 'pending', 'blocked', 'active', 'retrying');
        IF found_job.id IS NOT NULL THEN
            IF v_key IS NOT NULL THEN  -- the key was claimed for a job that is not made
                DELETE FROM idempotency_keys WHERE key = v_key AND idempotency_keys.job_id = v_id;
            END IF;
            RETURN QUERY SELECT found_job.id, found_job.queue, found_job.state,
                                found_job.run_at, false;
            RETURN;
        END IF;
    END IF;

    -- Backpressure, as POST /v1/jobs answers 429 queue_full / server_full.
    IF q.max_size IS NOT NULL AND v_unfinished >= q.max_size THEN
        RAISE EXCEPTION USING ERRCODE = '53400',
            MESSAGE = format('pushq: queue %s holds %s unfinished jobs (max_size %s)',
                             v_queue, v_unfinished, q.max_size),
            HINT = 'queue_full';
    END IF;
    IF (settings ->> 'max_unfinished') IS NOT NULL THEN
        SELECT (SELECT coalesce(sum(unfinished), 0) FROM queues)
             + (SELECT coalesce(sum(delta), 0) FROM queue_unfinished) INTO v_total;
        IF v_total >= (settings ->> 'max_unfinished')::bigint THEN
            RAISE EXCEPTION USING ERRCODE = '53400',
                MESSAGE = format('pushq: pushq holds %s unfinished jobs (the limit is %s)',
                                 v_total, settings ->> 'max_unfinished'),
                HINT = 'server_full';
        END IF;
    END IF;

    v_run_at := now_at;
    IF (job ->> 'delay') IS NOT NULL THEN
        v_run_at := now_at + (job ->> 'delay')::double precision;
    ELSIF (job ->> 'run_at') IS NOT NULL THEN
        v_run_at := greatest((job ->> 'run_at')::double precision, now_at);
    END IF;
    v_state := CASE WHEN v_run_at > now_at THEN 'scheduled' ELSE 'pending' END;
    IF v_ordering IS NOT NULL AND v_after IS NOT NULL THEN
        v_state := 'blocked';  -- behind the unfinished jobs of its ordering key
    END IF;

    -- Backoff: the job's field, else the queue's, else the server's (a max below the
    -- base is raised to it), as resolve_backoff does.
    v_base := coalesce((v_backoff ->> 'base')::double precision, q.backoff_base,
                       (settings ->> 'backoff_base')::double precision);
    v_max := coalesce((v_backoff ->> 'max')::double precision, q.backoff_max,
                      (settings ->> 'backoff_max')::double precision);
    v_jitter := coalesce((v_backoff ->> 'jitter')::boolean, q.backoff_jitter::boolean,
                         (settings ->> 'backoff_jitter')::boolean);
    v_max_attempts := coalesce((job ->> 'max_attempts')::numeric::integer, q.max_attempts,
                               (settings ->> 'max_attempts')::integer);
    v_timeout := coalesce((job ->> 'timeout')::double precision, q.timeout,
                          (settings ->> 'timeout')::double precision);

    INSERT INTO jobs (
        id, queue, url, method, headers, body, state, priority, attempts, max_attempts,
        backoff_base, backoff_max, backoff_jitter, timeout, created_at, run_at,
        idempotency_key, unique_key, ordering_key, callback_url, failure_callback_url,
        tags, flow_key, permanent_statuses
    ) VALUES (
        v_id, v_queue, v_url, v_method,
        CASE WHEN v_headers = '{}'::jsonb THEN NULL ELSE v_headers::text END,
        body, v_state, v_priority, 0, v_max_attempts,
        v_base, greatest(v_max, v_base), v_jitter::integer, v_timeout, now_at, v_run_at,
        v_key, v_unique, v_ordering, job ->> 'callback_url', job ->> 'failure_callback_url',
        v_tags::text, v_flow, coalesce(v_statuses::text, q.permanent_statuses)
    );
    INSERT INTO queue_unfinished (queue, delta) VALUES (v_queue, 1);

    -- Wake every node when this transaction commits (a rollback drops it). The
    -- channel is the one the nodes LISTEN on for this schema (PostgresStore.open).
    IF v_state = 'pending' THEN
        PERFORM pg_notify(pushq_channel(), 'tx');
    ELSIF v_state = 'scheduled' THEN
        PERFORM pg_notify(pushq_channel(), 'tx ' || v_run_at::text);
    END IF;

    RETURN QUERY SELECT v_id, v_queue, v_state, v_run_at, true;
END;
$$;

-- The NOTIFY channel of this schema's nodes.
CREATE FUNCTION pushq_channel() RETURNS text LANGUAGE sql STABLE AS $$
    SELECT left(CASE WHEN current_schema() = 'public' THEN 'pushq_due'
                     ELSE 'pushq_due_' || current_schema() END, 63)
$$;

-- Each function runs in the schema it was installed in, whatever the caller's
-- search_path (an application calls pushq.pushq_enqueue from its own schema).
DO $$
BEGIN
    EXECUTE format('ALTER FUNCTION pushq_enqueue(jsonb, bytea) SET search_path = %I, pg_temp',
                   current_schema());
    EXECUTE format('ALTER FUNCTION pushq_job_id(text) SET search_path = %I, pg_temp',
                   current_schema());
    EXECUTE format('ALTER FUNCTION pushq_refuse(text) SET search_path = %I, pg_temp',
                   current_schema());
    EXECUTE format('ALTER FUNCTION pushq_channel() SET search_path = %I, pg_temp',
                   current_schema());
END;
$$;
