import { describe, expect, it } from "vitest";
import { runEvent, T0 } from "../test/runEvents";
import type { Envelope } from "./types";
import { computeWaterfall, placement, ticksFor } from "./waterfall";

let seq = 0;
/** ev builds the next envelope of the run at T0 + sec seconds. */
const ev = (type: string, sec: number, data: Record<string, unknown> = {}): Envelope => runEvent(++seq, type, sec, data);
const started = (sec: number, step: string, iteration = 1, attempt = 1) => ev("StepStarted", sec, { step, iteration, attempt, progress: 0, message: `start ${step}` });
const completed = (sec: number, step: string, durationSec: number, iteration = 1, attempt = 1, outcome = "ok", error?: string) =>
  ev("StepCompleted", sec, { step, iteration, attempt, outcome, duration_ms: durationSec * 1000, ...(error ? { error } : {}) });
const log = (sec: number, step: string, message: string, level = "INFO", stream?: string) => ev("LogEmitted", sec, { step, message, level, ...(stream ? { stream } : {}) });

/** A run whose CI fails on iteration 1 and passes on iteration 2, then awaits validation. */
function twoIterationRun(): Envelope[] {
  return [
    ev("TicketProcessingRequested", -1, { requested_by: "me" }),
    ev("RunStarted", 0, { iteration: 1, max_iterations: 3, executor: "simulated" }),
    started(0, "check_iterations"),
    completed(0.1, "check_iterations", 0.1),
    started(0.1, "prepare_repository"),
    log(0.5, "prepare_repository", "cloning"),
    completed(2, "prepare_repository", 1.9),
    started(2, "call_llm"),
    log(3, "call_llm", "rate limited, retrying", "WARN"),
    completed(12, "call_llm", 10),
    started(12, "run_ci"),
    log(13, "run_ci", "npm test", "INFO", "stdout"),
    log(14, "run_ci", "1 failing", "ERROR", "stderr"),
    ev("CIResult", 17, { iteration: 1, passed: false, exit_code: 1, duration_ms: 4000 }),
    completed(17, "run_ci", 5),
    started(17, "handle_ci_result"),
    completed(17.2, "handle_ci_result", 0.2),
    started(17.2, "call_llm", 2),
    completed(25, "call_llm", 7.8, 2),
    started(25, "run_ci", 2),
    log(26, "run_ci", "ok", "INFO", "stdout"),
    log(26.5, "run_ci", "ok 2", "INFO", "stdout"),
    ev("CIResult", 29, { iteration: 2, passed: true, exit_code: 0, duration_ms: 3000 }),
    completed(29, "run_ci", 4, 2),
    started(29, "await_validation", 2),
    ev("RunCompleted", 29.5, { iteration: 2, message: "CI passed" }),
  ];
}

describe("computeWaterfall", () => {
  it("makes one row per step attempt, grouped by iteration, on the run's time axis", () => {
    const w = computeWaterfall(twoIterationRun(), T0 + 3_600_000);
    expect(w.outcome).toBe("completed");
    expect(w.start).toBe(T0);
    // A finished run's axis ends at its last event, not at now.
    expect(w.end).toBe(T0 + 29_500);
    expect(w.rows.map((r) => `${r.iteration}:${r.step}`)).toEqual([
      "1:check_iterations",
      "1:prepare_repository",
      "1:call_llm",
      "1:run_ci",
      "1:handle_ci_result",
      "2:call_llm",
      "2:run_ci",
      "2:await_validation",
    ]);
    expect(w.groups.map((g) => [g.iteration, g.rows.length])).toEqual([
      [1, 5],
      [2, 3],
    ]);
    expect(w.groups[0].start).toBe(T0);
    expect(w.groups[0].end).toBe(T0 + 17_200);

    const llm = w.rows[2];
    expect(llm.start).toBe(T0 + 2000);
    expect(llm.end).toBe(T0 + 12_000);
    expect(llm.durationMs).toBe(10_000);
    expect(llm.outcome).toBe("ok");
    expect(llm.warnings).toBe(1);
    expect(llm.marks).toEqual([{ kind: "warn", at: T0 + 3000, label: "rate limited, retrying" }]);

    // The CI execution is a sub-operation ending at its CIResult, as long as it took.
    const ci1 = w.rows[3];
    expect(ci1.subs).toHaveLength(1);
    expect(ci1.subs[0]).toMatchObject({ kind: "ci", start: T0 + 13_000, end: T0 + 17_000, durationMs: 4000, outcome: "failed", exitCode: 1, lines: 2 });
    expect(ci1.errors).toBe(1);
    expect(w.rows[6].subs[0]).toMatchObject({ outcome: "ok", exitCode: 0, lines: 2, durationMs: 3000 });

    // The step open when the run completed (awaiting validation) ends with the run.
    const awaiting = w.rows[7];
    expect(awaiting.outcome).toBe("ok");
    expect(awaiting.end).toBe(T0 + 29_500);
    expect(w.rows.every((r) => !r.retry)).toBe(true);
    expect(new Set(w.rows.map((r) => r.key)).size).toBe(w.rows.length);
  });

  it("shows an interrupted attempt and its retry after a takeover", () => {
    const w = computeWaterfall(
      [
        ev("RunStarted", 0, { iteration: 1 }),
        started(0, "call_llm"),
        log(1, "call_llm", "calling model"),
        ev("RunResumed", 40, { owner: "processor-b", previous_owner: "processor-a", step: "call_llm", attempt: 2, iteration: 1 }),
        started(40, "call_llm", 1, 2),
        completed(50, "call_llm", 10, 1, 2),
      ],
      T0 + 60_000,
    );
    expect(w.rows).toHaveLength(2);
    const [first, retry] = w.rows;
    expect(first).toMatchObject({ attempt: 1, retry: false, outcome: "interrupted", end: T0 + 40_000, logs: 1 });
    expect(first.marks.map((m) => m.kind)).toEqual(["resumed"]);
    expect(first.marks[0].label).toContain("processor-b");
    expect(retry).toMatchObject({ attempt: 2, retry: true, outcome: "ok", start: T0 + 40_000, durationMs: 10_000 });
    expect(first.key).not.toBe(retry.key);
    expect(w.outcome).toBe("running");
  });

  it("marks an attempt interrupted when the next StepStarted comes without a completion", () => {
    const w = computeWaterfall([started(0, "run_ci"), started(30, "run_ci", 1, 2)], T0 + 45_000);
    expect(w.rows.map((r) => [r.attempt, r.outcome, r.end])).toEqual([
      [1, "interrupted", T0 + 30_000],
      [2, "running", null],
    ]);
  });

  it("draws a running step up to now, and the axis with it", () => {
    const events = [ev("RunStarted", 0, { iteration: 1 }), started(0, "check_iterations"), completed(1, "check_iterations", 1), started(1, "run_ci"), log(2, "run_ci", "building", "INFO", "stdout")];
    const w = computeWaterfall(events, T0 + 20_000);
    expect(w.outcome).toBe("running");
    const ci = w.rows[1];
    expect(ci.outcome).toBe("running");
    expect(ci.end).toBeNull();
    expect(w.end).toBe(T0 + 20_000);
    // The CI execution without its result yet runs until now.
    expect(ci.subs[0]).toMatchObject({ start: T0 + 1000, end: T0 + 20_000, lines: 1 });
    expect(w.groups[0].end).toBeNull();
    // Later, with the same events: the bar grew.
    expect(computeWaterfall(events, T0 + 30_000).end).toBe(T0 + 30_000);
  });

  it("closes the open step as failed or cancelled with the run", () => {
    const failed = computeWaterfall([started(0, "prepare_repository"), ev("RunFailed", 3, { step: "prepare_repository", message: "clone failed", error: "exit 128" })], T0 + 99_000);
    expect(failed.outcome).toBe("failed");
    expect(failed.rows[0]).toMatchObject({ outcome: "failed", end: T0 + 3000, error: "exit 128", durationMs: 3000 });

    const cancelled = computeWaterfall([started(0, "call_llm"), ev("RunCancelled", 5, { reason: "user" })], T0 + 99_000);
    expect(cancelled.outcome).toBe("cancelled");
    expect(cancelled.rows[0]).toMatchObject({ outcome: "cancelled", end: T0 + 5000 });
    expect(cancelled.end).toBe(T0 + 5000);
  });

  it("keeps a failed step's error", () => {
    const w = computeWaterfall([started(0, "commit_changes"), completed(2, "commit_changes", 2, 1, 1, "failed", "nothing to commit")], T0);
    expect(w.rows[0]).toMatchObject({ outcome: "failed", error: "nothing to commit" });
  });

  it("places a completion whose start it never saw from its duration", () => {
    const w = computeWaterfall([completed(10, "run_ci", 4)], T0 + 60_000);
    expect(w.rows[0]).toMatchObject({ start: T0 + 6000, end: T0 + 10_000, outcome: "ok" });
  });

  it("records a truncated CI output on its execution", () => {
    const w = computeWaterfall(
      [
        started(0, "run_ci"),
        log(1, "run_ci", "a", "INFO", "stdout"),
        log(2, "run_ci", "b", "INFO", "stderr"),
        ev("LogTruncated", 9, { step: "run_ci", iteration: 1, lines_total: 50000, bytes_total: 1e6, lines_emitted: 2, artifact: "ci-1.log" }),
        ev("CIResult", 9, { iteration: 1, passed: true, exit_code: 0, duration_ms: 8500 }),
        completed(9, "run_ci", 9),
      ],
      T0,
    );
    const r = w.rows[0];
    expect(r.subs).toHaveLength(1);
    expect(r.subs[0]).toMatchObject({ lines: 2, linesTotal: 50000, artifact: "ci-1.log", start: T0 + 500, end: T0 + 9000 });
    expect(r.marks.find((m) => m.kind === "truncated")?.label).toContain("ci-1.log");
  });

  it("counts log lines outside any step and ignores unknown events and bad timestamps", () => {
    const w = computeWaterfall(
      [log(0, "", "hello"), { ...ev("StepStarted", 1, { step: "x" }), occurred_at: "not a date" }, ev("SomethingNew", 2, { step: "call_llm" }), started(3, "call_llm")],
      T0 + 4000,
    );
    expect(w.runLogs).toBe(1);
    expect(w.rows.map((r) => r.step)).toEqual(["call_llm"]);
  });

  it("has no rows before the first step", () => {
    const w = computeWaterfall([ev("RunStarted", 0, { iteration: 1 })], T0 + 1000);
    expect(w.rows).toEqual([]);
    expect(w.outcome).toBeNull();
  });
});

describe("ticksFor and placement", () => {
  it("picks a readable interval", () => {
    expect(ticksFor(29_500)).toEqual([0, 5000, 10_000, 15_000, 20_000, 25_000]);
    expect(ticksFor(1000)).toEqual([0, 250, 500, 750, 1000]);
    expect(ticksFor(0)).toEqual([0]);
    expect(ticksFor(3 * 3600e3).length).toBeLessThanOrEqual(7);
  });

  it("clamps bars to the axis", () => {
    const w = { start: 1000, end: 2000 };
    expect(placement(w, 1250, 1500)).toEqual({ left: 25, width: 25 });
    // A clock a little behind (another processor) never draws outside or backwards.
    expect(placement(w, 900, 1100)).toEqual({ left: 0, width: 10 });
    expect(placement(w, 1500, 1400)).toEqual({ left: 50, width: 0 });
    expect(placement(w, 1900, 5000)).toEqual({ left: 90, width: 10 });
  });
});
