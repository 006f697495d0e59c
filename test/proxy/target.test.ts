import { describe, expect, it } from "vitest";
import { parseTarget } from "#src/proxy/target.js";

/** The path `parseTarget` matches scopes against, or why it refused it. */
function read(path: string): string {
  const target = parseTarget(`/payments-api${path}`);
  if (!target.ok) return `refused: ${target.refusal}`;
  return target.path ?? `path refused: ${target.pathProblem}`;
}

describe("parseTarget", () => {
  it("splits the resource from the path and keeps the rest for the upstream as sent", () => {
    expect(parseTarget("/payments-api/v1/charges?limit=3&x=%2F")).toEqual({
      ok: true,
      resource: "payments-api",
      path: "/v1/charges",
      pathProblem: null,
      forward: "/v1/charges?limit=3&x=%2F",
      rawPath: "/v1/charges",
    });
    expect(parseTarget("/payments-api")).toMatchObject({ path: "/", forward: "/" });
    expect(parseTarget("/payments-api/")).toMatchObject({ path: "/", forward: "/" });
    expect(parseTarget("/payments-api?x=1")).toMatchObject({ path: "/", forward: "/?x=1" });
  });

  it("decodes once and drops one trailing slash for matching", () => {
    expect(read("/v1/charges/")).toBe("/v1/charges");
    expect(read("/v1/caf%C3%A9")).toBe("/v1/café");
    expect(read("/v1/a%20b")).toBe("/v1/a b");
    expect(read("/v1/A%7e")).toBe("/v1/A~");
    expect(
      parseTarget("/payments-api/v1/caf%C3%A9").ok && parseTarget("/payments-api/v1/caf%C3%A9"),
    ).toMatchObject({
      forward: "/v1/caf%C3%A9",
    });
  });

  it("refuses targets that are not /<resource>/... in origin-form", () => {
    expect(parseTarget("http://evil.example/payments-api/v1")).toMatchObject({
      ok: false,
      refusal: "request_target",
    });
    expect(parseTarget("*")).toMatchObject({ ok: false, refusal: "request_target" });
    expect(parseTarget("payments-api/v1")).toMatchObject({ ok: false, refusal: "request_target" });
    expect(parseTarget("/payments-api/v1#frag")).toMatchObject({
      ok: false,
      refusal: "request_target",
    });
    for (const resource of [
      "/Payments-API/v1",
      "/%70ayments-api/v1",
      "//payments-api/v1",
      "/",
      "/payments_api/v1",
    ]) {
      expect(parseTarget(resource), resource).toMatchObject({
        ok: false,
        refusal: "unknown_resource",
      });
    }
  });

  // OWASP's path traversal cheat sheet, mixed case and double encodings, and the
  // forms servers are known to read differently (path parameters, backslashes,
  // overlong UTF-8).
  const TRICKS = [
    "/v1/../admin",
    "/v1/./admin",
    "/v1/..",
    "/..",
    "/v1/%2e%2e/admin",
    "/v1/%2E%2e/admin",
    "/v1/.%2e/admin",
    "/v1/%2e./admin",
    "/v1/%2e%2e%2fadmin",
    "/v1/..%2fadmin",
    "/v1/..%2Fadmin",
    "/v1%2fadmin",
    "/v1%2Fadmin",
    "/v1/..%5cadmin",
    "/v1/..%5Cadmin",
    "/v1/..\\admin",
    "/v1\\admin",
    "/v1/%252e%252e/admin",
    "/v1/%252fadmin",
    "/v1/..%255cadmin",
    "/v1/%25",
    "/v1/..%c0%afadmin",
    "/v1/..%C0%AFadmin",
    "/v1/..%c1%9cadmin",
    "/v1/%c0%ae%c0%ae/admin",
    "/v1/%e0%80%ae%e0%80%ae/admin",
    "/v1/%f0%80%80%ae/admin",
    "/v1/%ff",
    "/v1/%c3",
    "/v1/%ed%a0%80",
    "/v1/..%u2216admin",
    "/v1/%u002e%u002e/admin",
    "/v1/%zz",
    "/v1/%2",
    "/v1/..;/admin",
    "/v1/.;/admin",
    "/v1;jsessionid=1/admin",
    "/v1/charges;x=1",
    "/v1/%3b/admin",
    "/v1//admin",
    "//v1/admin",
    "/v1/admin//",
    "/v1/%00",
    "/v1/a%00.json",
    "/v1/%0d%0aX-Injected:%20yes",
    "/v1/%7f",
    "/v1/%3f",
    "/v1/%23",
    "/v1/ä",
    "/v1/a b",
    "/v1/<script>",
    '/v1/"',
  ];
  it.each(TRICKS)("refuses %s", (trick) => {
    expect(read(trick)).toMatch(/^path refused: /);
  });
});
