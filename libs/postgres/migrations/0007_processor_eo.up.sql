-- Review comments keyed by the ChangesRequested event that carried them: a redelivered or
-- re-appended event adds nothing. seq orders a ticket's comments (the event's offset; a
-- ticket's events share one partition); comments stored before this migration keep their
-- order ahead of every new one.
CREATE TABLE processor_feedback (
    ticket_id  text   NOT NULL,
    event_id   text   NOT NULL,
    seq        bigint NOT NULL,
    comment    text   NOT NULL,
    PRIMARY KEY (ticket_id, event_id)
);

INSERT INTO processor_feedback (ticket_id, event_id, seq, comment)
SELECT t.ticket_id, 'legacy-' || f.ord, f.ord - 1000000000, f.comment
FROM processor_tickets t, jsonb_array_elements_text(t.feedback) WITH ORDINALITY AS f(comment, ord);

ALTER TABLE processor_tickets DROP COLUMN feedback;

-- Live processors (heartbeat): the work share of each is the open runs divided by how many
-- are alive.
CREATE TABLE processor_instances (
    instance_id      text PRIMARY KEY,
    heartbeat_until  timestamptz NOT NULL
);

-- Who owned a run before its last claim: named by the RunResumed event of a handover.
ALTER TABLE processor_runs ADD COLUMN previous_owner text NOT NULL DEFAULT '';

CREATE INDEX processor_runs_owner ON processor_runs (owner) WHERE status <> 'terminal';
