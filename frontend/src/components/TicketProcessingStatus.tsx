// The brief's component: live processing status of one ticket — status badge, progress bar,
// steps, errors and the live log — over the ticket's shared WebSocket.
//
//   <TicketProcessingStatus ticketId={id} onComplete={() => ...} onError={(error) => ...} />

import { useEffect, useRef } from "react";
import { useTicketConnection } from "../hooks/useTicketProcessing";
import { formatUSD } from "../lib/format";
import { stepLabel, isActive, type LogEntry, type TicketStatus } from "../lib/types";
import { CIOutcome } from "./CIOutcome";
import { ConnectionPill } from "./ConnectionPill";
import { ErrorPanel } from "./ErrorPanel";
import { Icon } from "./Icon";
import { LogViewer } from "./LogViewer";
import { ProgressBar } from "./ProgressBar";
import { StatusBadge } from "./StatusBadge";
import { StepTimeline } from "./StepTimeline";

export interface TicketProcessingStatusProps {
  ticketId: string;
  /** Called once when a run this page watched live reaches COMPLETED. */
  onComplete?: () => void;
  /** Called once with the error when a run this page watched live FAILED. */
  onError?: (error: string) => void;
}

export function TicketProcessingStatus({ ticketId, onComplete, onError }: TicketProcessingStatusProps) {
  const { state, retry } = useTicketConnection(ticketId);
  const { status, message, step, progress, error, logs, runId } = state;

  // Fire the callbacks on transitions seen live, not when a finished run is replayed.
  const prev = useRef<{ status: TicketStatus | null; runId: string | null }>({ status: null, runId: null });
  const callbacks = useRef({ onComplete, onError });
  callbacks.current = { onComplete, onError };
  useEffect(() => {
    const before = prev.current;
    prev.current = { status, runId };
    if (!state.statusLive || before.status === status || !isActive(before.status)) return;
    if (status === "COMPLETED") callbacks.current.onComplete?.();
    if (status === "FAILED") callbacks.current.onError?.(error ?? message);
  }, [status, runId, error, message, state.statusLive]);

  const download = () => downloadLog(ticketId, runId, logs);

  return (
    <section className="card tps" aria-label="Traitement du ticket" data-ticket-id={ticketId}>
      <div className="tps-head">
        <StatusBadge status={status ?? null} />
        <div className="tps-message">
          <p className="tps-text">{message || (status ? "" : "En attente des informations du serveur…")}</p>
          {step && <p className="tps-step muted">Étape : {stepLabel(step)}</p>}
        </div>
        <ConnectionPill info={state} onRetry={retry} />
      </div>

      <ProgressBar value={progress} status={status} detail={step ? stepLabel(step) : undefined} />
      <StepTimeline step={step} status={status} results={state.steps} />

      {state.ci && <CIOutcome ci={state.ci} />}
      {state.llm && (
        <p className="llm-usage muted" data-testid="llm-usage">
          LLM : {state.llm.calls} appel{state.llm.calls > 1 ? "s" : ""} · {state.llm.inputTokens.toLocaleString("fr-FR")} jetons en entrée ·{" "}
          {state.llm.outputTokens.toLocaleString("fr-FR")} en sortie · {formatUSD(state.llm.costUsd)}
        </p>
      )}
      {state.notice && (
        <p className="notice" role="status">
          <Icon name="message" size={14} /> {state.notice}
        </p>
      )}
      {error && <ErrorPanel title={status === "CANCELLED" ? "Traitement annulé" : "Erreur"} message={error} />}
      {state.fatal && <ErrorPanel icon="wifi-off" title="Connexion temps réel interrompue" message={state.fatal} />}

      <LogViewer logs={logs} dropped={state.droppedLogs} onDownload={download} />
    </section>
  );
}

function downloadLog(ticketId: string, runId: string | null, logs: LogEntry[]) {
  const text = logs.map((l) => `${l.timestamp}\t${l.level}\t${l.step ?? ""}\t${l.message}`).join("\n") + "\n";
  const url = URL.createObjectURL(new Blob([text], { type: "text/plain;charset=utf-8" }));
  const a = document.createElement("a");
  a.href = url;
  a.download = `${ticketId}${runId ? `-${runId}` : ""}.log`;
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

export default TicketProcessingStatus;
