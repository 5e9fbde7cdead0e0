// @vitest-environment happy-dom
import { createRoot } from "react-dom/client";
import { flushSync } from "react-dom";
import { describe, expect, it } from "vitest";
import { fakeRunLog, T0 } from "../test/runEvents";
import { RunWaterfall } from "./RunWaterfall";

(globalThis as { IS_REACT_ACT_ENVIRONMENT?: boolean }).IS_REACT_ACT_ENVIRONMENT = false;

const until = async (cond: () => boolean, what: string) => {
  for (let i = 0; i < 200; i++) {
    if (cond()) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`timed out waiting for ${what}`);
};

describe("RunWaterfall", () => {
  it("draws one labelled row per step attempt, follows new events and offers a table", async () => {
    const f = fakeRunLog(2);
    f.add("RunStarted", 0, { iteration: 1 });
    f.add("StepStarted", 0, { step: "check_iterations", iteration: 1, attempt: 1 });
    f.add("StepCompleted", 1, { step: "check_iterations", iteration: 1, attempt: 1, outcome: "ok", duration_ms: 1000 });
    f.add("StepStarted", 1, { step: "call_llm", iteration: 1, attempt: 1 });
    f.add("RunResumed", 5, { owner: "p2" });
    f.add("StepStarted", 5, { step: "call_llm", iteration: 1, attempt: 2 });

    const el = document.createElement("div");
    document.body.appendChild(el);
    const root = createRoot(el);
    const now = () => T0 + 10_000;
    flushSync(() => root.render(<RunWaterfall runId="r1" live load={f.load} now={now} refreshKey="a" />));
    await until(() => el.querySelectorAll(".wf-row").length === 3, "three rows");
    // Paged through the whole log (pages of 2), each page after the last cursor.
    expect(f.calls.slice(0, 3)).toEqual([null, "1", "3"]);

    const rows = [...el.querySelectorAll(".wf-row")];
    expect(rows.map((r) => r.getAttribute("data-step"))).toEqual(["check_iterations", "call_llm", "call_llm"]);
    expect(rows[1].className).toContain("wf-interrupted");
    expect(rows[2].className).toContain("wf-retry");
    expect(rows[2].className).toContain("wf-running");
    expect(rows[2].getAttribute("aria-label")).toMatch(/tentative 2/);
    expect(rows[2].getAttribute("aria-label")).toMatch(/en cours/);
    expect(el.querySelector(".wf-chart")?.getAttribute("aria-label")).toMatch(/3 tentatives d'étape sur 1 itération/);
    // The running bar reaches the axis' end (now).
    const bar = rows[2].querySelector(".wf-bar") as HTMLElement;
    expect(bar.style.left).toBe("50%");
    expect(bar.getAttribute("title")).toMatch(/Génération du code/);

    // New events: the next refresh fetches only what follows and the row completes.
    f.add("StepCompleted", 8, { step: "call_llm", iteration: 1, attempt: 2, outcome: "ok", duration_ms: 3000 });
    f.add("RunFailed", 9, { message: "boom", error: "boom" });
    flushSync(() => root.render(<RunWaterfall runId="r1" live load={f.load} now={now} refreshKey="b" />));
    await until(() => el.querySelector(".waterfall")?.getAttribute("data-outcome") === "failed", "the failed run");
    expect(f.calls).toContain("5");
    expect(el.querySelectorAll(".wf-row")[2].className).toContain("wf-ok");

    // The table view has the same rows, for screen readers and copying.
    const tableButton = [...el.querySelectorAll("button")].find((b) => b.textContent === "Tableau")!;
    flushSync(() => tableButton.click());
    const cells = [...el.querySelectorAll(".wf-table tbody tr")].map((tr) => [...tr.querySelectorAll("td")].map((td) => td.textContent));
    expect(cells).toHaveLength(3);
    expect(cells[1][5]).toBe("interrompue");
    expect(cells[2][2]).toBe("2");
    expect(cells[2][4]).toBe("3.00 s");
    expect(tableButton.getAttribute("aria-pressed")).toBe("true");

    root.unmount();
    el.remove();
  });

  it("keeps asking for a while after the run stops being live, until its terminal event shows", async () => {
    const f = fakeRunLog(10);
    f.add("RunStarted", 0, { iteration: 1 });
    f.add("StepStarted", 0, { step: "run_ci", iteration: 1, attempt: 1 });
    const el = document.createElement("div");
    const root = createRoot(el);
    flushSync(() => root.render(<RunWaterfall runId="r1" live load={f.load} refreshKey="IN_PROGRESS" />));
    await until(() => el.querySelectorAll(".wf-row").length === 1, "the row");
    // The live stream says the run ended before the trail has the events: the refresh misses them.
    flushSync(() => root.render(<RunWaterfall runId="r1" live={false} load={f.load} refreshKey="COMPLETED" />));
    await new Promise((r) => setTimeout(r, 100));
    f.add("StepCompleted", 1, { step: "run_ci", iteration: 1, attempt: 1, outcome: "ok", duration_ms: 1000 });
    f.add("RunCompleted", 1, { iteration: 1 });
    for (let i = 0; i < 40 && el.querySelector(".waterfall")?.getAttribute("data-outcome") !== "completed"; i++) await new Promise((r) => setTimeout(r, 100));
    expect(el.querySelector(".waterfall")?.getAttribute("data-outcome")).toBe("completed");
    // Then it stops.
    const calls = f.calls.length;
    await new Promise((r) => setTimeout(r, 2500));
    expect(f.calls.length).toBe(calls);
    root.unmount();
  });

  it("says so when the run has no step yet", async () => {
    const f = fakeRunLog(10);
    const el = document.createElement("div");
    const root = createRoot(el);
    flushSync(() => root.render(<RunWaterfall runId="r1" load={f.load} />));
    await until(() => (el.textContent ?? "").includes("Aucune étape"), "the empty state");
    root.unmount();
  });
});
