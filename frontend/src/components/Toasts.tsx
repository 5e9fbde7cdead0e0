// Toast notifications: errors stay longer and are announced assertively.

import { useCallback, useEffect, useMemo, useRef, useState, type ReactNode } from "react";
import { requiredContext } from "../lib/context";
import { Icon } from "./Icon";

type Tone = "error" | "success" | "info";

interface Toast {
  id: number;
  tone: Tone;
  text: string;
}

interface ToastApi {
  error(text: string): void;
  success(text: string): void;
  info(text: string): void;
}

const [ToastContext, useToastApi] = requiredContext<ToastApi>("useToast", "ToastProvider");

export function useToast(): ToastApi {
  return useToastApi();
}

export function ToastProvider({ children }: { children: ReactNode }) {
  const [toasts, setToasts] = useState<Toast[]>([]);
  const next = useRef(1);
  const timers = useRef(new Map<number, ReturnType<typeof setTimeout>>());

  const dismiss = useCallback((id: number) => {
    setToasts((t) => t.filter((x) => x.id !== id));
    const timer = timers.current.get(id);
    if (timer) clearTimeout(timer);
    timers.current.delete(id);
  }, []);

  const push = useCallback(
    (tone: Tone, text: string) => {
      const id = next.current++;
      setToasts((t) => [...t.filter((x) => x.text !== text), { id, tone, text }].slice(-5));
      timers.current.set(
        id,
        setTimeout(() => dismiss(id), tone === "error" ? 10_000 : 5_000),
      );
    },
    [dismiss],
  );

  useEffect(() => {
    const map = timers.current;
    return () => map.forEach((t) => clearTimeout(t));
  }, []);

  const api = useMemo<ToastApi>(
    () => ({ error: (t) => push("error", t), success: (t) => push("success", t), info: (t) => push("info", t) }),
    [push],
  );

  return (
    <ToastContext value={api}>
      {children}
      <div className="toasts" aria-live="polite">
        {toasts.map((t) => (
          <div key={t.id} className={`toast toast-${t.tone}`} role={t.tone === "error" ? "alert" : "status"}>
            <Icon name={t.tone === "error" ? "alert" : t.tone === "success" ? "check" : "message"} size={16} />
            <span className="toast-text">{t.text}</span>
            <button type="button" className="toast-close" onClick={() => dismiss(t.id)} aria-label="Fermer la notification">
              <Icon name="x" size={14} />
            </button>
          </div>
        ))}
      </div>
    </ToastContext>
  );
}
