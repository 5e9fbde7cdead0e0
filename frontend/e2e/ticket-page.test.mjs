// Browser end-to-end tests: Debian's Chromium, driven by playwright-core, against the real
// `ticketflow dev` stack (embedded Kafka, PostgreSQL, simulated executor).
//
//   npm run build && npm run test:e2e

import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { readLog, startBrowserStack } from "./browser.mjs";
import { allEvents, frontendDir } from "./stack.mjs";

let env;
let context;
let page;
const sockets = [];

before(async () => {
  env = await startBrowserStack();
  page = await env.openPage({ width: 1360, height: 960 });
  context = page.context();
  page.on("websocket", (ws) => sockets.push(ws.url()));
});

after(() => env?.stop());

/** The ticket page's processing component. */
const tps = () => page.locator("section.tps");

async function waitForCompleted(timeout = 60_000) {
  await tps().locator('[role="progressbar"][aria-valuenow="100"]').waitFor({ timeout });
  await tps().locator('.badge[data-status="COMPLETED"]').waitFor({ timeout });
}

/** screenLog reads every line of the virtualized log by scrolling it from top to bottom. */
function screenLog() {
  return readLog(page, "section.tps .logs-scroll");
}

/** auditLog is the run's LogEmitted events from GET /api/runs/{id}/events, in order. */
async function auditLog(runId) {
  const events = await allEvents(env.stack.api, `/api/runs/${encodeURIComponent(runId)}/events`);
  return events.filter((e) => e.event.type === "LogEmitted").map((e) => ({ id: e.event.id, message: e.event.data.message, at: Date.parse(e.event.occurred_at) }));
}

function assertNoConsoleErrors() {
  assert.deepEqual(env.errors, [], "the browser logged errors");
}

describe("ticket page", () => {
  let ticketId;

  it("signs in from #access_token and strips it from the address bar", async () => {
    const resp = await page.goto(`${env.stack.baseUrl}/#access_token=${env.stack.token}`);
    await page.getByRole("heading", { name: "Tickets", level: 1 }).waitFor();
    assert.ok(!page.url().includes("access_token"), `token left in URL: ${page.url()}`);
    // Served with a Content-Security-Policy the app lives with (a violation is a console error).
    const headers = resp.headers();
    assert.match(headers["content-security-policy"] ?? "", /default-src 'self'/);
    assert.equal(headers["x-content-type-options"], "nosniff");
    assert.equal(headers["referrer-policy"], "no-referrer");
    assertNoConsoleErrors();
  });

  it("creates a ticket, starts it, and follows it to COMPLETED at 100 %", async () => {
    await page.getByRole("link", { name: "Nouveau ticket" }).first().click();
    await page.getByLabel("Titre").fill("E2E : pagination de l'API des commandes");
    await page.getByLabel("Description").fill("Ajouter ?page et ?per_page, avec des tests.");
    await page.getByRole("button", { name: "Créer le ticket" }).click();
    await page.waitForURL((u) => /^\/tickets\/[^/]+$/.test(u.pathname) && u.pathname !== "/tickets/new");
    ticketId = decodeURIComponent(new URL(page.url()).pathname.split("/").pop());
    await page.getByRole("heading", { name: "E2E : pagination de l'API des commandes" }).waitFor();

    await page.getByRole("button", { name: "Développer automatiquement" }).click();
    // The bar moves through the brief's steps...
    await tps().locator('[role="progressbar"]').and(page.locator('[aria-valuenow="85"], [aria-valuenow="95"], [aria-valuenow="100"]')).first().waitFor({ timeout: 60_000 });
    await waitForCompleted();
    await page.getByRole("button", { name: "Approuver" }).waitFor();

    const ticket = await env.stack.api(`/api/tickets/${encodeURIComponent(ticketId)}`);
    assert.equal(ticket.status, "COMPLETED");
    const screen = await screenLog();
    const audit = await auditLog(ticket.current_run_id);
    assert.ok(audit.length > 0, "the simulated run logged nothing");
    assert.equal(screen.total, audit.length);
    assert.deepEqual(screen.rows, audit.map(({ id, message }) => ({ id, message })));

    // The waterfall, from the run's events: one row per step of the run, all done.
    const waterfall = page.locator("section.wf-card .waterfall");
    await waterfall.and(page.locator('[data-outcome="completed"]')).waitFor({ timeout: 30_000 });
    const started = (await allEvents(env.stack.api, `/api/runs/${encodeURIComponent(ticket.current_run_id)}/events`)).filter((e) => e.event.type === "StepStarted");
    const rows = waterfall.locator(".wf-row");
    assert.equal(await rows.count(), started.length);
    assert.deepEqual(
      await rows.evaluateAll((els) => els.map((e) => e.getAttribute("data-step"))),
      started.map((e) => e.event.data.step),
    );
    assert.equal(await waterfall.locator(".wf-row.wf-ok").count(), started.length);
    assert.ok((await waterfall.locator(".wf-sub").count()) >= 1, "no CI execution in the waterfall");
    mkdirSync(join(frontendDir, "screenshots"), { recursive: true });
    await page.locator("section.wf-card").screenshot({ path: join(frontendDir, "screenshots", "run-waterfall.png") });
    assertNoConsoleErrors();
  });

  it("loses and doubles nothing when the connection drops mid-run", async () => {
    const firstRun = (await env.stack.api(`/api/tickets/${encodeURIComponent(ticketId)}`)).current_run_id;
    const socketsBefore = sockets.length;

    // A second run: request changes on the completed one.
    await page.getByRole("button", { name: "Demander des modifications" }).click();
    await page.getByLabel("Commentaire").fill("Utiliser des curseurs plutôt que des numéros de page.");
    await page.getByRole("button", { name: "Envoyer" }).click();

    // Wait until the new run is under way, then cut the network while it keeps running.
    await page.waitForFunction(() => {
      const bar = document.querySelector('section.tps [role="progressbar"]');
      const v = Number(bar?.getAttribute("aria-valuenow"));
      return v >= 20 && v < 85;
    }, undefined, { timeout: 60_000 });
    await context.setOffline(true);
    await tps().getByText("Hors ligne").waitFor();
    const progressWhenDropped = Number(await tps().locator('[role="progressbar"]').getAttribute("aria-valuenow"));
    const offlineAt = Date.now();
    await page.waitForTimeout(1500); // the run goes on without us
    const onlineAt = Date.now();
    await context.setOffline(false);

    await waitForCompleted();
    const ticket = await env.stack.api(`/api/tickets/${encodeURIComponent(ticketId)}`);
    assert.notEqual(ticket.current_run_id, firstRun, "no second run started");
    assert.equal(ticket.status, "COMPLETED");

    // The socket came back with a cursor (resume, not a restart from scratch).
    const resumed = sockets.slice(socketsBefore).filter((u) => u.includes(`/ws/tickets/${encodeURIComponent(ticketId)}`));
    assert.ok(resumed.some((u) => new URL(u).searchParams.has("cursor")), `no resume by cursor among ${JSON.stringify(resumed)}`);
    // Every socket authenticated with its own single-use ticket, never with the bearer token.
    const tickets = sockets.map((u) => new URL(u).searchParams.get("ticket"));
    assert.ok(tickets.every(Boolean), `a socket without a ticket among ${JSON.stringify(sockets)}`);
    assert.equal(new Set(tickets).size, tickets.length, "a WebSocket ticket was used twice");
    assert.ok(!sockets.some((u) => u.includes("access_token") || u.includes(env.stack.token)), "the bearer token appeared in a WebSocket URL");

    const screen = await screenLog();
    const audit = await auditLog(ticket.current_run_id);
    assert.ok(progressWhenDropped < 100);
    assert.ok(audit.length > 0);
    // The drop really cost us events: some lines were logged while we were offline.
    const missed = audit.filter((l) => l.at > offlineAt && l.at < onlineAt);
    assert.ok(missed.length > 0, "no line was logged while offline: the test proves nothing");
    assert.equal(screen.total, audit.length, "line count differs from the audit trail");
    assert.deepEqual(screen.rows, audit.map(({ id, message }) => ({ id, message })), "log on screen differs from the audit trail");

    await tps().locator(".conn-live").waitFor();
    const closeToast = page.getByRole("button", { name: "Fermer la notification" });
    while ((await closeToast.count()) > 0) await closeToast.first().click();
    await page.evaluate(() => window.scrollTo(0, 0));
    await page.waitForTimeout(600); // let the progress bar's transition finish
    mkdirSync(join(frontendDir, "screenshots"), { recursive: true });
    await page.screenshot({ path: join(frontendDir, "screenshots", "ticket-page.png"), fullPage: true });
    assertNoConsoleErrors();
  });

  it("resumes from sessionStorage after a reload with the same log", async () => {
    const before = await screenLog();
    await page.reload();
    await waitForCompleted();
    const reloaded = await screenLog();
    assert.deepEqual(reloaded.rows, before.rows);
    assertNoConsoleErrors();
  });

  it("shows the run history and the audit trail", async () => {
    await page.getByRole("tab", { name: /Exécutions/ }).click();
    const runs = page.locator("li.run");
    await runs.nth(1).waitFor();
    assert.equal(await runs.count(), 2);
    await runs.first().locator("button.run-row").click();
    await runs.first().locator('tr[data-event-type="RunCompleted"]').waitFor();
    await page.getByRole("tab", { name: "Journal d'audit complet" }).click();
    await page.locator('.audit-table tr[data-event-type="TicketCreated"]').waitFor();
    await page.locator('.audit-table tr[data-event-type="ChangesRequested"]').waitFor();
    assertNoConsoleErrors();
  });

  it("renders the dashboard and the step-latency page", async () => {
    await page.getByRole("link", { name: "Tableau de bord" }).click();
    await page.getByRole("heading", { name: "Tableau de bord", level: 1 }).waitFor();
    await page.locator(".conn-live").first().waitFor();
    await page.getByRole("link", { name: "Latence des étapes" }).click();
    await page.getByRole("heading", { name: "Latence des étapes", level: 1 }).waitFor();
    await page.locator("svg.chart").waitFor();
    const until = new Date(Date.now() + 60_000).toISOString().replace(/\.\d{3}Z$/, "Z");
    const since = new Date(Date.now() - 3_600_000).toISOString().replace(/\.\d{3}Z$/, "Z");
    const { steps } = await env.stack.api(`/api/analytics/steps?since=${since}&until=${until}`);
    assert.ok(steps.length >= 7, `analytics covers ${steps.length} steps`);
    assert.equal(await page.locator("table tbody tr").count(), steps.length, "one table row per step");
    assert.equal(await page.locator("svg.chart g > title").count(), steps.length, "one chart row per step");
    assertNoConsoleErrors();
  });

  it("queues an action clicked while offline and sends it when the network returns", async () => {
    const t = await env.stack.api("/api/tickets", { method: "POST", body: JSON.stringify({ title: "E2E : action hors ligne" }) });
    await page.goto(`${env.stack.baseUrl}/tickets/${t.id}`);
    await tps().locator(".conn-live").waitFor();
    await context.setOffline(true);
    await tps().getByText("Hors ligne").waitFor();
    await page.getByRole("button", { name: "Développer automatiquement" }).click();
    await page.getByText("1 action en attente").waitFor();
    await page.waitForTimeout(500);
    assert.equal((await env.stack.api(`/api/tickets/${t.id}/runs`)).runs.length, 0, "sent while offline");
    await context.setOffline(false);
    await waitForCompleted();
    assert.equal((await env.stack.api(`/api/tickets/${t.id}/runs`)).runs.length, 1);
    await page.getByText("1 action en attente").waitFor({ state: "detached" });
    assertNoConsoleErrors();
  });
});
