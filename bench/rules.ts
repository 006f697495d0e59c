/**
 * Rules figures: decisions per second on a realistic ticket (5 code owners,
 * two of them teams, a few approvals of which some do not count), policy
 * parses per second (the SPEC §2 example plus two more resources), request
 * parses per second (an issue-form body) and scope matches per second (the
 * proxy's check). Medians of 5 timed runs after a warm-up.
 *
 *   npx tsx bench/rules.ts
 */
import { pathToFileURL } from "node:url";
import { type BoundResource, bindPolicy } from "#src/rules/bind.js";
import type { Ownership } from "#src/rules/codeowners.js";
import { type DecisionInput, decide } from "#src/rules/decide.js";
import { parseOperatorYaml } from "#src/rules/operator.js";
import { parsePolicyYaml } from "#src/rules/policy.js";
import { parseRequest, requestHash } from "#src/rules/request.js";
import { compileScope, matchAnyScope, type ScopePattern } from "#src/rules/scopes.js";
import { median, printTable, type Row } from "./support.js";

const NOW = new Date("2026-11-23T18:00:00Z");

const POLICY = `label: hallpass
resources:
  payments-api:
    path: services/payments/
    scopes:
      read:   ["GET /v1/**"]
      refund: ["POST /v1/refunds", "GET /v1/charges/*"]
    default_ttl: 1h
    max_ttl: 4h
    approvals: 2
    token_ttl: 15m
    request_ttl: 24h
    auto_approve:
      - scopes: [read]
        max_ttl: 30m
        requesters: ["@acme/sre"]
        quota: 5/7d
    break_glass:
      requesters: ["@acme/oncall"]
      max_ttl: 30m
      review_within: 24h
    rate_limit: 20/s
    actions:
      environments: [production]
      allow_forks: false
  ledger-api:
    path: services/ledger/
    scopes:
      read: ["GET /ledger/**"]
      write: ["POST /ledger/entries", "PATCH /ledger/entries/*"]
    max_ttl: 1h
  search-api:
    path: services/search/
    scopes:
      query: ["GET /search/**", "POST /search/query"]
    max_ttl: 2h
    default_ttl: 30m
`;

const OPERATOR = `resources:
  payments-api:
    repository: { id: 1001, owner_id: 2002, name: acme/payments }
    max_ttl: 8h
    scopes: ["GET /v1/**", "POST /v1/refunds"]
  ledger-api:
    repository: { id: 1001, owner_id: 2002, name: acme/payments }
    max_ttl: 1h
    scopes: ["* /ledger/**"]
  search-api:
    repository: { id: 1001, owner_id: 2002, name: acme/payments }
    max_ttl: 2h
    scopes: ["* /search/**"]
`;

const BODY = `### Resource

payments-api

### Scopes

read, refund

### Duration

2h

### Reason

Refunds for INC-4711 failed overnight; I need to look at the charges and re-issue three refunds.

### Start

_No response_`;

/** Operations per second of `fn` over about `ms` milliseconds. */
function rate(fn: () => unknown, ms: number): number {
  let done = 0;
  const start = performance.now();
  while (performance.now() - start < ms) {
    for (let i = 0; i < 100; i++) fn();
    done += 100;
  }
  return (done / (performance.now() - start)) * 1000;
}

function measure(fn: () => unknown): number {
  rate(fn, 200); // warm-up
  return median(Array.from({ length: 5 }, () => rate(fn, 400)));
}

function fixtures(): { input: DecisionInput; resources: ReadonlyMap<string, BoundResource> } {
  const policy = parsePolicyYaml(POLICY);
  const operator = parseOperatorYaml(OPERATOR, "config.yml");
  if (!policy.ok || !operator.ok) throw new Error("bench fixtures do not parse");
  const { resources } = bindPolicy(policy.policy, operator.config, { id: 1001, ownerId: 2002 });
  const resource = resources.get("payments-api");
  const parsed = parseRequest(BODY, resources, NOW);
  if (resource === undefined || !parsed.ok) throw new Error("bench fixtures do not bind");
  const hash = requestHash(parsed.request, resource);
  const ownership: Ownership = {
    status: "owned",
    line: 42,
    owners: [
      { kind: "team", text: "@acme/payments", org: "acme", slug: "payments" },
      { kind: "team", text: "@acme/payments-leads", org: "acme", slug: "payments-leads" },
      { kind: "user", text: "@alice", login: "alice" },
      { kind: "user", text: "@bob", login: "bob" },
      { kind: "email", text: "payments@acme.example", email: "payments@acme.example" },
    ],
  };
  const at = (minutesAgo: number) => new Date(NOW.getTime() - minutesAgo * 60_000);
  const approval = (id: number, login: string, minutesAgo: number, stale = false) => ({
    approverId: id,
    login,
    isBot: false,
    requestHash: stale ? "0".repeat(64) : hash,
    at: at(minutesAgo),
    hasWriteAccess: true,
  });
  const input: DecisionInput = {
    resource,
    request: parsed.request,
    requestHash: hash,
    ownership,
    requester: { id: 100, login: "requester", isBot: false },
    ticketKind: "pull_request",
    commitPeople: [
      { role: "author", id: 100, login: "requester", commit: "a".repeat(40) },
      { role: "author", id: 7, login: "mallory", commit: "b".repeat(40) },
      { role: "committer", id: 7, login: "mallory", commit: "b".repeat(40) },
    ],
    unidentified: [],
    approvals: [
      approval(3, "carol", 30, true),
      approval(7, "mallory", 20),
      approval(3, "carol", 10),
      approval(1, "alice", 5),
    ],
    teams: new Map([
      ["acme/payments", new Set(["carol", "dave", "erin", "frank", "grace", "heidi"])],
      ["acme/payments-leads", new Set(["ivan", "judy"])],
      ["acme/sre", new Set(["erin", "oscar"])],
    ]),
    autoApprovalUses: [{ rule: 0, at: at(60 * 24) }],
    breakGlass: null,
    now: NOW,
  };
  return { input, resources };
}

export async function benchRules(): Promise<Row[]> {
  const { input, resources } = fixtures();
  if (decide(input).kind !== "grant") throw new Error("bench decision is not a grant");
  const patterns: ScopePattern[] = [];
  for (const text of ["GET /v1/**", "POST /v1/refunds", "GET /v1/charges/*", "GET /a/**/b/*/c"]) {
    const compiled = compileScope(text);
    if (compiled.ok) patterns.push(compiled.pattern);
  }
  const paths = ["/v1/charges/ch_1/refunds", "/v2/x", "/v1/refunds", "/a/x/y/b/z/c", "/v1/../x"];
  let p = 0;

  return [
    {
      name: "decide, 5 owners, 4 approvals",
      value: measure(() => decide(input)),
      unit: "decisions/s",
      note: "grant; 2 teams resolved, 1 stale and 1 non-owner approval, median of 5",
    },
    {
      name: "policy parse, 3 resources",
      value: measure(() => parsePolicyYaml(POLICY)),
      unit: "parses/s",
      note: `${POLICY.length} characters, YAML + validation, median of 5`,
    },
    {
      name: "request parse, issue form",
      value: measure(() => parseRequest(BODY, resources, NOW)),
      unit: "parses/s",
      note: "median of 5",
    },
    {
      name: "scope match, 4 patterns",
      value: measure(() => matchAnyScope(patterns, "GET", paths[p++ % paths.length] ?? "/")),
      unit: "checks/s",
      note: "method + path against a grant's patterns, median of 5",
    },
  ];
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  printTable("rules engine", await benchRules());
}
