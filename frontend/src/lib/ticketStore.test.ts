import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { WebSocket as NodeWebSocket } from "ws";
import { ManualOnline } from "./online";
import { acquireTicket, closeAll, configureConnections, openTicketCount, releaseTicket } from "./registry";
import type { WebSocketCtor } from "./socket";
import { storageKey, TicketStore } from "./ticketStore";
import { event, MemoryStorage, settle, TestServer, waitFor } from "../test/server";

const WS = NodeWebSocket as unknown as WebSocketCtor;

let server: TestServer;
let stores: TicketStore[] = [];

beforeEach(async () => {
  server = await TestServer.start();
});

afterEach(async () => {
  stores.forEach((s) => s.stop());
  stores = [];
  closeAll();
  await server.close();
});

function store(storage: Storage | null = null, ticketId = "t1") {
  const s = new TicketStore(ticketId, {
    baseUrl: server.baseUrl,
    getTicket: () => Promise.resolve("tik"),
    WebSocketImpl: WS,
    online: new ManualOnline(true),
    backoff: { baseMs: 20, maxMs: 100, factor: 2, jitter: 0.5 },
    storage,
    flushIntervalMs: 10,
  });
  stores.push(s);
  s.start();
  return s;
}

/** A run as the notifier sends it: PENDING, steps with logs, COMPLETED. */
function runMessages(runId: string, from: number) {
  let o = from;
  const msgs: Record<string, unknown>[] = [event("status_update", o++, { status: "PENDING", progress: 0, message: "Traitement en cours de démarrage..." }, runId)];
  for (const [step, progress] of [["check_iterations", 5], ["prepare_repository", 20], ["run_ci", 85]] as const) {
    msgs.push(event("status_update", o++, { status: "IN_PROGRESS", step, progress, message: step }, runId));
    msgs.push(event("log", o++, { level: "INFO", message: `${step} line`, step }, runId));
    msgs.push(event("step_completed", o++, { step, outcome: "ok", duration_ms: 12 }, runId));
  }
  msgs.push(event("status_update", o++, { status: "COMPLETED", step: "await_validation", progress: 100, message: "done" }, runId));
  return msgs;
}

/** The log lines of a whole run from runMessages. */
const RUN_LINES = ["check_iterations line", "prepare_repository line", "run_ci line"];

/** sendAll sends the messages on the newest connection. */
function sendAll(msgs: Record<string, unknown>[]) {
  for (const m of msgs) server.send(server.last(), m);
}

const connections = (n: number) => waitFor(() => server.conns.length === n);
const logMessages = (s: TicketStore) => s.getSnapshot().logs.map((l) => l.message);
const completed = (s: TicketStore) => waitFor(() => s.getSnapshot().status === "COMPLETED");

/** startRun opens a store and waits until it has folded in the first n messages of run-1. */
async function startRun(n: number, storage: Storage | null = null) {
  const s = store(storage);
  await connections(1);
  const msgs = runMessages("run-1", 1);
  sendAll(msgs.slice(0, n));
  await waitFor(() => s.getSnapshot().cursor === `v1.3-${n}`);
  return { s, msgs };
}

describe("TicketStore", () => {
  it("shows the agent's tool calls inline with the log and sums the run's LLM cost, kept across a reload", async () => {
    const storage = new MemoryStorage();
    const s = store(storage);
    await connections(1);
    sendAll([
      event("status_update", 1, { status: "IN_PROGRESS", step: "call_llm", progress: 50, message: "LLM" }, "run-1"),
      event("log", 2, { level: "INFO", message: "Agent de code anthropic:claude", step: "call_llm" }, "run-1"),
      event("llm_call", 3, { iteration: 1, agent_step: 1, provider: "anthropic", model: "claude-sonnet-4-5", input_tokens: 1200, output_tokens: 80, cost_usd: 0.0048, latency_ms: 900, retries: 0 }, "run-1"),
      event("agent_tool", 4, { iteration: 1, agent_step: 1, tool: "search", arguments: '{"pattern":"TargetToFix"}', result: "pkg/p417/target.go:4: func TargetToFix() int {", ok: true, duration_ms: 12 }, "run-1"),
      event("llm_call", 5, { iteration: 1, agent_step: 2, provider: "anthropic", model: "claude-sonnet-4-5", input_tokens: 2000, output_tokens: 40, cost_usd: 0.0066, latency_ms: 700, retries: 1 }, "run-1"),
      event("agent_tool", 6, { iteration: 1, agent_step: 2, tool: "read_file", arguments: '{"path":"escape/passwd"}', error: "unsafe path", ok: false, duration_ms: 0 }, "run-1"),
    ]);
    await waitFor(() => s.getSnapshot().cursor === "v1.3-6");
    const snap = s.getSnapshot();
    expect(snap.logs.map((l) => [l.level, l.message])).toEqual([
      ["INFO", "Agent de code anthropic:claude"],
      ["TOOL", '✓ search {"pattern":"TargetToFix"} → pkg/p417/target.go:4: func TargetToFix() int {'],
      ["TOOL", '✗ read_file {"path":"escape/passwd"} → unsafe path'],
    ]);
    expect(snap.logs[1].tool).toMatchObject({ name: "search", ok: true, durationMs: 12, iteration: 1 });
    expect(snap.llm).toEqual({ calls: 2, inputTokens: 3200, outputTokens: 120, costUsd: expect.closeTo(0.0114, 10) });
    s.stop();
    stores = [];
    server.conns.length = 0;

    // A reload restores the cost with the log; a new run starts from nothing.
    const again = store(storage);
    expect(again.getSnapshot().llm?.calls).toBe(2);
    await connections(1);
    sendAll([event("status_update", 7, { status: "PENDING", progress: 0, message: "next" }, "run-2")]);
    await waitFor(() => again.getSnapshot().runId === "run-2");
    expect(again.getSnapshot().llm).toBeNull();
  });

  it("says when CI output was truncated and when another processor took the run over", async () => {
    const s = store();
    await connections(1);
    server.send(server.last(), event("log_truncated", 1, { step: "run_ci", iteration: 1, lines_total: 20000, bytes_total: 900000, lines_emitted: 10000, artifact: "ci-1.log" }, "run-1"));
    await waitFor(() => (s.getSnapshot().notice ?? "").includes("ci-1.log"));
    expect(s.getSnapshot().notice).toContain("10000 lignes sur 20000");
    server.send(server.last(), event("run_resumed", 2, { owner: "processor-2", previous_owner: "processor-1", step: "run_ci", attempt: 2 }, "run-1"));
    await waitFor(() => (s.getSnapshot().notice ?? "").includes("processor-2"));
  });

  it("folds the brief's messages into status, step, progress, logs", async () => {
    const s = store();
    await connections(1);
    const msgs = runMessages("run-1", 1);
    sendAll(msgs.slice(0, 5));
    await waitFor(() => s.getSnapshot().progress === 20);
    let st = s.getSnapshot();
    expect(st).toMatchObject({ status: "IN_PROGRESS", step: "prepare_repository", progress: 20, runId: "run-1", isConnected: true, cursor: "v1.3-5" });
    expect(st.logs.map((l) => l.message)).toEqual(["check_iterations line"]);
    expect(st.steps.check_iterations).toEqual({ outcome: "ok", durationMs: 12 });

    sendAll(msgs.slice(5));
    await completed(s);
    st = s.getSnapshot();
    expect(st.progress).toBe(100);
    expect(st.logs.map((l) => l.message)).toEqual(RUN_LINES);
    expect(st.logs.map((l) => l.id)).toEqual(["ev-run-1-3", "ev-run-1-6", "ev-run-1-9"]);
  });

  it("keeps the last progress on failure and reports the error", async () => {
    const s = store();
    await connections(1);
    server.send(server.last(), event("status_update", 1, { status: "IN_PROGRESS", step: "run_ci", progress: 85 }));
    server.send(server.last(), event("status_update", 2, { status: "FAILED", step: "handle_ci_result", message: "CI en échec", error: "exit 1" }));
    await waitFor(() => s.getSnapshot().status === "FAILED");
    expect(s.getSnapshot()).toMatchObject({ progress: 85, error: "exit 1", message: "CI en échec" });
  });

  it("starts a fresh log when a new run begins", async () => {
    const s = store();
    await connections(1);
    sendAll(runMessages("run-1", 1));
    await completed(s);
    sendAll(runMessages("run-2", 100));
    await waitFor(() => s.getSnapshot().runId === "run-2" && s.getSnapshot().status === "COMPLETED");
    expect(s.getSnapshot().logs.map((l) => l.id)).toEqual(["ev-run-2-102", "ev-run-2-105", "ev-run-2-108"]);
  });

  it("a dropped connection mid-run loses and doubles nothing", async () => {
    const { s, msgs } = await startRun(6);
    server.last().ws.terminate();
    await connections(2);
    const resumeAt = Number(server.last().url.searchParams.get("cursor")?.split("-")[1]);
    expect(resumeAt).toBe(6);
    // Replay from a little before the cursor (an at-least-once server), then the rest.
    sendAll(msgs.slice(resumeAt - 2));
    await completed(s);
    expect(logMessages(s)).toEqual(RUN_LINES);
  });

  it("persists state with its cursor so a reload resumes from the cursor with the same log", async () => {
    const storage = new MemoryStorage();
    const { s: a, msgs } = await startRun(7, storage);
    a.stop(); // page unload persists
    expect(JSON.parse(storage.getItem(storageKey("t1"))!).cursor).toBe("v1.3-7");

    const b = store(storage); // the reloaded page
    expect(logMessages(b)).toEqual(["check_iterations line", "prepare_repository line"]);
    await connections(2);
    expect(server.last().url.searchParams.get("cursor")).toBe("v1.3-7");
    sendAll(msgs.slice(6)); // includes one duplicate
    await completed(b);
    expect(logMessages(b)).toEqual(RUN_LINES);
  });

  it("starts over when the server says the history at the cursor is gone", async () => {
    const { s: a } = await startRun(4, new MemoryStorage());
    server.send(server.last(), { type: "history_unavailable", requested_cursor: "v1.3-4", message: "gone" });
    server.send(server.last(), event("status_update", 50, { status: "IN_PROGRESS", step: "call_llm", progress: 50 }));
    await waitFor(() => a.getSnapshot().progress === 50);
    expect(a.getSnapshot()).toMatchObject({ notice: "gone", logs: [], step: "call_llm", cursor: "v1.3-50" });
  });

  it("bounds the log kept in memory", async () => {
    const s = new TicketStore("t1", { baseUrl: server.baseUrl, WebSocketImpl: WS, online: new ManualOnline(true), storage: null, maxLogs: 100, flushIntervalMs: 5 });
    stores.push(s);
    s.start();
    await connections(1);
    for (let i = 1; i <= 250; i++) server.send(server.last(), event("log", i, { level: "INFO", message: `line ${i}` }));
    await waitFor(() => s.getSnapshot().cursor === "v1.3-250");
    s.flushNow();
    expect(s.getSnapshot().logs.length).toBe(100);
    expect(s.getSnapshot().logs[0].message).toBe("line 151");
    expect(s.getSnapshot().droppedLogs).toBe(150);
  });
});

describe("registry", () => {
  it("shares one socket per ticket and closes it after the last release", async () => {
    configureConnections({ baseUrl: server.baseUrl, WebSocketImpl: WS, online: new ManualOnline(true), storage: null, releaseGraceMs: 50, getTicket: () => Promise.resolve("tik") });
    const a = acquireTicket("t1");
    const b = acquireTicket("t1");
    const c = acquireTicket("t2");
    expect(a).toBe(b);
    expect(c).not.toBe(a);
    await connections(2);
    await settle(100);
    expect(server.conns.map((x) => x.url.pathname).sort()).toEqual(["/ws/tickets/t1", "/ws/tickets/t2"]);

    releaseTicket("t1");
    await settle(100);
    expect(server.open.length).toBe(2); // b still watches t1
    releaseTicket("t1");
    releaseTicket("t2");
    const again = acquireTicket("t2"); // reacquired within the grace period: same socket
    expect(again).toBe(c);
    await waitFor(() => server.open.length === 1, 5000, "t1 closed");
    expect(openTicketCount()).toBe(1);
    expect(server.open[0].url.pathname).toBe("/ws/tickets/t2");
  });
});
