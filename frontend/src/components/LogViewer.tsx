// LogViewer renders a live log of any length smoothly: rows have a fixed height and only the
// rows in view (plus a margin) are in the DOM. It follows new lines while the reader is at the
// bottom, stops following as soon as they scroll up, and offers to resume.

import { memo, useCallback, useEffect, useLayoutEffect, useRef, useState, type KeyboardEvent } from "react";
import { formatTime } from "../lib/format";
import type { LogEntry } from "../lib/types";
import { Icon } from "./Icon";

const ROW_HEIGHT = 22;
const OVERSCAN = 20;

interface Props {
  logs: LogEntry[];
  /** Lines dropped from the front to bound memory. */
  dropped?: number;
  height?: number;
  emptyText?: string;
  onDownload?: () => void;
}

export function LogViewer({ logs, dropped = 0, height = 380, emptyText = "Aucune ligne de journal pour l'instant.", onDownload }: Props) {
  const scroller = useRef<HTMLDivElement>(null);
  const [scrollTop, setScrollTop] = useState(0);
  const [viewport, setViewport] = useState(height);
  const [follow, setFollow] = useState(true);
  const seenCount = useRef(logs.length);
  const [unread, setUnread] = useState(0);

  // Follow the tail while following; count what arrives while not.
  useLayoutEffect(() => {
    const el = scroller.current;
    const added = logs.length - seenCount.current;
    seenCount.current = logs.length;
    if (!el) return;
    if (follow) {
      el.scrollTop = el.scrollHeight;
      setScrollTop(el.scrollTop);
      setUnread(0);
    } else if (added > 0) {
      setUnread((u) => u + added);
    } else if (added < 0) {
      setUnread(0); // a new run replaced the log
    }
  }, [logs, follow]);

  useEffect(() => {
    const el = scroller.current;
    if (!el || typeof ResizeObserver === "undefined") return;
    const ro = new ResizeObserver(() => setViewport(el.clientHeight));
    ro.observe(el);
    setViewport(el.clientHeight);
    return () => ro.disconnect();
  }, []);

  const onScroll = useCallback(() => {
    const el = scroller.current;
    if (!el) return;
    setScrollTop(el.scrollTop);
    const atBottom = el.scrollHeight - el.scrollTop - el.clientHeight < ROW_HEIGHT * 1.5;
    setFollow(atBottom);
    if (atBottom) setUnread(0);
  }, []);

  const resume = () => {
    setFollow(true);
    setUnread(0);
    const el = scroller.current;
    if (el) el.scrollTop = el.scrollHeight;
  };

  const onKeyDown = (e: KeyboardEvent<HTMLDivElement>) => {
    const el = scroller.current;
    if (!el) return;
    if (e.key === "End") {
      e.preventDefault();
      resume();
    } else if (e.key === "Home") {
      e.preventDefault();
      el.scrollTop = 0;
    }
  };

  const first = Math.max(0, Math.floor(scrollTop / ROW_HEIGHT) - OVERSCAN);
  const last = Math.min(logs.length, Math.ceil((scrollTop + viewport) / ROW_HEIGHT) + OVERSCAN);
  const rows = [];
  for (let i = first; i < last; i++) rows.push(<LogRow key={logs[i].id} entry={logs[i]} index={i + dropped} top={i * ROW_HEIGHT} />);

  return (
    <div className="logs">
      <div className="logs-head">
        <h3 className="logs-title">
          Journal <span className="muted">({(logs.length + dropped).toLocaleString("fr-FR")} lignes)</span>
        </h3>
        <div className="logs-tools">
          <span className={`follow-state ${follow ? "on" : ""}`} aria-live="polite">
            {follow ? "Suivi en direct" : "Défilement en pause"}
          </span>
          {onDownload && (
            <button type="button" className="btn btn-ghost btn-sm" onClick={onDownload} disabled={logs.length === 0}>
              <Icon name="download" size={14} /> Télécharger
            </button>
          )}
        </div>
      </div>
      {dropped > 0 && (
        <p className="logs-dropped">
          {dropped.toLocaleString("fr-FR")} lignes plus anciennes ne sont plus affichées ; l'historique complet reste disponible dans l'onglet Historique.
        </p>
      )}
      <div
        ref={scroller}
        className="logs-scroll"
        style={{ height }}
        onScroll={onScroll}
        onKeyDown={onKeyDown}
        tabIndex={0}
        role="log"
        aria-live="off"
        aria-label="Journal d'exécution (Fin : suivre, Début : haut)"
        data-count={logs.length}
      >
        {logs.length === 0 ? (
          <div className="logs-empty">{emptyText}</div>
        ) : (
          <div className="logs-inner" style={{ height: logs.length * ROW_HEIGHT }}>
            {rows}
          </div>
        )}
      </div>
      {!follow && (
        <button type="button" className="logs-resume" onClick={resume}>
          <Icon name="arrow-down" size={14} />
          {unread > 0 ? `${unread.toLocaleString("fr-FR")} nouvelle${unread > 1 ? "s" : ""} ligne${unread > 1 ? "s" : ""} — reprendre le suivi` : "Reprendre le suivi"}
        </button>
      )}
    </div>
  );
}

const LogRow = memo(function LogRow({ entry, index, top }: { entry: LogEntry; index: number; top: number }) {
  return (
    <div className={`log-row lvl-${entry.level.toLowerCase()}`} style={{ top, height: ROW_HEIGHT }} data-index={index} data-event-id={entry.id} title={entry.message}>
      <span className="log-time">{formatTime(entry.timestamp)}</span>
      <span className="log-level">{entry.level}</span>
      {entry.step ? <span className="log-step">{entry.step}</span> : <span className="log-step" />}
      <span className="log-msg">{entry.message}</span>
    </div>
  );
});
