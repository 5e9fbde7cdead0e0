ALTER TABLE idempotency_keys
    DROP COLUMN ticket_id,
    DROP COLUMN event_ids,
    DROP COLUMN log_partition,
    DROP COLUMN log_offset,
    DROP COLUMN planned_status,
    DROP COLUMN planned_response,
    DROP COLUMN updated_at;
