// A real WebSocket server on 127.0.0.1 for the connection-layer tests (npm "ws"), speaking
// the notifier's protocol as far as the tests need: it records every connection's URL and
// every frame the client sends, answers "ping" with a pong, and lets a test push messages,
// drop connections, or refuse handshakes. Like the real stack it issues single-use WebSocket
// tickets (POST /api/ws-tickets with a bearer token) and, when requireTicket is set, closes a
// socket opened without a valid unused ticket with 4401.

import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { WebSocketServer, WebSocket } from "ws";

export interface Conn {
  url: URL;
  ws: WebSocket;
  received: string[];
  closed: boolean;
}

export class TestServer {
  readonly conns: Conn[] = [];
  handshakes = 0;
  /** When set, handshakes are refused with this HTTP status. */
  refuseWith: number | null = null;
  /** Sent to every new connection right after it opens. */
  greet = true;
  /** Close sockets opened without a valid, unused ticket with 4401. */
  requireTicket = false;
  /** The Authorization header of every ticket request. */
  readonly ticketRequests: (string | undefined)[] = [];
  /** When set, ticket requests are answered with this HTTP status. */
  ticketStatus: number | null = null;
  private issued = new Set<string>();
  private used = new Set<string>();
  private http: Server;
  private wss: WebSocketServer;
  port = 0;

  private constructor() {
    this.http = createServer((req, res) => {
      if (req.method === "POST" && req.url === "/api/ws-tickets") {
        this.ticketRequests.push(req.headers.authorization);
        if (this.ticketStatus) {
          res.writeHead(this.ticketStatus, { "Content-Type": "application/json" }).end(JSON.stringify({ success: false, error: { code: "unauthenticated", message: "no" } }));
          return;
        }
        if (!req.headers.authorization?.startsWith("Bearer ")) {
          res.writeHead(401, { "Content-Type": "application/json" }).end(JSON.stringify({ success: false, error: { code: "unauthenticated", message: "missing bearer token" } }));
          return;
        }
        const ticket = `tik-${this.issued.size + 1}`;
        this.issued.add(ticket);
        res.writeHead(200, { "Content-Type": "application/json" }).end(JSON.stringify({ ticket, expires_in: 30 }));
        return;
      }
      res.writeHead(404).end();
    });
    this.wss = new WebSocketServer({ noServer: true });
    this.http.on("upgrade", (req: IncomingMessage, socket, head) => {
      this.handshakes++;
      if (this.refuseWith) {
        socket.end(`HTTP/1.1 ${this.refuseWith} Refused\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
        return;
      }
      this.wss.handleUpgrade(req, socket, head, (ws) => {
        const conn: Conn = { url: new URL(req.url ?? "/", "http://127.0.0.1"), ws, received: [], closed: false };
        this.conns.push(conn);
        ws.on("message", (data) => {
          const text = data.toString();
          conn.received.push(text);
          if (text === "ping") ws.send(JSON.stringify({ type: "pong" }));
        });
        ws.on("close", () => (conn.closed = true));
        if (this.requireTicket) {
          const t = conn.url.searchParams.get("ticket");
          if (!t || !this.issued.has(t) || this.used.has(t)) {
            ws.send(JSON.stringify({ type: "error", code: "unauthenticated", message: "invalid or used ticket" }));
            ws.close(4401, "unauthenticated");
            return;
          }
          this.used.add(t);
        }
        if (this.greet) {
          const ticket = conn.url.pathname.split("/").pop();
          ws.send(JSON.stringify({ type: "connected", ticket_id: ticket }));
        }
      });
    });
  }

  static async start(): Promise<TestServer> {
    const s = new TestServer();
    await new Promise<void>((resolve) => s.http.listen(0, "127.0.0.1", resolve));
    s.port = (s.http.address() as AddressInfo).port;
    return s;
  }

  get baseUrl(): string {
    return `ws://127.0.0.1:${this.port}`;
  }

  /** httpUrl is the same server for fetch (the ticket endpoint). */
  get httpUrl(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  get open(): Conn[] {
    return this.conns.filter((c) => !c.closed);
  }

  last(): Conn {
    const c = this.conns[this.conns.length - 1];
    if (!c) throw new Error("no connection yet");
    return c;
  }

  send(conn: Conn, msg: object): void {
    conn.ws.send(JSON.stringify(msg));
  }

  async close(): Promise<void> {
    for (const c of this.conns) c.ws.terminate();
    this.wss.close();
    await new Promise<void>((resolve) => this.http.close(() => resolve()));
  }
}

/** An event-derived message the way the notifier shapes them. */
export function event(type: string, offset: number, fields: Record<string, unknown> = {}, runId = "run-1"): Record<string, unknown> {
  return {
    type,
    ticket_id: "t1",
    run_id: runId,
    event_id: `ev-${runId}-${offset}`,
    cursor: `v1.3-${offset}`,
    timestamp: new Date(Date.UTC(2025, 0, 2, 10, 30, offset % 60)).toISOString(),
    ...fields,
  };
}

/** waitFor polls with setImmediate (never faked) until cond holds or timeoutMs of real time pass. */
export async function waitFor(cond: () => boolean, timeoutMs = 5000, what = "condition"): Promise<void> {
  const start = performance.now();
  while (!cond()) {
    if (performance.now() - start > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setImmediate(r));
  }
}

/** sleepReal waits real time without relying on (possibly faked) timers. */
export async function settle(ms: number): Promise<void> {
  const start = performance.now();
  while (performance.now() - start < ms) await new Promise((r) => setImmediate(r));
}

/** MemoryStorage is a Storage for tests (sessionStorage stand-in). */
export class MemoryStorage implements Storage {
  private m = new Map<string, string>();
  get length(): number {
    return this.m.size;
  }
  clear(): void {
    this.m.clear();
  }
  getItem(k: string): string | null {
    return this.m.get(k) ?? null;
  }
  key(i: number): string | null {
    return [...this.m.keys()][i] ?? null;
  }
  removeItem(k: string): void {
    this.m.delete(k);
  }
  setItem(k: string, v: string): void {
    this.m.set(k, String(v));
  }
}
