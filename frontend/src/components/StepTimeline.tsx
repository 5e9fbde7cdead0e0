import { formatDuration } from "../lib/format";
import type { StepResult } from "../lib/ticketStore";
import { STEPS, type TicketStatus } from "../lib/types";
import { Icon } from "./Icon";

/** StepTimeline shows the eight workflow steps: done, current, failed or to come. */
export function StepTimeline({ step, status, results }: { step: string | null; status: TicketStatus | null; results: Record<string, StepResult> }) {
  const current = STEPS.findIndex((s) => s.name === step);
  const finished = status === "COMPLETED" || status === "VALIDATED";
  return (
    <ol className="steps" aria-label="Étapes du traitement">
      {STEPS.map((s, i) => {
        const r = results[s.name];
        let state: "done" | "current" | "failed" | "todo" = "todo";
        if (r?.outcome === "failed" || ((status === "FAILED" || status === "CANCELLED") && i === current)) state = "failed";
        else if (r || finished || (current >= 0 && i < current)) state = "done";
        else if (i === current && (status === "IN_PROGRESS" || status === "PENDING")) state = "current";
        return (
          <li key={s.name} className={`step step-${state}`} aria-current={state === "current" ? "step" : undefined} title={`${s.name} (${s.progress} %)`}>
            <span className="step-dot">
              {state === "done" && <Icon name="check" size={12} />}
              {state === "failed" && <Icon name="x" size={12} />}
              {state === "current" && <Icon name="spinner" size={12} />}
            </span>
            <span className="step-label">{s.label}</span>
            {r?.durationMs !== null && r?.durationMs !== undefined && <span className="step-time">{formatDuration(r.durationMs)}</span>}
          </li>
        );
      })}
    </ol>
  );
}
