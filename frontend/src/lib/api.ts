// The ticketflow REST API, typed. Every call sends the bearer token; errors become ApiError
// with the server's stable code, network failures become NetworkError.

import { getToken, setToken } from "./auth";
import type { components } from "./generated/openapi";
import type { EventPage, LLMUsageDay, LLMUsageStats, Me, Run, RunArtifact, StepStats, Ticket } from "./types";

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = "ApiError";
  }
}

export class NetworkError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "NetworkError";
  }
}

export interface RequestOptions {
  idempotencyKey?: string;
  signal?: AbortSignal;
  baseUrl?: string;
  token?: string | null;
  fetchImpl?: typeof fetch;
}

type Listener = (err: ApiError) => void;
const unauthorizedListeners = new Set<Listener>();

/** onUnauthorized is told when the server rejects the token (the app shows the login page). */
export function onUnauthorized(l: Listener): () => void {
  unauthorizedListeners.add(l);
  return () => unauthorizedListeners.delete(l);
}

export async function request<T>(method: string, path: string, body?: unknown, opts: RequestOptions = {}): Promise<T> {
  const headers: Record<string, string> = { Accept: "application/json" };
  const token = opts.token === undefined ? getToken() : opts.token;
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (opts.idempotencyKey) headers["Idempotency-Key"] = opts.idempotencyKey;
  const f = opts.fetchImpl ?? fetch;
  let res: Response;
  try {
    res = await f((opts.baseUrl ?? "") + path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: opts.signal,
    });
  } catch (err) {
    if ((err as Error)?.name === "AbortError") throw err;
    throw new NetworkError(`Serveur injoignable (${(err as Error)?.message ?? String(err)})`);
  }
  const text = await res.text();
  let data: unknown = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  }
  if (!res.ok) {
    const e = (data as { error?: { code?: string; message?: string } } | null)?.error;
    const err = new ApiError(res.status, e?.code ?? `http_${res.status}`, e?.message ?? (res.statusText || `HTTP ${res.status}`));
    if (res.status === 401 && opts.token === undefined) {
      unauthorizedListeners.forEach((l) => l(err));
    }
    throw err;
  }
  return data as T;
}

export function newIdempotencyKey(): string {
  if (typeof crypto !== "undefined" && "randomUUID" in crypto) return crypto.randomUUID();
  return `${Date.now().toString(36)}-${Math.random().toString(36).slice(2)}`;
}

/** The body of POST /api/tickets (api/openapi.yaml TicketInput). */
export type CreateTicketInput = components["schemas"]["TicketInput"];

/** The 202 answer of POST /api/tickets/processing/start. */
export type StartResponse = components["schemas"]["RunAccepted"];

const q = (params: Record<string, string | number | undefined | null>) => {
  const s = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== "") s.set(k, String(v));
  const out = s.toString();
  return out ? `?${out}` : "";
};

export type WsTicket = components["schemas"]["WsTicket"];

export const api = {
  /** wsTicket asks for a single-use WebSocket ticket (valid ~30 s) for one connection attempt. */
  wsTicket: (opts: RequestOptions = {}) => request<WsTicket>("POST", "/api/ws-tickets", undefined, opts),
  me: (token?: string) => request<Me>("GET", "/api/me", undefined, token === undefined ? {} : { token }),
  listTickets: (params: { limit?: number; status?: string } = {}, signal?: AbortSignal) =>
    request<{ tickets: Ticket[] }>("GET", `/api/tickets${q({ limit: params.limit ?? 100, status: params.status })}`, undefined, { signal }),
  getTicket: (id: string, signal?: AbortSignal) => request<Ticket>("GET", `/api/tickets/${encodeURIComponent(id)}`, undefined, { signal }),
  createTicket: (input: CreateTicketInput, idempotencyKey: string) =>
    request<Ticket>("POST", "/api/tickets", input, { idempotencyKey }),
  runs: (id: string, signal?: AbortSignal) =>
    request<{ runs: Run[] }>("GET", `/api/tickets/${encodeURIComponent(id)}/runs`, undefined, { signal }),
  ticketEvents: (id: string, after?: string | null, limit = 500, signal?: AbortSignal) =>
    request<EventPage>("GET", `/api/tickets/${encodeURIComponent(id)}/events${q({ after, limit })}`, undefined, { signal }),
  runEvents: (runId: string, after?: string | null, limit = 500, signal?: AbortSignal) =>
    request<EventPage>("GET", `/api/runs/${encodeURIComponent(runId)}/events${q({ after, limit })}`, undefined, { signal }),
  artifacts: (runId: string, signal?: AbortSignal) =>
    request<{ run_id: string; artifacts: RunArtifact[] }>("GET", `/api/runs/${encodeURIComponent(runId)}/artifacts`, undefined, { signal }),
  stepAnalytics: (since: string, until: string, signal?: AbortSignal) =>
    request<{ steps: StepStats[] }>("GET", `/api/analytics/steps${q({ since, until })}`, undefined, { signal }),
  llmAnalytics: (since: string, until: string, signal?: AbortSignal) =>
    request<{ models: LLMUsageStats[]; daily: LLMUsageDay[] }>("GET", `/api/analytics/llm${q({ since, until })}`, undefined, { signal }),
};

/** downloadNdjson fetches an audit trail as NDJSON (with the token) and saves it as a file. */
export function downloadNdjson(path: string, filename: string): Promise<void> {
  return downloadFile(path, filename, "application/x-ndjson");
}

/**
 * downloadFile fetches path with the bearer token (the API takes it from the Authorization
 * header only, so a plain link cannot work) and saves the body as filename.
 */
export async function downloadFile(path: string, filename: string, accept = "*/*"): Promise<void> {
  const token = getToken();
  const res = await fetch(path, { headers: { Accept: accept, ...(token ? { Authorization: `Bearer ${token}` } : {}) } });
  if (!res.ok) throw new ApiError(res.status, `http_${res.status}`, `Export impossible (HTTP ${res.status})`);
  const blob = await res.blob();
  const url = URL.createObjectURL(blob);
  const a = document.createElement("a");
  a.href = url;
  a.download = filename;
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

export function logout(): void {
  setToken(null);
}
