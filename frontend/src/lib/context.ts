// requiredContext makes a React context whose hook throws when it is used outside its provider,
// so a missing provider fails loudly instead of handing out null.

import { createContext, useContext, type Provider } from "react";

export function requiredContext<T>(hookName: string, providerName: string): [Provider<T | null>, () => T] {
  const ctx = createContext<T | null>(null);
  const use = (): T => {
    const value = useContext(ctx);
    if (!value) throw new Error(`${hookName} outside ${providerName}`);
    return value;
  };
  return [ctx.Provider, use];
}
