// ResumableSocket keeps one WebSocket to the notifier alive: it reconnects with capped
// exponential backoff and jitter, resumes from the cursor of the last event it delivered,
// drops events it has already delivered (by event_id), pings every 30 s, notices a silent
// connection, and waits for the network instead of hammering while the browser is offline.
// Every attempt authenticates with a fresh single-use ticket (`?ticket=`, from
// POST /api/ws-tickets): the long-lived bearer token never appears in a URL.

import { backoffDelay, DEFAULT_BACKOFF, type BackoffOptions } from "./backoff";
import { browserOnline, type OnlineSource } from "./online";
import type { ServerMessage } from "./types";

export type WebSocketCtor = new (url: string) => WebSocket;

export interface SocketStatus {
  /** The socket is open. */
  connected: boolean;
  /** The connection was lost (or never made) and a retry is pending or under way. */
  reconnecting: boolean;
  /** The browser reports no network; the socket waits for it. */
  offline: boolean;
  /** Failed attempts since the last successful connection. */
  attempt: number;
  /** When the next attempt is due (ms since epoch), if one is scheduled. */
  nextRetryAt: number | null;
  /** Set when the server refused us for good (auth, unknown ticket): no automatic retry. */
  fatal: string | null;
}

export interface SocketOptions {
  /** Path and query without cursor and token, e.g. "/ws/tickets/abc". */
  path: string;
  /** Base URL for sockets ("ws://host:port"); default: the page's origin. */
  baseUrl?: string;
  /**
   * getTicket returns a fresh single-use WebSocket ticket for one connection attempt (null:
   * connect without credentials). A rejection with `status: 401` is fatal (the bearer token
   * itself is refused); any other rejection is retried with backoff.
   */
  getTicket?: () => Promise<string | null>;
  /** Cursor to resume from on the first connection. */
  initialCursor?: string | null;
  /** event_ids already delivered (e.g. restored from a previous page). */
  seenEventIds?: Iterable<string>;
  WebSocketImpl?: WebSocketCtor;
  backoff?: BackoffOptions;
  random?: () => number;
  pingIntervalMs?: number;
  /** Close and reconnect when nothing at all arrives for this long. */
  idleTimeoutMs?: number;
  online?: OnlineSource;
  onMessage: (msg: ServerMessage) => void;
  onStatus?: (status: SocketStatus) => void;
  /** Called with the cursor after every delivered event. */
  onCursor?: (cursor: string) => void;
}

/** Close codes after which retrying cannot help: the server said who we are is not welcome. */
const FATAL_CLOSE_CODES = new Map<number, string>([
  [1008, "Connexion refusée par le serveur (authentification ou origine)."],
  [4001, "Jeton invalide ou expiré."],
  [4003, "Accès refusé à ce ticket."],
  [4004, "Ticket introuvable."],
  [4401, "Jeton invalide ou expiré."],
  [4403, "Accès refusé à ce ticket."],
  [4404, "Ticket introuvable."],
]);

const CLOSE_UNAUTHORIZED = 4401;

/** The server could not parse our request (an invalid cursor): retry without the cursor. */
const CLOSE_BAD_REQUEST = 4400;

/** How many event ids to remember for de-duplication (oldest forgotten first). */
const SEEN_LIMIT = 50_000;

export class ResumableSocket {
  private ws: WebSocket | null = null;
  private cursor: string | null;
  private seen = new Set<string>();
  private status: SocketStatus = {
    connected: false,
    reconnecting: false,
    offline: false,
    attempt: 0,
    nextRetryAt: null,
    fatal: null,
  };
  private retryTimer: ReturnType<typeof setTimeout> | null = null;
  private pingTimer: ReturnType<typeof setInterval> | null = null;
  private idleTimer: ReturnType<typeof setTimeout> | null = null;
  private unsubscribeOnline: (() => void) | null = null;
  private stopped = true;
  /** A ticket is being fetched for the next attempt. */
  private connecting = false;
  /** Bumped whenever a pending ticket fetch must be ignored (stop, offline). */
  private generation = 0;
  /** 4401 closes since the last accepted connection. */
  private unauthorized = 0;
  private readonly opts: Required<Omit<SocketOptions, "initialCursor" | "seenEventIds" | "onStatus" | "onCursor" | "baseUrl" | "getTicket">> &
    SocketOptions;

  constructor(opts: SocketOptions) {
    this.opts = {
      WebSocketImpl: (globalThis as { WebSocket?: WebSocketCtor }).WebSocket as WebSocketCtor,
      backoff: DEFAULT_BACKOFF,
      random: Math.random,
      pingIntervalMs: 30_000,
      idleTimeoutMs: 75_000,
      online: browserOnline,
      ...opts,
    };
    this.cursor = opts.initialCursor ?? null;
    for (const id of opts.seenEventIds ?? []) this.remember(id);
  }

  get currentCursor(): string | null {
    return this.cursor;
  }

  get currentStatus(): SocketStatus {
    return this.status;
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.unsubscribeOnline = this.opts.online.subscribe((online) => (online ? this.handleOnline() : this.handleOffline()));
    if (!this.opts.online.isOnline()) {
      this.setStatus({ offline: true, reconnecting: true });
      return;
    }
    this.connect();
  }

  /** stop closes the socket for good (until start is called again). */
  stop(): void {
    this.stopped = true;
    this.generation++;
    this.connecting = false;
    this.unsubscribeOnline?.();
    this.unsubscribeOnline = null;
    this.clearRetry();
    this.abandon(1000, "client closed");
    this.setStatus({ connected: false, reconnecting: false, nextRetryAt: null });
  }

  /** retryNow skips the pending backoff (the "Reconnecter" button, or after a fatal close). */
  retryNow(): void {
    if (this.stopped) return;
    this.clearRetry();
    this.setStatus({ fatal: null });
    if (this.ws) return;
    this.connect();
  }

  /** resetCursor forgets the resume point (history no longer exists at it). */
  resetCursor(): void {
    this.cursor = null;
  }

  send(text: string): boolean {
    if (this.ws && this.ws.readyState === 1) {
      this.ws.send(text);
      return true;
    }
    return false;
  }

  private url(ticket: string | null): string {
    const base = this.opts.baseUrl ?? defaultBaseUrl();
    const u = new URL(this.opts.path, base);
    if (ticket) u.searchParams.set("ticket", ticket);
    if (this.cursor) u.searchParams.set("cursor", this.cursor);
    return u.toString();
  }

  private connect(): void {
    this.clearRetry();
    if (this.stopped || this.ws || this.connecting) return;
    this.setStatus({ nextRetryAt: null });
    if (!this.opts.getTicket) {
      this.open(null);
      return;
    }
    this.connecting = true;
    const gen = this.generation;
    this.opts.getTicket().then(
      (ticket) => {
        if (gen !== this.generation) return;
        this.connecting = false;
        if (this.stopped || this.ws) return;
        this.open(ticket);
      },
      (err: unknown) => {
        if (gen !== this.generation) return;
        this.connecting = false;
        if (this.stopped) return;
        if ((err as { status?: number } | null)?.status === 401) {
          this.setStatus({ connected: false, reconnecting: false, fatal: FATAL_CLOSE_CODES.get(4401) ?? "401" });
          return;
        }
        this.scheduleRetry();
      },
    );
  }

  private open(ticket: string | null): void {
    let ws: WebSocket;
    try {
      ws = new this.opts.WebSocketImpl(this.url(ticket));
    } catch (err) {
      this.setStatus({ fatal: `Adresse WebSocket invalide : ${String(err)}` });
      return;
    }
    this.ws = ws;
    this.setStatus({ nextRetryAt: null });
    ws.onopen = () => {
      if (this.ws !== ws) return;
      this.setStatus({ connected: true, reconnecting: false, fatal: null });
      this.pingTimer = setInterval(() => this.send("ping"), this.opts.pingIntervalMs);
      this.touch();
    };
    ws.onmessage = (ev: MessageEvent) => {
      if (this.ws !== ws) return;
      this.touch();
      if (typeof ev.data !== "string") return;
      let msg: ServerMessage;
      try {
        msg = JSON.parse(ev.data) as ServerMessage;
      } catch {
        return;
      }
      if (!msg || typeof msg.type !== "string") return;
      this.deliver(msg);
    };
    ws.onerror = () => {
      // Always followed by close; the close handler decides what to do.
    };
    ws.onclose = (ev: CloseEvent) => {
      if (this.ws !== ws) return;
      this.detach();
      this.afterClose(ev.code, ev.reason);
    };
  }

  private deliver(msg: ServerMessage): void {
    if (msg.type === "connected") {
      // The server accepted us: the backoff starts over at the next drop.
      this.unauthorized = 0;
      this.setStatus({ attempt: 0 });
    }
    if (msg.type === "history_unavailable") {
      // What we had is replaced by the current state: forget it, including what we saw.
      this.cursor = null;
      this.seen.clear();
    }
    if (msg.event_id && !msg.snapshot) {
      if (this.seen.has(msg.event_id)) return;
      this.remember(msg.event_id);
    }
    this.opts.onMessage(msg);
    if (typeof msg.cursor === "string" && msg.cursor && (msg.event_id || msg.type === "replay_complete")) {
      this.cursor = msg.cursor;
      this.opts.onCursor?.(msg.cursor);
    }
  }

  private remember(id: string): void {
    this.seen.add(id);
    if (this.seen.size > SEEN_LIMIT) {
      const oldest = this.seen.values().next().value;
      if (oldest !== undefined) this.seen.delete(oldest);
    }
  }

  private afterClose(code: number, reason: string): void {
    this.setStatus({ connected: false });
    if (this.stopped) return;
    if (code === CLOSE_BAD_REQUEST) {
      // Our cursor was refused (corrupt, or from another log): resume without one.
      this.cursor = null;
    }
    if (code === CLOSE_UNAUTHORIZED && this.opts.getTicket && this.unauthorized++ === 0) {
      // A ticket can be refused for reasons a new one fixes (it expired in a slow network,
      // or the token it came from just did): ask again once. If the token itself is no longer
      // valid, the ticket request fails with 401 and that is fatal.
      this.scheduleRetry();
      return;
    }
    const fatal = FATAL_CLOSE_CODES.get(code);
    if (fatal) {
      this.setStatus({ reconnecting: false, fatal: reason ? `${fatal} (${reason})` : fatal });
      return;
    }
    this.scheduleRetry();
  }

  private scheduleRetry(): void {
    if (this.stopped) return;
    if (!this.opts.online.isOnline()) {
      this.setStatus({ offline: true, reconnecting: true, nextRetryAt: null });
      return;
    }
    const attempt = this.status.attempt;
    const delay = backoffDelay(attempt, this.opts.backoff, this.opts.random);
    this.setStatus({ reconnecting: true, attempt: attempt + 1, nextRetryAt: Date.now() + delay });
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      this.connect();
    }, delay);
  }

  private handleOffline(): void {
    if (this.stopped) return;
    this.generation++;
    this.connecting = false;
    // Browsers may keep a dead socket "open" for minutes: let it go and wait for the network.
    this.clearRetry();
    this.abandon(1000, "offline");
    this.setStatus({ connected: false, offline: true, reconnecting: true, nextRetryAt: null });
  }

  private handleOnline(): void {
    if (this.stopped) return;
    this.setStatus({ offline: false, attempt: 0 });
    if (!this.ws && !this.status.fatal) this.connect();
  }

  private touch(): void {
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.idleTimer = setTimeout(() => {
      // Nothing (not even a pong) for too long: the connection is dead without saying so.
      this.abandon(4000, "idle");
      this.setStatus({ connected: false });
      this.scheduleRetry();
    }, this.opts.idleTimeoutMs);
  }

  /** abandon closes the current socket and ignores anything it still says. */
  private abandon(code: number, reason: string): void {
    const ws = this.ws;
    this.detach();
    if (!ws) return;
    ws.onopen = ws.onmessage = ws.onclose = null;
    ws.onerror = () => {}; // a socket closed while connecting still reports an error
    try {
      if (ws.readyState === 0 || ws.readyState === 1) ws.close(code, reason);
    } catch {
      // Closing a half-open socket can throw in some runtimes; it is gone either way.
    }
  }

  private detach(): void {
    this.ws = null;
    if (this.pingTimer) clearInterval(this.pingTimer);
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.pingTimer = this.idleTimer = null;
  }

  private clearRetry(): void {
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = null;
  }

  private setStatus(patch: Partial<SocketStatus>): void {
    const next = { ...this.status, ...patch };
    const changed = (Object.keys(next) as (keyof SocketStatus)[]).some((k) => next[k] !== this.status[k]);
    if (!changed) return;
    this.status = next;
    this.opts.onStatus?.(next);
  }
}

export function defaultBaseUrl(): string {
  if (typeof location === "undefined") return "ws://127.0.0.1:8000";
  return `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}`;
}
