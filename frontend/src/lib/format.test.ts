import { describe, expect, it } from "vitest";
import { traceLink } from "./format";

describe("traceLink", () => {
  const id = "4bf92f3577b34da6a3ce929d0e0e4736";
  it("fills the configured viewer's {trace_id}", () => {
    expect(traceLink("http://localhost:16686/trace/{trace_id}", id)).toBe(`http://localhost:16686/trace/${id}`);
  });
  it("links nothing without a viewer, a trace id, or with a malformed id", () => {
    expect(traceLink(undefined, id)).toBeNull();
    expect(traceLink("http://x/{trace_id}", "")).toBeNull();
    expect(traceLink("http://x/{trace_id}", "javascript:alert(1)")).toBeNull();
  });
});
