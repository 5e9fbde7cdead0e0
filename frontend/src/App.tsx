import { lazy, Suspense, useEffect, useSyncExternalStore } from "react";
import { Icon } from "./components/Icon";
import { ToastProvider, useToast } from "./components/Toasts";
import { actions } from "./lib/actionQueue";
import { browserOnline } from "./lib/online";
import { Link, match, usePath } from "./lib/router";
import { SessionProvider, useSession } from "./lib/session";
import { AnalyticsPage } from "./pages/AnalyticsPage";
import { CreateTicketPage } from "./pages/CreateTicketPage";
import { DashboardPage } from "./pages/DashboardPage";
import { LoginPage } from "./pages/LoginPage";
import { NotFoundPage } from "./pages/NotFoundPage";
import { TicketListPage } from "./pages/TicketListPage";
import { TicketPage } from "./pages/TicketPage";

// The API reference page pulls in its renderer only when visited.
const ApiDocsPage = lazy(() => import("./pages/ApiDocsPage"));

export function App() {
  return (
    <SessionProvider>
      <ToastProvider>
        <Shell />
      </ToastProvider>
    </SessionProvider>
  );
}

function Shell() {
  const session = useSession();
  if (!session.token) return <LoginPage />;
  return (
    <div className="app">
      <a className="skip-link" href="#main">
        Aller au contenu
      </a>
      <TopBar />
      <main id="main" className="main" tabIndex={-1}>
        <Routes />
      </main>
      <QueueOutcomes />
    </div>
  );
}

function Routes() {
  const path = usePath();
  let params: Record<string, string> | null;
  if (path === "/" || path === "/tickets") return <TicketListPage />;
  if (path === "/tickets/new") return <CreateTicketPage />;
  if ((params = match("/tickets/:id", path))) return <TicketPage key={params.id} ticketId={params.id} />;
  if (path === "/dashboard") return <DashboardPage />;
  if (path === "/analytics") return <AnalyticsPage />;
  if (path === "/docs/api")
    return (
      <Suspense fallback={<p className="muted">Chargement de la référence de l'API…</p>}>
        <ApiDocsPage />
      </Suspense>
    );
  return <NotFoundPage />;
}

function useOnline(): boolean {
  return useSyncExternalStore(
    (l) => browserOnline.subscribe(l),
    () => browserOnline.isOnline(),
    () => true,
  );
}

function usePendingActions(): number {
  const q = actions();
  return useSyncExternalStore(
    (l) => q.subscribe(l),
    () => q.pending.length,
    () => 0,
  );
}

function TopBar() {
  const session = useSession();
  const path = usePath();
  const online = useOnline();
  const pending = usePendingActions();
  const nav = [
    { to: "/", label: "Tickets", icon: "list" as const, active: path === "/" || (path.startsWith("/tickets") && path !== "/tickets/new") },
    { to: "/tickets/new", label: "Nouveau ticket", icon: "plus" as const, active: path === "/tickets/new" },
    ...(session.isAdmin ? [{ to: "/dashboard", label: "Tableau de bord", icon: "activity" as const, active: path === "/dashboard" }] : []),
    { to: "/analytics", label: "Latence des étapes", icon: "chart" as const, active: path === "/analytics" },
    { to: "/docs/api", label: "API", icon: "list" as const, active: path === "/docs/api" },
  ];
  return (
    <header className="topbar">
      <Link to="/" className="brand" aria-label="ticketflow, accueil">
        <span className="brand-mark" aria-hidden>
          <Icon name="list" size={16} />
        </span>
        ticketflow
      </Link>
      <nav aria-label="Navigation principale" className="nav">
        {nav.map((n) => (
          <Link key={n.to} to={n.to} className={`nav-link ${n.active ? "active" : ""}`} aria-current={n.active ? "page" : undefined}>
            <Icon name={n.icon} size={15} />
            <span>{n.label}</span>
          </Link>
        ))}
      </nav>
      <div className="topbar-right">
        {!online && (
          <span className="pill pill-warning" role="status">
            <Icon name="wifi-off" size={13} /> Hors ligne
          </span>
        )}
        {pending > 0 && (
          <span className="pill pill-info" role="status" title="Envoyées au retour du réseau">
            {pending} action{pending > 1 ? "s" : ""} en attente
          </span>
        )}
        <span className="user" title={session.claims?.sub}>
          <span className="avatar" aria-hidden>
            {(session.claims?.sub ?? "?").slice(0, 1).toUpperCase()}
          </span>
          <span className="user-name">{session.claims?.sub}</span>
          <span className={`role role-${session.isAdmin ? "admin" : "user"}`}>{session.isAdmin ? "admin" : "utilisateur"}</span>
        </span>
        <button type="button" className="btn btn-ghost btn-sm" onClick={() => session.logout()} title="Se déconnecter">
          <Icon name="logout" size={15} />
          <span className="sr-only">Se déconnecter</span>
        </button>
      </div>
    </header>
  );
}

/** QueueOutcomes reports actions that were sent from the offline queue. */
function QueueOutcomes() {
  const toast = useToast();
  useEffect(
    () =>
      actions().onOutcome((o) => {
        if (o.kind === "sent") toast.success(`${o.action.label} : envoyé au retour du réseau.`);
        else toast.error(`${o.action.label} : ${o.error.message}`);
      }),
    [toast],
  );
  return null;
}
