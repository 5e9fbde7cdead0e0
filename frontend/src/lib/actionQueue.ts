// ActionQueue sends the user's actions (start, cancel, approve, request changes). While the
// browser is offline, or the server cannot be reached, actions wait in a queue (kept in
// sessionStorage) and are sent in order when the network returns. Each action carries an
// Idempotency-Key fixed when it was queued, so a retry never starts a second run.

import { ApiError, NetworkError, newIdempotencyKey, request, type RequestOptions } from "./api";
import { browserOnline, type OnlineSource } from "./online";
import { browserStorage } from "./storage";

export interface QueuedAction {
  id: string;
  label: string;
  method: "POST";
  path: string;
  body?: unknown;
  idempotencyKey: string;
  queuedAt: number;
}

export type ActionOutcome =
  | { kind: "sent"; action: QueuedAction; response: unknown }
  | { kind: "failed"; action: QueuedAction; error: ApiError };

export interface ActionQueueOptions {
  online?: OnlineSource;
  storage?: Storage | null;
  storageKey?: string;
  requestOptions?: Omit<RequestOptions, "idempotencyKey">;
  /** While actions wait and the browser says online, retry this often (server unreachable). */
  retryIntervalMs?: number;
}

export type PerformResult = { queued: false; response: unknown } | { queued: true; action: QueuedAction };

export class ActionQueue {
  private queue: QueuedAction[] = [];
  private flushing = false;
  private listeners = new Set<() => void>();
  private outcomeListeners = new Set<(o: ActionOutcome) => void>();
  private retryTimer: ReturnType<typeof setInterval> | null = null;
  private readonly online: OnlineSource;
  private readonly storage: Storage | null;
  private readonly key: string;
  private readonly unsubscribe: () => void;

  constructor(private readonly opts: ActionQueueOptions = {}) {
    this.online = opts.online ?? browserOnline;
    this.storage = opts.storage === undefined ? browserStorage("sessionStorage") : opts.storage;
    this.key = opts.storageKey ?? "ticketflow.actions";
    this.queue = this.load();
    this.unsubscribe = this.online.subscribe((on) => {
      if (on) void this.flush();
    });
    this.updateRetry();
  }

  /** pending lists the actions waiting to be sent. */
  get pending(): readonly QueuedAction[] {
    return this.queue;
  }

  subscribe(l: () => void): () => void {
    this.listeners.add(l);
    return () => this.listeners.delete(l);
  }

  /** onOutcome is told the result of actions that were sent from the queue. */
  onOutcome(l: (o: ActionOutcome) => void): () => void {
    this.outcomeListeners.add(l);
    return () => this.outcomeListeners.delete(l);
  }

  /**
   * perform sends an action now if possible. Offline (or unreachable server) it is queued and
   * the result says so; a server error (4xx/5xx) is thrown to the caller as ApiError.
   */
  async perform(label: string, path: string, body?: unknown): Promise<PerformResult> {
    const action: QueuedAction = { id: newIdempotencyKey(), label, method: "POST", path, body, idempotencyKey: newIdempotencyKey(), queuedAt: Date.now() };
    if (!this.online.isOnline() || this.queue.length > 0) {
      // Keep order: once something waits, later actions wait behind it.
      this.push(action);
      if (this.online.isOnline()) void this.flush();
      return { queued: true, action };
    }
    try {
      const response = await this.send(action);
      return { queued: false, response };
    } catch (err) {
      if (err instanceof NetworkError) {
        this.push(action);
        return { queued: true, action };
      }
      throw err;
    }
  }

  /** flush sends queued actions in order, stopping at the first network failure. */
  async flush(): Promise<void> {
    if (this.flushing) return;
    this.flushing = true;
    try {
      while (this.queue.length > 0 && this.online.isOnline()) {
        const action = this.queue[0];
        try {
          const response = await this.send(action);
          this.shift();
          this.outcomeListeners.forEach((l) => l({ kind: "sent", action, response }));
        } catch (err) {
          if (err instanceof ApiError) {
            this.shift();
            this.outcomeListeners.forEach((l) => l({ kind: "failed", action, error: err }));
            continue;
          }
          break; // still unreachable: keep it, retry later
        }
      }
    } finally {
      this.flushing = false;
      this.updateRetry();
    }
  }

  dispose(): void {
    this.unsubscribe();
    if (this.retryTimer) clearInterval(this.retryTimer);
    this.retryTimer = null;
  }

  private send(a: QueuedAction): Promise<unknown> {
    return request(a.method, a.path, a.body, { ...this.opts.requestOptions, idempotencyKey: a.idempotencyKey });
  }

  private push(a: QueuedAction): void {
    this.queue = [...this.queue, a];
    this.changed();
  }

  private shift(): void {
    this.queue = this.queue.slice(1);
    this.changed();
  }

  private changed(): void {
    this.save();
    this.updateRetry();
    this.listeners.forEach((l) => l());
  }

  private updateRetry(): void {
    const want = this.queue.length > 0;
    if (want && !this.retryTimer) {
      this.retryTimer = setInterval(() => {
        if (this.online.isOnline()) void this.flush();
      }, this.opts.retryIntervalMs ?? 10_000);
    } else if (!want && this.retryTimer) {
      clearInterval(this.retryTimer);
      this.retryTimer = null;
    }
  }

  private save(): void {
    try {
      if (this.queue.length) this.storage?.setItem(this.key, JSON.stringify(this.queue));
      else this.storage?.removeItem(this.key);
    } catch {
      // The queue still works in memory.
    }
  }

  private load(): QueuedAction[] {
    try {
      const raw = this.storage?.getItem(this.key);
      const list = raw ? (JSON.parse(raw) as QueuedAction[]) : [];
      return Array.isArray(list) ? list.filter((a) => a && typeof a.path === "string" && typeof a.idempotencyKey === "string") : [];
    } catch {
      return [];
    }
  }
}

let shared: ActionQueue | null = null;

/** actions is the app's queue (created on first use). */
export function actions(): ActionQueue {
  shared ??= new ActionQueue();
  return shared;
}
