import { useCallback, useEffect, useRef, useState, useSyncExternalStore, type FormEvent, type KeyboardEvent, type ReactNode } from "react";
import { AuditTrail } from "../components/AuditTrail";
import { ErrorPanel } from "../components/ErrorPanel";
import { RepositoryConfigPanel } from "../components/RepositoryConfigPanel";
import { RunReplay } from "../components/RunReplay";
import { RunWaterfall } from "../components/RunWaterfall";
import { Icon } from "../components/Icon";
import { StatusBadge } from "../components/StatusBadge";
import { TicketProcessingStatus } from "../components/TicketProcessingStatus";
import { useToast } from "../components/Toasts";
import { useAsync } from "../hooks/useAsync";
import { useTicketSummary } from "../hooks/useTicketProcessing";
import { actions } from "../lib/actionQueue";
import { api, ApiError, downloadFile } from "../lib/api";
import { durationBetween, formatDateTime, formatDuration, formatRelative, formatUSD, shortId, traceLink } from "../lib/format";
import { Link, useTitle } from "../lib/router";
import { useSession } from "../lib/session";
import { isFinished } from "../lib/replay";
import { isActive, stepLabel, type Run } from "../lib/types";
import { NotFoundPage } from "./NotFoundPage";

const encode = encodeURIComponent;

export function TicketPage({ ticketId }: { ticketId: string }) {
  const toast = useToast();
  const ticket = useAsync((signal) => api.getTicket(ticketId, signal), [ticketId]);
  const runs = useAsync((signal) => api.runs(ticketId, signal), [ticketId]);
  const live = useTicketSummary(ticketId);
  const [busy, setBusy] = useState<string | null>(null);
  const [tab, setTab] = useState<HistoryTabName>("runs");
  const [auditKey, setAuditKey] = useState(0);
  const dialog = useRef<HTMLDialogElement>(null);
  const [comment, setComment] = useState("");
  const pendingHere = usePendingFor(ticketId);
  const loadTicketEvents = useTicketEvents(ticketId);
  useTitle(ticket.data?.title ?? "Ticket");

  // The socket is the live truth once it has caught up; while it replays history its status
  // walks through states the ticket is already past (a finished run would show IN_PROGRESS and
  // hide its replay card), so the projected ticket speaks until then.
  const projected = ticket.data?.status ?? null;
  const status = live.live ? (live.status ?? projected) : (projected ?? live.status);
  const active = isActive(status);

  // Refresh ticket and runs as the live run moves, the audit trail when its status changes.
  const { reload: reloadTicket } = ticket;
  const { reload: reloadRuns } = runs;
  useEffect(() => {
    if (!live.status) return;
    const t = setTimeout(() => {
      if (!navigator.onLine) return; // the next change after reconnecting refreshes
      reloadTicket();
      reloadRuns();
    }, 250);
    return () => clearTimeout(t);
  }, [live.status, live.runId, live.step, reloadTicket, reloadRuns]);
  useEffect(() => {
    if (!live.status) return;
    const t = setTimeout(() => navigator.onLine && setAuditKey((k) => k + 1), 400);
    return () => clearTimeout(t);
  }, [live.status, live.runId]);

  const onError = useCallback((error: string) => toast.error(`Échec du traitement: ${error}`), [toast]);
  const onComplete = useCallback(() => toast.success("Traitement terminé : la CI est verte, en attente de validation."), [toast]);

  const perform = async (label: string, path: string, body: unknown, done: string) => {
    setBusy(label);
    try {
      const r = await actions().perform(label, path, body);
      if (r.queued) toast.info(`Hors ligne : « ${label} » sera envoyé dès le retour du réseau.`);
      else toast.success(done);
      return true;
    } catch (err) {
      const msg = err instanceof ApiError && err.code === "run_active" ? "une exécution est déjà en cours" : (err as Error).message;
      toast.error(`${label} : ${msg}`);
      return false;
    } finally {
      setBusy(null);
    }
  };

  const start = () => perform("Développer automatiquement", "/api/tickets/processing/start", { ticket_id: ticketId }, "Traitement démarré.");
  const cancel = () => perform("Annuler", `/api/tickets/${encode(ticketId)}/cancel`, undefined, "Annulation demandée.");
  const approve = () => perform("Approuver", `/api/tickets/${encode(ticketId)}/validation`, { decision: "approve" }, "Modifications validées.");
  const requestChanges = async (e: FormEvent) => {
    e.preventDefault();
    const ok = await perform(
      "Demander des modifications",
      `/api/tickets/${encode(ticketId)}/validation`,
      { decision: "request_changes", comment: comment.trim() },
      "Modifications demandées : une nouvelle itération démarre.",
    );
    if (ok) {
      dialog.current?.close();
      setComment("");
    }
  };

  // Tabs pattern: arrow keys move between the two tabs.
  const onTabKey = (e: KeyboardEvent<HTMLDivElement>) => {
    if (e.key !== "ArrowLeft" && e.key !== "ArrowRight") return;
    e.preventDefault();
    const next = tab === "runs" ? "audit" : "runs";
    setTab(next);
    document.getElementById(`tab-${next}`)?.focus();
  };

  if (ticket.error instanceof ApiError && (ticket.error.status === 404 || ticket.error.status === 403)) {
    return <NotFoundPage what="Ce ticket" />;
  }
  const t = ticket.data;
  // The run as the API knows it: the live stream announces a new run before the projector has
  // written it, and asking for its events then would be a 404. The ticket reloads on every
  // live change, so this follows within moments.
  const currentRun = t?.current_run_id || null;
  const currentConfig = runs.data?.runs.find((r) => r.id === currentRun)?.repository_config ?? null;

  return (
    <div className="page">
      <Link to="/" className="back">
        ← Tickets
      </Link>
      <header className="ticket-head">
        <div className="ticket-title">
          <h1>{t?.title ?? (ticket.error ? "Ticket" : "Chargement…")}</h1>
          <div className="meta">
            <StatusBadge status={status} />
            <span className="mono muted" title="Identifiant du ticket">
              {ticketId}
            </span>
            {t && (
              <>
                <span className="muted">par {t.owner}</span>
                <span className="muted" title={formatDateTime(t.created_at)}>
                  créé {formatRelative(t.created_at)}
                </span>
                {t.iteration > 0 && <span className="muted">itération {t.iteration}</span>}
              </>
            )}
          </div>
        </div>
        <div className="actions" role="group" aria-label="Actions sur le ticket">
          {status === "COMPLETED" && (
            <>
              <button type="button" className="btn btn-success" onClick={approve} disabled={!!busy || pendingHere}>
                <Icon name="check" size={16} /> Approuver
              </button>
              <button type="button" className="btn" onClick={() => dialog.current?.showModal()} disabled={!!busy || pendingHere}>
                <Icon name="message" size={16} /> Demander des modifications
              </button>
            </>
          )}
          {active ? (
            <button type="button" className="btn btn-danger" onClick={cancel} disabled={!!busy || pendingHere}>
              <Icon name="stop" size={14} /> Annuler
            </button>
          ) : (
            status !== "COMPLETED" && (
              <button type="button" className="btn btn-primary" onClick={start} disabled={!!busy || pendingHere || !t}>
                <Icon name="play" size={14} /> Développer automatiquement
              </button>
            )
          )}
        </div>
      </header>
      {ticket.error && !t && (
        <ErrorPanel title="Impossible de charger le ticket" message={ticket.error.message} />
      )}

      <div className="ticket-grid">
        <div className="ticket-main">
          <TicketProcessingStatus ticketId={ticketId} onComplete={onComplete} onError={onError} />
          {currentRun && (
            <section className="card wf-card" aria-labelledby="wf-title">
              <h2 id="wf-title">Déroulé de l'exécution</h2>
              <RunWaterfall key={currentRun} runId={currentRun} live={active} refreshKey={`${live.status}/${live.step}`} />
            </section>
          )}
          {currentRun && isFinished(status) && (
            <section className="card replay-card" aria-labelledby="replay-title">
              <h2 id="replay-title">Relecture de l'exécution</h2>
              <RunReplay key={currentRun} runId={currentRun} />
            </section>
          )}
        </div>
        <aside className="card ticket-side" aria-label="Détails du ticket">
          <h2>Détails</h2>
          <dl className="props">
            <dt>Dépôt</dt>
            <dd className="mono break">{t?.repository_url || <span className="muted">aucun</span>}</dd>
            <dt>Branche de base</dt>
            <dd className="mono">{t?.base_branch || "—"}</dd>
            <dt>Commande CI</dt>
            <dd className="mono break">{t?.ci_command || <span className="muted">par défaut</span>}</dd>
            <dt>Exécution courante</dt>
            <dd className="mono" title={live.runId ?? t?.current_run_id}>
              {shortId(live.runId ?? t?.current_run_id)}
            </dd>
            {t?.pull_request_url && (
              <>
                <dt>Pull request</dt>
                <dd className="break">
                  <a href={t.pull_request_url} target="_blank" rel="noreferrer" data-ticket-pull-request>
                    {t.pull_request_url.replace(/^https?:\/\//, "")}
                  </a>
                </dd>
              </>
            )}
            <dt>Mis à jour</dt>
            <dd>{formatDateTime(t?.updated_at)}</dd>
          </dl>
          {currentConfig && <RepositoryConfigPanel rc={currentConfig} />}
          {t?.description && (
            <>
              <h3>Description</h3>
              <p className="description">{t.description}</p>
            </>
          )}
        </aside>
      </div>

      <section className="card history" aria-label="Historique">
        <div className="tabs" role="tablist" aria-label="Historique" onKeyDown={onTabKey}>
          <HistoryTab name="runs" current={tab} onSelect={setTab}>
            Exécutions {runs.data && <span className="count">{runs.data.runs.length}</span>}
          </HistoryTab>
          <HistoryTab name="audit" current={tab} onSelect={setTab}>
            Journal d'audit complet
          </HistoryTab>
        </div>
        <div role="tabpanel" id="panel-history" aria-labelledby={tab === "runs" ? "tab-runs" : "tab-audit"}>
          {tab === "runs" ? (
            <RunHistory runs={runs.data?.runs} loading={runs.loading} error={runs.error} refreshKey={auditKey} />
          ) : (
            <AuditTrail
              load={loadTicketEvents}
              exportPath={`/api/tickets/${encode(ticketId)}/events?format=ndjson`}
              exportName={`${ticketId}-events.ndjson`}
              refreshKey={auditKey}
            />
          )}
        </div>
      </section>

      <dialog ref={dialog} className="dialog" aria-labelledby="changes-title" onClose={() => setComment("")}>
        <form method="dialog" onSubmit={requestChanges}>
          <h2 id="changes-title">Demander des modifications</h2>
          <p className="muted">Votre commentaire rejoint la conversation du LLM ; une nouvelle itération démarre aussitôt.</p>
          <label className="field">
            <span>Commentaire</span>
            <textarea className="input" rows={5} value={comment} onChange={(e) => setComment(e.target.value)} required autoFocus placeholder="Ce qui doit changer…" />
          </label>
          <div className="form-actions">
            <button type="button" className="btn btn-ghost" onClick={() => dialog.current?.close()}>
              Fermer
            </button>
            <button type="submit" className="btn btn-primary" disabled={!comment.trim() || !!busy}>
              Envoyer
            </button>
          </div>
        </form>
      </dialog>
    </div>
  );
}

type HistoryTabName = "runs" | "audit";

interface HistoryTabProps {
  name: HistoryTabName;
  current: HistoryTabName;
  onSelect: (tab: HistoryTabName) => void;
  children: ReactNode;
}

/** One tab of the history section; its panel is #panel-history. */
function HistoryTab({ name, current, onSelect, children }: HistoryTabProps) {
  const selected = current === name;
  return (
    <button
      type="button"
      role="tab"
      id={`tab-${name}`}
      aria-controls="panel-history"
      aria-selected={selected}
      tabIndex={selected ? 0 : -1}
      className={selected ? "active" : ""}
      onClick={() => onSelect(name)}
    >
      {children}
    </button>
  );
}

function useTicketEvents(ticketId: string) {
  return useCallback((after: string | null, signal?: AbortSignal) => api.ticketEvents(ticketId, after, 500, signal), [ticketId]);
}

function usePendingFor(ticketId: string): boolean {
  const q = actions();
  return useSyncExternalStore(
    (l) => q.subscribe(l),
    () =>
      q.pending.some(
        (a) => (a.body as { ticket_id?: string } | undefined)?.ticket_id === ticketId || a.path.includes(`/tickets/${encode(ticketId)}/`),
      ),
    () => false,
  );
}

function RunHistory({ runs, loading, error, refreshKey }: { runs?: Run[]; loading: boolean; error: Error | null; refreshKey: unknown }) {
  const [open, setOpen] = useState<string | null>(null);
  const traceUI = useSession().me?.trace_ui_url;
  if (error && !runs) return <p className="form-error">{error.message}</p>;
  if (!runs) return <p className="muted pad">{loading ? "Chargement…" : ""}</p>;
  if (runs.length === 0) return <p className="muted pad">Aucune exécution : lancez « Développer automatiquement ».</p>;
  return (
    <ul className="runs">
      {runs.map((r) => {
        const expanded = open === r.id;
        const duration = durationBetween(r.started_at ?? r.requested_at, r.finished_at);
        const traceHref = traceLink(traceUI, r.trace_id);
        return (
          <li key={r.id} className={`run ${expanded ? "open" : ""}`} data-run-id={r.id}>
            <button type="button" className="run-row" aria-expanded={expanded} onClick={() => setOpen(expanded ? null : r.id)}>
              <StatusBadge status={r.status} size="sm" />
              <span className="mono" title={r.id}>
                {shortId(r.id)}
              </span>
              <span className="muted">itération {r.iteration || "—"}</span>
              <span className="muted">{r.reason === "changes_requested" ? "après demande de modifications" : `par ${r.requested_by}`}</span>
              <span className="muted" title={formatDateTime(r.requested_at)}>
                {formatRelative(r.requested_at)}
              </span>
              <span className="muted">{duration !== null ? formatDuration(duration) : isActive(r.status) ? `${r.progress} % · ${stepLabel(r.step)}` : ""}</span>
              {r.llm_calls > 0 && (
                <span className="muted" title={`${r.llm_input_tokens} jetons en entrée, ${r.llm_output_tokens} en sortie, ${r.tool_calls} appels d'outils`}>
                  {r.tool_calls} outils · {formatUSD(r.llm_cost_usd)}
                </span>
              )}
              <span className="run-chevron" aria-hidden>
                ▾
              </span>
            </button>
            {(r.error || r.branch || traceHref || r.pull_request_url) && (
              <div className="run-extra">
                {r.branch && (
                  <span>
                    Branche <code>{r.branch}</code>
                  </span>
                )}
                {r.pull_request_url && (
                  <a href={r.pull_request_url} target="_blank" rel="noreferrer" data-pull-request>
                    Pull request
                  </a>
                )}
                {traceHref && (
                  <a href={traceHref} target="_blank" rel="noreferrer" data-trace-id={r.trace_id}>
                    Trace <code>{shortId(r.trace_id ?? "")}</code>
                  </a>
                )}
                {r.error && <span className="text-danger">{r.error}</span>}
              </div>
            )}
            {expanded && (
              <div className="run-events">
                {r.repository_config && <RepositoryConfigPanel rc={r.repository_config} />}
                <RunEvents runId={r.id} active={isActive(r.status)} finished={isFinished(r.status)} refreshKey={refreshKey} />
              </div>
            )}
          </li>
        );
      })}
    </ul>
  );
}

function RunEvents({ runId, active, finished, refreshKey }: { runId: string; active: boolean; finished: boolean; refreshKey: unknown }) {
  const load = useCallback((after: string | null, signal?: AbortSignal) => api.runEvents(runId, after, 500, signal), [runId]);
  return (
    <>
      <h3 className="wf-subtitle">Déroulé</h3>
      <RunWaterfall runId={runId} live={active} refreshKey={refreshKey} />
      <RunArtifacts runId={runId} refreshKey={refreshKey} />
      {finished && (
        <>
          <h3 className="wf-subtitle">Relecture</h3>
          <RunReplay runId={runId} />
        </>
      )}
      <AuditTrail load={load} exportPath={`/api/runs/${encode(runId)}/events?format=ndjson`} exportName={`${runId}-events.ndjson`} refreshKey={refreshKey} showRun={false} />
    </>
  );
}

/** RunArtifacts lists what the run kept beside its events (the full CI output) for download. */
function RunArtifacts({ runId, refreshKey }: { runId: string; refreshKey: unknown }) {
  const artifacts = useAsync((signal) => api.artifacts(runId, signal), [runId, refreshKey]);
  const [failed, setFailed] = useState<string | null>(null);
  const list = artifacts.data?.artifacts ?? [];
  if (list.length === 0) return null;
  return (
    <div className="run-artifacts" aria-label="Artefacts">
      <span className="muted">Sortie CI complète :</span>
      {list.map((a) => (
        <button
          key={a.name}
          type="button"
          className="btn btn-ghost btn-sm"
          onClick={() => {
            setFailed(null);
            downloadFile(`/api/runs/${encode(runId)}/artifacts/${encode(a.name)}`, `${runId}-${a.name}`, "text/plain").catch((e: Error) =>
              setFailed(e.message),
            );
          }}
        >
          {a.name} ({a.lines} lignes)
        </button>
      ))}
      {failed && <span className="text-danger">{failed}</span>}
    </div>
  );
}
