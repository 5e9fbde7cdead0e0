// Starts the real ticketflow stack for the browser tests: builds `ticketflow` from the repo,
// runs `ticketflow dev` on free ports with a fresh PostgreSQL database and the simulated
// executor, serves the built web app from frontend/dist, and tears everything down after.

import { execFile, spawn } from "node:child_process";
import { createWriteStream, mkdtempSync, rmSync, existsSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

const run = promisify(execFile);
const here = dirname(fileURLToPath(import.meta.url));
export const frontendDir = resolve(here, "..");
export const repoRoot = resolve(frontendDir, "..");

async function freePort() {
  return new Promise((resolvePort, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => resolvePort(port));
    });
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * startStack returns { baseUrl, token, api(path, init), stop() }. The process's output goes to
 * <tmp>/dev.log, printed if startup fails.
 */
export async function startStack({ stepDelay = "300ms", extraEnv = {}, log = console.log } = {}) {
  const tmp = mkdtempSync(join(tmpdir(), "tf-e2e-"));
  const bin = join(tmp, "ticketflow");
  log(`building ticketflow → ${bin}`);
  await run("go", ["build", "-o", bin, "./cmd/ticketflow"], { cwd: repoRoot, maxBuffer: 16 << 20 });
  if (!existsSync(join(frontendDir, "dist", "index.html"))) throw new Error("frontend/dist is missing: run `npm run build` first");

  const httpPort = await freePort();
  const kafkaPort = await freePort();
  const db = `tf_e2e_${Date.now().toString(36)}_${Math.random().toString(36).slice(2, 8)}`;
  const baseUrl = `http://127.0.0.1:${httpPort}`;
  const secret = `e2e-secret-${Math.random().toString(36).slice(2)}-0123456789abcdef`;
  const env = {
    ...process.env,
    TICKETFLOW_HTTP_ADDR: `127.0.0.1:${httpPort}`,
    TICKETFLOW_EMBEDDED_KAFKA_ADDR: `127.0.0.1:${kafkaPort}`,
    TICKETFLOW_DATA_DIR: join(tmp, "data"),
    DATABASE_URL: `postgres://postgres@127.0.0.1:5432/${db}?sslmode=disable`,
    TICKETFLOW_JWT_SECRET: secret,
    TICKETFLOW_WEB_DIR: join(frontendDir, "dist"),
    TICKETFLOW_EXECUTOR: "simulated",
    TICKETFLOW_SIM_STEP_DELAY: stepDelay,
    TICKETFLOW_ALLOWED_ORIGINS: baseUrl,
    TICKETFLOW_DEMO: "false",
    ...extraEnv,
  };
  delete env.KAFKA_BROKERS;

  const logPath = join(tmp, "dev.log");
  const out = createWriteStream(logPath);
  const proc = spawn(bin, ["dev"], { env, stdio: ["ignore", "pipe", "pipe"] });
  proc.stdout.pipe(out);
  proc.stderr.pipe(out);
  let exited = null;
  proc.on("exit", (code, signal) => (exited = { code, signal }));

  const stop = async () => {
    if (!exited) {
      proc.kill("SIGTERM");
      for (let i = 0; i < 100 && !exited; i++) await sleep(100);
      if (!exited) proc.kill("SIGKILL");
      for (let i = 0; i < 20 && !exited; i++) await sleep(100);
    }
    try {
      await run("psql", ["-h", "127.0.0.1", "-U", "postgres", "-c", `DROP DATABASE IF EXISTS ${db} WITH (FORCE)`]);
    } catch (err) {
      log(`warning: could not drop ${db}: ${err.message}`);
    }
    if (!process.env.E2E_KEEP_TMP) rmSync(tmp, { recursive: true, force: true });
  };

  try {
    const deadline = Date.now() + 120_000;
    for (;;) {
      if (exited) throw new Error(`ticketflow dev exited early (${JSON.stringify(exited)})`);
      if (Date.now() > deadline) throw new Error("ticketflow dev not ready after 120 s");
      try {
        const r = await fetch(`${baseUrl}/readyz`);
        if (r.status === 200) break;
      } catch {
        // not listening yet
      }
      await sleep(250);
    }
    const { stdout } = await run(bin, ["token", "--sub", "e2e", "--role", "admin"], { env });
    const token = stdout.trim();
    log(`stack ready at ${baseUrl} (database ${db})`);
    const api = async (path, init = {}) => {
      const r = await fetch(baseUrl + path, { ...init, headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json", ...(init.headers ?? {}) } });
      const text = await r.text();
      if (!r.ok) throw new Error(`${init.method ?? "GET"} ${path}: ${r.status} ${text}`);
      return text ? JSON.parse(text) : null;
    };
    return { baseUrl, token, api, stop, logPath };
  } catch (err) {
    const { readFileSync } = await import("node:fs");
    try {
      log(readFileSync(logPath, "utf8").split("\n").slice(-60).join("\n"));
    } catch {
      // no log yet
    }
    await stop();
    throw err;
  }
}

/** allEvents pages through an audit-trail endpoint. */
export async function allEvents(api, path) {
  const out = [];
  let after = "";
  for (;;) {
    const sep = path.includes("?") ? "&" : "?";
    const page = await api(`${path}${sep}limit=500${after ? `&after=${encodeURIComponent(after)}` : ""}`);
    out.push(...page.events);
    if (!page.next_cursor) return out;
    after = page.next_cursor;
  }
}
