-- The trace a run belongs to: the W3C trace id of its ProcessingRequested record (the start
-- request's trace), empty when the request carried none (tracing off). Shown on the run so an
-- operator can open the run's trace.
ALTER TABLE runs ADD COLUMN trace_id text NOT NULL DEFAULT '';
