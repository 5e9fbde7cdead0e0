// The run waterfall: one row per step attempt on a time axis, grouped by iteration, with the
// step's sub-operations (CI executions, log lines), computed from the run's own events alone
// (GET /api/runs/{run}/events): no tracing backend is involved.
//
// Events are folded in log order (one ticket's events share a partition, so that order is
// causal), not sorted by time: two processors' clocks may disagree a little, and a bar that
// starts a few milliseconds before the previous one ends is drawn as it happened.

import { stepLabel, type Envelope } from "./types";

export type RowOutcome = "ok" | "failed" | "running" | "interrupted" | "cancelled";

/** A sub-operation of a step attempt drawn as a bar inside its row: a CI execution. */
export interface SubOperation {
  kind: "ci";
  label: string;
  /** ms since the epoch. */
  start: number;
  end: number;
  durationMs: number;
  outcome: "ok" | "failed";
  exitCode: number | null;
  /** Output lines received as events (stdout/stderr) and, when truncated, the total. */
  lines: number;
  linesTotal: number | null;
  artifact: string | null;
}

/** An instant within a step attempt: a warning or error line, a truncated output, a takeover. */
export interface Mark {
  kind: "warn" | "error" | "truncated" | "resumed";
  at: number;
  label: string;
}

export interface WaterfallRow {
  /** Stable key: step, iteration and attempt (with an index when one repeats). */
  key: string;
  step: string;
  label: string;
  iteration: number;
  attempt: number;
  /** attempt > 1: the step was retried (a processor restarted or took the run over). */
  retry: boolean;
  start: number;
  /** null while the attempt is running. */
  end: number | null;
  /** The step's own measure (StepCompleted.duration_ms) when it has one, else end - start. */
  durationMs: number | null;
  outcome: RowOutcome;
  error: string | null;
  message: string;
  /** Log lines attributed to the attempt, of which warnings and errors. */
  logs: number;
  warnings: number;
  errors: number;
  subs: SubOperation[];
  marks: Mark[];
}

export interface IterationGroup {
  iteration: number;
  start: number;
  end: number | null;
  rows: WaterfallRow[];
}

export type RunOutcome = "running" | "completed" | "failed" | "cancelled";

export interface Waterfall {
  /** ms since the epoch of the axis' origin (the run's start). */
  start: number;
  /** The axis' end: the run's last event, or now while it runs. */
  end: number;
  outcome: RunOutcome | null;
  rows: WaterfallRow[];
  groups: IterationGroup[];
  /** Tick positions in ms from start, at a readable interval. */
  ticks: number[];
  /** Log lines outside any step (before the first, after the last). */
  runLogs: number;
}

const num = (v: unknown): number | null => (typeof v === "number" && Number.isFinite(v) ? v : null);
const str = (v: unknown): string => (typeof v === "string" ? v : "");
const time = (e: Envelope): number | null => {
  const t = Date.parse(e.occurred_at);
  return Number.isNaN(t) ? null : t;
};

/** Readable tick intervals, in ms. */
const TICK_STEPS = [10, 25, 50, 100, 250, 500, 1e3, 2e3, 5e3, 10e3, 15e3, 30e3, 60e3, 120e3, 300e3, 600e3, 900e3, 1800e3, 3600e3, 7200e3];

/** ticksFor returns tick offsets (ms) from 0 to span at an interval giving at most ~max ticks. */
export function ticksFor(span: number, max = 6): number[] {
  if (!(span > 0)) return [0];
  const step = TICK_STEPS.find((s) => span / s <= max) ?? Math.ceil(span / max / 3600e3) * 3600e3;
  const out: number[] = [];
  for (let t = 0; t <= span + 1e-9; t += step) out.push(t);
  return out;
}

/**
 * computeWaterfall folds a run's events into waterfall rows. now (ms since the epoch) ends the
 * bars of attempts still running, and the axis, while the run has no terminal event.
 */
export function computeWaterfall(events: readonly Envelope[], now: number): Waterfall {
  const rows: WaterfallRow[] = [];
  const keys = new Map<string, number>();
  let open: WaterfallRow | null = null;
  let runStart: number | null = null;
  let first: number | null = null;
  let last: number | null = null;
  let outcome: RunOutcome | null = null;
  let iteration = 1;
  let runLogs = 0;
  let pendingMark: Mark | null = null;

  const close = (r: WaterfallRow, at: number, o: RowOutcome) => {
    r.end = Math.max(at, r.start);
    r.outcome = o;
    if (r.durationMs === null) r.durationMs = r.end - r.start;
  };
  const newRow = (step: string, iter: number, attempt: number, start: number, message: string): WaterfallRow => {
    const base = `${step}#${iter}.${attempt}`;
    const n = keys.get(base) ?? 0;
    keys.set(base, n + 1);
    const r: WaterfallRow = {
      key: n ? `${base}-${n}` : base,
      step,
      label: stepLabel(step),
      iteration: iter,
      attempt,
      retry: attempt > 1,
      start,
      end: null,
      durationMs: null,
      outcome: "running",
      error: null,
      message,
      logs: 0,
      warnings: 0,
      errors: 0,
      subs: [],
      marks: [],
    };
    rows.push(r);
    return r;
  };
  /** The row an instant belongs to: the open attempt, else the last one that covers it. */
  const rowAt = (at: number, step: string): WaterfallRow | null => {
    if (open && (!step || open.step === step)) return open;
    for (let i = rows.length - 1; i >= 0; i--) {
      const r = rows[i];
      if ((!step || r.step === step) && r.start <= at && (r.end === null || at <= r.end)) return r;
    }
    if (step) {
      for (let i = rows.length - 1; i >= 0; i--) if (rows[i].step === step) return rows[i];
    }
    return open;
  };

  for (const e of events) {
    const at = time(e);
    if (at === null) continue;
    first = first === null ? at : Math.min(first, at);
    last = last === null ? at : Math.max(last, at);
    const d = e.data ?? {};
    switch (e.type) {
      case "RunStarted":
        runStart ??= at;
        iteration = num(d.iteration) ?? iteration;
        break;
      case "StepStarted": {
        const step = str(d.step);
        if (!step) break;
        // An attempt still open when the next one starts was interrupted (processor restart,
        // takeover): it never completed.
        if (open) close(open, at, "interrupted");
        iteration = num(d.iteration) || iteration;
        open = newRow(step, iteration, num(d.attempt) || 1, at, str(d.message));
        if (pendingMark) {
          open.marks.push(pendingMark);
          pendingMark = null;
        }
        break;
      }
      case "StepCompleted": {
        const step = str(d.step);
        if (!step) break;
        const iter = num(d.iteration) || iteration;
        const attempt = num(d.attempt) || 1;
        const dur = num(d.duration_ms);
        let r: WaterfallRow | null = null;
        if (open && open.step === step) r = open;
        else r = [...rows].reverse().find((x) => x.step === step && x.iteration === iter && x.attempt === attempt && x.outcome === "running") ?? null;
        // A completion without its start (a page boundary, an older run): from its duration.
        r ??= newRow(step, iter, attempt, dur !== null ? at - dur : at, "");
        if (dur !== null) r.durationMs = dur;
        close(r, at, str(d.outcome) === "failed" ? "failed" : "ok");
        r.error = str(d.error) || null;
        if (r === open) open = null;
        break;
      }
      case "LogEmitted": {
        const step = str(d.step);
        const r = rowAt(at, step);
        if (!r) {
          runLogs++;
          break;
        }
        r.logs++;
        const level = str(d.level).toUpperCase();
        if (level === "WARN" || level === "WARNING") {
          r.warnings++;
          r.marks.push({ kind: "warn", at, label: str(d.message) });
        } else if (level === "ERROR") {
          r.errors++;
          r.marks.push({ kind: "error", at, label: str(d.message) });
        }
        if (str(d.stream)) {
          // CI output: counted on the CI execution it belongs to (which ends with its CIResult).
          const ci = r.subs.find((s) => s.end >= at && s.start <= at) ?? pendingCI(r);
          ci.lines++;
        }
        break;
      }
      case "LogTruncated": {
        const r = rowAt(at, str(d.step));
        if (!r) break;
        const ci = pendingCI(r);
        ci.linesTotal = num(d.lines_total);
        ci.artifact = str(d.artifact) || null;
        r.marks.push({
          kind: "truncated",
          at,
          label: `Sortie tronquée : ${num(d.lines_emitted) ?? 0} lignes sur ${num(d.lines_total) ?? 0} (${str(d.artifact)})`,
        });
        break;
      }
      case "CIResult": {
        const r = rowAt(at, "run_ci") ?? rowAt(at, "");
        if (!r) break;
        const dur = num(d.duration_ms) ?? 0;
        const ci = pendingCI(r);
        const passed = !!d.passed;
        Object.assign(ci, {
          start: Math.max(r.start, at - dur),
          end: at,
          durationMs: dur,
          outcome: passed ? "ok" : "failed",
          exitCode: num(d.exit_code),
          label: `CI ${passed ? "réussie" : "en échec"}${num(d.exit_code) !== null ? ` (code ${num(d.exit_code)})` : ""}`,
        });
        ci.done = true;
        break;
      }
      case "RunResumed": {
        const mark: Mark = { kind: "resumed", at, label: `Reprise par ${str(d.owner) || "un autre processeur"}` };
        if (open) {
          open.marks.push(mark);
          close(open, at, "interrupted");
          open = null;
        } else pendingMark = mark;
        break;
      }
      case "RunCompleted":
      case "RunFailed":
      case "RunCancelled": {
        outcome = e.type === "RunCompleted" ? "completed" : e.type === "RunFailed" ? "failed" : "cancelled";
        if (open) {
          close(open, at, outcome === "completed" ? "ok" : outcome === "failed" ? "failed" : "cancelled");
          if (outcome === "failed") open.error ??= str(d.error) || str(d.message) || null;
          open = null;
        }
        break;
      }
      default:
        break;
    }
  }

  // A CI execution still without its CIResult runs until now (or the attempt's end).
  for (const r of rows) {
    for (const s of r.subs as PendingCI[]) {
      if (s.done) continue;
      s.end = r.end ?? (outcome ? (last ?? s.start) : Math.max(now, s.start));
      s.durationMs = s.end - s.start;
      if (r.end !== null) s.outcome = r.outcome === "ok" ? "ok" : "failed";
    }
    for (const s of r.subs as PendingCI[]) delete s.done;
  }
  if (!outcome && rows.length > 0) outcome = "running";

  const start = runStart ?? (rows.length ? Math.min(...rows.map((r) => r.start)) : (first ?? now));
  const ends = rows.map((r) => r.end ?? now);
  let end = outcome === "running" || (!outcome && open) ? Math.max(now, ...ends) : Math.max(last ?? start, ...ends);
  if (end < start) end = start;

  const groups: IterationGroup[] = [];
  for (const r of rows) {
    let g = groups[groups.length - 1];
    if (!g || g.iteration !== r.iteration) {
      g = { iteration: r.iteration, start: r.start, end: r.end, rows: [] };
      groups.push(g);
    }
    g.rows.push(r);
    g.start = Math.min(g.start, r.start);
    g.end = g.rows.some((x) => x.end === null) ? null : Math.max(...g.rows.map((x) => x.end as number));
  }

  return { start, end, outcome, rows, groups, ticks: ticksFor(end - start), runLogs };

  interface PendingCI extends SubOperation {
    done?: boolean;
  }
  /** pendingCI is the attempt's CI execution that has not reported its result yet. */
  function pendingCI(r: WaterfallRow): PendingCI {
    const subs = r.subs as PendingCI[];
    let ci = subs.find((s) => !s.done);
    if (!ci) {
      // Its start is unknown until CIResult says how long it took: from the attempt's start,
      // or from the end of the previous execution of the attempt.
      const prev = subs[subs.length - 1];
      ci = {
        kind: "ci",
        label: "CI en cours",
        start: prev ? prev.end : r.start,
        end: prev ? prev.end : r.start,
        durationMs: 0,
        outcome: "ok",
        exitCode: null,
        lines: 0,
        linesTotal: null,
        artifact: null,
      };
      subs.push(ci);
    }
    return ci;
  }
}

/** Position of [a, b] on the axis of w, as percentages (left, width), clamped to [0, 100]. */
export function placement(w: Pick<Waterfall, "start" | "end">, a: number, b: number): { left: number; width: number } {
  const span = Math.max(1, w.end - w.start);
  const left = Math.min(100, Math.max(0, ((a - w.start) / span) * 100));
  const right = Math.min(100, Math.max(left, ((b - w.start) / span) * 100));
  return { left, width: right - left };
}
