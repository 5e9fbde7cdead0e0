// The connection registry: one TicketStore (so one WebSocket) per ticket, however many
// components watch it, and one socket for the all-tickets stream. Components acquire a
// connection and release it; the last release closes the socket after a short grace period,
// so a remount (route change, React StrictMode) reuses it instead of reconnecting.

import { api } from "./api";
import { getToken } from "./auth";
import { ResumableSocket, type SocketStatus } from "./socket";
import { TicketStore, type TicketStoreOptions } from "./ticketStore";
import type { ServerMessage } from "./types";

export type RegistryConfig = TicketStoreOptions & { releaseGraceMs?: number };

/** fetchWsTicket gets the ticket of one WebSocket attempt (none when signed out). */
export async function fetchWsTicket(): Promise<string | null> {
  if (!getToken()) return null;
  return (await api.wsTicket()).ticket;
}

let config: RegistryConfig = { getTicket: fetchWsTicket };

/** configureConnections sets options for connections created from now on (tests, app boot). */
export function configureConnections(next: Partial<RegistryConfig>): void {
  config = { ...config, ...next };
}

interface Entry<T> {
  value: T;
  refs: number;
  closeTimer: ReturnType<typeof setTimeout> | null;
  close: () => void;
}

const tickets = new Map<string, Entry<TicketStore>>();

/** acquireTicket returns the shared store for a ticket, connecting it on first use. */
export function acquireTicket(ticketId: string): TicketStore {
  let e = tickets.get(ticketId);
  if (!e) {
    const store = new TicketStore(ticketId, config);
    e = { value: store, refs: 0, closeTimer: null, close: () => store.stop() };
    tickets.set(ticketId, e);
    store.start();
  }
  if (e.closeTimer) clearTimeout(e.closeTimer);
  e.closeTimer = null;
  e.refs++;
  return e.value;
}

export function releaseTicket(ticketId: string): void {
  release(tickets, ticketId);
}

function release<T>(map: Map<string, Entry<T>>, key: string): void {
  const e = map.get(key);
  if (!e) return;
  e.refs = Math.max(0, e.refs - 1);
  if (e.refs > 0 || e.closeTimer) return;
  const grace = config.releaseGraceMs ?? 2000;
  const closeNow = () => {
    if (map.get(key) !== e || e.refs > 0) return;
    map.delete(key);
    e.close();
  };
  if (grace <= 0) closeNow();
  else e.closeTimer = setTimeout(closeNow, grace);
}

/** openTicketCount is how many ticket connections are open (for tests and the dashboard). */
export function openTicketCount(): number {
  return tickets.size;
}

/** closeAll drops every connection at once (logout, tests). */
export function closeAll(): void {
  for (const map of [tickets, feeds] as Map<string, Entry<unknown>>[]) {
    for (const e of map.values()) {
      if (e.closeTimer) clearTimeout(e.closeTimer);
      e.close();
    }
    map.clear();
  }
}

// ---- the all-tickets stream (/ws/tickets, admin only) ----

export interface FeedListener {
  onMessage?: (msg: ServerMessage) => void;
  onStatus?: (status: SocketStatus) => void;
}

export class Feed {
  private listeners = new Set<FeedListener>();
  readonly socket: ResumableSocket;
  status: SocketStatus;

  constructor() {
    this.socket = new ResumableSocket({
      ...config,
      path: "/ws/tickets",
      onMessage: (m) => this.listeners.forEach((l) => l.onMessage?.(m)),
      onStatus: (s) => {
        this.status = s;
        this.listeners.forEach((l) => l.onStatus?.(s));
      },
    });
    this.status = this.socket.currentStatus;
  }

  listen(l: FeedListener): () => void {
    this.listeners.add(l);
    l.onStatus?.(this.status);
    return () => this.listeners.delete(l);
  }
}

const feeds = new Map<string, Entry<Feed>>();
const FEED_KEY = "all";

export function acquireFeed(): Feed {
  let e = feeds.get(FEED_KEY);
  if (!e) {
    const feed = new Feed();
    e = { value: feed, refs: 0, closeTimer: null, close: () => feed.socket.stop() };
    feeds.set(FEED_KEY, e);
    feed.socket.start();
  }
  if (e.closeTimer) clearTimeout(e.closeTimer);
  e.closeTimer = null;
  e.refs++;
  return e.value;
}

export function releaseFeed(): void {
  release(feeds, FEED_KEY);
}
