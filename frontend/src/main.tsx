import { StrictMode } from "react";
import { createRoot } from "react-dom/client";
import { App } from "./App";
import { captureTokenFromHash } from "./lib/auth";
import { configureConnections } from "./lib/registry";
import { api } from "./lib/api";
import type { TicketSeed } from "./lib/ticketStore";
import "./styles.css";

// `/#access_token=<jwt>` signs in and is stripped from the address bar before anything renders.
// A hash-only navigation (pasting that URL into a tab already on the app) reloads nothing, so
// listen for it too.
captureTokenFromHash();
window.addEventListener("hashchange", () => captureTokenFromHash());

// Before the socket has said anything, show the ticket's last known state from the API.
configureConnections({
  seed: async (ticketId): Promise<TicketSeed | null> => {
    const t = await api.getTicket(ticketId);
    return { status: t.status, message: t.message, step: t.step, progress: t.progress, error: t.error, runId: t.current_run_id };
  },
});

createRoot(document.getElementById("root")!).render(
  <StrictMode>
    <App />
  </StrictMode>,
);
