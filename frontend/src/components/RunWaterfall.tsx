// RunWaterfall: the run's steps as horizontal bars on a time axis — one row per step attempt,
// grouped by iteration, retries marked, CI executions and notable log lines inside their
// step — computed from the run's events (lib/waterfall), live while the run goes on. A table
// with the same rows is one click away (and is what screen readers are pointed to).

import { useEffect, useMemo, useState } from "react";
import { useRunEvents } from "../hooks/useRunEvents";
import { formatDuration, formatTime } from "../lib/format";
import type { EventPage } from "../lib/types";
import { computeWaterfall, placement, type RowOutcome, type Waterfall, type WaterfallRow } from "../lib/waterfall";

const OUTCOME_LABEL: Record<RowOutcome, string> = {
  ok: "réussie",
  failed: "en échec",
  running: "en cours",
  interrupted: "interrompue",
  cancelled: "annulée",
};

/** How long a run that is no longer live is still polled until its terminal event shows. */
const CATCH_UP_MS = 10_000;

export interface RunWaterfallProps {
  runId: string;
  /** Follow the run live (poll its new events) while it is active. */
  live?: boolean;
  /** Changes when the caller knows new events exist. */
  refreshKey?: unknown;
  /** Injected in tests. */
  load?: (runId: string, after: string | null, signal?: AbortSignal) => Promise<EventPage>;
  /** Clock, injected in tests. */
  now?: () => number;
}

export function RunWaterfall({ runId, live = false, refreshKey, load, now = Date.now }: RunWaterfallProps) {
  const [follow, setFollow] = useState(live);
  // The events come from the projector's table, which can lag behind the live stream that says
  // the run ended: after live turns off, go on asking for a while until the terminal event is read.
  const [catchUp, setCatchUp] = useState(false);
  useEffect(() => {
    if (live) return;
    setCatchUp(true);
    const t = setTimeout(() => setCatchUp(false), CATCH_UP_MS);
    return () => clearTimeout(t);
  }, [live]);
  const { events, loading, error, partial } = useRunEvents(runId, { follow: (live || catchUp) && follow, refreshKey, load });
  const [clock, setClock] = useState(now);
  const w = useMemo(() => computeWaterfall(events, clock), [events, clock]);
  const running = w.outcome === "running";
  const [view, setView] = useState<"chart" | "table">("chart");

  // Stop following once the run's terminal event arrived; the bars of a running attempt grow.
  useEffect(() => setFollow(!(w.outcome && w.outcome !== "running")), [w.outcome]);
  useEffect(() => {
    if (!running) return;
    setClock(now());
    const t = setInterval(() => setClock(now()), 1000);
    return () => clearInterval(t);
  }, [running, now]);

  if (error && events.length === 0) return <p className="form-error">{error}</p>;
  if (w.rows.length === 0) {
    return <p className="muted wf-empty">{loading ? "Chargement du déroulé…" : "Aucune étape pour l'instant."}</p>;
  }
  const total = w.end - w.start;
  const summary = `${w.rows.length} tentative${w.rows.length > 1 ? "s" : ""} d'étape sur ${w.groups.length} itération${w.groups.length > 1 ? "s" : ""}, ${formatDuration(total)}${running ? ", en cours" : ""}`;

  return (
    <div className="waterfall" data-run-id={runId} data-outcome={w.outcome ?? ""}>
      <div className="wf-head">
        <span className="muted">{summary}</span>
        {partial && <span className="muted">(journal très long : déroulé partiel)</span>}
        <div className="wf-view" role="group" aria-label="Affichage du déroulé">
          <button type="button" className="btn btn-ghost btn-sm" aria-pressed={view === "chart"} onClick={() => setView("chart")}>
            Graphique
          </button>
          <button type="button" className="btn btn-ghost btn-sm" aria-pressed={view === "table"} onClick={() => setView("table")}>
            Tableau
          </button>
        </div>
      </div>
      {view === "chart" ? <WaterfallChart w={w} summary={summary} /> : <WaterfallTable w={w} />}
    </div>
  );
}

function rowDescription(r: WaterfallRow, w: Waterfall): string {
  const parts = [
    `${r.label}`,
    r.attempt > 1 ? `tentative ${r.attempt}` : "",
    `début +${formatDuration(r.start - w.start)}`,
    `durée ${formatDuration(r.durationMs ?? (r.end ?? w.end) - r.start)}`,
    OUTCOME_LABEL[r.outcome],
    r.subs.length ? r.subs.map((s) => `${s.label} ${formatDuration(s.durationMs)}, ${s.lines} lignes`).join(" ; ") : "",
    r.logs ? `${r.logs} ligne${r.logs > 1 ? "s" : ""} de journal` : "",
    r.error ? `erreur : ${r.error}` : "",
  ];
  return parts.filter(Boolean).join(", ");
}

function WaterfallChart({ w, summary }: { w: Waterfall; summary: string }) {
  const span = w.end - w.start;
  return (
    <div className="wf-chart" role="group" aria-label={`Déroulé de l'exécution : ${summary}`}>
      <div className="wf-axis" aria-hidden="true">
        <span className="wf-axis-label" />
        <div className="wf-track">
          {w.ticks.map((t) => (
            <span key={t} className="wf-tick" style={{ left: `${span > 0 ? (t / span) * 100 : 0}%` }}>
              {formatDuration(t)}
            </span>
          ))}
        </div>
      </div>
      {w.groups.map((g, gi) => (
        <section key={`${g.iteration}-${gi}`} className="wf-group" aria-label={`Itération ${g.iteration}`}>
          <h4 className="wf-group-title">
            Itération {g.iteration}
            <span className="muted"> · {formatDuration((g.end ?? w.end) - g.start)}</span>
          </h4>
          <ol className="wf-rows">
            {g.rows.map((r) => {
              const bar = placement(w, r.start, r.end ?? w.end);
              const desc = rowDescription(r, w);
              return (
                <li key={r.key} className={`wf-row wf-${r.outcome}${r.retry ? " wf-retry" : ""}`} data-step={r.step} data-attempt={r.attempt} aria-label={desc}>
                  <span className="wf-label" aria-hidden="true">
                    <span className="wf-step">{r.label}</span>
                    {r.retry && <span className="wf-badge">tentative {r.attempt}</span>}
                  </span>
                  <div className="wf-track" aria-hidden="true">
                    {w.ticks.map((t) => (
                      <span key={t} className="wf-grid" style={{ left: `${span > 0 ? (t / span) * 100 : 0}%` }} />
                    ))}
                    <span className="wf-bar" style={{ left: `${bar.left}%`, width: `max(${bar.width}%, 2px)` }} title={desc}>
                      <span className="wf-bar-text">{formatDuration(r.durationMs ?? (r.end ?? w.end) - r.start)}</span>
                    </span>
                    {r.subs.map((s, i) => {
                      const p = placement(w, s.start, s.end);
                      return (
                        <span
                          key={i}
                          className={`wf-sub wf-sub-${s.outcome}`}
                          style={{ left: `${p.left}%`, width: `max(${p.width}%, 2px)` }}
                          title={`${s.label} · ${formatDuration(s.durationMs)} · ${s.lines} lignes${s.linesTotal !== null ? ` sur ${s.linesTotal}` : ""}`}
                        />
                      );
                    })}
                    {r.marks.slice(0, 50).map((m, i) => (
                      <span key={i} className={`wf-mark wf-mark-${m.kind}`} style={{ left: `${placement(w, m.at, m.at).left}%` }} title={`${formatTime(new Date(m.at).toISOString())} ${m.label}`} />
                    ))}
                  </div>
                </li>
              );
            })}
          </ol>
        </section>
      ))}
    </div>
  );
}

function WaterfallTable({ w }: { w: Waterfall }) {
  return (
    <div className="table-scroll">
      <table className="table wf-table">
        <caption className="sr-only">Déroulé de l'exécution, une ligne par tentative d'étape</caption>
        <thead>
          <tr>
            <th scope="col">Itération</th>
            <th scope="col">Étape</th>
            <th scope="col" className="num">
              Tentative
            </th>
            <th scope="col" className="num">
              Début
            </th>
            <th scope="col" className="num">
              Durée
            </th>
            <th scope="col">Résultat</th>
            <th scope="col">Sous-opérations</th>
          </tr>
        </thead>
        <tbody>
          {w.rows.map((r) => (
            <tr key={r.key} data-step={r.step}>
              <td className="num">{r.iteration}</td>
              <td>{r.label}</td>
              <td className="num">{r.attempt}</td>
              <td className="num">+{formatDuration(r.start - w.start)}</td>
              <td className="num">{formatDuration(r.durationMs ?? (r.end ?? w.end) - r.start)}</td>
              <td className={`wf-outcome-${r.outcome}`}>
                {OUTCOME_LABEL[r.outcome]}
                {r.error && <span className="text-danger"> — {r.error}</span>}
              </td>
              <td>
                {[
                  ...r.subs.map((s) => `${s.label}, ${formatDuration(s.durationMs)}, ${s.lines} lignes${s.linesTotal !== null ? ` sur ${s.linesTotal}` : ""}`),
                  r.logs ? `${r.logs} ligne${r.logs > 1 ? "s" : ""} de journal${r.warnings ? `, ${r.warnings} avertissement${r.warnings > 1 ? "s" : ""}` : ""}${r.errors ? `, ${r.errors} erreur${r.errors > 1 ? "s" : ""}` : ""}` : "",
                  ...r.marks.filter((m) => m.kind === "resumed" || m.kind === "truncated").map((m) => m.label),
                ]
                  .filter(Boolean)
                  .join(" · ") || "—"}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}
