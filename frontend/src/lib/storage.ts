// browserStorage is the browser's localStorage or sessionStorage, or null where there is none
// (tests without a DOM) or where reading it throws (storage disabled, sandboxed frames).

export function browserStorage(kind: "localStorage" | "sessionStorage"): Storage | null {
  try {
    return globalThis[kind] ?? null;
  } catch {
    return null;
  }
}
