// The outcome of a run's last CI: passed or failed, with its exit code and iteration when known.
// The live status card and the replay player both show it.

import type { CIResult } from "../lib/ticketStore";
import { Icon } from "./Icon";

export function CIOutcome({ ci }: { ci: CIResult }) {
  return (
    <p className={`ci-result ${ci.passed ? "ok" : "ko"}`}>
      <Icon name={ci.passed ? "check" : "x"} size={14} /> CI {ci.passed ? "réussie" : "en échec"}
      {ci.exitCode !== null && ` (code ${ci.exitCode})`}
      {ci.iteration !== null && ` — itération ${ci.iteration}`}
    </p>
  );
}
