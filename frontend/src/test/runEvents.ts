// The events of one run, for the tests that build a run's log by hand (the waterfall's
// computation and its component, the replay player).

import type { Envelope, EventPage } from "../lib/types";

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

/**
 * fakeRunLog is a fake GET /api/runs/{run}/events over a log that grows (add): pages of
 * pageSize after a cursor, next_cursor set on a full page as the API does; calls are the
 * cursors it was asked for.
 */
export function fakeRunLog(pageSize: number) {
  const log: Envelope[] = [];
  const calls: (string | null)[] = [];
  const load = async (_run: string, after: string | null): Promise<EventPage> => {
    calls.push(after);
    const from = after === null ? 0 : Number(after) + 1;
    const events = log.slice(from, from + pageSize).map((event, i) => ({ cursor: String(from + i), partition: 0, offset: from + i, event }));
    return { events, next_cursor: events.length === pageSize ? events[events.length - 1].cursor : null };
  };
  const add = (type: string, sec: number, data: Record<string, unknown>) => log.push(runEvent(log.length, type, sec, data));
  return { load, add, calls, log };
}
