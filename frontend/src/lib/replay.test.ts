import { describe, expect, it } from "vitest";
import { eventsAt, foldReplay, initialReplayState, isFinished, markers, reduceReplay, replayAt, replayLogs, schedule } from "./replay";
import type { Envelope } from "./types";

const T0 = Date.parse("2026-03-01T10:00:00Z");
let seq = 0;
function ev(type: string, sec: number, data: Record<string, unknown> = {}): Envelope {
  seq++;
  return { id: `ev-${seq}`, type, version: 1, ticket_id: "t1", run_id: "r1", occurred_at: new Date(T0 + sec * 1000).toISOString(), actor: "processor", data };
}
const started = (sec: number, step: string, progress: number, iteration = 1) => ev("StepStarted", sec, { step, progress, iteration, attempt: 1, message: `start ${step}` });
const completed = (sec: number, step: string, outcome = "ok") => ev("StepCompleted", sec, { step, outcome, duration_ms: 100, iteration: 1, attempt: 1 });
const log = (sec: number, step: string, message: string, level = "info") => ev("LogEmitted", sec, { step, message, level });

/** A run whose first CI fails and second passes, with a tool call and an LLM call. */
function run(): Envelope[] {
  return [
    ev("TicketProcessingRequested", 0, { requested_by: "me" }),
    ev("RunStarted", 0.1, { iteration: 1, max_iterations: 3, executor: "simulated" }),
    started(0.2, "check_iterations", 5),
    completed(0.3, "check_iterations"),
    started(0.4, "call_llm", 50),
    ev("AgentToolCalled", 0.5, { iteration: 1, agent_step: 1, tool: "read_file", arguments: "a.go", result: "12 lines", ok: true, duration_ms: 3 }),
    ev("LLMCallCompleted", 0.6, { iteration: 1, agent_step: 1, provider: "demo", model: "m", input_tokens: 100, output_tokens: 20, cost_usd: 0.01, latency_ms: 5, retries: 0 }),
    log(0.7, "call_llm", "patch written"),
    completed(0.8, "call_llm"),
    started(1, "run_ci", 85),
    log(1.1, "run_ci", "FAIL x_test", "error"),
    ev("CIResult", 1.2, { iteration: 1, passed: false, exit_code: 1, duration_ms: 200 }),
    completed(1.3, "run_ci", "failed"),
    started(601.3, "run_ci", 85, 2), // ten minutes idle
    log(601.4, "run_ci", "ok"),
    ev("CIResult", 601.5, { iteration: 2, passed: true, exit_code: 0, duration_ms: 100 }),
    completed(601.6, "run_ci"),
    ev("RunCompleted", 601.7, { iteration: 2, message: "done" }),
  ];
}

describe("replay reducer", () => {
  it("is pure: the same events give the same state, and the input state is unchanged", () => {
    const events = run();
    const a = replayAt(events, 11);
    const frozen = JSON.stringify(a);
    expect(replayAt(events, 11)).toEqual(a);
    reduceReplay(a, events[11]);
    expect(JSON.stringify(a)).toBe(frozen);
    expect(initialReplayState.position).toBe(0);
    expect(initialReplayState.steps).toEqual({});
  });

  it("seeking to the end gives the final state, however the playback got there", () => {
    const events = run();
    const final = replayAt(events, events.length);
    let s = initialReplayState;
    for (const k of [3, 4, 9, 10, 17, events.length]) s = foldReplay(s, events, k);
    expect(s).toEqual(final);
    expect(replayAt(events, events.length + 5)).toEqual(final);
    expect(final).toMatchObject({ position: events.length, status: "COMPLETED", step: "await_validation", progress: 100, message: "done", error: null, logCount: 4, toolCalls: 1 });
    expect(final.ci).toEqual({ passed: true, exitCode: 0, iteration: 2, durationMs: 100 });
    expect(final.llm).toEqual({ calls: 1, inputTokens: 100, outputTokens: 20, costUsd: 0.01 });
    expect(final.steps.run_ci.outcome).toBe("ok");
  });

  it("rebuilds the state at any point from the prefix", () => {
    const events = run();
    expect(replayAt(events, 0)).toEqual(initialReplayState);
    const mid = replayAt(events, 13); // after the first CI failed
    expect(mid).toMatchObject({ status: "IN_PROGRESS", step: "run_ci", progress: 85, logCount: 3, iteration: 1 });
    expect(mid.ci?.passed).toBe(false);
    expect(mid.steps).toEqual({
      check_iterations: { outcome: "ok", durationMs: 100 },
      call_llm: { outcome: "ok", durationMs: 100 },
      run_ci: { outcome: "failed", durationMs: 100 },
    });
    // Seeking back after playing forward is the same as seeking there directly.
    const forward = foldReplay(replayAt(events, 5), events, 13);
    expect(forward).toEqual(mid);
  });

  it("folds failures and cancellations into a status with its error", () => {
    const failed = replayAt([started(0, "run_ci", 85), ev("RunFailed", 1, { step: "run_ci", message: "CI failed", error: "exit 1" })], 2);
    expect(failed).toMatchObject({ status: "FAILED", step: "run_ci", error: "exit 1", progress: 85 });
    const cancelled = replayAt([started(0, "call_llm", 50), ev("RunCancelled", 1, { message: "Annulé", reason: "user" })], 2);
    expect(cancelled).toMatchObject({ status: "CANCELLED", step: "call_llm", error: "user" });
  });
});

describe("replay log", () => {
  it("is the LogEmitted and AgentToolCalled events in order, as the live view writes them", () => {
    const logs = replayLogs(run());
    expect(logs.map((l) => l.message)).toEqual(["✓ read_file a.go → 12 lines", "patch written", "FAIL x_test", "ok"]);
    expect(logs.map((l) => l.level)).toEqual(["TOOL", "INFO", "ERROR", "INFO"]);
    expect(logs[1]).toMatchObject({ step: "call_llm", timestamp: new Date(T0 + 700).toISOString(), runId: "r1" });
  });
});

describe("replay schedule", () => {
  it("divides the original times by the speed", () => {
    const events = run().slice(0, 13);
    const at1 = schedule(events, 1).at;
    const at10 = schedule(events, 10).at;
    expect(at1[0]).toBe(0);
    expect(at1[12]).toBeCloseTo(1300, 6);
    expect(at10[12]).toBeCloseTo(130, 6);
    for (let i = 1; i < at1.length; i++) expect(at1[i]).toBeGreaterThanOrEqual(at1[i - 1]);
  });

  it("shortens idle gaps to maxGapMs of real time and says so", () => {
    const events = run();
    const s = schedule(events, 50, 2000);
    // 600 s idle at 50× is 12 s: shortened to 2 s.
    expect(s.skipped).toEqual([{ index: 13, originalMs: 600_000, replayMs: 2000 }]);
    expect(s.at[13] - s.at[12]).toBe(2000);
    expect(s.duration).toBeCloseTo(1300 / 50 + 2000 + 400 / 50, 6);
    // At 1× the same gap is capped too; gaps under the cap are kept.
    expect(schedule(events, 1, 2000).skipped.map((g) => g.index)).toEqual([13]);
    expect(schedule(events, 50, 20_000).skipped).toEqual([]);
  });

  it("treats bad or backwards timestamps as no gap", () => {
    const a = ev("LogEmitted", 5);
    const b = { ...ev("LogEmitted", 3) };
    const c = { ...ev("LogEmitted", 6), occurred_at: "nonsense" };
    const d = ev("LogEmitted", 7);
    expect(Array.from(schedule([a, b, c, d], 1).at)).toEqual([0, 0, 0, 2000]);
  });

  it("finds how many events have played at a time", () => {
    const at = new Float64Array([0, 0, 10, 20, 20, 30]);
    expect([-1, 0, 5, 10, 19, 20, 29, 30, 99].map((t) => eventsAt(at, t))).toEqual([0, 2, 2, 3, 3, 5, 5, 6, 6]);
  });

  it("marks step starts, tool calls and CI results", () => {
    const m = markers(run());
    expect(m.map((x) => `${x.kind}@${x.index}`)).toEqual(["step@2", "step@4", "tool@5", "step@9", "ci@11", "step@13", "ci@15"]);
    expect(m[4]).toMatchObject({ passed: false, label: "CI en échec" });
  });
});

describe("isFinished", () => {
  it("is true for runs that ran and ended", () => {
    expect(["COMPLETED", "FAILED", "CANCELLED", "VALIDATED"].every(isFinished)).toBe(true);
    expect(["PENDING", "IN_PROGRESS", "REJECTED", "IDLE", "", null, undefined].some(isFinished)).toBe(false);
  });
});
