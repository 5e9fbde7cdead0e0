import { useRef, useState, type FormEvent } from "react";
import { FormError } from "../components/ErrorPanel";
import { Icon } from "../components/Icon";
import { useToast } from "../components/Toasts";
import { api, ApiError, newIdempotencyKey, NetworkError, type CreateTicketInput } from "../lib/api";
import { Link, navigate, useTitle } from "../lib/router";

export function CreateTicketPage() {
  useTitle("Nouveau ticket");
  const toast = useToast();
  const [form, setForm] = useState<Required<CreateTicketInput>>({
    title: "",
    description: "",
    repository_url: "",
    base_branch: "main",
    ci_command: "",
    simulate_failure: "",
  });
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  // One key per form: resubmitting after a timeout cannot create the ticket twice.
  const key = useRef(newIdempotencyKey());

  const set = (k: keyof CreateTicketInput) => (e: { target: { value: string } }) => setForm((f) => ({ ...f, [k]: e.target.value }));

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const input: CreateTicketInput = { ...form, title: form.title.trim() };
      if (!input.simulate_failure) delete input.simulate_failure;
      const t = await api.createTicket(input, key.current);
      toast.success(`Ticket « ${t.title} » créé.`);
      navigate(`/tickets/${t.id}`);
    } catch (err) {
      if (err instanceof NetworkError) setError("Serveur injoignable : vérifiez la connexion puis réessayez (le ticket ne sera pas créé deux fois).");
      else if (err instanceof ApiError) setError(err.message);
      else setError(String(err));
    } finally {
      setBusy(false);
    }
  };

  return (
    <div className="page page-narrow">
      <div className="page-head">
        <div>
          <Link to="/" className="back">
            ← Tickets
          </Link>
          <h1>Nouveau ticket</h1>
          <p className="muted">Décrivez le changement voulu ; le traitement automatique clonera le dépôt, générera le code et lancera la CI.</p>
        </div>
      </div>
      <form className="card form" onSubmit={submit} aria-label="Créer un ticket">
        <label className="field">
          <span>
            Titre <span className="req">*</span>
          </span>
          <input className="input" name="title" value={form.title} onChange={set("title")} required maxLength={200} autoFocus placeholder="Ex. Ajouter la pagination à l'API des commandes" />
        </label>
        <label className="field">
          <span>Description</span>
          <textarea className="input" name="description" rows={6} value={form.description} onChange={set("description")} placeholder="Contexte, critères d'acceptation…" />
        </label>
        <div className="field-row">
          <label className="field grow">
            <span>Dépôt (URL)</span>
            <input className="input mono" name="repository_url" value={form.repository_url} onChange={set("repository_url")} placeholder="https://github.com/org/repo.git" spellCheck={false} />
          </label>
          <label className="field">
            <span>Branche de base</span>
            <input className="input mono" name="base_branch" value={form.base_branch} onChange={set("base_branch")} spellCheck={false} />
          </label>
        </div>
        <label className="field">
          <span>Commande CI</span>
          <input className="input mono" name="ci_command" value={form.ci_command} onChange={set("ci_command")} placeholder="make test" spellCheck={false} />
        </label>
        <label className="field">
          <span>Simulation d'échec CI</span>
          <select className="input" name="simulate_failure" value={form.simulate_failure} onChange={set("simulate_failure")}>
            <option value="">Aucune</option>
            <option value="once">Une fois par exécution (puis succès)</option>
            <option value="always">Toujours</option>
          </select>
          <small className="muted">Pris en compte uniquement par l'exécuteur simulé (démos, tests).</small>
        </label>
        <FormError error={error} />
        <div className="form-actions">
          <Link to="/" className="btn btn-ghost">
            Annuler
          </Link>
          <button type="submit" className="btn btn-primary" disabled={busy || !form.title.trim()}>
            <Icon name="plus" size={16} /> {busy ? "Création…" : "Créer le ticket"}
          </button>
        </div>
      </form>
    </div>
  );
}
