// The bearer token: taken from `/#access_token=<jwt>` (the URL `make run` prints), kept in
// localStorage, sent as `Authorization: Bearer` to the API (sockets get a single-use ticket instead).

import { browserStorage } from "./storage";

const KEY = "ticketflow.token";

type Listener = () => void;
const listeners = new Set<Listener>();

export interface Claims {
  sub: string;
  role: string;
  exp?: number;
}

const storage = () => browserStorage("localStorage");

let memoryToken: string | null = null;

export function getToken(): string | null {
  return storage()?.getItem(KEY) ?? memoryToken;
}

export function setToken(token: string | null): void {
  const s = storage();
  const clean = token?.trim() || null;
  if (s) {
    if (clean) s.setItem(KEY, clean);
    else s.removeItem(KEY);
  } else {
    memoryToken = clean;
  }
  listeners.forEach((l) => l());
}

export function onTokenChange(l: Listener): () => void {
  listeners.add(l);
  return () => listeners.delete(l);
}

/**
 * captureTokenFromHash stores a token given as `#access_token=...` and removes it from the
 * address bar (and from history), so it is neither bookmarked nor shared by accident.
 */
export function captureTokenFromHash(loc: Location = window.location, hist: History = window.history): boolean {
  if (!loc.hash.includes("access_token=")) return false;
  const params = new URLSearchParams(loc.hash.slice(1));
  const token = params.get("access_token");
  params.delete("access_token");
  const rest = params.toString();
  hist.replaceState(hist.state, "", loc.pathname + loc.search + (rest ? `#${rest}` : ""));
  if (!token) return false;
  setToken(token);
  return true;
}

/** decodeClaims reads the JWT payload without verifying it (the server verifies). */
export function decodeClaims(token: string | null): Claims | null {
  if (!token) return null;
  const part = token.split(".")[1];
  if (!part) return null;
  try {
    const b64 = part.replace(/-/g, "+").replace(/_/g, "/").padEnd(Math.ceil(part.length / 4) * 4, "=");
    const json = decodeURIComponent(
      Array.from(atob(b64), (c) => "%" + c.charCodeAt(0).toString(16).padStart(2, "0")).join(""),
    );
    const claims = JSON.parse(json) as Partial<Claims>;
    if (typeof claims.sub !== "string") return null;
    return { sub: claims.sub, role: typeof claims.role === "string" ? claims.role : "user", exp: claims.exp };
  } catch {
    return null;
  }
}

export function isExpired(claims: Claims | null, now = Date.now()): boolean {
  return !!claims?.exp && claims.exp * 1000 <= now;
}
