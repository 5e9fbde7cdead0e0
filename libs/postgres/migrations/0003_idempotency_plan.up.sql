-- An Idempotency-Key is claimed durably BEFORE its events are appended, with what the
-- request will append and answer, so a retry after a crash at any point can find the
-- outcome in the log (the claimed event ids, scanned from log_offset of log_partition)
-- instead of appending again. status IS NULL and event_ids IS NOT NULL = claimed, outcome
-- unknown; status IS NOT NULL = answered (status, response).
ALTER TABLE idempotency_keys
    ADD COLUMN ticket_id        text,
    ADD COLUMN event_ids        text[],
    ADD COLUMN log_partition    integer,
    ADD COLUMN log_offset       bigint,
    ADD COLUMN planned_status   integer,
    ADD COLUMN planned_response jsonb,
    ADD COLUMN updated_at       timestamptz NOT NULL DEFAULT now();
