// @vitest-environment happy-dom
import { createRoot } from "react-dom/client";
import { flushSync } from "react-dom";
import { describe, expect, it } from "vitest";
import type { RunRepositoryConfig } from "../lib/types";
import { RepositoryConfigPanel } from "./RepositoryConfigPanel";

(globalThis as { IS_REACT_ACT_ENVIRONMENT?: boolean }).IS_REACT_ACT_ENVIRONMENT = false;

function render(rc: RunRepositoryConfig): HTMLElement {
  const el = document.createElement("div");
  document.body.append(el);
  flushSync(() => createRoot(el).render(<RepositoryConfigPanel rc={rc} />));
  return el;
}

const limits = { ci_timeout_ms: 30_000, max_steps: 6, max_tokens: 1000, max_cost_usd: 0.5, max_duration_ms: 60_000 };

describe("RepositoryConfigPanel", () => {
  it("shows the file, the repository's CI command, the editable globs, the limits and what was refused", () => {
    const el = render({
      source: "file",
      sha256: "f35a346c929df22ae13036cfbd880cb8",
      size_bytes: 71,
      config: {
        ...limits,
        ci_command: "sh ci.sh",
        ci_command_from: "repository",
        ci_command_overridable: false,
        editable: ["src/**", "docs/*.md"],
        notes: ['the ticket\'s CI command "exit 3" is not used'],
      },
    });
    const text = el.textContent ?? "";
    expect(el.querySelector("[data-source]")?.getAttribute("data-source")).toBe("file");
    expect(text).toContain(".ticketflow.yml (71 octets, sha256 f35a346c929d)");
    expect(text).toContain("sh ci.sh (du dépôt, 30.0 s max)");
    expect(text).toContain("src/**, docs/*.md");
    expect(text).toContain("6 étapes");
    expect(text).toContain("1 min 00 s");
    expect(el.querySelectorAll(".repo-config-notes li")).toHaveLength(1);
    expect(text).toContain('"exit 3" is not used');
  });

  it("shows the defaults without a file: the ticket's command, every path editable, no notes", () => {
    const el = render({ source: "default", config: { ...limits, ci_command: "make test", ci_command_from: "ticket", ci_command_overridable: false } });
    const text = el.textContent ?? "";
    expect(text).toContain("Pas de .ticketflow.yml");
    expect(text).toContain("make test (du ticket");
    expect(text).toContain("tous les chemins");
    expect(el.querySelector(".repo-config-notes")).toBeNull();
  });
});
