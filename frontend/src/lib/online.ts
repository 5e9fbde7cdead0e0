// Network reachability as the browser sees it (navigator.onLine plus the online/offline
// events). Injected into the connection layer so tests can drive it.

export interface OnlineSource {
  isOnline(): boolean;
  subscribe(listener: (online: boolean) => void): () => void;
}

export const browserOnline: OnlineSource = {
  isOnline() {
    return typeof navigator === "undefined" || navigator.onLine !== false;
  },
  subscribe(listener) {
    if (typeof window === "undefined") return () => {};
    const on = () => listener(true);
    const off = () => listener(false);
    window.addEventListener("online", on);
    window.addEventListener("offline", off);
    return () => {
      window.removeEventListener("online", on);
      window.removeEventListener("offline", off);
    };
  },
};

/** A controllable source, for tests and for environments without a window. */
export class ManualOnline implements OnlineSource {
  private listeners = new Set<(online: boolean) => void>();
  constructor(private online = true) {}
  isOnline(): boolean {
    return this.online;
  }
  set(online: boolean): void {
    if (online === this.online) return;
    this.online = online;
    this.listeners.forEach((l) => l(online));
  }
  subscribe(listener: (online: boolean) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}
