// The signed-in user: token, claims read from it, and /api/me once verified by the server.

import { useEffect, useMemo, useState, useSyncExternalStore, type ReactNode } from "react";
import { api, onUnauthorized } from "./api";
import { requiredContext } from "./context";
import { decodeClaims, getToken, onTokenChange, setToken, type Claims } from "./auth";
import { closeAll } from "./registry";
import type { Me } from "./types";

export interface Session {
  token: string | null;
  claims: Claims | null;
  me: Me | null;
  isAdmin: boolean;
  /** Why the user was sent back to the login page, if they were. */
  reason: string | null;
  logout: (reason?: string) => void;
}

const [SessionContext, useSessionValue] = requiredContext<Session>("useSession", "SessionProvider");

export function useSession(): Session {
  return useSessionValue();
}

export function SessionProvider({ children }: { children: ReactNode }) {
  const token = useSyncExternalStore(onTokenChange, getToken, () => null);
  const [me, setMe] = useState<Me | null>(null);
  const [reason, setReason] = useState<string | null>(null);

  useEffect(() => {
    setMe(null);
    if (!token) return;
    const ctl = new AbortController();
    api
      .me()
      .then((m) => !ctl.signal.aborted && setMe(m))
      .catch(() => {
        // A 401 is handled by onUnauthorized; other errors leave the claims as the best guess.
      });
    return () => ctl.abort();
  }, [token]);

  useEffect(
    () =>
      onUnauthorized(() => {
        setReason("Votre session a expiré ou le jeton a été refusé. Collez un nouveau jeton.");
        closeAll();
        setToken(null);
      }),
    [],
  );

  const value = useMemo<Session>(() => {
    const claims = decodeClaims(token);
    const role = me?.role ?? claims?.role;
    return {
      token,
      claims,
      me,
      isAdmin: role === "admin",
      reason,
      logout: (r?: string) => {
        setReason(r ?? null);
        closeAll();
        setToken(null);
      },
    };
  }, [token, me, reason]);

  return <SessionContext value={value}>{children}</SessionContext>;
}
