/**
 * Repository policy files through their parser, the `_extends` chain and the
 * binding to the operator's ceilings: whatever a repository writes, parsing
 * answers with located errors or a policy that keeps its own rules, and a
 * bound resource never allows a request the operator's ceiling does not.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { stringify } from "yaml";
import { bindPolicy } from "#src/rules/bind.js";
import { MAX_DURATION_SECONDS } from "#src/rules/duration.js";
import { parseOperatorYaml } from "#src/rules/operator.js";
import {
  type PolicyResult,
  parsePolicyYaml,
  RESOURCE_NAME,
  SCOPE_NAME,
} from "#src/rules/policy.js";
import {
  loadPolicy,
  POLICY_MAX_FILES,
  type PolicyRead,
  type PolicyTarget,
} from "#src/rules/policy-load.js";
import { HTTP_METHODS, matchAnyScope, matchScope } from "#src/rules/scopes.js";
import { BOUND_POLICY, SPEC_POLICY } from "../rules/fixtures/policies.js";
import { anyJson, anyText, mutated, reshuffled, runs } from "../support/fuzz.js";

/** Ceilings with wildcards in several places, so that bound policies vary. */
const OPERATOR = `resources:
  payments-api:
    repository: { id: 1001, owner_id: 2002, name: acme/payments }
    max_ttl: 8h
    scopes: ["GET /v1/**", "* /v1/refunds/**", "POST /v1/charges/*"]
  ledger-api:
    repository: { id: 1001, owner_id: 2002, name: acme/payments }
    max_ttl: 1h
    scopes: ["GET /ledger/**", "GET /v1/charges/*/ledger"]
  other-api:
    repository: { id: 3003, owner_id: 2002, name: acme/other }
    max_ttl: 1h
    scopes: ["* /**"]
`;

const operator = (() => {
  const parsed = parseOperatorYaml(OPERATOR, "config.yml");
  if (!parsed.ok) throw new Error(JSON.stringify(parsed.errors));
  return parsed.config;
})();
const REPO = { id: 1001, ownerId: 2002, fullName: "acme/payments" };

const SEGMENTS = ["v1", "refunds", "charges", "ledger", "admin", "x", "*", "**", "", "..", "a*"];
const METHOD = fc.constantFrom(...HTTP_METHODS, "*", "get", "FETCH", "");
const pattern = fc.oneof(
  fc.constantFrom(
    "GET /v1/**",
    "POST /v1/refunds",
    "POST /v1/refunds/*",
    "GET /v1/charges/*",
    "GET /ledger/**",
    "* /**",
    "GET /",
    "GET /v1/**/admin",
    "PUT /v1/refunds/*",
  ),
  fc
    .tuple(METHOD, fc.array(fc.constantFrom(...SEGMENTS), { maxLength: 5 }))
    .map(([m, segs]) => `${m} /${segs.join("/")}`),
  anyText(30),
);

const duration = fc.oneof(
  fc.constantFrom("15m", "30m", "1h", "4h", "8h", "9h", "1d", "0s", "366d", "1h30m", "90", "1.5h"),
  fc.constantFrom(90, null, true, [], {}),
  anyText(12),
);

/** A value of the right shape most of the time, anything now and then. */
const or = <T>(arbitrary: fc.Arbitrary<T>) =>
  fc.oneof({ weight: 4, arbitrary }, { weight: 1, arbitrary: anyJson });

const principal = fc.constantFrom("@acme/sre", "@alice", "alice", "@", "@acme/", "@a/b/c");
const scopeName = fc.constantFrom("read", "refund", "write", "Read", "1x", "__proto__", "a-b_c");

const resourcePolicy = fc.record(
  {
    path: or(
      fc.constantFrom("services/payments/", "/", "", "../x", "a/*", "#x", "services/ledger"),
    ),
    scopes: or(fc.dictionary(scopeName, or(fc.array(pattern, { maxLength: 3 })), { maxKeys: 3 })),
    default_ttl: duration,
    max_ttl: duration,
    approvals: or(fc.constantFrom(1, 2, 0, 101, 1.5, -1)),
    token_ttl: duration,
    request_ttl: duration,
    auto_approve: or(
      fc.array(
        fc.record(
          {
            scopes: or(fc.array(scopeName, { maxLength: 3 })),
            max_ttl: duration,
            requesters: or(fc.array(principal, { maxLength: 2 })),
            quota: or(fc.constantFrom("5/7d", "0/1d", "1/", "x/1d", "999999/1s")),
          },
          { requiredKeys: [] },
        ),
        { maxLength: 2 },
      ),
    ),
    break_glass: or(
      fc.record(
        { requesters: or(fc.array(principal, { maxLength: 2 })), max_ttl: duration },
        { requiredKeys: [] },
      ),
    ),
    rate_limit: or(fc.constantFrom("20/s", "600/m", "0/s", "1/h", "20 / s")),
    actions: or(
      fc.record(
        {
          environments: or(
            fc.array(fc.constantFrom("prod", "", "x".repeat(300)), { maxLength: 2 }),
          ),
          allow_forks: or(fc.boolean()),
          runner_environment: or(fc.constantFrom("github-hosted", "self-hosted", "other")),
        },
        { requiredKeys: [] },
      ),
    ),
    people: or(fc.boolean()),
  },
  { requiredKeys: [] },
);

const policyObject = fc.record(
  {
    label: or(fc.constantFrom("hallpass", "", " ", "x".repeat(60))),
    resources: or(
      fc.dictionary(
        fc.constantFrom(
          "payments-api",
          "ledger-api",
          "other-api",
          "unbound-api",
          "Payments",
          "__proto__",
        ),
        or(resourcePolicy),
        { maxKeys: 3 },
      ),
    ),
    extra: fc.constantFrom(undefined, 1),
  },
  { requiredKeys: [] },
);

/** Patterns that compile; some wider than the ceilings. */
const sanePattern = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.constantFrom(
      "GET /v1/**",
      "GET /v1/charges/*",
      "* /v1/refunds/*",
      "PUT /v1/refunds/**",
      "POST /v1/charges/*",
      "GET /ledger/*",
      "GET /v1/charges/*/ledger",
      "POST /v1/refunds",
      "* /**",
    ),
  },
  {
    weight: 1,
    arbitrary: fc
      .tuple(
        fc.constantFrom("GET", "GET", "POST", "PUT", "*"),
        fc.constantFrom("v1", "ledger", "*", "**"),
        fc.array(fc.constantFrom("refunds", "charges", "ledger", "x", "*", "**"), { maxLength: 3 }),
      )
      .map(([m, first, rest]) => `${m} /${[first, ...rest].join("/")}`),
  },
);

/** Policies that mostly parse: names, scopes and TTLs of the right kinds, some too wide. */
const plausiblePolicy = fc.record({
  resources: fc.dictionary(
    fc.constantFrom("payments-api", "payments-api", "ledger-api", "other-api", "unbound-api"),
    fc.record(
      {
        path: fc.constantFrom("services/payments/", "/", "services/ledger"),
        scopes: fc.dictionary(
          fc.constantFrom("read", "refund", "admin"),
          fc.array(sanePattern, { minLength: 1, maxLength: 2 }),
          { minKeys: 1, maxKeys: 2 },
        ),
        default_ttl: fc.constantFrom("30m", "1h"),
        max_ttl: fc.constantFrom("1h", "1h", "4h", "8h", "9h"),
        rate_limit: fc.constantFrom("20/s", "600/m"),
      },
      { requiredKeys: ["path", "scopes"] },
    ),
    { minKeys: 1, maxKeys: 2 },
  ),
});

const policyText = fc.oneof(
  policyObject.map((p) => stringify(p)),
  plausiblePolicy.map((p) => stringify(p)),
  fc.oneof(anyJson, fc.constant({})).map((v) => stringify(v)),
  anyText(500),
  mutated(SPEC_POLICY, 5),
  mutated(BOUND_POLICY, 5),
  reshuffled(SPEC_POLICY),
);

function expectLocatedErrors(result: PolicyResult, text: string | null): void {
  if (result.ok) return;
  expect(result.errors.length).toBeGreaterThan(0);
  const lines = text === null ? 0 : text.split(/\r\n|\r|\n/).length;
  for (const e of result.errors) {
    expect(typeof e.file).toBe("string");
    expect(typeof e.path).toBe("string");
    expect(e.message.length).toBeGreaterThan(0);
    expect(e.message.length).toBeLessThan(2_000);
    if (e.line !== null) {
      expect(Number.isInteger(e.line)).toBe(true);
      expect(e.line).toBeGreaterThanOrEqual(1);
      if (text !== null) expect(e.line).toBeLessThanOrEqual(lines + 1);
    }
  }
}

/** What every policy that parses must keep, whatever file it came from. */
function expectSound(result: PolicyResult): void {
  if (!result.ok) return;
  expect(result.policy.resources.size).toBeGreaterThan(0);
  for (const [name, r] of result.policy.resources) {
    expect(name).toMatch(RESOURCE_NAME);
    expect(r.scopes.size).toBeGreaterThan(0);
    for (const [scope, patterns] of r.scopes) {
      expect(scope).toMatch(SCOPE_NAME);
      expect(patterns.length).toBeGreaterThan(0);
    }
    for (const ttl of [r.defaultTtl, r.maxTtl, r.tokenTtl, r.requestTtl]) {
      expect(Number.isSafeInteger(ttl)).toBe(true);
      expect(ttl).toBeGreaterThan(0);
      expect(ttl).toBeLessThanOrEqual(MAX_DURATION_SECONDS);
    }
    expect(r.defaultTtl).toBeLessThanOrEqual(r.maxTtl);
    expect(r.tokenTtl).toBeLessThanOrEqual(r.maxTtl);
    expect(r.approvals).toBeGreaterThanOrEqual(1);
    for (const rule of r.autoApprove) {
      expect(rule.maxTtl).toBeLessThanOrEqual(r.maxTtl);
      for (const scope of rule.scopes) expect(r.scopes.has(scope)).toBe(true);
      expect(rule.requesters.length).toBeGreaterThan(0);
    }
    if (r.breakGlass) expect(r.breakGlass.maxTtl).toBeLessThanOrEqual(r.maxTtl);
  }
}

const requestPath = fc
  .array(fc.constantFrom("v1", "refunds", "charges", "ledger", "admin", "x", "ch_1"), {
    maxLength: 5,
  })
  .map((segs) => `/${segs.join("/")}`);

describe("policy files through their parser and the binding", () => {
  it("answers every file with located errors or a policy that keeps its own rules", () => {
    fc.assert(
      fc.property(policyText, (text) => {
        const result = parsePolicyYaml(text);
        expectLocatedErrors(result, text);
        expectSound(result);
      }),
      { numRuns: runs(300) },
    );
  });

  it("binds no resource that would allow a request outside the operator's ceiling", () => {
    fc.assert(
      fc.property(
        fc.oneof({ weight: 3, arbitrary: plausiblePolicy }, { weight: 1, arbitrary: policyObject }),
        fc.array(fc.tuple(fc.constantFrom(...HTTP_METHODS), requestPath), { maxLength: 20 }),
        (object, requests) => {
          const result = parsePolicyYaml(stringify(object));
          if (!result.ok) return;
          const { resources } = bindPolicy(result.policy, operator, REPO);
          for (const [name, bound] of resources) {
            const ceiling = operator.resources.get(name);
            expect(ceiling?.repository).toMatchObject({ id: REPO.id, ownerId: REPO.ownerId });
            expect(bound.maxTtl).toBeLessThanOrEqual(ceiling?.maxTtl ?? 0);
            for (const patterns of bound.policy.scopes.values()) {
              for (const p of patterns) {
                for (const [method, path] of requests) {
                  if (matchScope(p, method, path)) {
                    expect(matchAnyScope(ceiling?.scopes ?? [], method, path)).toBe(true);
                  }
                }
              }
            }
          }
        },
      ),
      { numRuns: runs(300) },
    );
  });

  it("follows any chain of _extends to an answer, reading a bounded number of files", async () => {
    const extendsValue = fc.oneof(
      fc.constantFrom(".github", "acme/base", "base:policies/x.yml", "../x", "a:b/../c.yml", "/x"),
      fc.constantFrom(1, null, [], {}),
      anyText(30),
    );
    const file = fc.oneof(
      fc.tuple(policyText, extendsValue).map(([text, ext]) => {
        // Prepend `_extends` when the text is a mapping; otherwise keep it as it is.
        return `_extends: ${JSON.stringify(ext)}\n${text}`;
      }),
      policyText,
      fc.constantFrom<PolicyRead>(null, "offline", { tooLarge: true, bytes: 9_999_999 }),
    );
    await fc.assert(
      fc.asyncProperty(
        fc.array(file, { minLength: 1, maxLength: 8 }),
        fc.boolean(),
        async (files, orgFallback) => {
          const reads: PolicyTarget[] = [];
          const loaded = await loadPolicy({
            orgFallback,
            read: async (target) => {
              reads.push(target);
              return files[(reads.length - 1) % files.length] ?? null;
            },
          });
          expect(reads.length).toBeLessThanOrEqual(POLICY_MAX_FILES + 1);
          if (loaded.result !== null) {
            expectLocatedErrors(loaded.result, null);
            expectSound(loaded.result);
          }
        },
      ),
      { numRuns: runs(200) },
    );
  });
});
