// The run replay player in Chromium: a finished run of the simulated executor (two iterations,
// CI failing once, thousands of log lines: more than one page of the audit trail) replayed at
// 50× plays through its events over time and ends with exactly the audit trail's log lines,
// in the same order, and the run's final state.
//
//   npm run build && node --test e2e/replay-player.test.mjs

import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { after, before, it } from "node:test";
import { readLog, startBrowserStack } from "./browser.mjs";
import { allEvents, frontendDir } from "./stack.mjs";

// Three simulated steps log LINES_PER_STEP lines each per iteration; two iterations are more
// events than one page (5,000) of the audit trail.
const LINES_PER_STEP = 850;
const SPEED = 50;
const MAX_GAP_MS = 2000;

let env;
before(async () => {
  env = await startBrowserStack({ stepDelay: "2s", extraEnv: { TICKETFLOW_SIM_LOGS_PER_STEP: String(LINES_PER_STEP) } });
});
after(() => env?.stop());

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

it("replays a finished run at 50× with the audit trail's log lines in order", async () => {
  const ticket = await env.stack.api("/api/tickets", { method: "POST", body: JSON.stringify({ title: "Relecture", simulate_failure: "once" }) });
  await env.stack.api("/api/tickets/processing/start", { method: "POST", body: JSON.stringify({ ticket_id: ticket.id }) });
  let t;
  for (const deadline = Date.now() + 240_000; ; ) {
    t = await env.stack.api(`/api/tickets/${encodeURIComponent(ticket.id)}`);
    if (t.status === "COMPLETED") break;
    assert.ok(!["FAILED", "CANCELLED"].includes(t.status), `the run ended ${t.status}`);
    assert.ok(Date.now() < deadline, `the run is still ${t.status}`);
    await sleep(500);
  }
  const runId = t.current_run_id;
  const trail = (await allEvents(env.stack.api, `/api/runs/${encodeURIComponent(runId)}/events`)).map((e) => e.event);
  const audit = trail.filter((e) => e.type === "LogEmitted").map((e) => ({ id: e.id, message: e.data.message }));
  assert.ok(trail.length > 5000, `only ${trail.length} events: the player's paging is not exercised`);
  assert.equal(trail.filter((e) => e.type === "AgentToolCalled").length, 0, "the simulated run has no tool calls (they would be log lines too)");

  const page = await env.openPage();
  // Every status the header shows and whether the replay card is there, from the first paint:
  // the socket replays the whole run on connect, and a finished run must not seem to run again
  // meanwhile (that would also take the replay card away from under the click).
  await page.addInitScript(() => {
    const w = window;
    w.__shown = [];
    const record = () => {
      const badge = document.querySelector(".ticket-head .badge");
      const seen = `${badge?.getAttribute("data-status") ?? ""}|${document.querySelector("section.replay-card") ? "card" : ""}`;
      if (badge?.getAttribute("data-status") && w.__shown[w.__shown.length - 1] !== seen) w.__shown.push(seen);
    };
    new MutationObserver(record).observe(document, { subtree: true, childList: true, attributes: true });
  });
  await page.goto(`${env.stack.baseUrl}/tickets/${encodeURIComponent(ticket.id)}#access_token=${env.stack.token}`);
  const card = page.locator("section.replay-card");
  // Caught up: the live log holds the whole run.
  await page.locator(`.ticket-main .logs-scroll[data-count="${audit.length}"]`).waitFor({ timeout: 60_000 });
  const shown = await page.evaluate(() => window.__shown);
  assert.deepEqual([...new Set(shown.map((s) => s.split("|")[0]))], ["COMPLETED"], `the finished ticket's page showed other states while its socket caught up: ${shown}`);
  assert.ok(!shown.slice(shown.indexOf("COMPLETED|card")).includes("COMPLETED|"), `the replay card went away and came back: ${shown}`);
  await card.getByRole("button", { name: "Revoir l'exécution" }).click();
  const player = card.locator(".replay-player");
  await player.and(page.locator('[data-replay-state="ready"]')).waitFor({ timeout: 60_000 });
  assert.equal(Number(await player.getAttribute("data-total")), trail.length);

  // The timeline's markers: every step start and both CI results (failed, then passed).
  assert.equal(await player.locator(".replay-marks .rm-step").count(), trail.filter((e) => e.type === "StepStarted").length);
  assert.deepEqual(
    await player.locator(".replay-marks .rm-ci").evaluateAll((els) => els.map((e) => (e.classList.contains("ok") ? "ok" : "ko"))),
    ["ko", "ok"],
  );

  await player.getByRole("button", { name: `Vitesse ${SPEED}×` }).click();
  assert.equal(await player.getByRole("button", { name: `Vitesse ${SPEED}×` }).getAttribute("aria-pressed"), "true");
  // Record the position the player shows at every frame while it plays.
  await page.evaluate(() => {
    const w = window;
    w.__positions = [];
    const el = document.querySelector("section.replay-card .replay-player");
    const tick = () => {
      w.__positions.push(Number(el.getAttribute("data-position")));
      if (el.getAttribute("data-replay-state") !== "ended") requestAnimationFrame(tick);
    };
    requestAnimationFrame(tick);
  });
  const started = Date.now();
  await player.getByRole("button", { name: "Lire" }).click();
  await player.and(page.locator('[data-replay-state="ended"]')).waitFor({ timeout: 120_000 });
  const elapsed = Date.now() - started;

  // It played over time: the original gaps divided by the speed, long ones capped.
  let expected = 0;
  for (let i = 1; i < trail.length; i++) {
    const gap = Date.parse(trail[i].occurred_at) - Date.parse(trail[i - 1].occurred_at);
    if (gap > 0) expected += Math.min(gap / SPEED, MAX_GAP_MS);
  }
  const positions = await page.evaluate(() => window.__positions);
  const between = new Set(positions.filter((p) => p > 0 && p < trail.length));
  console.log(`# ${trail.length} events, ${audit.length} lines; replay took ${elapsed} ms (schedule ${expected.toFixed(0)} ms), ${between.size} intermediate positions`);
  assert.ok(elapsed >= expected * 0.9, `the replay took ${elapsed} ms, its schedule ${expected.toFixed(0)} ms`);
  assert.ok(between.size >= 1, "the replay jumped to the end");
  for (let i = 1; i < positions.length; i++) assert.ok(positions[i] >= positions[i - 1], "playing went backwards");

  // The end is the run's final state.
  assert.equal(Number(await player.getAttribute("data-position")), trail.length);
  assert.equal(await player.locator(".replay-state .badge").getAttribute("data-status"), "COMPLETED");
  assert.equal(await player.locator('[role="progressbar"]').getAttribute("aria-valuenow"), "100");
  assert.equal(await player.locator(".ci-result.ok").count(), 1);

  // Every line, in order, exactly once (read by scrolling the virtualised list).
  const screen = await readLog(page, "section.replay-card .replay-player .logs-scroll");
  assert.equal(screen.total, audit.length);
  assert.deepEqual(screen.rows, audit);

  // Seeking back to the start rebuilds the empty state.
  await player.getByRole("button", { name: "Revenir au début" }).click();
  assert.equal(await player.getAttribute("data-position"), "0");
  assert.equal(await player.locator(".logs-scroll").getAttribute("data-count"), "0");

  // Seeking to the failed CI result shows the state of that moment: the lines before it.
  const failedCI = trail.findIndex((e) => e.type === "CIResult");
  await player.locator(".replay-timeline").evaluate((el) => el.scrollIntoView({ block: "center" }));
  await player.locator(".replay-marks .rm-ci.ko").click();
  assert.equal(Number(await player.getAttribute("data-position")), failedCI + 1);
  assert.equal(await player.locator(".replay-state .badge").getAttribute("data-status"), "IN_PROGRESS");
  assert.equal(await player.locator(".ci-result.ko").count(), 1);
  const linesBefore = trail.slice(0, failedCI + 1).filter((e) => e.type === "LogEmitted").length;
  assert.equal(Number(await player.locator(".logs-scroll").getAttribute("data-count")), linesBefore);
  mkdirSync(join(frontendDir, "screenshots"), { recursive: true });
  await card.screenshot({ path: join(frontendDir, "screenshots", "replay-player.png") });
  assert.deepEqual(env.errors, []);
});
