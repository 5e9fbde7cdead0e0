// Shapes of the ticketflow HTTP API and WebSocket messages (see the API contract).

export type TicketStatus =
  | "IDLE"
  | "PENDING"
  | "IN_PROGRESS"
  | "COMPLETED"
  | "FAILED"
  | "CANCELLED"
  | "VALIDATED";

export const ACTIVE_STATUSES: readonly TicketStatus[] = ["PENDING", "IN_PROGRESS"];
export const isActive = (s: TicketStatus | null | undefined): boolean =>
  s === "PENDING" || s === "IN_PROGRESS";

export interface Ticket {
  id: string;
  title: string;
  description: string;
  repository_url: string;
  base_branch: string;
  ci_command: string;
  owner: string;
  status: TicketStatus;
  step: string;
  progress: number;
  message: string;
  error: string;
  iteration: number;
  current_run_id: string;
  created_at: string;
  updated_at: string;
}

/** A file a run produced (GET /api/runs/{run}/artifacts), e.g. ci-1.log: the full CI output. */
export interface RunArtifact {
  name: string;
  size_bytes: number;
  lines: number;
  created_at: string;
}

export interface Run {
  id: string;
  ticket_id: string;
  status: TicketStatus;
  step: string;
  progress: number;
  iteration: number;
  reason: string;
  requested_by: string;
  message: string;
  error: string;
  branch: string;
  requested_at: string;
  started_at: string | null;
  finished_at: string | null;
}

export interface Envelope {
  id: string;
  type: string;
  version: number;
  ticket_id: string;
  run_id: string;
  occurred_at: string;
  actor: string;
  data: Record<string, unknown>;
}

export interface EventItem {
  cursor: string;
  partition: number;
  offset: number;
  event: Envelope;
}

export interface EventPage {
  events: EventItem[];
  next_cursor: string | null;
}

export interface StepStats {
  step: string;
  count: number;
  p50_ms: number;
  p95_ms: number;
  p99_ms: number;
  max_ms: number;
  failure_rate: number;
}

export interface Me {
  sub: string;
  role: "admin" | "user";
}

/** A message pushed by the notifier. Event-derived messages carry cursor, event_id, run_id. */
export interface ServerMessage {
  type: string;
  ticket_id?: string;
  cursor?: string;
  event_id?: string;
  run_id?: string;
  timestamp?: string;
  [field: string]: unknown;
}

export interface StatusUpdateMessage extends ServerMessage {
  type: "status_update";
  status: TicketStatus;
  message?: string;
  step?: string;
  progress?: number;
  error?: string;
  /** Set on the current-state message that follows history_unavailable. */
  snapshot?: boolean;
}

export interface LogMessage extends ServerMessage {
  type: "log";
  level: string;
  message: string;
  step?: string;
}

export interface LogEntry {
  /** event_id of the LogEmitted event (stable, unique). */
  id: string;
  level: string;
  message: string;
  step?: string;
  timestamp: string;
  runId?: string;
}

/** The eight workflow steps, with the brief's progress values. */
export const STEPS = [
  { name: "check_iterations", progress: 5, label: "Vérification des itérations" },
  { name: "prepare_repository", progress: 20, label: "Préparation du repository" },
  { name: "load_conversation", progress: 30, label: "Chargement de la conversation" },
  { name: "call_llm", progress: 50, label: "Génération du code" },
  { name: "commit_changes", progress: 70, label: "Commit des modifications" },
  { name: "run_ci", progress: 85, label: "Exécution de la CI" },
  { name: "handle_ci_result", progress: 95, label: "Résultat de la CI" },
  { name: "await_validation", progress: 100, label: "Validation humaine" },
] as const;

export const stepLabel = (name: string | null | undefined): string =>
  STEPS.find((s) => s.name === name)?.label ?? name ?? "";
