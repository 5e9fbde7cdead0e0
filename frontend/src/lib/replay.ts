// Replay of a finished run from its events (the audit trail), for the run page's player.
//
// Two pure parts:
//   - the state reducer: reduceReplay folds one event into the run's visible state (status,
//     step, progress, step results, CI, LLM usage, how many log lines so far); replayAt folds a
//     prefix. Seeking is replayAt(events, k): the same prefix always gives the same state, and
//     folding every event gives the final state.
//   - the schedule: when each event plays at a given speed (its original time divided by the
//     speed), with long idle gaps shortened to at most maxGapMs of real time.
//
// Log lines are not copied into the state (that would make a 10,000-line replay quadratic):
// replayLogs turns the events into the log once, and the state says how many of them are shown.

import type { CIResult, StepResult } from "./ticketStore";
import type { Envelope, LogEntry, TicketStatus } from "./types";

export interface ReplayState {
  /** Events folded so far. */
  position: number;
  status: TicketStatus | null;
  message: string;
  step: string | null;
  progress: number;
  error: string | null;
  steps: Record<string, StepResult>;
  ci: CIResult | null;
  iteration: number | null;
  /** Log lines (LogEmitted and AgentToolCalled) so far: the first logCount of replayLogs(events). */
  logCount: number;
  toolCalls: number;
  llm: { calls: number; inputTokens: number; outputTokens: number; costUsd: number } | null;
}

export const initialReplayState: ReplayState = {
  position: 0,
  status: null,
  message: "",
  step: null,
  progress: 0,
  error: null,
  steps: {},
  ci: null,
  iteration: null,
  logCount: 0,
  toolCalls: 0,
  llm: null,
};

const str = (v: unknown): string => (v === undefined || v === null ? "" : String(v));
const num = (v: unknown): number | null => (typeof v === "number" && Number.isFinite(v) ? v : null);
const clamp = (p: number) => Math.max(0, Math.min(100, p));

/** isLogEvent: the events that are a line of the run's log (as the live view shows them). */
export const isLogEvent = (e: Envelope): boolean => e.type === "LogEmitted" || e.type === "AgentToolCalled";

/**
 * reduceReplay is the pure state reducer: the state after ev, without changing s. It follows
 * the status sequence of libs/workflow (StatusUpdate) and the live view's folding (ticketStore).
 */
export function reduceReplay(s: ReplayState, ev: Envelope): ReplayState {
  const d = (ev.data ?? {}) as Record<string, unknown>;
  const next: ReplayState = { ...s, position: s.position + 1 };
  switch (ev.type) {
    case "TicketProcessingRequested":
      return { ...next, status: "PENDING", progress: 0, step: null, error: null, message: "Traitement en cours de démarrage..." };
    case "RunStarted":
      return { ...next, iteration: num(d.iteration) ?? s.iteration };
    case "StepStarted": {
      const attempt = num(d.attempt) ?? 1;
      const message = str(d.message) + (attempt > 1 ? ` (reprise, tentative ${attempt})` : "");
      return {
        ...next,
        status: "IN_PROGRESS",
        step: str(d.step) || s.step,
        progress: clamp(num(d.progress) ?? s.progress),
        message,
        iteration: num(d.iteration) ?? s.iteration,
      };
    }
    case "StepCompleted": {
      const step = str(d.step);
      if (!step) return next;
      return { ...next, steps: { ...s.steps, [step]: { outcome: str(d.outcome) || "ok", durationMs: num(d.duration_ms) } } };
    }
    case "LogEmitted":
      return { ...next, logCount: s.logCount + 1 };
    case "AgentToolCalled":
      return { ...next, logCount: s.logCount + 1, toolCalls: s.toolCalls + 1 };
    case "LLMCallCompleted": {
      const u = s.llm ?? { calls: 0, inputTokens: 0, outputTokens: 0, costUsd: 0 };
      return {
        ...next,
        llm: {
          calls: u.calls + 1,
          inputTokens: u.inputTokens + (num(d.input_tokens) ?? 0),
          outputTokens: u.outputTokens + (num(d.output_tokens) ?? 0),
          costUsd: u.costUsd + (num(d.cost_usd) ?? 0),
        },
      };
    }
    case "CIResult":
      return {
        ...next,
        ci: { passed: d.passed === true, exitCode: num(d.exit_code), iteration: num(d.iteration), durationMs: num(d.duration_ms) },
      };
    case "RunCompleted":
      return { ...next, status: "COMPLETED", step: "await_validation", progress: 100, message: str(d.message) || "Traitement terminé", error: null };
    case "RunFailed": {
      const message = str(d.message) || "Échec du traitement";
      return { ...next, status: "FAILED", step: str(d.step) || s.step, message, error: str(d.error) || message };
    }
    case "RunCancelled":
      return { ...next, status: "CANCELLED", step: str(d.step) || s.step, message: str(d.message) || "Traitement annulé", error: str(d.reason) || null };
    case "ValidationApproved":
      return { ...next, status: "VALIDATED", step: "await_validation", progress: 100, message: "Modifications validées", error: null };
    default:
      return next;
  }
}

/** foldReplay folds events[s.position, to) into s (playback moves forward with it). */
export function foldReplay(s: ReplayState, events: readonly Envelope[], to: number): ReplayState {
  let out = s;
  const end = Math.min(to, events.length);
  for (let i = s.position; i < end; i++) out = reduceReplay(out, events[i]);
  return out;
}

/** replayAt is the state after the first k events: what seeking to k shows. */
export function replayAt(events: readonly Envelope[], k: number): ReplayState {
  return foldReplay(initialReplayState, events, Math.max(0, k));
}

/** toLogEntry is the log line of a LogEmitted or AgentToolCalled event (as the live view writes it). */
export function toLogEntry(e: Envelope): LogEntry {
  const d = (e.data ?? {}) as Record<string, unknown>;
  if (e.type === "AgentToolCalled") {
    const ok = d.ok === true;
    return {
      id: e.id,
      level: "TOOL",
      message: `${ok ? "✓" : "✗"} ${str(d.tool)} ${str(d.arguments)} → ${ok ? str(d.result) : str(d.error)}`,
      step: "call_llm",
      timestamp: e.occurred_at,
      runId: e.run_id || undefined,
      tool: {
        name: str(d.tool),
        ok,
        arguments: str(d.arguments),
        result: str(d.result),
        error: str(d.error),
        durationMs: num(d.duration_ms),
        iteration: num(d.iteration),
      },
    };
  }
  return {
    id: e.id,
    level: (str(d.level) || "INFO").toUpperCase(),
    message: str(d.message),
    step: str(d.step) || undefined,
    timestamp: e.occurred_at,
    runId: e.run_id || undefined,
  };
}

/** replayLogs is the run's whole log, in event order; a state shows its first logCount lines. */
export function replayLogs(events: readonly Envelope[]): LogEntry[] {
  const out: LogEntry[] = [];
  for (const e of events) if (isLogEvent(e)) out.push(toLogEntry(e));
  return out;
}

/**
 * isFinished: the runs the player replays — those that ran and ended (libs/workflow's terminal
 * statuses), not those still going on nor a REJECTED request, which never ran.
 */
export const isFinished = (status: string | null | undefined): boolean =>
  status === "COMPLETED" || status === "FAILED" || status === "CANCELLED" || status === "VALIDATED";

export interface Gap {
  /** The event after the gap. */
  index: number;
  /** The gap in the run (ms) and what it lasts in the replay (ms of real time). */
  originalMs: number;
  replayMs: number;
}

export interface Schedule {
  /** at[i]: when event i plays, in ms of real time after the start of the replay. */
  at: Float64Array;
  /** Real-time length of the replay. */
  duration: number;
  /** The idle gaps that were shortened to maxGapMs, in order. */
  skipped: Gap[];
}

/**
 * schedule places every event at its original time (since the first event) divided by the
 * speed, a gap longer than maxGapMs of real time being shortened to maxGapMs. Unparseable or
 * out-of-order times count as no gap (the log's order is the order of the replay).
 */
export function schedule(events: readonly Envelope[], speed: number, maxGapMs = 2000): Schedule {
  const at = new Float64Array(events.length);
  const skipped: Gap[] = [];
  let t = 0;
  let prev = NaN;
  for (let i = 0; i < events.length; i++) {
    const ms = Date.parse(events[i].occurred_at);
    if (i > 0 && Number.isFinite(ms) && Number.isFinite(prev) && ms > prev) {
      const gap = (ms - prev) / speed;
      if (gap > maxGapMs) {
        skipped.push({ index: i, originalMs: ms - prev, replayMs: maxGapMs });
        t += maxGapMs;
      } else {
        t += gap;
      }
    }
    if (Number.isFinite(ms) && (!Number.isFinite(prev) || ms > prev)) prev = ms;
    at[i] = t;
  }
  return { at, duration: t, skipped };
}

/** eventsAt is how many events have played at time t of the schedule (those with at <= t). */
export function eventsAt(at: Float64Array, t: number): number {
  let lo = 0;
  let hi = at.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (at[mid] <= t) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

export type MarkerKind = "step" | "tool" | "ci";

export interface Marker {
  kind: MarkerKind;
  /** The event's index (seeking to the marker shows the state just after it). */
  index: number;
  label: string;
  /** For CI results. */
  passed?: boolean;
}

/** markers are the timeline's landmarks: step starts, the agent's tool calls, CI results. */
export function markers(events: readonly Envelope[]): Marker[] {
  const out: Marker[] = [];
  events.forEach((e, index) => {
    const d = (e.data ?? {}) as Record<string, unknown>;
    if (e.type === "StepStarted") out.push({ kind: "step", index, label: `Étape ${str(d.step)}${num(d.iteration) ? ` (itération ${str(d.iteration)})` : ""}` });
    else if (e.type === "AgentToolCalled") out.push({ kind: "tool", index, label: `Outil ${str(d.tool)} ${d.ok === true ? "réussi" : "en échec"}` });
    else if (e.type === "CIResult") out.push({ kind: "ci", index, label: `CI ${d.passed === true ? "réussie" : "en échec"}`, passed: d.passed === true });
  });
  return out;
}
