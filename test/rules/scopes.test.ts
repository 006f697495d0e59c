import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  compileScope,
  HTTP_METHODS,
  matchScope,
  pathSegments,
  patternWithin,
  type ScopePattern,
} from "#src/rules/scopes.js";

function compiled(text: string): ScopePattern {
  const result = compileScope(text);
  if (!result.ok) throw new Error(result.message);
  return result.pattern;
}

describe("compileScope", () => {
  it.each([
    ["GET /v1/**"],
    ["POST /v1/refunds"],
    ["GET /v1/charges/*"],
    ["* /**"],
    ["DELETE /"],
    ["OPTIONS /a/*/b/**/c"],
    ["GET /v1/users/me@example:1"],
  ])("accepts %j", (text) => {
    expect(compileScope(text).ok).toBe(true);
  });

  it.each([
    ["GET", /expected METHOD \/path/],
    ["GET  /v1", /expected METHOD \/path/],
    [" GET /v1", /expected METHOD \/path/],
    ["get /v1", /upper case, write GET/],
    ["TRACE /v1", /use one of GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS or \*/],
    ["GET v1/**", /must start with \//],
    ["GET /v1//x", /empty segment/],
    ["GET /v1/", /empty segment/],
    ["GET /v1/a*", /whole segments only/],
    ["GET /v1/***", /whole segments only/],
    ["GET /v1/../admin", /can never match/],
    ["GET /v1/./x", /can never match/],
    ["GET /v1/..;/x", /can never match/],
    ["GET /v1/a%2Fb", /can never match/],
    ["GET /v1/a?b=1", /can never match/],
    ["GET /v1/a\\b", /can never match/],
    [`GET /${"a/".repeat(64)}a`, /more than 64 segments/],
    [`GET /${"a".repeat(1100)}`, /longer than 1024/],
  ])("refuses %j", (text, message) => {
    const result = compileScope(text);
    expect(result.ok).toBe(false);
    if (!result.ok) expect(result.message).toMatch(message);
  });
});

describe("matchScope", () => {
  it.each([
    ["GET /v1/**", "GET", "/v1", true],
    ["GET /v1/**", "GET", "/v1/charges", true],
    ["GET /v1/**", "GET", "/v1/charges/ch_1/refunds", true],
    ["GET /v1/**", "GET", "/v2/charges", false],
    ["GET /v1/**", "GET", "/v10", false],
    ["GET /v1/**", "POST", "/v1/charges", false],
    ["GET /v1/**", "HEAD", "/v1/charges", false],
    ["GET /v1/**", "get", "/v1/charges", false],
    ["* /v1/**", "DELETE", "/v1/x", true],
    ["* /v1/**", "TRACE", "/v1/x", false],
    ["POST /v1/refunds", "POST", "/v1/refunds", true],
    ["POST /v1/refunds", "POST", "/v1/refunds/re_1", false],
    ["POST /v1/refunds", "POST", "/v1/Refunds", false],
    ["GET /v1/charges/*", "GET", "/v1/charges/ch_1", true],
    ["GET /v1/charges/*", "GET", "/v1/charges", false],
    ["GET /v1/charges/*", "GET", "/v1/charges/ch_1/refunds", false],
    ["GET /a/**/z", "GET", "/a/z", true],
    ["GET /a/**/z", "GET", "/a/b/c/z", true],
    ["GET /a/**/z", "GET", "/a/b/c", false],
    ["GET /**", "GET", "/", true],
    ["GET /", "GET", "/", true],
    ["GET /", "GET", "/a", false],
    ["GET /*/x", "GET", "/ünïcode/x", true],
  ])("%s matches %s %s: %s", (pattern, method, path, expected) => {
    expect(matchScope(compiled(pattern), method, path)).toBe(expected);
  });

  it.each([
    "/v1/../admin",
    "/v1/./charges",
    "/v1/..",
    "/v1//charges",
    "/v1/charges/",
    "/v1/%2e%2e/admin",
    "/v1/%2E%2E/admin",
    "/v1/a%2fb",
    "/v1/a%2Fb",
    "/v1/a%5Cb",
    "/v1/%252e%252e/admin",
    "/v1/a\\..\\admin",
    "/v1/..;/admin",
    "/v1/;/admin",
    "/v1/a?x=1",
    "/v1/a#x",
    "/v1/a\u0000b",
    "/v1/a\nb",
    "v1/charges",
    "",
  ])("refuses the path %j even under GET /**", (path) => {
    expect(pathSegments(path)).toBeNull();
    expect(matchScope(compiled("GET /**"), "GET", path)).toBe(false);
    expect(matchScope(compiled("GET /v1/**"), "GET", path)).toBe(false);
  });

  it("stays fast with many ** against a long path", () => {
    const pattern = compiled(`GET /${"**/".repeat(30)}zz`);
    const path = `/${"a/".repeat(5_000)}b`;
    const started = performance.now();
    expect(matchScope(pattern, "GET", path)).toBe(false);
    expect(performance.now() - started).toBeLessThan(1_000);
  });
});

describe("patternWithin", () => {
  it.each([
    ["GET /v1/charges/*", "GET /v1/**", true],
    ["GET /v1/**", "GET /v1/**", true],
    ["GET /v1", "GET /v1/**", true],
    ["GET /v1/**", "GET /v1/*", false],
    ["GET /v1/*", "GET /v1/**", true],
    ["GET /v1/**", "GET /**", true],
    ["GET /**", "GET /v1/**", false],
    ["GET /v1/x", "* /v1/x", true],
    ["* /v1/x", "GET /v1/x", false],
    ["* /v1/x", "* /v1/*", true],
    ["POST /v1/x", "GET /v1/**", false],
    ["GET /a/*/c", "GET /a/b/c", false],
    ["GET /a/b/c", "GET /a/*/c", true],
    ["GET /a/**/c", "GET /a/**", true],
    ["GET /a/**", "GET /a/**/c", false],
    ["GET /a/*/**", "GET /a/**", true],
    ["GET /a/**", "GET /a/*/**", false],
    ["GET /**/a/**", "GET /**", true],
    ["GET /*/*", "GET /**/*", true],
    ["GET /**/*", "GET /*/**", true],
    ["GET /*/**", "GET /**/*", true],
    ["GET /**/x/**", "GET /**/x/*/**", false],
    ["GET /x/**/x", "GET /**/x", true],
    ["GET /", "GET /**", true],
    ["GET /", "GET /*", false],
  ])("%s within %s: %s", (inner, outer, expected) => {
    expect(patternWithin(compiled(inner), compiled(outer))).toBe(expected);
  });

  // Brute force: every request over a small alphabet, up to a length that
  // exceeds what any counterexample between these short patterns needs.
  const ALPHABET = ["a", "b", "zz"];
  const paths: string[] = ["/"];
  for (let length = 1, layer = [""]; length <= 6; length++) {
    layer = layer.flatMap((prefix) => ALPHABET.map((s) => `${prefix}/${s}`));
    paths.push(...layer);
  }
  const methods = ["GET", "POST", "DELETE"];
  const segment = fc.constantFrom("a", "b", "*", "**");
  const pattern = fc
    .tuple(fc.constantFrom("GET", "POST", "*"), fc.array(segment, { maxLength: 4 }))
    .map(([method, segments]) => compiled(`${method} /${segments.join("/")}`));

  it("agrees with brute-force enumeration of requests", () => {
    fc.assert(
      fc.property(pattern, pattern, (inner, outer) => {
        const counterexample = methods.some((method) =>
          paths.some((path) => matchScope(inner, method, path) && !matchScope(outer, method, path)),
        );
        expect(patternWithin(inner, outer)).toBe(!counterexample);
      }),
      { numRuns: 400 },
    );
  });

  it("is reflexive and transitive", () => {
    fc.assert(
      fc.property(pattern, pattern, pattern, (a, b, c) => {
        expect(patternWithin(a, a)).toBe(true);
        if (patternWithin(a, b) && patternWithin(b, c)) expect(patternWithin(a, c)).toBe(true);
      }),
    );
  });

  it("lists all methods it knows", () => {
    expect(HTTP_METHODS).toEqual(["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]);
  });
});
