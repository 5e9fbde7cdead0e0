-- What the coding agent's model calls cost: one row per LLMCallCompleted event (keyed by
-- the event id, so a redelivered event adds nothing), and the run's totals beside it (sums
-- of its rows, every step attempt included).
CREATE TABLE llm_calls (
    event_id       text             PRIMARY KEY,
    run_id         text             NOT NULL,
    ticket_id      text             NOT NULL,
    iteration      integer          NOT NULL,
    agent_step     integer          NOT NULL,
    provider       text             NOT NULL,
    model          text             NOT NULL,
    input_tokens   bigint           NOT NULL,
    output_tokens  bigint           NOT NULL,
    cost_usd       double precision NOT NULL,
    latency_ms     bigint           NOT NULL,
    retries        integer          NOT NULL,
    occurred_at    timestamptz      NOT NULL
);
CREATE INDEX llm_calls_run ON llm_calls (run_id);
CREATE INDEX llm_calls_time ON llm_calls (occurred_at);

ALTER TABLE runs
    ADD COLUMN llm_calls         integer          NOT NULL DEFAULT 0,
    ADD COLUMN llm_input_tokens  bigint           NOT NULL DEFAULT 0,
    ADD COLUMN llm_output_tokens bigint           NOT NULL DEFAULT 0,
    ADD COLUMN llm_cost_usd      double precision NOT NULL DEFAULT 0,
    ADD COLUMN tool_calls        integer          NOT NULL DEFAULT 0;
