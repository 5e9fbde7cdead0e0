// Reconnection delays: exponential growth from baseMs, capped at maxMs, with "equal jitter"
// (half the delay fixed, half random) so that clients dropped together do not return together,
// while each still waits at least half the nominal delay.

export interface BackoffOptions {
  baseMs: number;
  maxMs: number;
  factor: number;
  /** Share of the delay that is randomized, 0..1. */
  jitter: number;
}

export const DEFAULT_BACKOFF: BackoffOptions = { baseMs: 500, maxMs: 30_000, factor: 2, jitter: 0.5 };

/** backoffDelay is the wait before reconnection attempt number `attempt` (0-based). */
export function backoffDelay(attempt: number, opts: BackoffOptions = DEFAULT_BACKOFF, random: () => number = Math.random): number {
  const nominal = Math.min(opts.maxMs, opts.baseMs * Math.pow(opts.factor, Math.max(0, attempt)));
  const r = Math.min(1, Math.max(0, random()));
  return Math.round(nominal * (1 - opts.jitter) + nominal * opts.jitter * r);
}
