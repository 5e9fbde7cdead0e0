import type { TicketStatus } from "../lib/types";

export function ProgressBar({
  value,
  status,
  label = "Progression",
  detail,
  compact = false,
}: {
  value: number;
  status?: TicketStatus | null;
  label?: string;
  detail?: string;
  compact?: boolean;
}) {
  const v = Math.max(0, Math.min(100, Math.round(value)));
  return (
    <div className={`progress ${compact ? "progress-compact" : ""}`}>
      <div
        className={`progress-track progress-${(status ?? "IDLE").toLowerCase()}`}
        role="progressbar"
        aria-label={label}
        aria-valuemin={0}
        aria-valuemax={100}
        aria-valuenow={v}
        aria-valuetext={detail ? `${v} % — ${detail}` : `${v} %`}
      >
        <div className="progress-fill" style={{ width: `${v}%` }} />
      </div>
      {!compact && <span className="progress-value">{v} %</span>}
    </div>
  );
}
