// Step latency: per workflow step, how many ran, p50/p95/p99/max duration and failure rate,
// over a chosen window (GET /api/analytics/steps); and what the LLM calls cost, by provider
// and model (GET /api/analytics/llm).

import { useMemo, useState } from "react";
import { ErrorPanel } from "../components/ErrorPanel";
import { Icon } from "../components/Icon";
import { useAsync } from "../hooks/useAsync";
import { api } from "../lib/api";
import { formatDuration, formatUSD } from "../lib/format";
import { useTitle } from "../lib/router";
import { STEPS, stepLabel, type LLMUsageStats, type StepStats } from "../lib/types";

const WINDOWS = [
  { value: 3600, label: "1 h" },
  { value: 6 * 3600, label: "6 h" },
  { value: 24 * 3600, label: "24 h" },
  { value: 7 * 86400, label: "7 j" },
  { value: 30 * 86400, label: "30 j" },
];

const SERIES = [
  { key: "p50_ms", label: "p50", className: "s-p50" },
  { key: "p95_ms", label: "p95", className: "s-p95" },
  { key: "p99_ms", label: "p99", className: "s-p99" },
] as const;

/** isoSeconds is the instant ms (Unix milliseconds) in ISO 8601 without its milliseconds. */
const isoSeconds = (ms: number) => new Date(ms).toISOString().replace(/\.\d{3}Z$/, "Z");

export function AnalyticsPage() {
  useTitle("Latence des étapes");
  const [windowS, setWindowS] = useState(24 * 3600);
  const [anchor, setAnchor] = useState(() => Date.now());
  // Both panels ask for the same window, the windowS seconds up to anchor, in whole seconds.
  const since = isoSeconds(anchor - windowS * 1000);
  const until = isoSeconds(anchor);
  const data = useAsync((signal) => api.stepAnalytics(since, until, signal), [windowS, anchor]);
  const llm = useAsync((signal) => api.llmAnalytics(since, until, signal), [windowS, anchor]);

  const steps = useMemo(() => {
    const list = data.data?.steps ?? [];
    const order = (s: string) => {
      const i = STEPS.findIndex((x) => x.name === s);
      return i < 0 ? 99 : i;
    };
    return [...list].sort((a, b) => order(a.step) - order(b.step));
  }, [data.data]);

  return (
    <div className="page">
      <div className="page-head">
        <div>
          <h1>Latence des étapes</h1>
          <p className="muted">Durée de chaque étape du workflow (percentiles) et taux d'échec sur la période.</p>
        </div>
        <div className="toolbar-right">
          <div className="segmented" role="group" aria-label="Période">
            {WINDOWS.map((w) => (
              <button key={w.value} type="button" aria-pressed={windowS === w.value} className={windowS === w.value ? "active" : ""} onClick={() => setWindowS(w.value)}>
                {w.label}
              </button>
            ))}
          </div>
          <button type="button" className="btn btn-ghost btn-sm" onClick={() => setAnchor(Date.now())} aria-label="Rafraîchir">
            <Icon name="refresh" size={15} />
          </button>
        </div>
      </div>

      {data.error && (
        <ErrorPanel title="Impossible de charger les statistiques" message={data.error.message} />
      )}

      {!data.data && data.loading ? (
        <div className="card skeleton-list" aria-busy="true">
          {Array.from({ length: 8 }, (_, i) => (
            <div key={i} className="skeleton-row" />
          ))}
        </div>
      ) : steps.length === 0 ? (
        <div className="card empty">
          <h2>Aucune étape exécutée sur cette période</h2>
          <p className="muted">Lancez un traitement ou élargissez la période.</p>
        </div>
      ) : (
        <>
          <section className="card" aria-labelledby="chart-title">
            <div className="chart-head">
              <h2 id="chart-title">Durée par étape</h2>
              <div className="legend" aria-hidden>
                {SERIES.map((s) => (
                  <span key={s.key} className={`legend-item ${s.className}`}>
                    <i /> {s.label}
                  </span>
                ))}
              </div>
            </div>
            <LatencyChart steps={steps} />
          </section>
          <section className="card table-card" aria-labelledby="table-title">
            <h2 id="table-title" className="sr-only">
              Détail par étape
            </h2>
            <table className="table">
              <thead>
                <tr>
                  <th scope="col">Étape</th>
                  <th scope="col" className="num">Exécutions</th>
                  <th scope="col" className="num">p50</th>
                  <th scope="col" className="num">p95</th>
                  <th scope="col" className="num">p99</th>
                  <th scope="col" className="num">max</th>
                  <th scope="col" className="num">Échecs</th>
                </tr>
              </thead>
              <tbody>
                {steps.map((s) => (
                  <tr key={s.step}>
                    <td>
                      {stepLabel(s.step)} <span className="mono muted sub-inline">{s.step}</span>
                    </td>
                    <td className="num">{s.count.toLocaleString("fr-FR")}</td>
                    <td className="num">{formatDuration(s.p50_ms)}</td>
                    <td className="num">{formatDuration(s.p95_ms)}</td>
                    <td className="num">{formatDuration(s.p99_ms)}</td>
                    <td className="num">{formatDuration(s.max_ms)}</td>
                    <td className={`num ${s.failure_rate > 0 ? "text-danger" : ""}`}>{(s.failure_rate * 100).toFixed(1)} %</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </section>
        </>
      )}
      {llm.data && <LLMCostTable models={llm.data.models} />}
    </div>
  );
}

/** LLMCostTable: tokens and cost of the coding agent's model calls by provider and model. */
function LLMCostTable({ models }: { models: LLMUsageStats[] }) {
  const total = models.reduce((n, m) => n + m.cost_usd, 0);
  return (
    <section className="card table-card" aria-labelledby="llm-title" data-testid="llm-cost">
      <h2 id="llm-title">Coût des appels LLM</h2>
      {models.length === 0 ? (
        <p className="muted pad">Aucun appel LLM sur cette période.</p>
      ) : (
        <table className="table">
          <thead>
            <tr>
              <th scope="col">Fournisseur</th>
              <th scope="col">Modèle</th>
              <th scope="col" className="num">Appels</th>
              <th scope="col" className="num">Jetons en entrée</th>
              <th scope="col" className="num">Jetons en sortie</th>
              <th scope="col" className="num">Relances</th>
              <th scope="col" className="num">Coût</th>
            </tr>
          </thead>
          <tbody>
            {models.map((m) => (
              <tr key={`${m.provider}/${m.model}`}>
                <td>{m.provider}</td>
                <td className="mono">{m.model}</td>
                <td className="num">{m.calls.toLocaleString("fr-FR")}</td>
                <td className="num">{m.input_tokens.toLocaleString("fr-FR")}</td>
                <td className="num">{m.output_tokens.toLocaleString("fr-FR")}</td>
                <td className="num">{m.retries.toLocaleString("fr-FR")}</td>
                <td className="num">{formatUSD(m.cost_usd)}</td>
              </tr>
            ))}
          </tbody>
          <tfoot>
            <tr>
              <td colSpan={6}>Total</td>
              <td className="num">{formatUSD(total)}</td>
            </tr>
          </tfoot>
        </table>
      )}
    </section>
  );
}

/** LatencyChart: one row per step, p50/p95/p99 as bars on a shared (square-root) scale. */
function LatencyChart({ steps }: { steps: StepStats[] }) {
  const max = Math.max(1, ...steps.map((s) => s.p99_ms || s.max_ms || 0));
  const labelW = 240;
  const barW = 640;
  const rowH = 40;
  const w = labelW + barW + 200;
  const h = steps.length * rowH + 24;
  const scale = (v: number) => (Math.sqrt(Math.max(0, v)) / Math.sqrt(max)) * barW;
  const ticks = [0.25, 0.5, 1].map((f) => max * f * f);
  return (
    <div className="chart-scroll">
      <svg className="chart" viewBox={`0 0 ${w} ${h}`} width="100%" role="img" aria-label="Durées p50, p95 et p99 par étape">
        {ticks.map((t) => (
          <g key={t}>
            <line x1={labelW + scale(t)} x2={labelW + scale(t)} y1={0} y2={h - 20} className="grid" />
            <text x={labelW + scale(t)} y={h - 6} className="tick" textAnchor="middle">
              {formatDuration(t)}
            </text>
          </g>
        ))}
        {steps.map((s, i) => {
          const y = i * rowH + 4;
          return (
            <g key={s.step}>
              <title>{`${stepLabel(s.step)} — p50 ${formatDuration(s.p50_ms)}, p95 ${formatDuration(s.p95_ms)}, p99 ${formatDuration(s.p99_ms)}, max ${formatDuration(s.max_ms)}, ${s.count} exécutions`}</title>
              <text x={labelW - 10} y={y + rowH / 2} className="row-label" textAnchor="end" dominantBaseline="middle">
                {stepLabel(s.step)}
              </text>
              {SERIES.map((ser, j) => (
                <rect key={ser.key} x={labelW} y={y + 4 + j * 10} width={Math.max(1, scale(s[ser.key]))} height={8} rx={2} className={ser.className} />
              ))}
              <text x={labelW + scale(s.p99_ms) + 6} y={y + rowH / 2} className="value" dominantBaseline="middle">
                p95 {formatDuration(s.p95_ms)}
                {s.failure_rate > 0 ? ` · ${(s.failure_rate * 100).toFixed(0)} % échecs` : ""}
              </text>
            </g>
          );
        })}
      </svg>
    </div>
  );
}
