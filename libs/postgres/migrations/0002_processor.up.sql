-- Processor state: what the workflow engine needs to resume runs after a crash. Written by
-- the processor before it appends each step's events (intent first), so a restart knows the
-- step that was interrupted and retries it with the next attempt number.
CREATE TABLE processor_tickets (
    ticket_id         text PRIMARY KEY,
    title             text    NOT NULL DEFAULT '',
    description       text    NOT NULL DEFAULT '',
    repository_url    text    NOT NULL DEFAULT '',
    base_branch       text    NOT NULL DEFAULT 'main',
    ci_command        text    NOT NULL DEFAULT '',
    simulate_failure  text    NOT NULL DEFAULT '',
    iterations_used   integer NOT NULL DEFAULT 0,
    active_run_id     text    NOT NULL DEFAULT '',
    feedback          jsonb   NOT NULL DEFAULT '[]'
);

CREATE TABLE processor_runs (
    run_id            text PRIMARY KEY,
    ticket_id         text        NOT NULL,
    partition         integer     NOT NULL,
    request_offset    bigint      NOT NULL,
    status            text        NOT NULL,          -- active | terminating | terminal
    step              text        NOT NULL DEFAULT '',
    attempt           integer     NOT NULL DEFAULT 0,
    iteration         integer     NOT NULL DEFAULT 0,
    state             jsonb       NOT NULL DEFAULT '{}',
    cancel_requested  text        NOT NULL DEFAULT '', -- who asked, '' = not asked
    pending_event     json,                           -- the terminal event being appended
    owner             text        NOT NULL DEFAULT '',
    lease_until       timestamptz NOT NULL DEFAULT now(),
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX processor_runs_open ON processor_runs (lease_until) WHERE status <> 'terminal';
