// The app's two error displays: ErrorPanel, a titled block for a load or connection failure
// (with an optional action such as "Réessayer"), and FormError, the line under a form or list.
// Both are announced (role="alert").

import type { ReactNode } from "react";
import { Icon, type IconName } from "./Icon";

interface ErrorPanelProps {
  title: ReactNode;
  message: ReactNode;
  icon?: IconName;
  /** Shown under the message, e.g. a retry button. */
  children?: ReactNode;
}

export function ErrorPanel({ title, message, icon = "alert", children }: ErrorPanelProps) {
  return (
    <div className="error-panel" role="alert">
      <Icon name={icon} size={16} />
      <div>
        <strong>{title}</strong>
        <p>{message}</p>
        {children}
      </div>
    </div>
  );
}

/** FormError renders nothing without an error. */
export function FormError({ error }: { error: string | null | undefined }) {
  if (!error) return null;
  return (
    <p className="form-error" role="alert">
      {error}
    </p>
  );
}
