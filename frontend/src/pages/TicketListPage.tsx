import { useEffect, useMemo, useState } from "react";
import { ErrorPanel } from "../components/ErrorPanel";
import { Icon } from "../components/Icon";
import { ProgressBar } from "../components/ProgressBar";
import { StatusBadge } from "../components/StatusBadge";
import { useAsync, useInterval } from "../hooks/useAsync";
import { api } from "../lib/api";
import { formatDateTime, formatRelative } from "../lib/format";
import { acquireFeed, releaseFeed } from "../lib/registry";
import { Link, navigate, useTitle } from "../lib/router";
import { useSession } from "../lib/session";
import type { SocketStatus } from "../lib/socket";
import { isActive, stepLabel, type Ticket, type TicketStatus } from "../lib/types";

type Filter = "all" | "active" | TicketStatus;

const FILTERS: { value: Filter; label: string }[] = [
  { value: "all", label: "Tous" },
  { value: "active", label: "Actifs" },
  { value: "COMPLETED", label: "À valider" },
  { value: "FAILED", label: "Échecs" },
  { value: "VALIDATED", label: "Validés" },
  { value: "IDLE", label: "Inactifs" },
];

export function TicketListPage() {
  useTitle("Tickets");
  const { isAdmin } = useSession();
  const list = useAsync((signal) => api.listTickets({ limit: 200 }, signal), []);
  const [filter, setFilter] = useState<Filter>("all");
  const [query, setQuery] = useState("");
  const [live, setLive] = useState<SocketStatus | null>(null);
  const { setData, reload } = list;

  // Admins get every ticket's updates from /ws/tickets; users poll.
  useEffect(() => {
    if (!isAdmin) return;
    const feed = acquireFeed();
    const stop = feed.listen({
      onStatus: setLive,
      onMessage: (m) => {
        if (m.type === "ticket_created") {
          reload();
          return;
        }
        if (m.type !== "status_update" || !m.ticket_id) return;
        setData((prev) => {
          if (!prev) return prev;
          const i = prev.tickets.findIndex((t) => t.id === m.ticket_id);
          if (i < 0) return prev;
          const t = prev.tickets[i];
          // Ignore anything older than what the list already shows.
          if (m.timestamp && t.updated_at && new Date(m.timestamp).getTime() < new Date(t.updated_at).getTime()) return prev;
          const status = m.status as TicketStatus;
          const next: Ticket = {
            ...t,
            status,
            step: typeof m.step === "string" && m.step ? m.step : t.step,
            progress: typeof m.progress === "number" ? m.progress : status === "PENDING" ? 0 : t.progress,
            message: typeof m.message === "string" ? m.message : t.message,
            error: typeof m.error === "string" ? m.error : "",
            current_run_id: m.run_id ?? t.current_run_id,
            updated_at: m.timestamp ?? t.updated_at,
          };
          const tickets = prev.tickets.slice();
          tickets[i] = next;
          return { tickets };
        });
      },
    });
    return () => {
      stop();
      releaseFeed();
    };
  }, [isAdmin, setData, reload]);

  const anyActive = list.data?.tickets.some((t) => isActive(t.status)) ?? false;
  useInterval(reload, isAdmin ? (live?.connected ? 60_000 : 5_000) : anyActive ? 2_000 : 10_000);

  const counts = useMemo(() => {
    const c: Record<string, number> = { all: 0, active: 0 };
    for (const t of list.data?.tickets ?? []) {
      c.all++;
      if (isActive(t.status)) c.active++;
      c[t.status] = (c[t.status] ?? 0) + 1;
    }
    return c;
  }, [list.data]);

  const shown = useMemo(() => {
    const q = query.trim().toLowerCase();
    return (list.data?.tickets ?? []).filter((t) => {
      if (filter === "active" && !isActive(t.status)) return false;
      if (filter !== "all" && filter !== "active" && t.status !== filter) return false;
      if (q && !`${t.title} ${t.id} ${t.owner} ${t.repository_url}`.toLowerCase().includes(q)) return false;
      return true;
    });
  }, [list.data, filter, query]);

  return (
    <div className="page">
      <div className="page-head">
        <div>
          <h1>Tickets</h1>
          <p className="muted">
            {isAdmin ? "Tous les tickets" : "Vos tickets"}
            {isAdmin && live && (
              <span className={`live-dot ${live.connected ? "on" : ""}`}>{live.connected ? "mises à jour en direct" : "reconnexion…"}</span>
            )}
          </p>
        </div>
        <Link to="/tickets/new" className="btn btn-primary">
          <Icon name="plus" size={16} /> Nouveau ticket
        </Link>
      </div>

      <div className="toolbar">
        <div className="segmented" role="group" aria-label="Filtrer par statut">
          {FILTERS.map((f) => (
            <button
              key={f.value}
              type="button"
              aria-pressed={filter === f.value}
              className={filter === f.value ? "active" : ""}
              onClick={() => setFilter(f.value)}
            >
              {f.label}
              <span className="count">{counts[f.value] ?? 0}</span>
            </button>
          ))}
        </div>
        <input
          type="search"
          className="input search"
          placeholder="Rechercher (titre, id, propriétaire, dépôt)"
          aria-label="Rechercher un ticket"
          value={query}
          onChange={(e) => setQuery(e.target.value)}
        />
      </div>

      {list.error && !list.data && (
        <ErrorPanel title="Impossible de charger les tickets" message={list.error.message}>
          <button type="button" className="btn btn-sm" onClick={reload}>
            Réessayer
          </button>
        </ErrorPanel>
      )}

      {list.loading && !list.data ? (
        <div className="card skeleton-list" aria-busy="true">
          {Array.from({ length: 5 }, (_, i) => (
            <div key={i} className="skeleton-row" />
          ))}
        </div>
      ) : shown.length === 0 && list.data ? (
        <div className="empty card">
          <h2>{list.data.tickets.length === 0 ? "Aucun ticket pour l'instant" : "Aucun ticket ne correspond"}</h2>
          {list.data.tickets.length === 0 && (
            <>
              <p className="muted">Créez un ticket, puis lancez « Développer automatiquement ».</p>
              <Link to="/tickets/new" className="btn btn-primary">
                <Icon name="plus" size={16} /> Créer un ticket
              </Link>
            </>
          )}
        </div>
      ) : (
        list.data && (
          <div className="card table-card">
            <table className="table tickets-table">
              <thead>
                <tr>
                  <th scope="col">Ticket</th>
                  <th scope="col">Statut</th>
                  <th scope="col" className="col-progress">
                    Progression
                  </th>
                  {isAdmin && <th scope="col">Propriétaire</th>}
                  <th scope="col">Mis à jour</th>
                </tr>
              </thead>
              <tbody>
                {shown.map((t) => (
                  <tr key={t.id} className="clickable" onClick={(e) => !(e.target as HTMLElement).closest("a") && navigate(`/tickets/${t.id}`)} data-ticket-id={t.id}>
                    <td>
                      <Link to={`/tickets/${t.id}`} className="ticket-link">
                        {t.title}
                      </Link>
                      <div className="sub muted mono">{t.id}</div>
                    </td>
                    <td>
                      <StatusBadge status={t.status} size="sm" />
                    </td>
                    <td className="col-progress">
                      {t.status === "IDLE" ? (
                        <span className="muted">—</span>
                      ) : (
                        <div className="cell-progress">
                          <ProgressBar value={t.progress} status={t.status} compact label={`Progression de ${t.title}`} />
                          <span className="sub muted">
                            {t.progress} %{t.step ? ` · ${stepLabel(t.step)}` : ""}
                          </span>
                        </div>
                      )}
                    </td>
                    {isAdmin && <td>{t.owner}</td>}
                    <td title={formatDateTime(t.updated_at)}>{formatRelative(t.updated_at)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )
      )}
    </div>
  );
}
