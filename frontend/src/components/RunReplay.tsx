// RunReplay: watch a finished run again from its events (the audit trail) at 1×, 2×, 10× or
// 50×, with a seekable timeline whose markers are the step starts, the agent's tool calls and
// the CI results. Every position shows the state the event prefix up to it gives (lib/replay):
// status, steps, progress, CI and the log so far. Long idle gaps are shortened (and said so).

import { memo, useCallback, useEffect, useMemo, useRef, useState, type KeyboardEvent } from "react";
import { api } from "../lib/api";
import { formatDuration, formatTime, formatUSD } from "../lib/format";
import {
  eventsAt,
  foldReplay,
  initialReplayState,
  markers,
  replayAt,
  replayLogs,
  schedule,
  type Gap,
  type Marker,
  type ReplayState,
  type Schedule,
} from "../lib/replay";
import { stepLabel, type Envelope, type EventPage } from "../lib/types";
import { CIOutcome } from "./CIOutcome";
import { FormError } from "./ErrorPanel";
import { Icon } from "./Icon";
import { LogViewer } from "./LogViewer";
import { ProgressBar } from "./ProgressBar";
import { StatusBadge } from "./StatusBadge";
import { StepTimeline } from "./StepTimeline";

export const SPEEDS = [1, 2, 10, 50] as const;
export type Speed = (typeof SPEEDS)[number];
/** The longest real-time wait between two events of a replay. */
export const MAX_GAP_MS = 2000;
/** Events per page asked of the audit trail (the API's maximum). */
const PAGE = 5000;

type Loader = (runId: string, after: string | null, signal?: AbortSignal) => Promise<EventPage>;
const defaultLoad: Loader = (runId, after, signal) => api.runEvents(runId, after, PAGE, signal);

export interface RunReplayProps {
  runId: string;
  /** Injected in tests. */
  load?: Loader;
}

/** RunReplay offers the replay of a finished run; its events load when it is opened. */
export function RunReplay({ runId, load = defaultLoad }: RunReplayProps) {
  const [open, setOpen] = useState(false);
  return (
    <div className="replay" data-run-id={runId}>
      {!open ? (
        <button type="button" className="btn btn-sm" onClick={() => setOpen(true)}>
          <Icon name="play" size={14} /> Revoir l'exécution
        </button>
      ) : (
        <ReplayLoader runId={runId} load={load} onClose={() => setOpen(false)} />
      )}
    </div>
  );
}

function ReplayLoader({ runId, load, onClose }: { runId: string; load: Loader; onClose: () => void }) {
  const { events, error, loading } = useAllRunEvents(runId, load);
  return (
    <>
      <FormError error={error} />
      {loading && (
        <p className="muted" data-replay-state="loading">
          Chargement des événements…
        </p>
      )}
      {!loading && !error && <ReplayPlayer events={events} onClose={onClose} />}
    </>
  );
}

/** useAllRunEvents reads every page of the run's audit trail once. */
function useAllRunEvents(runId: string, load: Loader) {
  const [state, setState] = useState<{ events: Envelope[]; error: string | null; loading: boolean }>({ events: [], error: null, loading: true });
  useEffect(() => {
    const ctl = new AbortController();
    (async () => {
      const out: Envelope[] = [];
      const seen = new Set<string>();
      let after: string | null = null;
      for (;;) {
        const page: EventPage = await load(runId, after, ctl.signal);
        for (const it of page.events) {
          if (seen.has(it.event.id)) continue;
          seen.add(it.event.id);
          out.push(it.event);
        }
        if (!page.next_cursor || page.events.length === 0) break;
        after = page.next_cursor;
      }
      return out;
    })()
      .then((events) => !ctl.signal.aborted && setState({ events, error: null, loading: false }))
      .catch((e: Error) => !ctl.signal.aborted && e.name !== "AbortError" && setState({ events: [], error: e.message, loading: false }));
    return () => ctl.abort();
  }, [runId, load]);
  return state;
}

interface View {
  /** Position in the replay, in ms of real time at the current speed. */
  pos: number;
  state: ReplayState;
}

export function ReplayPlayer({ events, onClose }: { events: Envelope[]; onClose?: () => void }) {
  const logs = useMemo(() => replayLogs(events), [events]);
  const marks = useMemo(() => markers(events), [events]);
  const [speed, setSpeed] = useState<Speed>(1);
  const sched = useMemo(() => schedule(events, speed, MAX_GAP_MS), [events, speed]);
  const gaps = useMemo(() => new Map(sched.skipped.map((g) => [g.index, g])), [sched]);
  const [playing, setPlaying] = useState(false);
  const [view, setView] = useState<View>({ pos: 0, state: initialReplayState });
  const cur = useRef<View>(view);
  // Where the clock started: the replay is at anchor.pos + (now - anchor.at) while playing.
  const anchor = useRef({ pos: 0, at: 0 });

  /**
   * goto shows the state at real time t: played forward from where it is, or rebuilt from the
   * prefix. upTo, when given, is the number of events shown instead of all those at or before t
   * (a marker's event, when the events after it share its time).
   */
  const goto = useCallback(
    (t: number, upTo?: number) => {
      const pos = Math.max(0, Math.min(sched.duration, t));
      // Position 0 is before the first event (which plays at 0): the start shows nothing yet.
      const k = upTo ?? (pos <= 0 ? 0 : eventsAt(sched.at, pos));
      const prev = cur.current.state;
      const state = k === prev.position ? prev : k > prev.position ? foldReplay(prev, events, k) : replayAt(events, k);
      cur.current = { pos, state };
      setView(cur.current);
    },
    [events, sched],
  );

  const seek = useCallback(
    (t: number, upTo?: number) => {
      goto(t, upTo);
      anchor.current = { pos: cur.current.pos, at: performance.now() };
    },
    [goto],
  );
  /** seekEvent shows the state right after event i (a marker's). */
  const seekEvent = useCallback((i: number) => seek(sched.at[i], i + 1), [seek, sched]);

  // A new speed keeps the events shown: the position moves to the last one's time in the new schedule.
  const firstSched = useRef(sched);
  useEffect(() => {
    if (firstSched.current === sched) return;
    firstSched.current = sched;
    const k = cur.current.state.position;
    seek(k > 0 ? sched.at[k - 1] : 0);
  }, [sched, seek]);

  useEffect(() => {
    if (!playing) return;
    anchor.current = { pos: cur.current.pos, at: performance.now() };
    let raf = 0;
    const tick = (now: number) => {
      const t = anchor.current.pos + Math.max(0, now - anchor.current.at);
      goto(t);
      if (t >= sched.duration) {
        setPlaying(false);
        return;
      }
      raf = requestAnimationFrame(tick);
    };
    raf = requestAnimationFrame(tick);
    return () => cancelAnimationFrame(raf);
  }, [playing, goto, sched.duration]);

  const { pos, state } = view;
  const total = events.length;
  const ended = total > 0 && state.position >= total && pos >= sched.duration;
  const play = () => {
    if (ended) goto(0);
    setPlaying(true);
  };

  // The markers before and after the position, for the keyboard.
  const prevMarker = () => {
    const k = state.position;
    for (let i = marks.length - 1; i >= 0; i--) if (marks[i].index < k - 1) return seekEvent(marks[i].index);
    seek(0);
  };
  const nextMarker = () => {
    const k = state.position;
    for (const m of marks) if (m.index >= k) return seekEvent(m.index);
    seek(sched.duration);
  };
  const onSliderKey = (e: KeyboardEvent<HTMLInputElement>) => {
    const step = Math.max(sched.duration / 100, 1);
    const to: Record<string, () => void> = {
      ArrowLeft: () => seek(pos - step),
      ArrowDown: () => seek(pos - step),
      ArrowRight: () => seek(pos + step),
      ArrowUp: () => seek(pos + step),
      PageUp: prevMarker,
      PageDown: nextMarker,
      Home: () => seek(0),
      End: () => seek(sched.duration),
    };
    const f = to[e.key];
    if (!f) return;
    e.preventDefault();
    f();
  };

  // The gap being skipped right now, if any (the next event is after a shortened gap).
  const gap: Gap | undefined = state.position > 0 && state.position < total ? gaps.get(state.position) : undefined;
  const shown = useMemo(() => logs.slice(0, state.logCount), [logs, state.logCount]);
  const logView = useMemo(() => <LogViewer logs={shown} emptyText="Aucune ligne de journal à ce point de la relecture." />, [shown]);
  const last = state.position > 0 ? events[state.position - 1] : null;
  const phase = total === 0 ? "empty" : playing ? "playing" : ended ? "ended" : state.position === 0 && pos === 0 ? "ready" : "paused";

  if (total === 0) {
    return <p className="muted">Aucun événement à rejouer.</p>;
  }
  const valueText = `${formatClock(pos)} sur ${formatClock(sched.duration)}, ${state.position} événements sur ${total}${state.step ? `, étape ${stepLabel(state.step)}` : ""}`;

  return (
    <div className="replay-player" role="region" aria-label="Relecture de l'exécution" data-replay-state={phase} data-position={state.position} data-total={total}>
      <div className="replay-controls">
        <button type="button" className="btn btn-sm btn-primary" onClick={playing ? () => setPlaying(false) : play} aria-label={playing ? "Pause" : ended ? "Rejouer depuis le début" : "Lire"}>
          <Icon name={playing ? "pause" : "play"} size={14} /> {playing ? "Pause" : ended ? "Rejouer" : "Lire"}
        </button>
        <button type="button" className="btn btn-sm btn-ghost" onClick={() => seek(0)} aria-label="Revenir au début" disabled={pos === 0 && state.position === 0}>
          <Icon name="rewind" size={14} />
        </button>
        <div className="replay-speeds" role="group" aria-label="Vitesse de relecture">
          {SPEEDS.map((s) => (
            <button key={s} type="button" className="btn btn-ghost btn-sm" aria-pressed={speed === s} aria-label={`Vitesse ${s}×`} onClick={() => setSpeed(s)}>
              {s}×
            </button>
          ))}
        </div>
        <span className="replay-clock mono" aria-hidden>
          {formatClock(pos)} / {formatClock(sched.duration)}
        </span>
        <span className="muted replay-origin">{last ? `heure d'origine ${formatTime(last.occurred_at)}` : ""}</span>
        {onClose && (
          <button type="button" className="btn btn-sm btn-ghost replay-close" onClick={onClose}>
            Fermer
          </button>
        )}
      </div>

      <div className="replay-timeline">
        <input
          type="range"
          className="replay-slider"
          min={0}
          max={sched.duration}
          step="any"
          value={pos}
          onChange={(e) => seek(Number(e.target.value))}
          onKeyDown={onSliderKey}
          aria-label="Position dans la relecture (Page préc./suiv. : repère précédent/suivant)"
          aria-valuetext={valueText}
        />
        <ReplayMarks marks={marks} sched={sched} onSeekEvent={seekEvent} />
        <div className="replay-nav">
          <button type="button" className="btn btn-ghost btn-sm" onClick={prevMarker}>
            ← Repère précédent
          </button>
          <span className="muted replay-legend" aria-hidden>
            <i className="rm rm-step" /> étape <i className="rm rm-tool" /> outil <i className="rm rm-ci" /> CI
          </span>
          <button type="button" className="btn btn-ghost btn-sm" onClick={nextMarker}>
            Repère suivant →
          </button>
        </div>
        {gap ? (
          <p className="replay-skip" data-testid="replay-skip">
            ⏩ Inactivité de {formatDuration(gap.originalMs)} raccourcie à {formatDuration(gap.replayMs)}
          </p>
        ) : sched.skipped.length > 0 ? (
          <p className="muted replay-skip-note">
            {sched.skipped.length} période{sched.skipped.length > 1 ? "s" : ""} d'inactivité raccourcie{sched.skipped.length > 1 ? "s" : ""} à {formatDuration(MAX_GAP_MS)} à cette vitesse.
          </p>
        ) : null}
      </div>

      <div className="replay-state">
        <div className="tps-head">
          <StatusBadge status={state.status} />
          <div className="tps-message">
            <p className="tps-text">{state.message}</p>
            {state.step && <p className="tps-step muted">Étape : {stepLabel(state.step)}</p>}
          </div>
        </div>
        <ProgressBar value={state.progress} status={state.status} label="Progression rejouée" detail={state.step ? stepLabel(state.step) : undefined} />
        <StepTimeline step={state.step} status={state.status} results={state.steps} />
        {state.ci && <CIOutcome ci={state.ci} />}
        {state.llm && (
          <p className="llm-usage muted">
            LLM : {state.llm.calls} appel{state.llm.calls > 1 ? "s" : ""} · {state.toolCalls} outil{state.toolCalls > 1 ? "s" : ""} · {formatUSD(state.llm.costUsd)}
          </p>
        )}
        {state.error && <p className="text-danger">{state.error}</p>}
      </div>
      {logView}
    </div>
  );
}

/** The markers under the slider; memoised: they change with the speed, not the position. */
const ReplayMarks = memo(function ReplayMarks({ marks, sched, onSeekEvent }: { marks: Marker[]; sched: Schedule; onSeekEvent: (index: number) => void }) {
  const d = sched.duration || 1;
  return (
    <div className="replay-marks">
      {sched.skipped.map((g) => {
        const a = sched.at[g.index - 1] ?? 0;
        return (
          <span
            key={`gap-${g.index}`}
            className="replay-gap"
            style={{ left: `${(a / d) * 100}%`, width: `${(g.replayMs / d) * 100}%` }}
            title={`Inactivité de ${formatDuration(g.originalMs)} raccourcie`}
            aria-hidden
          />
        );
      })}
      {marks.map((m) => (
        <button
          key={`${m.kind}-${m.index}`}
          type="button"
          tabIndex={-1}
          className={`rm rm-${m.kind}${m.kind === "ci" ? (m.passed ? " ok" : " ko") : ""}`}
          style={{ left: `${(sched.at[m.index] / d) * 100}%` }}
          title={`${m.label} — ${formatClock(sched.at[m.index])}`}
          aria-label={`Aller à : ${m.label}`}
          onClick={() => onSeekEvent(m.index)}
        />
      ))}
    </div>
  );
});

/** formatClock: m:ss.t of a replay position. */
export function formatClock(ms: number): string {
  const t = Math.max(0, Math.floor(ms / 100));
  const m = Math.floor(t / 600);
  const s = Math.floor((t % 600) / 10);
  return `${m}:${String(s).padStart(2, "0")}.${t % 10}`;
}
