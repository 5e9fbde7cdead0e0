import { Link, useTitle } from "../lib/router";

export function NotFoundPage({ what = "Cette page" }: { what?: string }) {
  useTitle("Introuvable");
  return (
    <div className="empty">
      <h1>{what} n'existe pas.</h1>
      <p className="muted">Le lien est peut-être ancien, ou vous n'y avez pas accès.</p>
      <Link to="/" className="btn btn-primary">
        Retour aux tickets
      </Link>
    </div>
  );
}
