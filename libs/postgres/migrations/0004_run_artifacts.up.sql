-- Run artifacts: files a run produced that are too big for the event log. Today the full
-- (redacted) output of each CI execution, `ci-<iteration>.log`, written by the processor
-- when the execution ends (a retried step rewrites it) and served by the command service.
CREATE TABLE run_artifacts (
    run_id      text        NOT NULL,
    ticket_id   text        NOT NULL,
    name        text        NOT NULL,
    content     bytea       NOT NULL,
    size_bytes  bigint      NOT NULL,
    lines       bigint      NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (run_id, name)
);
