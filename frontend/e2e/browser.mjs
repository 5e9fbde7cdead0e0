// The setup every browser test shares: the real stack (stack.mjs) and Debian's Chromium, and
// pages that record what the browser logged as an error.

import { chromium } from "playwright-core";
import { startStack } from "./stack.mjs";

const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
const ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--no-first-run"];

/**
 * startBrowserStack starts the stack (startStack's options; log defaults to the test output)
 * and Chromium. It returns { stack, browser, errors, openPage(viewport), stop() }: `errors`
 * holds every console error and uncaught page error of the pages openPage opened; stop closes
 * the browser and stops the stack.
 */
export async function startBrowserStack(options = {}) {
  const stack = await startStack({ log: (m) => console.log(`# ${m.split("\n").join("\n# ")}`), ...options });
  let browser;
  try {
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ARGS, headless: true });
  } catch (err) {
    await stack.stop();
    throw err;
  }
  const errors = [];
  return {
    stack,
    browser,
    errors,
    /** openPage opens a page in a fresh browser context whose errors go to `errors`. */
    async openPage(viewport = { width: 1280, height: 900 }) {
      const page = await (await browser.newContext({ viewport })).newPage();
      // The location names the resource of a failed load ("Failed to load resource" says no more).
      page.on("console", (m) => m.type() === "error" && errors.push(`console.error: ${m.text()} (${m.location().url})`));
      page.on("pageerror", (e) => errors.push(`page error: ${e.message}`));
      return page;
    },
    async stop() {
      await browser.close().catch(() => {});
      await stack.stop();
    },
  };
}

/**
 * readLog reads every line of the virtualized log at selector (a `.logs-scroll`) by scrolling
 * it from top to bottom: { total: its data-count when the reading starts, rows: [{ id, message }]
 * in index order }.
 * Each scroll moves one view plus skip pixels (rows the list renders beyond the view).
 */
export async function readLog(page, selector, { skip = 0 } = {}) {
  return page.evaluate(
    async ({ selector, skip }) => {
      const el = document.querySelector(selector);
      if (!el) throw new Error(`no log viewer at ${selector}`);
      const total = Number(el.dataset.count);
      const rows = new Map();
      const frame = () => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)));
      el.scrollTop = 0;
      await frame();
      for (let guard = 0; guard < 10_000; guard++) {
        for (const row of el.querySelectorAll(".log-row")) {
          rows.set(Number(row.dataset.index), { id: row.dataset.eventId, message: row.querySelector(".log-msg")?.textContent ?? "" });
        }
        if (el.scrollTop + el.clientHeight >= el.scrollHeight - 1) break;
        el.scrollTop += el.clientHeight + skip;
        await frame();
      }
      return { total, rows: [...rows.entries()].sort((a, b) => a[0] - b[0]).map(([, v]) => v) };
    },
    { selector, skip },
  );
}
