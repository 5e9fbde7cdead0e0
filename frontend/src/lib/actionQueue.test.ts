import { createServer, type IncomingHttpHeaders, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { ActionQueue, type ActionOutcome } from "./actionQueue";
import { ApiError } from "./api";
import { ManualOnline } from "./online";
import { MemoryStorage, waitFor } from "../test/server";

interface Seen {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  body: string;
}

let http: Server;
let seen: Seen[];
let baseUrl: string;
let queues: ActionQueue[] = [];

async function listen(port = 0): Promise<void> {
  seen = seen ?? [];
  http = createServer((req, res) => {
    let body = "";
    req.on("data", (c) => (body += c));
    req.on("end", () => {
      seen.push({ method: req.method!, url: req.url!, headers: req.headers, body });
      if (req.url?.endsWith("/cancel")) {
        res.writeHead(409, { "Content-Type": "application/json" });
        res.end(JSON.stringify({ success: false, error: { code: "no_active_run", message: "nothing to cancel" } }));
        return;
      }
      res.writeHead(202, { "Content-Type": "application/json" });
      res.end(JSON.stringify({ success: true, status: "PENDING" }));
    });
  });
  await new Promise<void>((r) => http.listen(port, "127.0.0.1", r));
  baseUrl = `http://127.0.0.1:${(http.address() as AddressInfo).port}`;
}

beforeEach(async () => {
  seen = [];
  await listen();
});

afterEach(async () => {
  queues.forEach((q) => q.dispose());
  queues = [];
  await new Promise<void>((r) => http.close(() => r()));
});

function queue(online: ManualOnline, storage: Storage | null = null) {
  const q = new ActionQueue({ online, storage, requestOptions: { baseUrl, token: "tok" }, retryIntervalMs: 50 });
  queues.push(q);
  return q;
}

describe("ActionQueue", () => {
  it("sends at once when online", async () => {
    const q = queue(new ManualOnline(true));
    const r = await q.perform("Démarrer", "/api/tickets/processing/start", { ticket_id: "t1" });
    expect(r.queued).toBe(false);
    expect(seen).toHaveLength(1);
    expect(seen[0].headers.authorization).toBe("Bearer tok");
    expect(seen[0].headers["idempotency-key"]).toBeTruthy();
    expect(JSON.parse(seen[0].body)).toEqual({ ticket_id: "t1" });
  });

  it("queues actions while offline and sends them in order when back online", async () => {
    const online = new ManualOnline(false);
    const storage = new MemoryStorage();
    const q = queue(online, storage);
    const outcomes: ActionOutcome[] = [];
    q.onOutcome((o) => outcomes.push(o));

    const a = await q.perform("Démarrer", "/api/tickets/processing/start", { ticket_id: "t1" });
    const b = await q.perform("Annuler", "/api/tickets/t1/cancel");
    expect(a.queued && b.queued).toBe(true);
    expect(q.pending.map((x) => x.label)).toEqual(["Démarrer", "Annuler"]);
    expect(JSON.parse(storage.getItem("ticketflow.actions")!)).toHaveLength(2);
    await new Promise((r) => setTimeout(r, 150));
    expect(seen).toHaveLength(0);

    online.set(true);
    await waitFor(() => outcomes.length === 2, 5000, "queued actions sent");
    expect(seen.map((s) => s.url)).toEqual(["/api/tickets/processing/start", "/api/tickets/t1/cancel"]);
    expect(seen[0].headers["idempotency-key"]).toBe(a.queued ? a.action.idempotencyKey : "");
    expect(outcomes[0].kind).toBe("sent");
    expect(outcomes[1].kind).toBe("failed");
    expect((outcomes[1] as { error: ApiError }).error.code).toBe("no_active_run");
    expect(q.pending).toHaveLength(0);
    expect(storage.getItem("ticketflow.actions")).toBeNull();
  });

  it("queues when the server is unreachable and retries with the same idempotency key", async () => {
    const port = Number(new URL(baseUrl).port);
    await new Promise<void>((r) => http.close(() => r()));
    const q = queue(new ManualOnline(true));
    const r = await q.perform("Démarrer", "/api/tickets/processing/start", { ticket_id: "t1" });
    expect(r.queued).toBe(true);
    await listen(port); // the server comes back on the same address
    await waitFor(() => seen.length === 1 && q.pending.length === 0, 5000, "retried");
    expect(seen[0].headers["idempotency-key"]).toBe(r.queued ? r.action.idempotencyKey : "");
  });

  it("restores actions queued before a reload", async () => {
    const storage = new MemoryStorage();
    const online = new ManualOnline(false);
    await queue(online, storage).perform("Approuver", "/api/tickets/t1/validation", { decision: "approve" });
    queues.forEach((x) => x.dispose());
    const q2 = queue(online, storage);
    expect(q2.pending.map((x) => x.label)).toEqual(["Approuver"]);
    online.set(true);
    await waitFor(() => seen.length === 1);
    expect(JSON.parse(seen[0].body)).toEqual({ decision: "approve" });
  });
});
