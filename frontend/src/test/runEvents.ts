// The events of one run, for the tests that build a run's log by hand (the waterfall's
// computation and its component, the replay player).

import type { Envelope } from "../lib/types";

/** T0 is when the test runs begin. */
export const T0 = Date.parse("2026-03-01T10:00:00Z");

/** runEvent builds the event `ev-${n}` of run r1 (ticket t1), written by the processor at T0 + sec seconds. */
export function runEvent(n: number, type: string, sec: number, data: Record<string, unknown> = {}): Envelope {
  return {
    id: `ev-${n}`,
    type,
    version: 1,
    ticket_id: "t1",
    run_id: "r1",
    occurred_at: new Date(T0 + sec * 1000).toISOString(),
    actor: "processor",
    data,
  };
}
