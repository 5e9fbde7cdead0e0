// The coding agent's run in Chromium, end to end with nothing simulated but the model: the
// real executor clones a local bare repository, the offline demo provider drives the agent loop
// (search, read, write, run CI in the bwrap sandbox), CI runs, the run ends COMPLETED. The run
// page shows the tool calls live (before the run ends), then the run's LLM cost as the API
// sums it, and replaying the finished run at 50× shows the audit trail's log and tool lines, in
// order.
//
//   npm run build && node --test e2e/agent-run.test.mjs

import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { chmodSync, mkdtempSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { after, before, it } from "node:test";
import { readLog, startBrowserStack } from "./browser.mjs";
import { allEvents } from "./stack.mjs";

const run = promisify(execFile);

let dir;
let origin;

// A repository the sandbox uid can read: the ticket's subject is in one of its files, and its
// CI prints a few lines slowly enough that the live page shows them as they come.
async function makeOrigin(root) {
  const seed = join(root, "seed");
  mkdirSync(join(seed, "src"), { recursive: true });
  writeFileSync(join(seed, "README.md"), "# widgets\n");
  writeFileSync(join(seed, "src", "invoice.go"), "package src\n\n// Invoice rounding happens here.\nfunc Total() int { return 42 }\n");
  writeFileSync(join(seed, "ci.sh"), "#!/bin/sh\necho 'ci: build'\nsleep 1\necho 'ci: tests green'\n", { mode: 0o755 });
  const git = (args, cwd = seed) =>
    run("git", ["-c", "user.name=e2e", "-c", "user.email=e2e@example.com", "-c", "init.defaultBranch=main", ...args], { cwd });
  await git(["init", "-q"]);
  await git(["add", "-A"]);
  await git(["commit", "-q", "-m", "initial"]);
  const bare = join(root, "origin.git");
  await git(["clone", "-q", "--bare", seed, bare], root);
  await run("chmod", ["-R", "a+rX", root]);
  return bare;
}

let env;
before(async () => {
  dir = mkdtempSync(join(tmpdir(), "tf-agent-e2e-"));
  chmodSync(dir, 0o755);
  origin = await makeOrigin(dir);
  env = await startBrowserStack({
    extraEnv: {
      TICKETFLOW_EXECUTOR: "real",
      TICKETFLOW_LLM_PROVIDER: "demo",
      ANTHROPIC_API_KEY: "",
      OPENAI_API_KEY: "",
      TICKETFLOW_WORK_DIR: join(dir, "work"),
      TICKETFLOW_FILE_REPO_ROOT: dir,
      // The demo model priced like claude-sonnet-4-5, so the run has a cost to show.
      TICKETFLOW_LLM_PRICES: "demo=3:15",
    },
  });
});

after(async () => {
  await env?.stop();
  if (dir && !process.env.E2E_KEEP_TMP) rmSync(dir, { recursive: true, force: true });
});

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

it("shows the agent's tool calls live, its cost, and replays its log", async () => {
  const ticket = await env.stack.api("/api/tickets", {
    method: "POST",
    body: JSON.stringify({ title: "Invoice rounding", repository_url: `file://${origin}`, base_branch: "main", ci_command: "./ci.sh" }),
  });
  const page = await env.openPage();
  await page.goto(`${env.stack.baseUrl}/tickets/${encodeURIComponent(ticket.id)}#access_token=${env.stack.token}`);
  const live = page.locator("section.tps");
  await live.waitFor();
  await env.stack.api("/api/tickets/processing/start", { method: "POST", body: JSON.stringify({ ticket_id: ticket.id }) });

  // Live: the tool calls reach the page while the run is still going (CI after them takes > 1 s).
  await live.locator(".log-row.lvl-tool").first().waitFor({ timeout: 120_000 });
  const statusWhenToolSeen = await live.locator(".badge").first().getAttribute("data-status");
  assert.ok(!["COMPLETED", "FAILED", "CANCELLED"].includes(statusWhenToolSeen), `the first tool call showed only once the run was ${statusWhenToolSeen}`);

  let t;
  for (const deadline = Date.now() + 180_000; ; ) {
    t = await env.stack.api(`/api/tickets/${encodeURIComponent(ticket.id)}`);
    if (t.status === "COMPLETED") break;
    assert.ok(!["FAILED", "CANCELLED"].includes(t.status), `the run ended ${t.status}: ${t.error ?? ""}`);
    assert.ok(Date.now() < deadline, `the run is still ${t.status}`);
    await sleep(500);
  }
  const runId = t.current_run_id;
  const trail = (await allEvents(env.stack.api, `/api/runs/${encodeURIComponent(runId)}/events`)).map((e) => e.event);
  const tools = trail.filter((e) => e.type === "AgentToolCalled");
  assert.deepEqual(
    tools.map((e) => e.data.tool),
    ["search", "read_file", "write_file", "run_ci"],
    "the demo provider's script",
  );
  assert.ok(tools.every((e) => e.data.ok), `a tool call failed: ${JSON.stringify(tools.map((e) => e.data))}`);
  await live.locator('.badge[data-status="COMPLETED"]').first().waitFor({ timeout: 30_000 });
  assert.equal(await live.locator(".log-row.lvl-tool").count(), tools.length);

  // The cost: the page's LLM line says the run's calls as the API sums them.
  const runs = await env.stack.api(`/api/tickets/${encodeURIComponent(ticket.id)}/runs`);
  const r = (runs.runs ?? runs).find((x) => x.id === runId);
  assert.ok(r.llm_calls >= 1, `the run has ${r.llm_calls} LLM calls`);
  assert.ok(r.llm_cost_usd > 0, `the run cost ${r.llm_cost_usd} USD`);
  const usage = live.locator('[data-testid="llm-usage"]');
  await usage.waitFor();
  const text = await usage.textContent();
  assert.match(text, new RegExp(`LLM : ${r.llm_calls} appels?`));
  // formatUSD's rendering (fr-FR, 4 decimals under 1 $), the non-breaking spaces as plain ones.
  const digits = r.llm_cost_usd < 1 ? 4 : 2;
  const amount = `${r.llm_cost_usd.toLocaleString("fr-FR", { minimumFractionDigits: digits, maximumFractionDigits: digits })} $`;
  const plain = (s) => s.replace(/[\u00a0\u202f]/g, " ");
  assert.ok(plain(text).includes(plain(amount)), `the page says "${text}", the API ${amount}`);

  // The replay: every log and tool line of the audit trail, in order.
  const card = page.locator("section.replay-card");
  await card.getByRole("button", { name: "Revoir l'exécution" }).click();
  const player = card.locator(".replay-player");
  await player.and(page.locator('[data-replay-state="ready"]')).waitFor({ timeout: 60_000 });
  assert.equal(Number(await player.getAttribute("data-total")), trail.length);
  assert.equal(await player.locator(".replay-marks .rm-tool").count(), tools.length);
  await player.getByRole("button", { name: "Vitesse 50×" }).click();
  await player.getByRole("button", { name: "Lire" }).click();
  await player.and(page.locator('[data-replay-state="ended"]')).waitFor({ timeout: 120_000 });
  assert.equal(await player.locator(".replay-state .badge").getAttribute("data-status"), "COMPLETED");
  // Every line, in order, exactly once (read by scrolling the virtualised list).
  const lines = trail.filter((e) => e.type === "LogEmitted" || e.type === "AgentToolCalled");
  const screen = await readLog(page, "section.replay-card .replay-player .logs-scroll");
  assert.equal(screen.total, lines.length);
  assert.deepEqual(screen.rows.map((row) => row.id), lines.map((e) => e.id));
  screen.rows.forEach((row, i) => {
    const e = lines[i];
    if (e.type === "LogEmitted") assert.equal(row.message, e.data.message, `row ${i}`);
    else assert.ok(row.message.includes(e.data.tool), `tool row ${i}: ${row.message}`);
  });
  assert.deepEqual(env.errors, []);
});
