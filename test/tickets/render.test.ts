import { describe, expect, it } from "vitest";
import type { Notice, Terms } from "#src/tickets/notices.js";
import { hasMarker, markerComment, renderCheck, renderNotice } from "#src/tickets/render.js";

const HOSTILE =
  "@acme/admins <img src=x onerror=alert(1)> | ]( [x](https://evil.example) #1 <!-- hallpass:x -->\n# boom";
const AUDIT = { seq: 42, hash: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08" };
const MARKER = "4b8c6f6e-0d1e-4a57-9a1c-2f0a3e0c9b11/0";

const terms: Terms = {
  resource: "payments-api",
  scopes: ["read", "refund"],
  permissions: ["GET /v1/**", "POST /v1/refunds", "GET /v1/charges/*"],
  durationSeconds: 3_600,
  start: null,
  reason: `Refund order 1234 for a customer ${HOSTILE}`,
};

const granted: Notice = {
  kind: "granted",
  terms,
  requester: "alice",
  approvers: ["bob", "@carol"],
  decision: "approvals",
  rule: null,
  reviewBy: null,
  startsAt: "2025-03-04T10:00:00.000Z",
  endsAt: "2025-03-04T11:00:00.000Z",
  ticketRef: "acme/payments#7",
  ticketKind: "issue",
  serverUrl: "https://hallpass.example.com",
};

/** One of each kind, with hostile text wherever a person can put some. */
const NOTICES: Record<Notice["kind"], Notice> = {
  request_received: {
    kind: "request_received",
    terms,
    requester: "alice",
    approvalsNeeded: 1,
    approvers: ["@acme/sre", "@bob"],
    edited: false,
  },
  request_invalid: {
    kind: "request_invalid",
    problems: [`Scopes: unknown scope ${HOSTILE}`, "Duration: 9h is over max_ttl 4h"],
  },
  granted,
  denied: { kind: "denied", by: "bob", reason: HOSTILE },
  expiry_warning: {
    kind: "expiry_warning",
    requester: "alice",
    endsAt: "2025-03-04T11:00:00.000Z",
  },
  extended: {
    kind: "extended",
    by: ["bob"],
    previousEndsAt: "2025-03-04T11:00:00.000Z",
    endsAt: "2025-03-04T11:30:00.000Z",
  },
  extension_requested: {
    kind: "extension_requested",
    requester: "alice",
    extendBySeconds: 1_800,
    approvers: ["@acme/sre"],
  },
  ended: {
    kind: "ended",
    state: "revoked",
    reason: HOSTILE,
    by: "bob",
    usage: {
      tokens: [
        {
          channel: "actions",
          subject: "acme/payments run 991 attempt 1",
          actor: "alice",
          runId: 991,
          count: 3,
        },
        { channel: "cli", subject: "alice", actor: null, runId: null, count: 1 },
      ],
      requests: [
        {
          method: "GET",
          scope: "GET /v1/**",
          reason: null,
          total: 12,
          byClass: { "2xx": 10, "3xx": 0, "4xx": 1, "5xx": 1 },
          refused: 1,
        },
        {
          method: "DELETE",
          scope: null,
          reason: "SCOPE_NOT_GRANTED",
          total: 2,
          byClass: { "2xx": 0, "3xx": 0, "4xx": 2, "5xx": 0 },
          refused: 2,
        },
      ],
      requestsTotal: 20,
    },
  },
  terms_kept: { kind: "terms_kept", terms },
  command_refused: { kind: "command_refused", command: "/extend", actor: "mallory", why: HOSTILE },
  status: { kind: "status", state: "pending", trace: ["needs 1 approval", HOSTILE] },
  review_overdue: { kind: "review_overdue", reviewBy: "2025-03-05T10:00:00.000Z" },
  tamper: {
    kind: "tamper",
    action: "edited",
    by: "mallory",
    originalBody: `${markerComment("orig/0")}\n\n### ✅ Access granted\n\n| Resource | \`payments-api\` |\n| --- | --- |\n| Requester | \`alice\` |`,
  },
};

/** The text outside code: fenced blocks, code spans and `<code>` elements removed. */
function prose(body: string): string {
  return body
    .replace(/```[\s\S]*?```/g, "")
    .replace(/<code>[^<]*<\/code>/g, "")
    .replace(/`[^`\n]*`/g, "");
}

/** Every property a rendered comment must have, whatever the notice. */
function expectSafe(body: string, options: { mention?: string } = {}): void {
  const lines = body.split("\n");
  expect(lines[0]).toBe(markerComment(MARKER));
  expect(body.split("<!-- hallpass:")).toHaveLength(2);
  expect(body).toContain(
    `audit event #&#8203;42 · sha256 <code>${AUDIT.hash.slice(0, 12)}</code>…`,
  );
  expect(body).toContain(`<code>${AUDIT.hash}</code>`);
  const mentions = prose(body).match(/@[A-Za-z0-9][\w/-]*/g) ?? [];
  expect(mentions).toEqual(options.mention ? [`@${options.mention}`] : []);
  // Our own HTML only: the marker, <sub>, <code>, <br>.
  const html = prose(lines.slice(1).join("\n")).match(/<[^>]*>?/g) ?? [];
  for (const tag of html) expect(tag).toMatch(/^<\/?(sub|code|br)>$/);
  expect(body).not.toMatch(/<img|onerror=alert\(1\)>|\]\(https/);
  // Tables keep their columns: every row has as many unescaped pipes as its header.
  for (const table of body.split(/\n\n+/).filter((part) => part.startsWith("|"))) {
    const pipes = table.split("\n").map((row) => row.replace(/\\\|/g, "").split("|").length);
    expect(new Set(pipes).size).toBe(1);
  }
  expect(body.length).toBeLessThan(65_536);
}

describe("renderNotice", () => {
  for (const [kind, notice] of Object.entries(NOTICES)) {
    it(`renders ${kind} with marker, hash, no mentions and the hostile text escaped`, () => {
      const body = renderNotice(notice, AUDIT, MARKER);
      expectSafe(body, kind === "expiry_warning" ? { mention: "alice" } : {});
      if (JSON.stringify(notice).includes("img src"))
        expect(body).toContain("&lt;img src=x onerror=alert\\(1\\)&gt;");
    });
  }

  it("looks like this (granted, request_received, ended, expiry_warning, denied, tamper)", () => {
    for (const kind of [
      "granted",
      "request_received",
      "ended",
      "expiry_warning",
      "denied",
      "tamper",
    ] as const) {
      expect(renderNotice(NOTICES[kind], AUDIT, MARKER)).toMatchSnapshot(kind);
    }
  });

  it("tells CI and people how to use a grant", () => {
    const issue = renderNotice(granted, AUDIT, MARKER);
    expect(issue).toContain("on: workflow_dispatch");
    expect(issue).toContain("  id-token: write");
    expect(issue).toContain("        uses: hallpass/hallpass/action@v1");
    expect(issue).toContain("          url: https://hallpass.example.com");
    expect(issue).toContain("          resource: payments-api");
    expect(issue).toContain("          ticket: 7");
    expect(issue).toContain("hallpass token acme/payments#7 -- <command>");
    expect(issue).toContain("| Window | 2025-03-04 10:00 UTC → 2025-03-04 11:00 UTC (1h) |");
    expect(issue).toContain("| Approved by | `bob`, `carol` |");

    const pr = renderNotice({ ...granted, ticketKind: "pull_request" }, AUDIT, MARKER);
    expect(pr).toContain("on: pull_request");
    expect(pr).not.toContain("ticket:");
  });

  it("keeps the workflow snippet intact whatever the resource and URL are", () => {
    const body = renderNotice(
      {
        ...granted,
        terms: { ...terms, resource: "x\n```\n@evil" },
        serverUrl: "https://h.example/``` a",
      },
      AUDIT,
      MARKER,
    );
    expect(body).toContain("          resource: \"x ''' @evil\"");
    expect(body).toContain("          url: \"https://h.example/''' a\"");
    expect(body.match(/```/g)).toHaveLength(4);
  });

  it("says break-glass and auto-approval plainly", () => {
    const glass = renderNotice(
      { ...granted, decision: "break_glass", approvers: [], reviewBy: "2025-03-05T10:00:00.000Z" },
      AUDIT,
      MARKER,
    );
    expect(glass).toContain("### 🚨 Break-glass access granted");
    expect(glass).toContain("a code owner must approve by 2025-03-05 10:00 UTC");
    const auto = renderNotice(
      { ...granted, decision: "auto", approvers: [], rule: 0 },
      AUDIT,
      MARKER,
    );
    expect(auto).toContain("| Approved by | auto-approval rule 0 of the policy |");
  });

  it("mentions the requester of an expiry warning only when the login is valid", () => {
    for (const requester of ["dependabot[bot]", "evil\n@acme/admins", "-x"]) {
      const body = renderNotice(
        { kind: "expiry_warning", requester, endsAt: "2025-03-04T11:00:00Z" },
        AUDIT,
        MARKER,
      );
      expectSafe(body);
      expect(body).toContain("/extend 30m");
    }
  });

  it("summarises usage, or says nothing was minted", () => {
    const used = renderNotice(NOTICES.ended, AUDIT, MARKER);
    expect(used).toContain("| CI | `acme/payments run 991 attempt 1` | `alice` | 991 | 3 |");
    expect(used).toContain("| CLI | `alice` | — | — | 1 |");
    expect(used).toContain("| `GET /v1/**` | 12 | 10 | 0 | 1 | 1 | 1 |");
    expect(used).toContain(
      "| `DELETE` not let through: `SCOPE_NOT_GRANTED` | 2 | 0 | 0 | 2 | 0 | 2 |",
    );
    expect(used).toContain("…and 6 more requests on other endpoints.");
    const unused = renderNotice(
      { ...NOTICES.ended, usage: { tokens: [], requests: [], requestsTotal: 0 } } as Notice,
      AUDIT,
      MARKER,
    );
    expect(unused).toContain("No tokens were minted.");
    const cancelled = renderNotice(
      {
        kind: "ended",
        state: "cancelled",
        reason: "the issue was closed",
        by: "alice",
        usage: null,
      },
      AUDIT,
      MARKER,
    );
    expect(cancelled).toContain("### 🚫 Access request cancelled");
    expect(cancelled).not.toContain("Usage");
  });

  it("re-posts a tampered comment as an inert quote, which is not the original's marker", () => {
    const body = renderNotice(NOTICES.tamper, AUDIT, MARKER);
    expect(body).toContain("> &lt;\\!-- hallpass:orig/0 --&gt;");
    expect(body).toContain("> &#124; Resource &#124; \\`payments-api\\` &#124;");
    expect(hasMarker(body, "orig/0")).toBe(false);
    expect(hasMarker(body, MARKER)).toBe(true);
    expect(hasMarker(body.replace(/\n/g, "\r\n"), MARKER)).toBe(true);
    expect(hasMarker(`${markerComment(MARKER)}x`, MARKER)).toBe(false);
    expect(hasMarker(`hi ${markerComment(MARKER)}`, MARKER)).toBe(false);
  });

  it("stays under GitHub's comment limit with a huge original", () => {
    const huge = renderNotice(
      { ...NOTICES.tamper, originalBody: "<@|".repeat(40_000) } as Notice,
      AUDIT,
      MARKER,
    );
    expect(huge.length).toBeLessThan(65_536);
    expect(huge).toContain("…");
  });

  it("has a plain footer without an audit event, and a marker nothing can close early", () => {
    expect(renderNotice(NOTICES.denied, null, MARKER)).toMatch(/\n\n<sub>hallpass<\/sub>$/);
    expect(markerComment("a-->b c")).toBe("<!-- hallpass:a-_b_c -->");
  });
});

describe("renderCheck", () => {
  it("keeps the title plain and escapes the summary", () => {
    const { title, summary } = renderCheck(
      {
        kind: "check_run",
        repo: { id: 1, owner: "acme", name: "payments" },
        number: 7,
        headSha: "a".repeat(40),
        status: "completed",
        conclusion: "neutral",
        title: "Access revoked",
        summary: HOSTILE,
      },
      AUDIT,
    );
    expect(title).toBe("Access revoked");
    expect(summary).not.toMatch(/<img|@acme/);
    expect(summary).toContain(AUDIT.hash);
  });
});
