// @vitest-environment happy-dom
import { createRoot } from "react-dom/client";
import { flushSync } from "react-dom";
import { describe, expect, it } from "vitest";
import type { LogEntry } from "../lib/types";
import { LogViewer } from "./LogViewer";

(globalThis as { IS_REACT_ACT_ENVIRONMENT?: boolean }).IS_REACT_ACT_ENVIRONMENT = false;

const lines = (n: number, from = 0): LogEntry[] =>
  Array.from({ length: n }, (_, i) => ({ id: `ev-${from + i}`, level: "INFO", message: `line ${from + i}`, timestamp: "2025-01-02T10:30:00Z" }));

describe("LogViewer", () => {
  it("keeps the DOM small at 10,000 lines and renders the rows in view", () => {
    const el = document.createElement("div");
    document.body.appendChild(el);
    const root = createRoot(el);
    const logs = lines(10_000);
    flushSync(() => root.render(<LogViewer logs={logs} height={380} />));
    const scroller = el.querySelector(".logs-scroll")!;
    expect(scroller.getAttribute("data-count")).toBe("10000");
    const rows = el.querySelectorAll(".log-row");
    expect(rows.length).toBeGreaterThan(0);
    expect(rows.length).toBeLessThan(120);
    // Rows are positioned by index, so the scroll height matches the whole log.
    expect((el.querySelector(".logs-inner") as HTMLElement).style.height).toBe(`${10_000 * 22}px`);
    expect(el.textContent).toMatch(/10[\s\u202f]?000 lignes/);

    // Appending keeps the DOM bounded.
    flushSync(() => root.render(<LogViewer logs={[...logs, ...lines(5_000, 10_000)]} height={380} />));
    expect(el.querySelectorAll(".log-row").length).toBeLessThan(120);
    root.unmount();
    el.remove();
  });
});
