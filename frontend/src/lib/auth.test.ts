// @vitest-environment happy-dom
import { describe, expect, it } from "vitest";
import { captureTokenFromHash, decodeClaims, getToken, isExpired, setToken } from "./auth";

const b64url = (o: object) => Buffer.from(JSON.stringify(o), "utf8").toString("base64url");
const jwt = (claims: object) => `${b64url({ alg: "HS256", typ: "JWT" })}.${b64url(claims)}.c2lnbmF0dXJl`;

describe("auth", () => {
  it("stores the token from #access_token and strips it from the URL", () => {
    setToken(null);
    const token = jwt({ sub: "alice", role: "admin", exp: 4_000_000_000 });
    history.replaceState(null, "", `/tickets/abc?x=1#access_token=${token}`);
    expect(captureTokenFromHash()).toBe(true);
    expect(getToken()).toBe(token);
    expect(localStorage.getItem("ticketflow.token")).toBe(token);
    expect(location.pathname + location.search + location.hash).toBe("/tickets/abc?x=1");
    expect(captureTokenFromHash()).toBe(false);
  });

  it("decodes claims (base64url, UTF-8) and spots expiry", () => {
    const c = decodeClaims(jwt({ sub: "Élodie", role: "user", exp: 100 }));
    expect(c).toEqual({ sub: "Élodie", role: "user", exp: 100 });
    expect(isExpired(c, 200_000)).toBe(true);
    expect(isExpired(c, 50_000)).toBe(false);
    expect(decodeClaims("not-a-jwt")).toBeNull();
    expect(decodeClaims(null)).toBeNull();
  });
});
