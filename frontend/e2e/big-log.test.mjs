// A run that logs more than 10,000 lines, watched live in Chromium: the page stays smooth
// (no long frame gaps, a small DOM) and ends with exactly the run's audit trail on screen.

import assert from "node:assert/strict";
import { after, before, it } from "node:test";
import { readLog, startBrowserStack } from "./browser.mjs";
import { allEvents } from "./stack.mjs";

// Four simulated steps log LINES_PER_STEP lines each (the others one or two).
const LINES_PER_STEP = 2600;

let env;
before(async () => {
  env = await startBrowserStack({ stepDelay: "1s", extraEnv: { TICKETFLOW_SIM_LOGS_PER_STEP: String(LINES_PER_STEP) } });
});
after(() => env?.stop());

it("streams a 10,000+ line log smoothly and completely", async () => {
  const ticket = await env.stack.api("/api/tickets", { method: "POST", body: JSON.stringify({ title: "Gros journal" }) });
  const page = await env.openPage();
  await page.goto(`${env.stack.baseUrl}/tickets/${ticket.id}#access_token=${env.stack.token}`);
  await page.getByRole("button", { name: "Développer automatiquement" }).waitFor();

  // Measure the longest gap between animation frames while the log streams in.
  await page.evaluate(() => {
    const w = window;
    w.__maxGap = 0;
    w.__maxRows = 0;
    let last = performance.now();
    const tick = (t) => {
      w.__maxGap = Math.max(w.__maxGap, t - last);
      w.__maxRows = Math.max(w.__maxRows, document.querySelectorAll(".log-row").length);
      last = t;
      if (!w.__stop) requestAnimationFrame(tick);
    };
    requestAnimationFrame(tick);
  });
  await page.getByRole("button", { name: "Développer automatiquement" }).click();
  await page.locator('section.tps .badge[data-status="COMPLETED"]').waitFor({ timeout: 180_000 });
  const { maxGap, maxRows } = await page.evaluate(() => {
    window.__stop = true;
    return { maxGap: window.__maxGap, maxRows: window.__maxRows };
  });

  const runId = (await env.stack.api(`/api/tickets/${ticket.id}`)).current_run_id;
  const audit = (await allEvents(env.stack.api, `/api/runs/${runId}/events`)).filter((e) => e.event.type === "LogEmitted");
  console.log(`# ${audit.length} lines; longest frame gap ${maxGap.toFixed(0)} ms; at most ${maxRows} rows in the DOM`);
  assert.ok(audit.length >= 10_000, `only ${audit.length} lines`);
  assert.ok(maxRows < 150, `${maxRows} log rows in the DOM`);
  assert.ok(maxGap < 250, `the page froze for ${maxGap.toFixed(0)} ms`);

  // Every line, in order, exactly once (read by scrolling the virtualized list).
  const { rows } = await readLog(page, "section.tps .logs-scroll", { skip: 15 * 22 }); // the list renders 20 rows beyond the view
  assert.equal(rows.length, audit.length);
  assert.deepEqual(rows.map((r) => r.id), audit.map((e) => e.event.id));
  assert.deepEqual(env.errors, []);
});
