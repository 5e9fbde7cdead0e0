DROP TABLE IF EXISTS idempotency_keys, consumer_offsets, ticket_events, step_runs, runs, tickets;
