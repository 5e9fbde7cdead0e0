// The contract from the outside, against the real `ticketflow dev` stack:
// - a third-party generated client (openapi-fetch typed by openapi-typescript's output of
//   api/openapi.yaml, e2e/client/client.ts) compiles with tsc and drives a ticket to COMPLETED;
// - GET /api/openapi.json serves the document without a token;
// - the web app's /docs/api page renders it (Scalar) in Chromium.
//
//   npm run build && node --test e2e/contract.test.mjs

import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { promisify } from "node:util";
import { after, before, describe, it } from "node:test";
import { chromium } from "playwright-core";
import { frontendDir, startStack } from "./stack.mjs";

const run = promisify(execFile);
const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
const outDir = join(frontendDir, "node_modules", ".cache", "tf-client");

let stack;
before(async () => {
  stack = await startStack({ stepDelay: "20ms", log: (m) => console.log(`# ${m.split("\n").join("\n# ")}`) });
});
after(async () => {
  await stack?.stop();
});

describe("the API contract", () => {
  it("serves the OpenAPI document without a token", async () => {
    const r = await fetch(`${stack.baseUrl}/api/openapi.json`);
    assert.equal(r.status, 200);
    const doc = await r.json();
    assert.equal(doc.openapi, "3.1.0");
    assert.ok(doc.paths["/api/tickets/processing/start"].post);
  });

  it("a client generated from the document compiles and runs a ticket to COMPLETED", async () => {
    await run(process.execPath, [join(frontendDir, "node_modules", "typescript", "bin", "tsc"), "-p", "e2e/client/tsconfig.json", "--outDir", outDir], {
      cwd: frontendDir,
    });
    const { runTicket } = await import(pathToFileURL(join(outDir, "e2e", "client", "client.js")).href);
    const got = await runTicket(stack.baseUrl, stack.token, `generated client ${Date.now()}`);
    assert.equal(got.ticket.status, "COMPLETED");
    assert.equal(got.me, "e2e");
    assert.ok(got.events > 8, `only ${got.events} events in the run's trail`);
  });

  it("renders the API reference at /docs/api", async () => {
    const browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--headless", "--no-sandbox", "--disable-gpu"], headless: true });
    try {
      const context = await browser.newContext();
      await context.addInitScript((token) => {
        localStorage.setItem("ticketflow.token", token);
      }, stack.token);
      const page = await context.newPage();
      const errors = [];
      page.on("pageerror", (err) => errors.push(err.message));
      await page.goto(`${stack.baseUrl}/docs/api`);
      await page.getByText("Create a ticket (TicketCreated)").first().waitFor({ timeout: 30_000 });
      await page.getByRole("heading", { name: "ticketflow API" }).first().waitFor({ timeout: 10_000 });
      assert.deepEqual(errors, []);
    } finally {
      await browser.close();
    }
  });
});
