import { useEffect, useState } from "react";
import { Icon } from "./Icon";

export interface ConnectionInfo {
  isConnected: boolean;
  reconnecting: boolean;
  offline: boolean;
  fatal: string | null;
  nextRetryAt: number | null;
}

/** ConnectionPill says whether updates are live, and lets the user retry at once. */
export function ConnectionPill({ info, onRetry }: { info: ConnectionInfo; onRetry?: () => void }) {
  const [now, setNow] = useState(Date.now());
  useEffect(() => {
    if (!info.nextRetryAt) return;
    const t = setInterval(() => setNow(Date.now()), 500);
    return () => clearInterval(t);
  }, [info.nextRetryAt]);

  let tone = "off";
  let text = "Connexion…";
  if (info.fatal) {
    tone = "danger";
    text = "Déconnecté";
  } else if (info.offline) {
    tone = "warning";
    text = "Hors ligne";
  } else if (info.isConnected) {
    tone = "live";
    text = "En direct";
  } else if (info.reconnecting) {
    tone = "warning";
    const s = info.nextRetryAt ? Math.max(0, Math.ceil((info.nextRetryAt - now) / 1000)) : 0;
    text = s > 0 ? `Reconnexion dans ${s} s` : "Reconnexion…";
  }
  const canRetry = !!onRetry && !info.isConnected && !info.offline;
  return (
    <span className={`conn conn-${tone}`} data-connected={info.isConnected} role="status" title={info.fatal ?? undefined}>
      {info.offline ? <Icon name="wifi-off" size={13} /> : <span className="conn-dot" aria-hidden />}
      <span>{text}</span>
      {canRetry && (
        <button type="button" className="link-btn" onClick={onRetry}>
          Réessayer
        </button>
      )}
    </span>
  );
}
