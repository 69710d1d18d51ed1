-- What an API other than /v1 knows about a job (a JSON object; NULL for /v1 jobs):
-- QStash's /v2 keeps its delivery rules, callbacks, labels and origin here
-- (pushq/server/qstash). meta.kind picks the delivery hook.
ALTER TABLE jobs ADD COLUMN meta TEXT;

