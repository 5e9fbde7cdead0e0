// AuditTrail lists events from the append-only log (GET .../events), page by page, with a
// readable summary per event, the raw envelope on demand, and an NDJSON export.

import { useCallback, useEffect, useState } from "react";
import { downloadNdjson } from "../lib/api";
import { formatDateTime, formatDuration, shortId } from "../lib/format";
import type { Envelope, EventItem, EventPage } from "../lib/types";
import { FormError } from "./ErrorPanel";
import { Icon } from "./Icon";
import { useToast } from "./Toasts";

interface Props {
  load: (after: string | null, signal?: AbortSignal) => Promise<EventPage>;
  exportPath: string;
  exportName: string;
  /** Changes when the caller knows new events exist (reloads the first page). */
  refreshKey?: unknown;
  showRun?: boolean;
}

export function AuditTrail({ load, exportPath, exportName, refreshKey, showRun = true }: Props) {
  const toast = useToast();
  const [items, setItems] = useState<EventItem[]>([]);
  const [next, setNext] = useState<string | null>(null);
  const [loading, setLoading] = useState(true);
  const [error, setError] = useState<string | null>(null);

  useEffect(() => {
    const ctl = new AbortController();
    setLoading(true);
    load(null, ctl.signal)
      .then((p) => {
        setItems(p.events);
        setNext(p.next_cursor);
        setError(null);
      })
      .catch((e: Error) => !ctl.signal.aborted && e.name !== "AbortError" && setError(e.message))
      .finally(() => !ctl.signal.aborted && setLoading(false));
    return () => ctl.abort();
  }, [load, refreshKey]);

  const more = useCallback(async () => {
    if (!next) return;
    setLoading(true);
    try {
      const p = await load(next);
      setItems((xs) => [...xs, ...p.events]);
      setNext(p.next_cursor);
    } catch (e) {
      setError((e as Error).message);
    } finally {
      setLoading(false);
    }
  }, [load, next]);

  const exportAll = async () => {
    try {
      await downloadNdjson(exportPath, exportName);
    } catch (e) {
      toast.error((e as Error).message);
    }
  };

  return (
    <div className="audit">
      <div className="audit-head">
        <span className="muted">
          {items.length.toLocaleString("fr-FR")} événement{items.length > 1 ? "s" : ""}
          {next ? " (d'autres suivent)" : ""}
        </span>
        <button type="button" className="btn btn-ghost btn-sm" onClick={exportAll}>
          <Icon name="download" size={14} /> Exporter (NDJSON)
        </button>
      </div>
      <FormError error={error} />
      <div className="table-scroll">
        <table className="table audit-table">
          <thead>
            <tr>
              <th scope="col">Date</th>
              <th scope="col">Événement</th>
              {showRun && <th scope="col">Exécution</th>}
              <th scope="col">Acteur</th>
              <th scope="col">Détail</th>
              <th scope="col">Position</th>
            </tr>
          </thead>
          <tbody>
            {items.map((it) => (
              <tr key={it.event.id} data-event-type={it.event.type} data-event-id={it.event.id}>
                <td className="nowrap">{formatDateTime(it.event.occurred_at)}</td>
                <td>
                  <span className={`etype etype-${eventTone(it.event.type)}`}>{it.event.type}</span>
                </td>
                {showRun && <td className="mono" title={it.event.run_id}>{it.event.run_id ? shortId(it.event.run_id) : "—"}</td>}
                <td>{it.event.actor || "—"}</td>
                <td className="audit-detail">
                  <details>
                    <summary>{summarize(it.event)}</summary>
                    <pre className="json">{JSON.stringify(it.event, null, 2)}</pre>
                  </details>
                </td>
                <td className="mono muted nowrap">{it.cursor}</td>
              </tr>
            ))}
            {!loading && items.length === 0 && !error && (
              <tr>
                <td colSpan={showRun ? 6 : 5} className="muted center">
                  Aucun événement.
                </td>
              </tr>
            )}
          </tbody>
        </table>
      </div>
      {(next || loading) && (
        <div className="center pad">
          <button type="button" className="btn btn-sm" onClick={more} disabled={loading || !next}>
            {loading ? "Chargement…" : "Charger la suite"}
          </button>
        </div>
      )}
    </div>
  );
}

function eventTone(type: string): string {
  if (type === "RunFailed" || type === "RunRejected") return "danger";
  if (type === "RunCompleted" || type === "ValidationApproved") return "success";
  if (type === "RunCancelled" || type === "CancelRequested") return "muted";
  if (type === "LogEmitted") return "log";
  return "info";
}

/** summarize turns an envelope into one readable line. */
export function summarize(e: Envelope): string {
  const d = e.data ?? {};
  const s = (k: string) => (d[k] === undefined || d[k] === null ? "" : String(d[k]));
  switch (e.type) {
    case "TicketCreated":
      return `Ticket créé : ${s("title")}`;
    case "TicketProcessingRequested":
      return `Traitement demandé par ${s("requested_by") || e.actor}${s("reason") && s("reason") !== "start" ? ` (${s("reason")})` : ""}`;
    case "RunStarted":
      return `Exécution démarrée — itération ${s("iteration")}${s("max_iterations") ? `/${s("max_iterations")}` : ""}${s("executor") ? ` (${s("executor")})` : ""}`;
    case "StepStarted":
      return `${s("step")} · ${s("progress")} % — ${s("message")}${Number(d.attempt) > 1 ? ` (tentative ${s("attempt")})` : ""}`;
    case "StepCompleted":
      return `${s("step")} ${s("outcome") === "ok" ? "terminée" : "en échec"} en ${formatDuration(Number(d.duration_ms))}${s("error") ? ` : ${s("error")}` : ""}`;
    case "LogEmitted":
      return `[${s("level")}] ${s("message")}`;
    case "CIResult":
      return `CI ${d.passed ? "réussie" : "en échec"} (code ${s("exit_code")}, ${formatDuration(Number(d.duration_ms))})`;
    case "RunCompleted":
      return s("message") || "Exécution terminée";
    case "RunFailed":
      return `${s("message") || "Échec"}${s("error") ? ` : ${s("error")}` : ""}`;
    case "RunCancelled":
      return `${s("message") || "Annulée"}${s("reason") ? ` (${s("reason")})` : ""}`;
    case "RunRejected":
      return `Demande refusée : ${s("reason")}`;
    case "CancelRequested":
      return `Annulation demandée par ${s("requested_by") || e.actor}`;
    case "ValidationApproved":
      return `Validé par ${s("approved_by") || e.actor}${s("comment") ? ` : ${s("comment")}` : ""}`;
    case "ChangesRequested":
      return `Modifications demandées par ${s("requested_by") || e.actor} : ${s("comment")}`;
    default:
      return e.type;
  }
}
