// useRunEvents loads every event of one run (GET /api/runs/{run}/events, page after page) and,
// while follow is set, fetches what was appended since the last one every intervalMs and
// whenever refreshKey changes. Events are deduplicated by id; the order is the log's. While the
// browser is offline it does not ask (a request sure to fail is a console error), and it
// catches up as soon as the network is back.

import { useCallback, useEffect, useRef, useState } from "react";
import { api } from "../lib/api";
import { browserOnline, type OnlineSource } from "../lib/online";
import type { Envelope, EventPage } from "../lib/types";

export interface RunEventsState {
  events: Envelope[];
  loading: boolean;
  error: string | null;
  /** More pages than maxPages were left unread (very long logs). */
  partial: boolean;
}

export interface RunEventsOptions {
  follow?: boolean;
  refreshKey?: unknown;
  intervalMs?: number;
  /** Upper bound on pages (of 500) read per pull. */
  maxPages?: number;
  load?: (runId: string, after: string | null, signal?: AbortSignal) => Promise<EventPage>;
  /** Network reachability (injected in tests). */
  online?: OnlineSource;
}

const defaultLoad = (runId: string, after: string | null, signal?: AbortSignal) => api.runEvents(runId, after, 500, signal);

export function useRunEvents(runId: string | null, opts: RunEventsOptions = {}): RunEventsState {
  const { follow = false, refreshKey, intervalMs = 2000, maxPages = 40, load = defaultLoad, online = browserOnline } = opts;
  const [state, setState] = useState<RunEventsState>({ events: [], loading: !!runId, error: null, partial: false });
  const cursor = useRef<string | null>(null);
  const seen = useRef(new Set<string>());
  const busy = useRef(false);
  const again = useRef(false);
  /** A pull was skipped while offline: do it when the network is back. */
  const pendingOnline = useRef(false);
  const current = useRef(runId);
  const ctl = useRef(new AbortController());

  // One controller per run: switching runs or unmounting aborts what is in flight; a refresh
  // asked for during a pull runs right after it.
  useEffect(() => {
    current.current = runId;
    cursor.current = null;
    seen.current = new Set();
    busy.current = false;
    again.current = false;
    ctl.current = new AbortController();
    setState({ events: [], loading: !!runId, error: null, partial: false });
    const c = ctl.current;
    return () => c.abort();
  }, [runId]);

  const pull = useCallback(
    async (): Promise<void> => {
      const signal = ctl.current.signal;
      if (!runId || signal.aborted) return;
      if (!online.isOnline()) {
        pendingOnline.current = true;
        return;
      }
      if (busy.current) {
        again.current = true;
        return;
      }
      busy.current = true;
      const fresh: Envelope[] = [];
      let partial = false;
      try {
        for (let page = 0; ; page++) {
          if (page >= maxPages) {
            partial = true;
            break;
          }
          const p = await load(runId, cursor.current, signal);
          if (signal.aborted || current.current !== runId) return;
          for (const it of p.events) {
            if (!seen.current.has(it.event.id)) {
              seen.current.add(it.event.id);
              fresh.push(it.event);
            }
          }
          if (p.events.length > 0) cursor.current = p.events[p.events.length - 1].cursor;
          if (!p.next_cursor || p.events.length === 0) break;
        }
        setState((s) => ({ events: fresh.length ? [...s.events, ...fresh] : s.events, loading: false, error: null, partial }));
      } catch (e) {
        const err = e as Error;
        if (signal.aborted || err.name === "AbortError") return;
        if (fresh.length) setState((s) => ({ ...s, events: [...s.events, ...fresh] }));
        setState((s) => ({ ...s, loading: false, error: err.message }));
      } finally {
        busy.current = false;
      }
      if (again.current && !signal.aborted) {
        again.current = false;
        await pull();
      }
    },
    [runId, load, maxPages, online],
  );

  useEffect(
    () =>
      online.subscribe((up) => {
        if (up && pendingOnline.current) {
          pendingOnline.current = false;
          void pull();
        }
      }),
    [online, pull],
  );

  useEffect(() => {
    void pull();
  }, [pull, refreshKey]);

  useEffect(() => {
    if (!follow || !runId) return;
    const t = setInterval(() => void pull(), intervalMs);
    return () => clearInterval(t);
  }, [follow, runId, intervalMs, pull]);

  return state;
}
