// The brief's hook: live processing state of one ticket over its WebSocket.
//
//   const { status, message, step, progress, error, logs, isConnected,
//           cursor, runId, reconnecting } = useTicketProcessing(ticketId);
//
// Every component that watches the same ticket shares one socket (see lib/registry).

import { useCallback, useEffect, useMemo, useState, useSyncExternalStore } from "react";
import { acquireTicket, releaseTicket } from "../lib/registry";
import { initialTicketState, type TicketProcessing, type TicketState, type TicketStore } from "../lib/ticketStore";
import type { TicketStatus } from "../lib/types";

export type { TicketProcessing };

const noop = () => () => {};
const emptySnapshot = () => initialTicketState;

/** useTicketStore acquires the shared store of a ticket for the lifetime of the component. */
export function useTicketStore(ticketId: string | null | undefined): TicketStore | null {
  const [store, setStore] = useState<TicketStore | null>(null);
  useEffect(() => {
    if (!ticketId) {
      setStore(null);
      return;
    }
    const s = acquireTicket(ticketId);
    setStore(s);
    return () => releaseTicket(ticketId);
  }, [ticketId]);
  return store && store.ticketId === ticketId ? store : null;
}

/** useTicketConnection is the full state (details beyond the brief's hook) and a retry action. */
export function useTicketConnection(ticketId: string | null | undefined): { state: TicketState; retry: () => void } {
  const store = useTicketStore(ticketId);
  const state = useSyncExternalStore(store ? store.subscribe : noop, store ? store.getSnapshot : emptySnapshot);
  const retry = useCallback(() => store?.retry(), [store]);
  return { state, retry };
}

export interface TicketSummary {
  status: TicketStatus | null;
  runId: string | null;
  step: string | null;
  /** False while the socket replays history: status then walks through states already past. */
  live: boolean;
}

/**
 * useTicketSummary is status, run and step only: a page that needs no more does not re-render
 * on every batch of log lines.
 */
export function useTicketSummary(ticketId: string | null | undefined): TicketSummary {
  const store = useTicketStore(ticketId);
  const key = useSyncExternalStore(store ? store.subscribe : noop, () => {
    const s = store ? store.getSnapshot() : initialTicketState;
    return JSON.stringify([s.status, s.runId, s.step, s.live]);
  });
  return useMemo(() => {
    const [status, runId, step, live] = JSON.parse(key) as [TicketStatus | null, string | null, string | null, boolean];
    return { status, runId, step, live };
  }, [key]);
}

export function useTicketState(ticketId: string | null | undefined): TicketState {
  return useTicketConnection(ticketId).state;
}

export function useTicketProcessing(ticketId: string | null | undefined): TicketProcessing {
  const s = useTicketState(ticketId);
  return useMemo(
    () => ({
      status: s.status,
      message: s.message,
      step: s.step,
      progress: s.progress,
      error: s.error,
      logs: s.logs,
      isConnected: s.isConnected,
      cursor: s.cursor,
      runId: s.runId,
      reconnecting: s.reconnecting,
    }),
    [s.status, s.message, s.step, s.progress, s.error, s.logs, s.isConnected, s.cursor, s.runId, s.reconnecting],
  );
}

export default useTicketProcessing;
