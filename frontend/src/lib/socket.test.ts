import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { WebSocket as NodeWebSocket } from "ws";
import { api } from "./api";
import { backoffDelay } from "./backoff";
import { ManualOnline } from "./online";
import { ResumableSocket, type WebSocketCtor } from "./socket";
import type { ServerMessage } from "./types";
import { event, settle, TestServer, waitFor } from "../test/server";

const WS = NodeWebSocket as unknown as WebSocketCtor;

let server: TestServer;
let sockets: ResumableSocket[] = [];
let ticketSeq = 0;
/** A distinct ticket per attempt, like POST /api/ws-tickets. */
const nextTicket = () => Promise.resolve(`tik-${++ticketSeq}`);

beforeEach(async () => {
  server = await TestServer.start();
});

afterEach(async () => {
  vi.useRealTimers();
  sockets.forEach((s) => s.stop());
  sockets = [];
  await server.close();
});

function open(opts: Partial<ConstructorParameters<typeof ResumableSocket>[0]> = {}) {
  const got: ServerMessage[] = [];
  const s = new ResumableSocket({
    path: "/ws/tickets/t1",
    baseUrl: server.baseUrl,
    getTicket: nextTicket,
    WebSocketImpl: WS,
    online: new ManualOnline(true),
    backoff: { baseMs: 20, maxMs: 100, factor: 2, jitter: 0.5 },
    onMessage: (m) => got.push(m),
    ...opts,
  });
  sockets.push(s);
  s.start();
  return { s, got };
}

describe("backoffDelay", () => {
  it("grows exponentially, is capped, and jitters within [50%, 100%] of the nominal delay", () => {
    const o = { baseMs: 500, maxMs: 30_000, factor: 2, jitter: 0.5 };
    expect([0, 1, 2, 3].map((a) => backoffDelay(a, o, () => 1))).toEqual([500, 1000, 2000, 4000]);
    expect(backoffDelay(20, o, () => 1)).toBe(30_000);
    expect(backoffDelay(20, o, () => 0)).toBe(15_000);
    for (let i = 0; i < 100; i++) {
      const d = backoffDelay(3, o);
      expect(d).toBeGreaterThanOrEqual(2000);
      expect(d).toBeLessThanOrEqual(4000);
    }
  });
});

describe("ResumableSocket", () => {
  it("connects with a ticket, delivers messages and pings", async () => {
    const { s, got } = open({ pingIntervalMs: 30 });
    await waitFor(() => server.conns.length === 1, 5000, "connection");
    expect(server.last().url.pathname).toBe("/ws/tickets/t1");
    expect(server.last().url.searchParams.get("ticket")).toMatch(/^tik-\d+$/);
    expect(server.last().url.searchParams.has("access_token")).toBe(false);
    expect(server.last().url.searchParams.has("cursor")).toBe(false);
    server.send(server.last(), event("log", 1, { level: "INFO", message: "hello" }));
    await waitFor(() => got.some((m) => m.type === "log"), 5000, "log");
    expect(s.currentStatus.connected).toBe(true);
    await waitFor(() => server.last().received.includes("ping"), 5000, "ping");
    await waitFor(() => got.some((m) => m.type === "pong"), 5000, "pong");
  });

  it("reconnects after a drop and resumes from the last cursor, dropping duplicates by event_id", async () => {
    const { s, got } = open();
    await waitFor(() => server.conns.length === 1);
    const first = server.last();
    server.send(first, event("log", 10, { level: "INFO", message: "a" }));
    server.send(first, event("log", 11, { level: "INFO", message: "b" }));
    await waitFor(() => got.filter((m) => m.type === "log").length === 2);
    expect(s.currentCursor).toBe("v1.3-11");

    first.ws.terminate(); // abrupt drop, no close frame
    await waitFor(() => server.conns.length === 2, 5000, "reconnection");
    const second = server.last();
    expect(second.url.searchParams.get("cursor")).toBe("v1.3-11");
    // Every attempt has a ticket of its own (they are single-use).
    expect(second.url.searchParams.get("ticket")).not.toBe(first.url.searchParams.get("ticket"));
    expect(second.url.searchParams.has("access_token")).toBe(false);

    // A server replaying one event too many: the client must not deliver it twice.
    server.send(second, event("log", 11, { level: "INFO", message: "b" }));
    server.send(second, event("log", 12, { level: "INFO", message: "c" }));
    await waitFor(() => got.filter((m) => m.type === "log").length >= 3);
    await settle(50);
    expect(got.filter((m) => m.type === "log").map((m) => m.message)).toEqual(["a", "b", "c"]);
    expect(s.currentCursor).toBe("v1.3-12");
  });

  it("waits a capped, jittered, exponentially growing delay between attempts", async () => {
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout", "setInterval", "clearInterval", "Date"] });
    server.refuseWith = 503;
    const statuses: number[] = [];
    const { s } = open({
      backoff: { baseMs: 1000, maxMs: 4000, factor: 2, jitter: 0.5 },
      random: () => 0.5,
      onStatus: (st) => statuses.push(st.attempt),
    });
    // Nominal 1000, 2000, 4000, 4000 (capped) → with jitter at 0.5: 750, 1500, 3000, 3000.
    const expected = [750, 1500, 3000, 3000];
    for (let i = 0; i < expected.length; i++) {
      await waitFor(() => server.handshakes === i + 1 && s.currentStatus.nextRetryAt !== null, 5000, `attempt ${i + 1}`);
      expect(s.currentStatus.reconnecting).toBe(true);
      vi.advanceTimersByTime(expected[i] - 1);
      await settle(30);
      expect(server.handshakes).toBe(i + 1);
      vi.advanceTimersByTime(1);
      await waitFor(() => server.handshakes === i + 2, 5000, `attempt ${i + 2}`);
    }
    // A successful connection resets the backoff.
    server.refuseWith = null;
    await waitFor(() => s.currentStatus.nextRetryAt !== null);
    vi.advanceTimersByTime(3000);
    await waitFor(() => s.currentStatus.connected && s.currentStatus.attempt === 0, 5000, "connected");
    expect(statuses).toContain(4);
  });

  it("stops retrying on a fatal close code and retries on demand", async () => {
    const { s } = open();
    await waitFor(() => server.conns.length === 1);
    server.last().ws.close(4403, "forbidden");
    await waitFor(() => s.currentStatus.fatal !== null, 5000, "fatal");
    await settle(300);
    expect(server.conns.length).toBe(1);
    s.retryNow();
    await waitFor(() => server.conns.length === 2, 5000, "manual retry");
  });

  it("gets each ticket from POST /api/ws-tickets with the bearer token in the header only", async () => {
    server.requireTicket = true;
    const getTicket = async () => (await api.wsTicket({ baseUrl: server.httpUrl, token: "the-jwt" })).ticket;
    const { s } = open({ getTicket });
    await waitFor(() => s.currentStatus.connected, 5000, "connected");
    server.last().ws.terminate();
    await waitFor(() => server.conns.length === 2 && s.currentStatus.connected, 5000, "reconnected");
    expect(server.ticketRequests).toEqual(["Bearer the-jwt", "Bearer the-jwt"]);
    for (const c of server.conns) {
      expect(c.url.searchParams.has("access_token")).toBe(false);
      expect(c.url.toString()).not.toContain("the-jwt");
    }
    expect(server.open.length).toBe(1);
  });

  it("after a 4401 asks for a new ticket once, then gives up", async () => {
    server.requireTicket = true;
    server.greet = false;
    let reuse = "";
    // A client that (wrongly) reuses its first ticket is refused every time after the first.
    const getTicket = async () => (reuse ||= (await api.wsTicket({ baseUrl: server.httpUrl, token: "t" })).ticket);
    const { s } = open({ getTicket });
    await waitFor(() => server.conns.length === 1);
    server.last().ws.close(4401, "token_expired");
    await waitFor(() => s.currentStatus.fatal !== null, 5000, "fatal");
    expect(server.conns.length).toBe(2);
    await settle(200);
    expect(server.conns.length).toBe(2);
  });

  it("a refused ticket request (401) is fatal; a failed one is retried", async () => {
    server.ticketStatus = 401;
    const getTicket = async () => (await api.wsTicket({ baseUrl: server.httpUrl, token: "t" })).ticket;
    const { s } = open({ getTicket });
    await waitFor(() => s.currentStatus.fatal !== null, 5000, "fatal");
    expect(server.handshakes).toBe(0);

    server.ticketStatus = 503;
    const second = open({ getTicket });
    await waitFor(() => server.ticketRequests.length >= 3, 5000, "retried ticket requests");
    expect(second.s.currentStatus.fatal).toBeNull();
    server.ticketStatus = null;
    await waitFor(() => second.s.currentStatus.connected, 5000, "connected after the server recovered");
  });

  it("drops a refused cursor (close 4400) and resumes without it", async () => {
    const { s } = open({ initialCursor: "v1.999-1" });
    await waitFor(() => server.conns.length === 1);
    expect(server.last().url.searchParams.get("cursor")).toBe("v1.999-1");
    server.last().ws.close(4400, "invalid_cursor");
    await waitFor(() => server.conns.length === 2, 5000, "retry");
    expect(server.last().url.searchParams.has("cursor")).toBe(false);
    expect(s.currentStatus.fatal).toBeNull();
  });

  it("after history_unavailable accepts the snapshot even if its event was seen", async () => {
    const { got } = open();
    await waitFor(() => server.conns.length === 1);
    server.send(server.last(), event("status_update", 7, { status: "IN_PROGRESS", progress: 50 }));
    server.send(server.last(), { type: "history_unavailable", requested_cursor: "v1.3-1", message: "gone" });
    server.send(server.last(), event("status_update", 7, { status: "IN_PROGRESS", progress: 50, snapshot: true }));
    await waitFor(() => got.filter((m) => m.type === "status_update").length === 2, 5000, "snapshot delivered");
  });

  it("treats a silent connection as dead", async () => {
    server.greet = false;
    const { s } = open({ idleTimeoutMs: 100, pingIntervalMs: 10_000 });
    await waitFor(() => server.conns.length === 1);
    await waitFor(() => server.conns.length >= 2, 5000, "reconnect after idle timeout");
    expect(s.currentStatus.fatal).toBeNull();
  });

  it("goes quiet while offline and reconnects with its cursor when the network returns", async () => {
    const online = new ManualOnline(true);
    const { s, got } = open({ online });
    await waitFor(() => server.conns.length === 1);
    server.send(server.last(), event("status_update", 5, { status: "IN_PROGRESS", progress: 20 }));
    await waitFor(() => got.some((m) => m.type === "status_update"));

    online.set(false);
    await waitFor(() => server.conns[0].closed, 5000, "socket closed when offline");
    expect(s.currentStatus.offline).toBe(true);
    expect(s.currentStatus.reconnecting).toBe(true);
    await settle(300); // several backoff periods: no attempt while offline
    expect(server.handshakes).toBe(1);

    online.set(true);
    await waitFor(() => server.conns.length === 2, 5000, "reconnect when online");
    expect(server.last().url.searchParams.get("cursor")).toBe("v1.3-5");
    await waitFor(() => s.currentStatus.connected);
    expect(s.currentStatus.offline).toBe(false);
  });

  it("starts offline without connecting", async () => {
    const online = new ManualOnline(false);
    const { s } = open({ online });
    await settle(200);
    expect(server.handshakes).toBe(0);
    expect(s.currentStatus.offline).toBe(true);
    online.set(true);
    await waitFor(() => server.conns.length === 1);
  });
});
