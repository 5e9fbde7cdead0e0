// A client of the ticketflow API made only from the OpenAPI document: openapi-fetch (a
// third-party client) typed by openapi-typescript's output (src/lib/generated/openapi.ts).
// tsc checks every path, parameter, body and answer below against the document; the e2e
// test (e2e/contract.test.mjs) compiles this file and runs it against `ticketflow dev`.
import createClient from "openapi-fetch";
import type { components, paths } from "../../src/lib/generated/openapi";

type Ticket = components["schemas"]["Ticket"];

export function newClient(baseUrl: string, token: string) {
  return createClient<paths>({ baseUrl, headers: { Authorization: `Bearer ${token}` } });
}

/** runTicket creates a ticket, starts it and waits for its run to reach COMPLETED. */
export async function runTicket(baseUrl: string, token: string, title: string): Promise<{ ticket: Ticket; events: number; me: string }> {
  const c = newClient(baseUrl, token);
  const me = await c.GET("/api/me");
  if (!me.data) throw new Error(`GET /api/me: ${me.response.status}`);

  const created = await c.POST("/api/tickets", {
    body: { title, ci_command: "make test" },
    params: { header: { "Idempotency-Key": `create-${title}` } },
  });
  if (!created.data) throw new Error(`POST /api/tickets: ${created.response.status} ${created.error?.error.code}`);
  const id: string = created.data.id;

  const started = await c.POST("/api/tickets/processing/start", { body: { ticket_id: id } });
  if (!started.data) throw new Error(`start: ${started.response.status} ${started.error?.error.code}`);
  const runId: string = started.data.run_id;

  const again = await c.POST("/api/tickets/processing/start", { body: { ticket_id: id } });
  if (again.response.status !== 409 || again.error?.error.code !== "run_active") {
    throw new Error(`a second start answered ${again.response.status}`);
  }

  let ticket: Ticket | undefined;
  for (const deadline = Date.now() + 90_000; Date.now() < deadline; ) {
    const got = await c.GET("/api/tickets/{id}", { params: { path: { id } } });
    if (!got.data) throw new Error(`GET ticket: ${got.response.status}`);
    ticket = got.data;
    if (ticket.status === "COMPLETED" || ticket.status === "FAILED") break;
    await new Promise((r) => setTimeout(r, 250));
  }
  if (ticket?.status !== "COMPLETED") throw new Error(`ticket ended ${ticket?.status}`);

  const runs = await c.GET("/api/tickets/{id}/runs", { params: { path: { id } } });
  if (runs.data?.runs[0]?.id !== runId) throw new Error("the run is not listed");

  let events = 0;
  let after: string | undefined;
  for (;;) {
    const page = await c.GET("/api/runs/{run_id}/events", { params: { path: { run_id: runId }, query: { limit: 50, after } } });
    // The route answers JSON pages or (format=ndjson) NDJSON; without format it is a page.
    if (!page.data || !("events" in page.data)) throw new Error(`events: ${page.response.status}`);
    events += page.data.events.length;
    if (page.data.next_cursor === null) break;
    after = page.data.next_cursor;
  }
  return { ticket, events, me: me.data.sub };
}
