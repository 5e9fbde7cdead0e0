// The admin dashboard, fed by /ws/tickets: active runs, the live event feed, message rate.

import { useEffect, useMemo, useRef, useState, type ReactNode } from "react";
import { ConnectionPill } from "../components/ConnectionPill";
import { Icon } from "../components/Icon";
import { ProgressBar } from "../components/ProgressBar";
import { StatusBadge } from "../components/StatusBadge";
import { useAsync } from "../hooks/useAsync";
import { api } from "../lib/api";
import { formatDuration, formatTime, shortId } from "../lib/format";
import { acquireFeed, releaseFeed } from "../lib/registry";
import { Link, useTitle } from "../lib/router";
import { useSession } from "../lib/session";
import type { SocketStatus } from "../lib/socket";
import { isActive, stepLabel, type ServerMessage, type TicketStatus } from "../lib/types";

interface ActiveRun {
  ticketId: string;
  runId: string;
  status: TicketStatus;
  step: string;
  progress: number;
  message: string;
  since: number;
  updatedAt: number;
}

interface FeedItem {
  key: string;
  at: number;
  msg: ServerMessage;
}

const FEED_LIMIT = 200;
const RATE_WINDOW = 60; // seconds of history in the sparkline

export function DashboardPage() {
  useTitle("Tableau de bord");
  const { isAdmin } = useSession();
  if (!isAdmin) {
    return (
      <div className="empty">
        <h1>Réservé aux administrateurs</h1>
        <p className="muted">Le flux de tous les tickets (/ws/tickets) n'est ouvert qu'au rôle admin.</p>
        <Link to="/" className="btn btn-primary">
          Retour aux tickets
        </Link>
      </div>
    );
  }
  return <Dashboard />;
}

function Dashboard() {
  const tickets = useAsync((signal) => api.listTickets({ limit: 500 }, signal), []);
  const [active, setActive] = useState<Map<string, ActiveRun>>(new Map());
  const [feed, setFeed] = useState<FeedItem[]>([]);
  const [status, setStatus] = useState<SocketStatus | null>(null);
  const [totals, setTotals] = useState({ messages: 0, completed: 0, failed: 0 });
  const buckets = useRef<number[]>(new Array(RATE_WINDOW).fill(0));
  const bucketSecond = useRef(Math.floor(Date.now() / 1000));
  const [rate, setRate] = useState<number[]>(new Array(RATE_WINDOW).fill(0));
  const [now, setNow] = useState(Date.now());
  const seq = useRef(0);
  const feedRef = useRef<{ retry: () => void } | null>(null);

  // Seed active runs from the API.
  useEffect(() => {
    if (!tickets.data) return;
    setActive((prev) => {
      const next = new Map(prev);
      for (const t of tickets.data!.tickets) {
        if (isActive(t.status) && !next.has(t.id)) {
          const at = new Date(t.updated_at).getTime();
          next.set(t.id, { ticketId: t.id, runId: t.current_run_id, status: t.status, step: t.step, progress: t.progress, message: t.message, since: at, updatedAt: at });
        }
      }
      return next;
    });
  }, [tickets.data]);

  useEffect(() => {
    const f = acquireFeed();
    feedRef.current = { retry: () => f.socket.retryNow() };
    const advance = () => {
      const sec = Math.floor(Date.now() / 1000);
      const b = buckets.current;
      for (let s = bucketSecond.current; s < sec && s - bucketSecond.current < RATE_WINDOW; s++) {
        b.shift();
        b.push(0);
      }
      bucketSecond.current = sec;
    };
    const stop = f.listen({
      onStatus: setStatus,
      onMessage: (m) => {
        if (m.type === "pong" || m.type === "connected") return;
        advance();
        buckets.current[RATE_WINDOW - 1]++;
        setTotals((t) => ({
          messages: t.messages + 1,
          completed: t.completed + (m.type === "status_update" && m.status === "COMPLETED" ? 1 : 0),
          failed: t.failed + (m.type === "status_update" && m.status === "FAILED" ? 1 : 0),
        }));
        setFeed((xs) => [{ key: `${m.event_id ?? "m"}-${seq.current++}`, at: Date.now(), msg: m }, ...xs].slice(0, FEED_LIMIT));
        if (m.type === "status_update" && m.ticket_id) {
          const id = m.ticket_id;
          const st = m.status as TicketStatus;
          setActive((prev) => {
            const next = new Map(prev);
            if (isActive(st)) {
              const old = next.get(id);
              const at = m.timestamp ? new Date(m.timestamp).getTime() : Date.now();
              next.set(id, {
                ticketId: id,
                runId: m.run_id ?? old?.runId ?? "",
                status: st,
                step: typeof m.step === "string" ? m.step : (old?.step ?? ""),
                progress: typeof m.progress === "number" ? m.progress : (old?.progress ?? 0),
                message: typeof m.message === "string" ? m.message : "",
                since: old && old.runId === m.run_id ? old.since : at,
                updatedAt: at,
              });
            } else {
              next.delete(id);
            }
            return next;
          });
        }
        if (m.type === "ticket_created") tickets.reload();
      },
    });
    const tick = setInterval(() => {
      advance();
      setRate([...buckets.current]);
      setNow(Date.now());
    }, 1000);
    return () => {
      clearInterval(tick);
      stop();
      releaseFeed();
    };
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, []);

  const titles = useMemo(() => new Map((tickets.data?.tickets ?? []).map((t) => [t.id, t.title])), [tickets.data]);
  const last10 = rate.slice(-10).reduce((a, b) => a + b, 0) / 10;
  const activeList = [...active.values()].sort((a, b) => a.since - b.since);

  return (
    <div className="page">
      <div className="page-head">
        <div>
          <h1>Tableau de bord</h1>
          <p className="muted">Toutes les exécutions, en direct.</p>
        </div>
        {status && <ConnectionPill info={{ isConnected: status.connected, reconnecting: status.reconnecting, offline: status.offline, fatal: status.fatal, nextRetryAt: status.nextRetryAt }} onRetry={() => feedRef.current?.retry()} />}
      </div>

      <div className="stats">
        <Stat label="Exécutions actives" value={activeList.length.toString()} icon="activity" />
        <Stat label="Messages / s (10 s)" value={last10.toFixed(1)} icon="chart">
          <Sparkline values={rate} />
        </Stat>
        <Stat label="Messages reçus" value={totals.messages.toLocaleString("fr-FR")} icon="list" />
        <Stat label="Terminées / échecs" value={`${totals.completed} / ${totals.failed}`} icon="check" />
      </div>

      <div className="dash-grid">
        <section className="card" aria-labelledby="active-title">
          <h2 id="active-title">Exécutions actives</h2>
          {activeList.length === 0 ? (
            <p className="muted pad">Aucune exécution en cours.</p>
          ) : (
            <ul className="active-runs">
              {activeList.map((r) => (
                <li key={r.ticketId}>
                  <div className="active-top">
                    <Link to={`/tickets/${r.ticketId}`} className="ticket-link">
                      {titles.get(r.ticketId) ?? r.ticketId}
                    </Link>
                    <StatusBadge status={r.status} size="sm" />
                  </div>
                  <ProgressBar value={r.progress} status={r.status} compact label={`Progression de ${titles.get(r.ticketId) ?? r.ticketId}`} />
                  <div className="sub muted">
                    {r.progress} % · {stepLabel(r.step) || r.message || "démarrage"} · depuis {formatDuration(now - r.since)} · run {shortId(r.runId)}
                  </div>
                </li>
              ))}
            </ul>
          )}
        </section>

        <section className="card" aria-labelledby="feed-title">
          <h2 id="feed-title">Flux d'événements</h2>
          {feed.length === 0 ? (
            <p className="muted pad">En attente d'événements…</p>
          ) : (
            <ol className="feed" aria-live="off">
              {feed.map(({ key, at, msg }) => (
                <li key={key} className={`feed-item feed-${msg.type}`}>
                  <span className="feed-time mono">{formatTime(msg.timestamp ?? new Date(at).toISOString())}</span>
                  <span className="feed-type">{msg.type}</span>
                  {msg.ticket_id ? (
                    <Link to={`/tickets/${msg.ticket_id}`} className="feed-ticket">
                      {titles.get(msg.ticket_id) ?? shortId(msg.ticket_id)}
                    </Link>
                  ) : (
                    <span />
                  )}
                  <span className="feed-text">{feedText(msg)}</span>
                </li>
              ))}
            </ol>
          )}
        </section>
      </div>
    </div>
  );
}

function feedText(m: ServerMessage): string {
  const f = m as unknown as Record<string, unknown>;
  const s = (k: string) => (f[k] === undefined || f[k] === null ? "" : String(f[k]));
  switch (m.type) {
    case "status_update":
      return `${s("status")}${s("step") ? ` · ${s("step")}` : ""}${m.progress !== undefined ? ` · ${s("progress")} %` : ""}${s("error") ? ` · ${s("error")}` : ""}`;
    case "log":
      return `[${s("level")}] ${s("message")}`;
    case "ci_result":
      return m.passed ? "CI réussie" : `CI en échec (code ${s("exit_code")})`;
    case "replay_complete":
      return `rattrapage terminé (${s("replayed")} messages)`;
    case "history_unavailable":
      return s("message") || "historique indisponible";
    default:
      return s("message") || s("reason") || s("comment") || s("title");
  }
}

function Stat({ label, value, icon, children }: { label: string; value: string; icon: "activity" | "chart" | "list" | "check"; children?: ReactNode }) {
  return (
    <div className="card stat">
      <div className="stat-label">
        <Icon name={icon} size={14} /> {label}
      </div>
      <div className="stat-value">{value}</div>
      {children}
    </div>
  );
}

function Sparkline({ values }: { values: number[] }) {
  const max = Math.max(1, ...values);
  const w = 120;
  const h = 28;
  const bw = w / values.length;
  return (
    <svg className="sparkline" width="100%" height={h} viewBox={`0 0 ${w} ${h}`} preserveAspectRatio="none" role="img" aria-label={`Messages par seconde sur ${values.length} s, maximum ${max}`}>
      {values.map((v, i) => (
        <rect key={i} x={i * bw} y={h - (v / max) * h} width={Math.max(0.5, bw - 0.4)} height={(v / max) * h} />
      ))}
    </svg>
  );
}
