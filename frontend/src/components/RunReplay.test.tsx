// @vitest-environment happy-dom
import { createRoot } from "react-dom/client";
import { flushSync } from "react-dom";
import { describe, expect, it } from "vitest";
import { fakeRunLog } from "../test/runEvents";
import { formatClock, RunReplay } from "./RunReplay";

(globalThis as { IS_REACT_ACT_ENVIRONMENT?: boolean }).IS_REACT_ACT_ENVIRONMENT = false;

const until = async (cond: () => boolean, what: string, ms = 5000) => {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (cond()) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`timed out waiting for ${what}`);
};

const button = (el: HTMLElement, label: string) =>
  [...el.querySelectorAll("button")].find((b) => b.getAttribute("aria-label") === label || b.textContent?.trim() === label) as HTMLButtonElement;

/** mount renders the replay of f's run; open opens the player and waits for it. */
const mount = (f: ReturnType<typeof fakeRunLog>) => {
  const el = document.createElement("div");
  document.body.appendChild(el);
  const root = createRoot(el);
  flushSync(() => root.render(<RunReplay runId="r1" load={f.load} />));
  const player = () => el.querySelector(".replay-player") as HTMLElement | null;
  return {
    el,
    player,
    open: async () => {
      flushSync(() => button(el, "Revoir l'exécution").click());
      await until(() => !!player(), "the player");
    },
    unmount: () => {
      root.unmount();
      el.remove();
    },
  };
};

describe("RunReplay", () => {
  it("loads every page, plays at 50× to the final state with the whole log, says when it skips, and seeks back", async () => {
    const f = fakeRunLog(3);
    f.add("TicketProcessingRequested", 0, { requested_by: "me" });
    f.add("RunStarted", 0.1, { iteration: 1 });
    f.add("StepStarted", 0.2, { step: "run_ci", progress: 85, iteration: 1, attempt: 1 });
    for (let i = 0; i < 5; i++) f.add("LogEmitted", 0.3 + i * 0.1, { level: "INFO", step: "run_ci", message: `line ${i}` });
    f.add("CIResult", 1, { iteration: 1, passed: true, exit_code: 0, duration_ms: 800 });
    f.add("LogEmitted", 601, { level: "WARN", step: "run_ci", message: "after ten idle minutes" });
    f.add("StepCompleted", 601.1, { step: "run_ci", outcome: "ok", duration_ms: 900 });
    f.add("RunCompleted", 601.2, { iteration: 1, message: "Terminé, en attente de validation" });

    const { el, player, open, unmount } = mount(f);
    expect(f.calls).toEqual([]); // nothing loads before the player is opened
    await open();
    expect(f.calls).toEqual([null, "2", "5", "8", "11"]);
    expect(player()!.dataset.total).toBe(String(f.log.length));
    expect(player()!.dataset.replayState).toBe("ready");
    expect(el.querySelectorAll(".replay-marks .rm").length).toBe(2); // the step start and the CI result

    flushSync(() => button(el, "Vitesse 50×").click());
    expect(button(el, "Vitesse 50×").getAttribute("aria-pressed")).toBe("true");
    flushSync(() => button(el, "Lire").click());
    await until(() => el.querySelector('[data-testid="replay-skip"]') !== null, "the skip notice");
    expect(el.querySelector('[data-testid="replay-skip"]')!.textContent).toMatch(/Inactivité de 10 min 00 s raccourcie à 2.00 s/);
    await until(() => player()!.dataset.replayState === "ended", "the end of the replay");
    expect(player()!.dataset.position).toBe(String(f.log.length));
    expect(el.querySelector(".replay-state .badge")!.getAttribute("data-status")).toBe("COMPLETED");
    const messages = [...el.querySelectorAll(".log-row .log-msg")].map((m) => m.textContent);
    expect(messages).toEqual(["line 0", "line 1", "line 2", "line 3", "line 4", "after ten idle minutes"]);

    // Seeking to the start empties the state; to a marker shows its prefix.
    flushSync(() => button(el, "Revenir au début").click());
    expect(player()!.dataset.position).toBe("0");
    expect(el.querySelectorAll(".log-row").length).toBe(0);
    flushSync(() => button(el, "Aller à : CI réussie").click());
    expect(player()!.dataset.position).toBe("9");
    expect(el.querySelectorAll(".log-row").length).toBe(5);
    expect(el.querySelector(".replay-state .badge")!.getAttribute("data-status")).toBe("IN_PROGRESS");

    unmount();
  });

  it("goes to exactly a marker's event when the next event has the same time", async () => {
    const f = fakeRunLog(100);
    f.add("TicketProcessingRequested", 0, { requested_by: "me" });
    f.add("StepStarted", 0.1, { step: "run_ci", progress: 85, iteration: 1, attempt: 1 });
    f.add("LogEmitted", 0.2, { level: "INFO", step: "run_ci", message: "before" });
    f.add("CIResult", 0.5, { iteration: 1, passed: false, exit_code: 1, duration_ms: 300 });
    f.add("LogEmitted", 0.5, { level: "INFO", step: "run_ci", message: "same millisecond" });
    f.add("RunFailed", 0.6, { iteration: 1, error: "CI" });

    const { el, player, open, unmount } = mount(f);
    await open();
    flushSync(() => button(el, "Aller à : CI en échec").click());
    expect(player()!.dataset.position).toBe("4");
    expect([...el.querySelectorAll(".log-row .log-msg")].map((m) => m.textContent)).toEqual(["before"]);

    unmount();
  });

  it("formats the replay clock", () => {
    expect([0, 950, 61_250, 600_000].map(formatClock)).toEqual(["0:00.0", "0:00.9", "1:01.2", "10:00.0"]);
  });
});
