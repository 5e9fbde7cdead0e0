// @vitest-environment happy-dom
import { createRoot } from "react-dom/client";
import { flushSync } from "react-dom";
import { describe, expect, it } from "vitest";
import { ManualOnline } from "../lib/online";
import type { EventPage } from "../lib/types";
import { useRunEvents } from "./useRunEvents";

(globalThis as { IS_REACT_ACT_ENVIRONMENT?: boolean }).IS_REACT_ACT_ENVIRONMENT = false;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Waits until cond holds (a loaded machine runs timers late), failing after timeoutMs. */
async function until(cond: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  for (const end = Date.now() + timeoutMs; !cond(); await sleep(5)) {
    if (Date.now() > end) throw new Error(`timed out waiting until ${what}`);
  }
}

describe("useRunEvents", () => {
  it("asks nothing while offline and catches up when the network is back", async () => {
    const online = new ManualOnline(true);
    let n = 0;
    const calls: (string | null)[] = [];
    const load = async (_run: string, after: string | null): Promise<EventPage> => {
      calls.push(after);
      const i = n++;
      const event = { id: `ev-${i}`, type: "LogEmitted", version: 1, ticket_id: "t1", run_id: "r1", occurred_at: "2026-03-01T10:00:00Z", actor: "p", data: {} };
      return { events: [{ cursor: String(i), partition: 0, offset: i, event }], next_cursor: null };
    };
    let seen = 0;
    function Probe() {
      seen = useRunEvents("r1", { follow: true, intervalMs: 20, load, online }).events.length;
      return null;
    }
    const el = document.createElement("div");
    const root = createRoot(el);
    flushSync(() => root.render(<Probe />));
    await until(() => calls.length > 1, "it polls while online");

    online.set(false);
    await sleep(30); // a pull in flight ends
    const before = calls.length;
    await sleep(150);
    expect(calls.length).toBe(before);

    online.set(true);
    await until(() => calls.length > before, "it pulls again once online");
    await until(() => seen === n, "every loaded event is shown");
    root.unmount();
  });
});
