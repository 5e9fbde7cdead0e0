import { defineConfig } from "vitest/config";
import react from "@vitejs/plugin-react";

// The API, the WebSocket and the web app share one origin. In development Vite serves the
// app and forwards /api, /ws and the probes to `ticketflow dev` (TICKETFLOW_API to override).
const api = process.env.TICKETFLOW_API ?? "http://127.0.0.1:8000";

export default defineConfig({
  plugins: [react()],
  server: {
    proxy: {
      "/api": api,
      // The notifier checks a socket's Origin against TICKETFLOW_ALLOWED_ORIGINS (its own origin
      // in dev): through this local proxy, present the API's origin so no extra config is needed.
      "/ws": { target: api, ws: true, rewriteWsOrigin: true },
      "/healthz": api,
      "/readyz": api,
    },
  },
  build: {
    outDir: "dist",
    sourcemap: true,
  },
  test: {
    include: ["src/**/*.test.{ts,tsx}"],
    environment: "node",
    testTimeout: 20000,
  },
});
