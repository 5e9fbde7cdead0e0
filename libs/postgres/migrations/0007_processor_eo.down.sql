DROP INDEX IF EXISTS processor_runs_owner;
DROP TABLE IF EXISTS processor_instances;
ALTER TABLE processor_runs DROP COLUMN IF EXISTS previous_owner;
ALTER TABLE processor_tickets ADD COLUMN feedback jsonb NOT NULL DEFAULT '[]';
UPDATE processor_tickets t SET feedback = f.comments
FROM (SELECT ticket_id, jsonb_agg(comment ORDER BY seq, event_id) AS comments FROM processor_feedback GROUP BY ticket_id) f
WHERE f.ticket_id = t.ticket_id;
DROP TABLE processor_feedback;
