import { useState, type FormEvent } from "react";
import { FormError } from "../components/ErrorPanel";
import { Icon } from "../components/Icon";
import { api, ApiError } from "../lib/api";
import { decodeClaims, isExpired, setToken } from "../lib/auth";
import { useTitle } from "../lib/router";
import { useSession } from "../lib/session";

export function LoginPage() {
  useTitle("Connexion");
  const session = useSession();
  const [value, setValue] = useState("");
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    const token = value.trim().replace(/^Bearer\s+/i, "");
    const claims = decodeClaims(token);
    if (!claims) {
      setError("Ce n'est pas un jeton JWT (trois parties séparées par des points).");
      return;
    }
    if (isExpired(claims)) {
      setError("Ce jeton a expiré.");
      return;
    }
    setBusy(true);
    setError(null);
    try {
      await api.me(token);
      setToken(token);
    } catch (err) {
      setError(err instanceof ApiError && err.status === 401 ? "Jeton refusé par le serveur." : (err as Error).message);
    } finally {
      setBusy(false);
    }
  };

  return (
    <main className="login">
      <form className="card login-card" onSubmit={submit} aria-labelledby="login-title">
        <div className="brand brand-lg">
          <span className="brand-mark" aria-hidden>
            <Icon name="list" size={18} />
          </span>
          ticketflow
        </div>
        <h1 id="login-title">Connexion</h1>
        {session.reason && (
          <p className="notice" role="status">
            {session.reason}
          </p>
        )}
        <p className="muted">
          Ouvrez l'adresse affichée par <code>make run</code> (elle se termine par <code>#access_token=…</code>) ou collez un jeton
          ci-dessous. Un jeton s'obtient avec <code>ticketflow token --sub vous --role admin</code>.
        </p>
        <label className="field">
          <span>Jeton d'accès (JWT)</span>
          <textarea
            name="token"
            rows={4}
            value={value}
            onChange={(e) => setValue(e.target.value)}
            placeholder="eyJhbGciOiJIUzI1NiIs…"
            required
            autoFocus
            spellCheck={false}
          />
        </label>
        <FormError error={error} />
        <button type="submit" className="btn btn-primary" disabled={busy || !value.trim()}>
          {busy ? "Vérification…" : "Se connecter"}
        </button>
      </form>
    </main>
  );
}
