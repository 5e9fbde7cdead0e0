-- Projections (written only by the projector, from events).
CREATE TABLE tickets (
    id              text PRIMARY KEY,
    title           text        NOT NULL,
    description     text        NOT NULL DEFAULT '',
    repository_url  text        NOT NULL DEFAULT '',
    base_branch     text        NOT NULL DEFAULT 'main',
    ci_command      text        NOT NULL DEFAULT '',
    owner           text        NOT NULL,
    status          text        NOT NULL DEFAULT 'IDLE',
    step            text        NOT NULL DEFAULT '',
    progress        integer     NOT NULL DEFAULT 0,
    message         text        NOT NULL DEFAULT '',
    error           text        NOT NULL DEFAULT '',
    iteration       integer     NOT NULL DEFAULT 0,
    current_run_id  text        NOT NULL DEFAULT '',
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL,
    last_partition  integer     NOT NULL,
    last_offset     bigint      NOT NULL
);
CREATE INDEX tickets_owner_created ON tickets (owner, created_at DESC);
CREATE INDEX tickets_created ON tickets (created_at DESC);

CREATE TABLE runs (
    id            text PRIMARY KEY,
    ticket_id     text        NOT NULL,
    status        text        NOT NULL,
    step          text        NOT NULL DEFAULT '',
    progress      integer     NOT NULL DEFAULT 0,
    iteration     integer     NOT NULL DEFAULT 0,
    reason        text        NOT NULL DEFAULT '',
    requested_by  text        NOT NULL DEFAULT '',
    message       text        NOT NULL DEFAULT '',
    error         text        NOT NULL DEFAULT '',
    branch        text        NOT NULL DEFAULT '',
    requested_at  timestamptz NOT NULL,
    started_at    timestamptz,
    finished_at   timestamptz
);
CREATE INDEX runs_ticket ON runs (ticket_id, requested_at DESC);

CREATE TABLE step_runs (
    run_id       text        NOT NULL,
    ticket_id    text        NOT NULL,
    step         text        NOT NULL,
    iteration    integer     NOT NULL,
    attempt      integer     NOT NULL,
    started_at   timestamptz NOT NULL,
    finished_at  timestamptz,
    duration_ms  bigint,
    outcome      text        NOT NULL DEFAULT 'running',
    error        text        NOT NULL DEFAULT '',
    PRIMARY KEY (run_id, iteration, step, attempt)
);
CREATE INDEX step_runs_step_started ON step_runs (step, started_at);

-- The audit trail: every event verbatim, with where it sits in the log.
CREATE TABLE ticket_events (
    event_id     uuid        PRIMARY KEY,
    ticket_id    text        NOT NULL,
    run_id       text        NOT NULL DEFAULT '',
    type         text        NOT NULL,
    version      integer     NOT NULL,
    occurred_at  timestamptz NOT NULL,
    actor        text        NOT NULL DEFAULT '',
    topic_id     text        NOT NULL,
    partition    integer     NOT NULL,
    "offset"     bigint      NOT NULL,
    envelope     json        NOT NULL,
    headers      jsonb       NOT NULL DEFAULT '{}',
    recorded_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (topic_id, partition, "offset")
);
CREATE INDEX ticket_events_ticket ON ticket_events (ticket_id, partition, "offset");
CREATE INDEX ticket_events_run ON ticket_events (run_id, partition, "offset") WHERE run_id <> '';

-- Consumer positions stored in the same transaction as the rows they produced.
CREATE TABLE consumer_offsets (
    consumer     text    NOT NULL,
    topic        text    NOT NULL,
    partition    integer NOT NULL,
    next_offset  bigint  NOT NULL,
    topic_id     text    NOT NULL,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, topic, partition)
);

-- Command side: a retried POST with the same Idempotency-Key gets the first answer.
CREATE TABLE idempotency_keys (
    subject       text        NOT NULL,
    key           text        NOT NULL,
    request_hash  text        NOT NULL,
    status        integer,
    response      jsonb,
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (subject, key)
);
