import fc from "fast-check";
import { describe, expect, it } from "vitest";
import type { BoundResource } from "#src/rules/bind.js";
import type { Owner, Ownership } from "#src/rules/codeowners.js";
import { type Approval, type Decision, type DecisionInput, decide } from "#src/rules/decide.js";
import { type AccessRequest, requestHash } from "#src/rules/request.js";
import { bound } from "./fixtures/bound.js";
import { BOUND_POLICY } from "./fixtures/policies.js";

const NOW = new Date("2026-11-23T18:00:00Z");
const MINUTE = 60_000;
const payments = bound().get("payments-api")!;
const twoApprovals = bound(BOUND_POLICY.replace("approvals: 1 ", "approvals: 2 ")).get(
  "payments-api",
)!;

const OWNERS: readonly Owner[] = [
  { kind: "team", text: "@acme/payments-owners", org: "acme", slug: "payments-owners" },
  { kind: "user", text: "@Alice", login: "alice" },
  { kind: "user", text: "@bob", login: "bob" },
  { kind: "email", text: "ops@acme.example", email: "ops@acme.example" },
  { kind: "team", text: "@acme/unresolved", org: "acme", slug: "unresolved" },
];
const OWNED: Ownership = { status: "owned", owners: OWNERS, line: 12 };
const TEAMS = new Map([
  ["acme/payments-owners", new Set(["carol", "Dave"])],
  ["ACME/SRE", new Set(["erin"])],
  ["acme/oncall", new Set(["frank"])],
]);

const PEOPLE = {
  alice: { id: 1, login: "alice" },
  bob: { id: 2, login: "bob" },
  carol: { id: 3, login: "carol" },
  dave: { id: 4, login: "dave" },
  erin: { id: 5, login: "erin" },
  frank: { id: 6, login: "frank" },
  mallory: { id: 7, login: "mallory" },
  requester: { id: 100, login: "requester" },
} as const;

const REQUEST: AccessRequest = {
  resource: "payments-api",
  scopes: ["read", "refund"],
  durationSeconds: 2 * 3_600,
  reason: "Refunds for INC-4711 failed overnight.",
  start: null,
  source: "issue-form",
};
const HASH = requestHash(REQUEST, payments);

function approval(who: keyof typeof PEOPLE, extra: Partial<Approval> = {}): Approval {
  return {
    approverId: PEOPLE[who].id,
    login: PEOPLE[who].login,
    isBot: false,
    requestHash: HASH,
    at: new Date(NOW.getTime() - 5 * MINUTE),
    hasWriteAccess: true,
    ...extra,
  };
}

function input(extra: Partial<DecisionInput> = {}): DecisionInput {
  const request = extra.request ?? REQUEST;
  return {
    resource: payments,
    request,
    requestHash: requestHash(request, extra.resource ?? payments),
    ownership: OWNED,
    requester: { ...PEOPLE.requester, isBot: false },
    ticketKind: "pull_request",
    commitPeople: [],
    unidentified: [],
    approvals: [],
    teams: TEAMS,
    autoApprovalUses: [],
    breakGlass: null,
    now: NOW,
    ...extra,
  };
}

function expectKind<K extends Decision["kind"]>(
  decision: Decision,
  kind: K,
): Extract<Decision, { kind: K }> {
  expect(decision.kind, decision.trace.join("\n")).toBe(kind);
  return decision as Extract<Decision, { kind: K }>;
}

describe("decide: human approvals", () => {
  it("grants on one code owner's approval, from the decision time", () => {
    const decision = expectKind(decide(input({ approvals: [approval("alice")] })), "grant");
    expect(decision).toMatchObject({
      approvers: [{ id: 1, login: "alice" }],
      scopes: ["read", "refund"],
      permissions: ["GET /v1/**", "POST /v1/refunds", "GET /v1/charges/*"],
      window: { start: NOW, end: new Date(NOW.getTime() + 2 * 3_600_000), seconds: 7_200 },
    });
    expect(decision.trace).toContain("@alice approved: counts (code owner through @Alice)");
  });

  it("starts a scheduled window at its start", () => {
    const start = new Date(NOW.getTime() + 60 * MINUTE);
    const request = { ...REQUEST, start };
    const decision = expectKind(
      decide(
        input({
          request,
          approvals: [approval("alice", { requestHash: requestHash(request, payments) })],
        }),
      ),
      "grant",
    );
    expect(decision.window).toEqual({
      start,
      end: new Date(start.getTime() + 7_200_000),
      seconds: 7_200,
    });
  });

  it("starts a window whose scheduled start has passed at the decision, not at the request", () => {
    const request = { ...REQUEST, start: new Date(NOW.getTime() - 60 * MINUTE) };
    const decision = expectKind(
      decide(
        input({
          request,
          approvals: [approval("alice", { requestHash: requestHash(request, payments) })],
        }),
      ),
      "grant",
    );
    expect(decision.window.start).toEqual(NOW);
    expect(decision.window.seconds).toBe(7_200);
  });

  it("asks for approval from the owners as written, and says e-mail owners cannot count", () => {
    const decision = expectKind(decide(input()), "needs_approval");
    expect(decision).toMatchObject({
      needed: 1,
      from: ["@acme/payments-owners", "@Alice", "@bob", "@acme/unresolved"],
      counted: [],
    });
    expect(decision.trace).toEqual([
      "needs 1 approval from code owners of services/payments/ (CODEOWNERS line 12: @acme/payments-owners @Alice @bob ops@acme.example @acme/unresolved), never the requester, a bot or a commit's author, committer or co-author",
      "e-mail owners (ops@acme.example) cannot be verified on GitHub and never count",
      "auto_approve rule 1 does not apply: scope refund is not in read",
      "waiting for 1 more approval from @acme/payments-owners, @Alice, @bob, @acme/unresolved",
    ]);
  });

  it.each([
    ["the requester", approval("requester"), /the requester never approves their own request/],
    [
      "the requester under another login case",
      approval("requester", { login: "REQUESTER", approverId: 999 }),
      /the requester never approves/,
    ],
    ["a bot", approval("alice", { isBot: true }), /bots never count/],
    [
      "a [bot] login",
      approval("alice", { login: "alice[bot]", approverId: 55 }),
      /bots never count/,
    ],
    [
      "a stale request hash",
      approval("alice", { requestHash: "0".repeat(64) }),
      /given to an earlier version of the request/,
    ],
    ["no write access", approval("alice", { hasWriteAccess: false }), /no write access/],
    [
      "a non-owner",
      approval("mallory"),
      /not a code owner of the path \(members of @acme\/unresolved were not resolved\)/,
    ],
    [
      "an approval dated after the decision",
      approval("alice", { at: new Date(NOW.getTime() + MINUTE) }),
      /dated after the decision/,
    ],
  ])("does not count %s", (_, given, why) => {
    const decision = expectKind(decide(input({ approvals: [given] })), "needs_approval");
    expect(decision.counted).toEqual([]);
    expect(decision.trace.join("\n")).toMatch(why);
  });

  it("does not count the PR's commit authors, committers or co-authors, matched by id or login", () => {
    for (const [person, why] of [
      [{ role: "author", id: 1, login: "someone-renamed" }, /they authored commits/],
      [{ role: "author", id: null, login: "ALICE" }, /they authored commits/],
      [{ role: "committer", id: 1, login: "alice" }, /they committed on this pull request/],
      [{ role: "co-author", id: null, login: "alice" }, /they co-authored commits/],
    ] as const) {
      const decision = expectKind(
        decide(
          input({
            commitPeople: [{ ...person, commit: "a".repeat(40) }],
            approvals: [approval("alice")],
          }),
        ),
        "needs_approval",
      );
      expect(decision.trace.join("\n")).toMatch(
        new RegExp(`@alice approved: does not count, ${why.source}`),
      );
    }
  });

  it("counts no approval while someone behind the PR's commits cannot be identified", () => {
    const why = "the author of abc1234 (carol@corp.example) is no GitHub account";
    const decision = expectKind(
      decide(input({ unidentified: [why], approvals: [approval("alice"), approval("bob")] })),
      "needs_approval",
    );
    expect(decision.counted).toEqual([]);
    expect(decision.trace).toContain(`no approval can count: ${why}`);
  });

  it("counts a team owner through its members only", () => {
    const decision = expectKind(decide(input({ approvals: [approval("dave")] })), "grant");
    expect(decision.trace).toContain(
      "@dave approved: counts (code owner through @acme/payments-owners)",
    );
    const outsider = expectKind(decide(input({ approvals: [approval("erin")] })), "needs_approval");
    expect(outsider.counted).toEqual([]);
  });

  it("matches user owners case-insensitively", () => {
    expectKind(decide(input({ approvals: [approval("alice", { login: "ALICE" })] })), "grant");
  });

  it("counts the same person once", () => {
    const decision = expectKind(
      decide(
        input({
          resource: twoApprovals,
          approvals: [
            approval("alice"),
            approval("alice", { at: new Date(NOW.getTime() - MINUTE) }),
          ],
        }),
      ),
      "needs_approval",
    );
    expect(decision.needed).toBe(1);
    expect(decision.trace).toContain("@alice approved again: counted once");
  });

  it("needs distinct persons when the policy asks for two", () => {
    const decision = expectKind(
      decide(input({ resource: twoApprovals, approvals: [approval("bob"), approval("carol")] })),
      "grant",
    );
    expect(decision.approvers.map((a) => a.login)).toEqual(["bob", "carol"]);
  });

  it("caps the window at the policy's max_ttl", () => {
    const request = { ...REQUEST, durationSeconds: 6 * 3_600 };
    const decision = expectKind(
      decide(
        input({
          request,
          approvals: [approval("alice", { requestHash: requestHash(request, payments) })],
        }),
      ),
      "grant",
    );
    expect(decision.window.seconds).toBe(4 * 3_600);
    expect(decision.trace).toContain("duration 6h is capped at the maximum 4h");
  });
});

describe("decide: denials", () => {
  it.each([
    [
      "a path CODEOWNERS blocks",
      { status: "blocked", reason: "line 7 could not be parsed", lines: [7] } as Ownership,
      "CODEOWNERS blocks approvals for services/payments/: line 7 could not be parsed (line 7)",
    ],
    [
      "an unowned path",
      { status: "unowned", line: null } as Ownership,
      "services/payments/ has no code owners in CODEOWNERS, so nobody can approve",
    ],
    [
      "a path whose rule names nobody",
      { status: "unowned", line: 3 } as Ownership,
      "services/payments/ has no code owners in CODEOWNERS (line 3 names none), so nobody can approve",
    ],
  ])("denies %s, whatever the approvals", (_, ownership, why) => {
    const decision = expectKind(
      decide(input({ ownership, approvals: [approval("alice")] })),
      "denied",
    );
    expect(decision.why).toBe(why);
  });

  it("denies when only e-mail addresses own the path", () => {
    const ownership: Ownership = { status: "owned", owners: [OWNERS[3]!], line: 4 };
    const decision = expectKind(decide(input({ ownership })), "denied");
    expect(decision.why).toBe(
      "no code owner of services/payments/ can approve: it is owned by e-mail addresses only",
    );
  });

  it("denies a request for another resource or an unknown scope", () => {
    const other = { ...REQUEST, resource: "ledger-api" };
    expect(expectKind(decide(input({ request: other })), "denied").why).toBe(
      "the request is for ledger-api, not payments-api",
    );
    const scope = { ...REQUEST, scopes: ["admin"] };
    expect(expectKind(decide(input({ request: scope })), "denied").why).toBe(
      "scope admin is not defined for payments-api",
    );
  });

  it("denies a permission outside the operator's ceiling, even if binding was skipped", () => {
    const widened: BoundResource = {
      ...payments,
      operator: { ...payments.operator, scopes: payments.operator.scopes.slice(1) },
    };
    expect(
      expectKind(decide(input({ resource: widened, approvals: [approval("alice")] })), "denied")
        .why,
    ).toBe("GET /v1/** is outside the operator's ceiling for payments-api");
  });
});

describe("decide: auto-approval", () => {
  const read = { ...REQUEST, scopes: ["read"], durationSeconds: 30 * 60 };
  const erin = { ...PEOPLE.erin, isBot: false };
  const uses = (n: number, ageMinutes: number) =>
    Array.from({ length: n }, () => ({
      rule: 0,
      at: new Date(NOW.getTime() - ageMinutes * MINUTE),
    }));

  it("approves a request inside a rule, counting the quota", () => {
    const decision = expectKind(
      decide(input({ request: read, requester: erin, autoApprovalUses: uses(4, 60) })),
      "auto_approved",
    );
    expect(decision).toMatchObject({
      rule: 0,
      quota: { used: 4, limit: 5, windowSeconds: 7 * 86_400 },
      permissions: ["GET /v1/**"],
      window: { start: NOW, seconds: 1_800 },
    });
    expect(decision.trace).toContain(
      "auto_approve rule 1 approves this request (use 5 of 5 in 7d)",
    );
  });

  it("hands over to a human past the quota, ignoring uses outside the window", () => {
    const decision = expectKind(
      decide(input({ request: read, requester: erin, autoApprovalUses: uses(5, 60) })),
      "needs_approval",
    );
    expect(decision.trace).toContain(
      "auto_approve rule 1 quota is used up (5 of 5 in 7d); a code owner approves instead",
    );
    const old = [...uses(5, 8 * 24 * 60), ...uses(5, 0).map((u) => ({ ...u, rule: 1 }))];
    expectKind(
      decide(input({ request: read, requester: erin, autoApprovalUses: old })),
      "auto_approved",
    );
  });

  it.each([
    [
      "a longer duration",
      { request: { ...read, durationSeconds: 31 * 60 } },
      /duration 31m is over its max 30m/,
    ],
    [
      "a scope outside the rule",
      { request: { ...read, scopes: ["read", "refund"] } },
      /scope refund is not in read/,
    ],
    [
      "a requester outside the rule",
      { requester: { ...PEOPLE.mallory, isBot: false } },
      /@mallory is not one of @acme\/sre/,
    ],
    ["a bot", { requester: { ...erin, isBot: true } }, /never for bots/],
    [
      "a PR with a commit by someone outside the rule",
      {
        commitPeople: [
          { role: "author" as const, id: 5, login: "erin", commit: "e".repeat(40) },
          { role: "author" as const, id: 7, login: "mallory", commit: "f".repeat(40) },
        ],
      },
      /the pull request has commits by people outside @acme\/sre: @mallory \(author of fffffff\)/,
    ],
    [
      "a PR committed by someone outside the rule",
      {
        commitPeople: [
          { role: "author" as const, id: 5, login: "erin", commit: "e".repeat(40) },
          { role: "committer" as const, id: 7, login: "mallory", commit: "e".repeat(40) },
        ],
      },
      /@mallory \(committer of eeeeeee\)/,
    ],
    [
      "a PR with a commit nobody can identify",
      { unidentified: ["the author of 1234567 (x@corp.example) is no GitHub account"] },
      /does not apply: the author of 1234567/,
    ],
  ])("does not auto-approve %s", (_, change, why) => {
    const decision = expectKind(
      decide(input({ request: read, requester: erin, ...change })),
      "needs_approval",
    );
    expect(decision.trace.join("\n")).toMatch(why);
  });
});

describe("decide: break-glass", () => {
  const frank = { ...PEOPLE.frank, isBot: false };

  it("grants a short window from now, to be reviewed", () => {
    const request = { ...REQUEST, start: new Date(NOW.getTime() + 60 * MINUTE) };
    const decision = expectKind(
      decide(input({ request, requester: frank, breakGlass: { reason: " payments down, SEV1 " } })),
      "break_glass",
    );
    expect(decision).toMatchObject({
      allowed: true,
      reason: "payments down, SEV1",
      window: { start: NOW, end: new Date(NOW.getTime() + 30 * MINUTE), seconds: 1_800 },
      reviewBy: new Date(NOW.getTime() + 24 * 3_600_000),
    });
  });

  it.each([
    [
      "a requester outside break_glass.requesters",
      { requester: { ...PEOPLE.mallory, isBot: false } },
      "@mallory is not in break_glass.requesters (@acme/oncall)",
    ],
    ["a bot", { requester: { ...frank, isBot: true } }, "bots cannot break glass"],
    [
      "an empty reason",
      { breakGlass: { reason: "  " } },
      "a reason is required: /break-glass <reason>",
    ],
    [
      "a resource without a rule",
      {
        resource: bound().get("ledger-api")!,
        request: { ...REQUEST, resource: "ledger-api", scopes: ["read"], durationSeconds: 600 },
      },
      "ledger-api has no break_glass rule",
    ],
  ])("refuses %s", (_, change, why) => {
    const decision = expectKind(
      decide(input({ requester: frank, breakGlass: { reason: "SEV1" }, ...change })),
      "break_glass",
    );
    expect(decision).toMatchObject({ allowed: false, why });
  });

  it("refuses on a PR whose commits are not all by break_glass.requesters", () => {
    const commitPeople = [
      { role: "author" as const, id: 6, login: "frank", commit: "a".repeat(40) },
      { role: "author" as const, id: 7, login: "mallory", commit: "b".repeat(40) },
    ];
    const decision = expectKind(
      decide(input({ requester: frank, breakGlass: { reason: "SEV1" }, commitPeople })),
      "break_glass",
    );
    expect(decision).toMatchObject({ allowed: false });
    expect(decision.trace.at(-1)).toMatch(/outside @acme\/oncall: @mallory \(author of bbbbbbb\)/);
    // The same people on an issue: there is no code to speak of.
    expectKind(
      decide(
        input({
          requester: frank,
          breakGlass: { reason: "SEV1" },
          ticketKind: "issue",
          commitPeople: [],
        }),
      ),
      "break_glass",
    );
  });

  it("prefers a normal grant when enough owners approved", () => {
    expectKind(
      decide(
        input({ requester: frank, breakGlass: { reason: "SEV1" }, approvals: [approval("bob")] }),
      ),
      "grant",
    );
  });
});

// ---- properties -----------------------------------------------------------

const LOGINS = [
  "alice",
  "bob",
  "carol",
  "dave",
  "erin",
  "mallory",
  "requester",
  "renovate[bot]",
] as const;
const ID_OF: Record<string, number> = {
  alice: 1,
  bob: 2,
  carol: 3,
  dave: 4,
  erin: 5,
  mallory: 7,
  requester: 100,
  "renovate[bot]": 200,
};
const OWNER_LOGINS = new Set(["alice", "bob", "carol", "dave"]);
// 59 s: the generator only asks for whole minutes, so this hash is never the current one.
const STALE = requestHash({ ...REQUEST, durationSeconds: 59 }, payments);

const arbApproval = fc.record({
  login: fc.constantFrom(...LOGINS),
  isBot: fc.constantFrom(false, false, false, false, true),
  stale: fc.boolean(),
  minutesAgo: fc.integer({ min: 0, max: 600 }),
  hasWriteAccess: fc.constantFrom(true, true, true, false),
});

const arbInput = fc
  .record({
    approvals: fc.array(arbApproval, { maxLength: 8 }),
    twoNeeded: fc.boolean(),
    scopes: fc.subarray(["read", "refund"], { minLength: 1 }),
    durationMinutes: fc.integer({ min: 1, max: 12 * 60 }),
    startInMinutes: fc.option(fc.integer({ min: -60, max: 60 * 24 })),
    authors: fc.subarray(["alice", "carol", "mallory"]),
    requester: fc.constantFrom("requester", "erin", "alice"),
    breakGlass: fc.boolean(),
    autoUses: fc.integer({ min: 0, max: 6 }),
  })
  .map((g): DecisionInput => {
    const request: AccessRequest = {
      ...REQUEST,
      scopes: g.scopes,
      durationSeconds: g.durationMinutes * 60,
      start: g.startInMinutes === null ? null : new Date(NOW.getTime() + g.startInMinutes * MINUTE),
    };
    const resource = g.twoNeeded ? twoApprovals : payments;
    const hash = requestHash(request, resource);
    return {
      ...input({ request, resource }),
      requester: { id: ID_OF[g.requester]!, login: g.requester, isBot: false },
      commitPeople: g.authors.map((login) => ({
        role: "author" as const,
        id: ID_OF[login]!,
        login,
        commit: "c".repeat(40),
      })),
      approvals: g.approvals.map((a) => ({
        approverId: ID_OF[a.login]!,
        login: a.login,
        isBot: a.isBot,
        requestHash: a.stale ? STALE : hash,
        at: new Date(NOW.getTime() - a.minutesAgo * MINUTE),
        hasWriteAccess: a.hasWriteAccess,
      })),
      breakGlass: g.breakGlass ? { reason: "SEV1" } : null,
      autoApprovalUses: Array.from({ length: g.autoUses }, () => ({ rule: 0, at: NOW })),
    };
  });

const withoutTrace = (decision: Decision) => ({ ...decision, trace: [] });
const approverIds = (decision: Decision): number[] =>
  decision.kind === "grant"
    ? decision.approvers.map((a) => a.id)
    : decision.kind === "needs_approval"
      ? decision.counted.map((a) => a.id)
      : [];

describe("decide: properties", () => {
  it("never counts the requester, and their approvals change nothing", () => {
    fc.assert(
      fc.property(arbInput, (given) => {
        const decision = decide(given);
        expect(approverIds(decision)).not.toContain(given.requester.id);
        const without = given.approvals.filter((a) => a.approverId !== given.requester.id);
        expect(withoutTrace(decide({ ...given, approvals: without }))).toEqual(
          withoutTrace(decision),
        );
      }),
      { numRuns: 300 },
    );
  });

  it("counts only owners with write access who are neither bots nor commit authors", () => {
    fc.assert(
      fc.property(arbInput, (given) => {
        const authors = new Set(given.commitPeople.map((a) => a.id));
        for (const id of approverIds(decide(given))) {
          const mine = given.approvals.filter(
            (a) => a.approverId === id && a.requestHash === given.requestHash,
          );
          expect(OWNER_LOGINS.has(mine[0]!.login)).toBe(true);
          expect(authors.has(id)).toBe(false);
          expect(mine.some((a) => a.hasWriteAccess && !a.isBot)).toBe(true);
        }
        const nonOwner = { ...approval("mallory"), requestHash: given.requestHash };
        expect(
          withoutTrace(decide({ ...given, approvals: [...given.approvals, nonOwner] })),
        ).toEqual(withoutTrace(decide(given)));
      }),
      { numRuns: 300 },
    );
  });

  it("never grants beyond max_ttl or the operator's ceiling, nor before now", () => {
    fc.assert(
      fc.property(arbInput, (given) => {
        const decision = decide(given);
        if (
          decision.kind === "grant" ||
          decision.kind === "auto_approved" ||
          (decision.kind === "break_glass" && decision.allowed)
        ) {
          const { start, end, seconds } = decision.window;
          expect(seconds).toBeGreaterThan(0);
          expect(seconds).toBeLessThanOrEqual(given.resource.policy.maxTtl);
          expect(seconds).toBeLessThanOrEqual(given.resource.operator.maxTtl);
          expect(seconds).toBeLessThanOrEqual(given.request.durationSeconds);
          expect(end.getTime() - start.getTime()).toBe(seconds * 1000);
          expect(start.getTime()).toBeGreaterThanOrEqual(given.now.getTime());
        }
      }),
      { numRuns: 300 },
    );
  });

  it("never turns a denial or a wait into a grant when an approval is removed", () => {
    fc.assert(
      fc.property(arbInput, fc.nat(), (given, pick) => {
        const decision = decide(given);
        if (decision.kind === "grant" || given.approvals.length === 0) return;
        const i = pick % given.approvals.length;
        const fewer = given.approvals.filter((_, j) => j !== i);
        expect(decide({ ...given, approvals: fewer }).kind).not.toBe("grant");
      }),
      { numRuns: 300 },
    );
  });

  it("never counts an approval of another version of the request", () => {
    fc.assert(
      fc.property(arbInput, (given) => {
        const decision = decide(given);
        const stale = given.approvals.map((a) => ({ ...a, requestHash: STALE }));
        const staleDecision = decide({ ...given, approvals: stale });
        expect(approverIds(staleDecision)).toEqual([]);
        expect(staleDecision.kind).not.toBe("grant");
        const current = given.approvals.filter((a) => a.requestHash === given.requestHash);
        expect(withoutTrace(decide({ ...given, approvals: [...current, ...stale] }))).toEqual(
          withoutTrace(decision),
        );
      }),
      { numRuns: 300 },
    );
  });

  it("counts the same approver once, however often they approve", () => {
    fc.assert(
      fc.property(arbInput, (given) => {
        const decision = decide(given);
        const ids = approverIds(decision);
        expect(new Set(ids).size).toBe(ids.length);
        const later = given.approvals.map((a) => ({
          ...a,
          at: new Date(Math.min(a.at.getTime() + 1, NOW.getTime())),
        }));
        const twice = decide({ ...given, approvals: [...given.approvals, ...later] });
        expect(approverIds(twice)).toEqual(ids);
        expect(twice.kind).toBe(decision.kind);
      }),
      { numRuns: 300 },
    );
  });
});
