// TicketStore folds one ticket's WebSocket messages into the state the brief's hook returns
// (status, message, step, progress, error, logs, isConnected) plus cursor, runId and
// reconnecting, and a few details for the full component. It owns the ticket's one socket;
// the registry shares a store between every component watching the ticket.
//
// The state is persisted per ticket in sessionStorage together with its cursor, so a reload
// resumes from the cursor with the log it had, instead of starting over.

import { ResumableSocket, type SocketOptions, type SocketStatus } from "./socket";
import { browserStorage } from "./storage";
import { stepLabel, type LLMUsage, type LogEntry, type ServerMessage, type StatusUpdateMessage, type TicketStatus } from "./types";

export interface StepResult {
  outcome: string;
  durationMs: number | null;
}

export interface CIResult {
  passed: boolean;
  exitCode: number | null;
  iteration: number | null;
  durationMs: number | null;
}

/** What the brief's hook (useTicketProcessing) returns. */
export interface TicketProcessing {
  /** null until the server (or the ticket's saved state) says. */
  status: TicketStatus | null;
  message: string;
  step: string | null;
  progress: number;
  error: string | null;
  logs: LogEntry[];
  isConnected: boolean;
  /** Opaque resume point: the cursor of the last event received. */
  cursor: string | null;
  runId: string | null;
  reconnecting: boolean;
}

/** The hook's contract plus details for the full component. */
export interface TicketState extends TicketProcessing {
  offline: boolean;
  fatal: string | null;
  /** False while the first connection replays the current run; true once it is live. */
  live: boolean;
  /** Whether the latest status update happened now rather than being history replayed. */
  statusLive: boolean;
  /** Lines dropped from the front of the log to bound memory. */
  droppedLogs: number;
  steps: Record<string, StepResult>;
  ci: CIResult | null;
  /** Tokens and cost of the current run's LLM calls (null before the first). */
  llm: LLMUsage | null;
  notice: string | null;
  nextRetryAt: number | null;
  lastMessageAt: number | null;
}

export const initialTicketState: TicketState = {
  status: null,
  message: "",
  step: null,
  progress: 0,
  error: null,
  logs: [],
  isConnected: false,
  cursor: null,
  runId: null,
  reconnecting: false,
  offline: false,
  fatal: null,
  live: false,
  statusLive: false,
  droppedLogs: 0,
  steps: {},
  ci: null,
  llm: null,
  notice: null,
  nextRetryAt: null,
  lastMessageAt: null,
};

/** Seed for the state before the socket says anything (e.g. from GET /api/tickets/{id}). */
export interface TicketSeed {
  status: TicketStatus;
  message?: string;
  step?: string;
  progress?: number;
  error?: string;
  runId?: string;
}

export interface TicketStoreOptions extends Omit<SocketOptions, "path" | "onMessage" | "onStatus" | "onCursor" | "initialCursor" | "seenEventIds"> {
  storage?: Storage | null;
  /** Upper bound on log lines kept in memory. */
  maxLogs?: number;
  /** Minimum time between two notifications of subscribers (batches bursts). */
  flushIntervalMs?: number;
  seed?: (ticketId: string) => Promise<TicketSeed | null>;
}

const PERSIST_VERSION = 1;
/** Above this many characters the state is not persisted (sessionStorage holds ~5 MB). */
const PERSIST_LIMIT = 2_000_000;
const TERMINAL: TicketStatus[] = ["COMPLETED", "FAILED", "CANCELLED", "VALIDATED"];

export const storageKey = (ticketId: string) => `ticketflow.ticket.${ticketId}`;

interface Persisted {
  v: number;
  cursor: string;
  state: Pick<TicketState, "status" | "message" | "step" | "progress" | "error" | "logs" | "runId" | "droppedLogs" | "steps" | "ci" | "llm">;
}

export class TicketStore {
  readonly ticketId: string;
  private state: TicketState;
  private snapshot: TicketState;
  private logs: LogEntry[];
  /** Approximate JSON size of the logs, to skip persisting what would not fit. */
  private logChars = 0;
  private listeners = new Set<() => void>();
  private flushTimer: ReturnType<typeof setTimeout> | null = null;
  private persistTimer: ReturnType<typeof setTimeout> | null = null;
  private lastFlush = 0;
  private socket: ResumableSocket;
  private statusReceived = false;
  private resumed: boolean;
  private readonly storage: Storage | null;
  private readonly maxLogs: number;
  private readonly flushIntervalMs: number;
  private readonly seed?: (ticketId: string) => Promise<TicketSeed | null>;
  private readonly onPageHide = () => this.persistNow();

  constructor(ticketId: string, opts: TicketStoreOptions) {
    this.ticketId = ticketId;
    this.storage = opts.storage === undefined ? browserStorage("sessionStorage") : opts.storage;
    this.maxLogs = opts.maxLogs ?? 20_000;
    this.flushIntervalMs = opts.flushIntervalMs ?? 50;
    this.seed = opts.seed;

    const restored = this.restore();
    this.resumed = !!restored;
    this.state = { ...initialTicketState, ...(restored?.state ?? {}), cursor: restored?.cursor ?? null, live: !!restored };
    this.logs = [...this.state.logs];
    this.logChars = this.logs.reduce((n, e) => n + logSize(e), 0);
    this.snapshot = { ...this.state, logs: this.logs.slice() };
    this.statusReceived = !!restored?.state.status;

    this.socket = new ResumableSocket({
      ...opts,
      path: `/ws/tickets/${encodeURIComponent(ticketId)}`,
      initialCursor: restored?.cursor ?? null,
      seenEventIds: this.logs.map((l) => l.id),
      onMessage: (m) => this.apply(m),
      onStatus: (s) => this.applySocketStatus(s),
      onCursor: (c) => {
        this.state.cursor = c;
      },
    });
  }

  start(): void {
    if (typeof window !== "undefined") window.addEventListener("pagehide", this.onPageHide);
    this.socket.start();
    if (!this.statusReceived && this.seed) {
      this.seed(this.ticketId)
        .then((seed) => {
          if (!seed || this.statusReceived) return;
          Object.assign(this.state, {
            status: seed.status,
            message: seed.message ?? "",
            step: seed.step || null,
            progress: seed.progress ?? 0,
            error: seed.error || null,
            runId: seed.runId || this.state.runId,
          });
          this.scheduleFlush();
        })
        .catch(() => {
          // The socket's own messages will fill the state; a failed seed only delays it.
        });
    }
  }

  stop(): void {
    if (typeof window !== "undefined") window.removeEventListener("pagehide", this.onPageHide);
    this.socket.stop();
    this.flushNow();
    this.persistNow();
  }

  retry(): void {
    this.socket.retryNow();
  }

  subscribe = (listener: () => void): (() => void) => {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  };

  getSnapshot = (): TicketState => this.snapshot;

  /** apply folds one server message into the state. */
  apply(msg: ServerMessage): void {
    const s = this.state;
    s.lastMessageAt = Date.now();
    if (msg.run_id && msg.event_id && msg.run_id !== s.runId && startsRun(msg)) {
      this.beginRun(msg.run_id);
    }
    switch (msg.type) {
      case "connected":
        s.notice = null;
        if (this.resumed) s.live = true;
        break;
      case "replay_complete":
        s.live = true;
        break;
      case "history_unavailable":
        // The server no longer has our resume point; it now sends the current state.
        this.beginRun(null);
        s.notice =
          typeof msg.message === "string" && msg.message
            ? msg.message
            : "L'historique n'est plus disponible à ce point : affichage de l'état actuel.";
        break;
      case "status_update":
        this.applyStatus(msg as StatusUpdateMessage);
        break;
      case "log":
        this.appendLog({
          id: msg.event_id ?? `${msg.timestamp ?? ""}-${this.logs.length}`,
          level: String(msg.level ?? "INFO").toUpperCase(),
          message: String(msg.message ?? ""),
          step: typeof msg.step === "string" && msg.step ? msg.step : undefined,
          timestamp: String(msg.timestamp ?? ""),
          runId: msg.run_id || undefined,
        });
        break;
      case "agent_tool": {
        const ok = msg.ok === true;
        const outcome = ok ? String(msg.result ?? "") : String(msg.error ?? "");
        this.appendLog({
          id: msg.event_id ?? `${msg.timestamp ?? ""}-${this.logs.length}`,
          level: "TOOL",
          message: `${ok ? "✓" : "✗"} ${String(msg.tool ?? "")} ${String(msg.arguments ?? "")} → ${outcome}`,
          step: "call_llm",
          timestamp: String(msg.timestamp ?? ""),
          runId: msg.run_id || undefined,
          tool: {
            name: String(msg.tool ?? ""),
            ok,
            arguments: String(msg.arguments ?? ""),
            result: String(msg.result ?? ""),
            error: String(msg.error ?? ""),
            durationMs: num(msg.duration_ms),
            iteration: num(msg.iteration),
          },
        });
        break;
      }
      case "llm_call": {
        const u = s.llm ?? { calls: 0, inputTokens: 0, outputTokens: 0, costUsd: 0 };
        s.llm = {
          calls: u.calls + 1,
          inputTokens: u.inputTokens + (num(msg.input_tokens) ?? 0),
          outputTokens: u.outputTokens + (num(msg.output_tokens) ?? 0),
          costUsd: u.costUsd + (num(msg.cost_usd) ?? 0),
        };
        break;
      }
      case "step_completed": {
        const step = String(msg.step ?? "");
        if (step) {
          s.steps = {
            ...s.steps,
            [step]: { outcome: String(msg.outcome ?? "ok"), durationMs: num(msg.duration_ms) },
          };
        }
        break;
      }
      case "ci_result":
        s.ci = {
          passed: !!msg.passed,
          exitCode: num(msg.exit_code),
          iteration: num(msg.iteration),
          durationMs: num(msg.duration_ms),
        };
        break;
      case "run_rejected":
        s.notice = `Demande refusée : ${String(msg.reason ?? "une exécution est déjà active")}`;
        break;
      case "cancel_requested":
        s.notice = "Annulation demandée…";
        break;
      case "changes_requested":
        s.notice = "Modifications demandées : une nouvelle itération va démarrer.";
        break;
      case "log_truncated":
        s.notice = `Sortie CI tronquée : ${num(msg.lines_emitted)} lignes sur ${num(msg.lines_total)} affichées ; la sortie complète est dans l'artefact ${String(msg.artifact ?? "")}.`;
        break;
      case "run_resumed":
        s.notice = `Exécution reprise par ${String(msg.owner ?? "un autre processeur")} (étape ${stepLabel(String(msg.step ?? ""))}).`;
        break;
      default:
        // Unknown types are ignored, as the contract requires.
        break;
    }
    if (msg.cursor && msg.event_id) s.cursor = msg.cursor;
    this.scheduleFlush();
  }

  private applyStatus(msg: StatusUpdateMessage): void {
    const s = this.state;
    this.statusReceived = true;
    // The server sends replay_complete on every connection, after the history: only what
    // follows it happened while we watched (toasts and callbacks fire for those alone).
    s.statusLive = !msg.snapshot && s.live;
    s.status = msg.status;
    s.message = typeof msg.message === "string" ? msg.message : "";
    if (typeof msg.step === "string" && msg.step) s.step = msg.step;
    else if (msg.status === "PENDING") s.step = null;
    const p = num(msg.progress);
    if (p !== null && (p > 0 || !TERMINAL.includes(msg.status))) s.progress = Math.max(0, Math.min(100, p));
    if (msg.status === "COMPLETED" || msg.status === "VALIDATED") s.progress = 100;
    s.error = typeof msg.error === "string" && msg.error ? msg.error : msg.status === "FAILED" ? s.message || "Erreur" : null;
    if (msg.status !== "PENDING" && msg.status !== "IN_PROGRESS") s.notice = null;
  }

  private beginRun(runId: string | null): void {
    const s = this.state;
    // A notice about the switch itself (history gone) stays; one about the old run goes.
    if (s.runId) s.notice = null;
    s.runId = runId;
    s.status = runId ? s.status : null;
    s.error = null;
    s.step = null;
    s.progress = 0;
    s.steps = {};
    s.ci = null;
    s.llm = null;
    s.droppedLogs = 0;
    this.logs = [];
    this.logChars = 0;
  }

  private appendLog(entry: LogEntry): void {
    this.logs.push(entry);
    this.logChars += logSize(entry);
    if (this.logs.length > this.maxLogs) {
      const drop = this.logs.length - this.maxLogs;
      for (const e of this.logs.splice(0, drop)) this.logChars -= logSize(e);
      this.state.droppedLogs += drop;
    }
  }

  private applySocketStatus(st: SocketStatus): void {
    Object.assign(this.state, {
      isConnected: st.connected,
      reconnecting: st.reconnecting,
      offline: st.offline,
      fatal: st.fatal,
      nextRetryAt: st.nextRetryAt,
    });
    this.scheduleFlush();
  }

  private scheduleFlush(): void {
    if (this.flushTimer) return;
    const wait = Math.max(0, this.flushIntervalMs - (Date.now() - this.lastFlush));
    this.flushTimer = setTimeout(() => this.flushNow(), wait);
  }

  /** flushNow publishes the state to subscribers (one snapshot per batch of messages). */
  flushNow(): void {
    if (this.flushTimer) clearTimeout(this.flushTimer);
    this.flushTimer = null;
    this.lastFlush = Date.now();
    const logs = this.snapshot.logs.length === this.logs.length && this.snapshot.logs[this.logs.length - 1] === this.logs[this.logs.length - 1]
      ? this.snapshot.logs
      : this.logs.slice();
    this.snapshot = { ...this.state, logs };
    this.listeners.forEach((l) => l());
    this.schedulePersist();
  }

  private schedulePersist(): void {
    if (!this.storage || this.persistTimer) return;
    this.persistTimer = setTimeout(() => {
      this.persistTimer = null;
      this.persistNow();
    }, 1000);
  }

  /** persistNow stores cursor and state together: a cursor is only useful with what it covers. */
  persistNow(): void {
    if (this.persistTimer) clearTimeout(this.persistTimer);
    this.persistTimer = null;
    if (!this.storage) return;
    const key = storageKey(this.ticketId);
    const cursor = this.state.cursor;
    try {
      if (!cursor) {
        this.storage.removeItem(key);
        return;
      }
      const s = this.state;
      if (this.logChars > PERSIST_LIMIT) {
        // Too big to keep (checked before paying for JSON.stringify): without a cursor the
        // next page load replays the run from its start instead.
        this.storage.removeItem(key);
        return;
      }
      const data: Persisted = {
        v: PERSIST_VERSION,
        cursor,
        state: {
          status: s.status,
          message: s.message,
          step: s.step,
          progress: s.progress,
          error: s.error,
          logs: this.logs,
          runId: s.runId,
          droppedLogs: s.droppedLogs,
          steps: s.steps,
          ci: s.ci,
          llm: s.llm,
        },
      };
      const json = JSON.stringify(data);
      if (json.length > PERSIST_LIMIT) {
        // Too big to keep: without a cursor the next page load replays the run from its start.
        this.storage.removeItem(key);
        return;
      }
      this.storage.setItem(key, json);
    } catch {
      try {
        this.storage.removeItem(key);
      } catch {
        // Storage unavailable: nothing is persisted, which is always safe.
      }
    }
  }

  private restore(): Persisted | null {
    if (!this.storage) return null;
    try {
      const raw = this.storage.getItem(storageKey(this.ticketId));
      if (!raw) return null;
      const p = JSON.parse(raw) as Persisted;
      if (p.v !== PERSIST_VERSION || typeof p.cursor !== "string" || !Array.isArray(p.state?.logs)) return null;
      return p;
    } catch {
      return null;
    }
  }
}

/** Messages that open a new run: everything of a run except notices about other runs. */
function startsRun(msg: ServerMessage): boolean {
  return msg.type !== "run_rejected" && msg.type !== "ticket_created";
}

function logSize(e: LogEntry): number {
  const tool = e.tool ? e.tool.arguments.length + e.tool.result.length + e.tool.error.length + 120 : 0;
  return e.message.length + e.id.length + e.timestamp.length + (e.step?.length ?? 0) + (e.runId?.length ?? 0) + 80 + tool;
}

function num(v: unknown): number | null {
  return typeof v === "number" && Number.isFinite(v) ? v : null;
}
