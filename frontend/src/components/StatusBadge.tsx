import type { RunStatus, TicketStatus } from "../lib/types";
import { Icon, type IconName } from "./Icon";

export const STATUS_META: Record<TicketStatus | RunStatus, { label: string; icon: IconName; tone: string }> = {
  IDLE: { label: "Inactif", icon: "circle", tone: "neutral" },
  PENDING: { label: "En attente", icon: "clock", tone: "warning" },
  IN_PROGRESS: { label: "En cours", icon: "spinner", tone: "info" },
  COMPLETED: { label: "Terminé", icon: "check", tone: "success" },
  FAILED: { label: "Échec", icon: "x", tone: "danger" },
  CANCELLED: { label: "Annulé", icon: "ban", tone: "muted" },
  VALIDATED: { label: "Validé", icon: "shield", tone: "accent" },
  REJECTED: { label: "Refusé", icon: "ban", tone: "muted" },
};

export function statusLabel(s: TicketStatus | RunStatus | null | undefined): string {
  return s ? (STATUS_META[s]?.label ?? s) : "Inconnu";
}

/** StatusBadge shows a status with its icon and colour; data-status carries the raw value. */
export function StatusBadge({ status, size = "md" }: { status: TicketStatus | RunStatus | null | undefined; size?: "sm" | "md" }) {
  const meta = status ? STATUS_META[status] : undefined;
  return (
    <span
      className={`badge badge-${meta?.tone ?? "neutral"} badge-${size}`}
      data-status={status ?? ""}
      title={status ?? "Statut inconnu"}
    >
      <Icon name={meta?.icon ?? "circle"} size={size === "sm" ? 12 : 14} />
      <span>{meta?.label ?? (status || "…")}</span>
    </span>
  );
}
