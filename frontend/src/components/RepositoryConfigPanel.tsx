import { formatDuration, formatUSD } from "../lib/format";
import type { RunRepositoryConfig } from "../lib/types";

/**
 * RepositoryConfigPanel shows the configuration a run uses: the repository's .ticketflow.yml
 * (or the defaults), the CI command and whose it is, the paths the agent may change, the limits
 * (the operator's, lowered by the repository's) and what was refused.
 */
export function RepositoryConfigPanel({ rc }: { rc: RunRepositoryConfig }) {
  const c = rc.config;
  const editable = c.editable ?? [];
  return (
    <section className="repo-config" aria-label="Configuration du dépôt" data-source={rc.source}>
      <h3>Configuration du dépôt</h3>
      <p className="muted">
        {rc.source === "file" ? (
          <>
            <code>.ticketflow.yml</code> ({rc.size_bytes ?? 0} octets, sha256 <code title={rc.sha256}>{(rc.sha256 ?? "").slice(0, 12)}</code>)
          </>
        ) : (
          <>
            Pas de <code>.ticketflow.yml</code> : valeurs par défaut
          </>
        )}
      </p>
      <dl className="props">
        <dt>CI</dt>
        <dd className="mono break">
          {c.ci_command || <span className="muted">aucune</span>}{" "}
          <span className="muted">
            ({c.ci_command_from === "repository" ? "du dépôt" : "du ticket"}, {formatDuration(c.ci_timeout_ms)} max)
          </span>
        </dd>
        <dt>Modifiables</dt>
        <dd className="mono break">{editable.length > 0 ? editable.join(", ") : <span className="muted">tous les chemins</span>}</dd>
        <dt>Limites</dt>
        <dd>
          {c.max_steps} étapes · {c.max_tokens.toLocaleString("fr-FR")} jetons · {formatUSD(c.max_cost_usd)} · {formatDuration(c.max_duration_ms)}
        </dd>
      </dl>
      {(c.notes ?? []).length > 0 && (
        <ul className="repo-config-notes">
          {(c.notes ?? []).map((n) => (
            <li key={n} className="text-warning">
              {n}
            </li>
          ))}
        </ul>
      )}
    </section>
  );
}
