// @vitest-environment happy-dom
import { StrictMode } from "react";
import { createRoot, type Root } from "react-dom/client";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { WebSocket as NodeWebSocket } from "ws";
import { ManualOnline } from "../lib/online";
import { closeAll, configureConnections } from "../lib/registry";
import type { WebSocketCtor } from "../lib/socket";
import { event, MemoryStorage, TestServer, waitFor } from "../test/server";
import { useTicketProcessing, type TicketProcessing } from "./useTicketProcessing";

(globalThis as { IS_REACT_ACT_ENVIRONMENT?: boolean }).IS_REACT_ACT_ENVIRONMENT = false; // updates come from a real socket, not from act()

let server: TestServer;
let root: Root;
let container: HTMLElement;

beforeEach(async () => {
  server = await TestServer.start();
  configureConnections({
    baseUrl: server.baseUrl,
    getTicket: () => Promise.resolve("tik"),
    WebSocketImpl: NodeWebSocket as unknown as WebSocketCtor,
    online: new ManualOnline(true),
    storage: new MemoryStorage(),
    flushIntervalMs: 5,
    releaseGraceMs: 20,
    seed: undefined,
  });
  container = document.createElement("div");
  document.body.appendChild(container);
  root = createRoot(container);
});

afterEach(async () => {
  root.unmount();
  container.remove();
  closeAll();
  await server.close();
});

const seen: Record<string, TicketProcessing> = {};

function Probe({ name, ticketId }: { name: string; ticketId: string }) {
  const state = useTicketProcessing(ticketId);
  seen[name] = state;
  return (
    <p data-name={name}>
      {state.status ?? "?"} {state.progress} {state.logs.length}
    </p>
  );
}


describe("useTicketProcessing", () => {
  it("returns exactly the brief's fields plus cursor, runId and reconnecting", async () => {
    root.render(<Probe name="a" ticketId="t1" />);
    await waitFor(() => server.conns.length === 1);
    expect(Object.keys(seen.a).sort()).toEqual(
      ["status", "message", "step", "progress", "error", "logs", "isConnected", "cursor", "runId", "reconnecting"].sort(),
    );
  });

  it("two components watching a ticket share one socket and see the same state", async () => {
    root.render(
      <StrictMode>
        <Probe name="a" ticketId="t1" />
        <Probe name="b" ticketId="t1" />
      </StrictMode>,
    );
    await waitFor(() => server.conns.length === 1, 5000, "connection");
    const conn = server.last();
    server.send(conn, event("status_update", 1, { status: "IN_PROGRESS", step: "prepare_repository", progress: 20, message: "Préparation du repository..." }));
    server.send(conn, event("log", 2, { level: "INFO", message: "Clonage du repository..." }));
    await waitFor(() => seen.a?.logs.length === 1 && seen.b?.logs.length === 1, 5000, "state in both components");
    expect(seen.a).toMatchObject({ status: "IN_PROGRESS", step: "prepare_repository", progress: 20, isConnected: true, cursor: "v1.3-2", runId: "run-1", reconnecting: false });
    expect(seen.b.logs).toBe(seen.a.logs);
    expect(server.handshakes).toBe(1);
    await waitFor(() => container.textContent === "IN_PROGRESS 20 1IN_PROGRESS 20 1", 5000, "rendered");

    // Drop the connection: both show reconnecting, then resume by cursor on one new socket.
    conn.ws.terminate();
    await waitFor(() => server.conns.length === 2, 5000, "reconnect");
    expect(server.last().url.searchParams.get("cursor")).toBe("v1.3-2");
    server.send(server.last(), event("log", 2, { level: "INFO", message: "Clonage du repository..." }));
    server.send(server.last(), event("log", 3, { level: "INFO", message: "Clone terminé" }));
    await waitFor(() => seen.a?.logs.length === 2, 5000, "resumed logs");
    expect(seen.a.logs.map((l) => l.message)).toEqual(["Clonage du repository...", "Clone terminé"]);
    expect(server.open.length).toBe(1);
  });

  it("closes the socket when the last component unmounts", async () => {
    root.render(<Probe name="a" ticketId="t1" />);
    await waitFor(() => server.open.length === 1);
    root.render(<p>gone</p>);
    await waitFor(() => server.open.length === 0, 5000, "closed after unmount");
  });
});
