/**
 * The webhook door of the real server (Probot's App on the GitHub simulator):
 * unsigned, badly signed and garbled deliveries are refused with a JSON 4xx
 * and never stored; signed deliveries of any shape are answered without a
 * 5xx and leave the server working; and fuzzed issue bodies, titles and
 * comments, delivered as GitHub would, are processed at the first attempt and
 * never make a grant active.
 */
import { createHmac, randomUUID } from "node:crypto";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  anyJson,
  anyText,
  expectCleanAnswer,
  headerText,
  mutated,
  runs,
  watchUnhandled,
} from "../support/fuzz.js";
import {
  issueCommentEvent,
  issuesEvent,
  pullRequestEvent,
  WEBHOOK_PATH,
} from "../support/github/webhooks.js";
import { type Hallpass, SECRET, startHallpass } from "../support/hallpass.js";
import { rawRequest } from "../support/raw-http.js";
import {
  issueFormBody,
  operatorYaml,
  requestBody,
  seedAcme,
  syncClock,
} from "../tickets/fixtures.js";

const hmac = (secret: string, body: string, algorithm = "sha256") =>
  createHmac(algorithm, secret).update(body).digest("hex");

const EVENTS = [
  "issues",
  "issue_comment",
  "pull_request",
  "pull_request_review",
  "installation",
  "installation_repositories",
  "push",
  "ping",
  "check_run",
  "repository",
  "member",
] as const;

/** Sets `value` at a path of `target` (a JSON value), creating objects on the way. */
function setPath(target: unknown, path: readonly string[], value: unknown): unknown {
  if (path.length === 0) return value;
  const [key = "", ...rest] = path;
  const base =
    target !== null && typeof target === "object" && !Array.isArray(target)
      ? (target as Record<string, unknown>)
      : {};
  return { ...base, [key]: setPath(base[key], rest, value) };
}

describe("the webhook door", () => {
  let h: Hallpass;
  const unhandled = watchUnhandled();
  beforeAll(async () => {
    h = await startHallpass({ seed: seedAcme, operatorYaml });
  });
  afterAll(async () => {
    unhandled.stop();
    await h?.stop();
  });

  const count = async (sql: string) =>
    (await h.db.query<{ n: number }>(sql)).rows[0]?.n ?? Number.NaN;
  const deliveries = () => count("SELECT count(*)::int AS n FROM webhook_deliveries");
  const activeGrants = () => count("SELECT count(*)::int AS n FROM grants WHERE state = 'active'");
  const minted = () => count("SELECT count(*)::int AS n FROM tokens");

  async function post(headers: Record<string, string>, body: string) {
    const response = await fetch(`${h.server.url}${WEBHOOK_PATH}`, {
      method: "POST",
      headers,
      body,
    });
    return { status: response.status, text: await response.text() };
  }

  /** A real `issues.opened` delivery of a ticket in the simulator, as JSON. */
  function realPayload(): Record<string, unknown> {
    const issue = h.sim.openIssue("acme/payments", {
      author: "alice",
      body: requestBody(),
      labels: ["hallpass"],
    });
    return issuesEvent(h.sim, "opened", issue).payload as unknown as Record<string, unknown>;
  }

  it("refuses unsigned, badly signed and garbled deliveries, storing none", async () => {
    const body = fc.oneof(
      anyText(300),
      fc.constant(""),
      anyJson.map((v) => JSON.stringify(v) ?? "null"),
      fc.constant(JSON.stringify({ action: "opened", issue: { number: 1 } })),
    );
    const signature = (text: string) =>
      fc.oneof(
        fc.constant<string | null>(null),
        fc.constant(`sha256=${hmac("not-the-secret", text)}`),
        fc.constant(`sha256=${hmac(SECRET, `${text} `)}`),
        fc.constant(`sha256=${hmac(SECRET, text).toUpperCase()}`),
        fc.constant(`sha1=${hmac(SECRET, text, "sha1")}`),
        fc.constant(`sha256=${hmac(SECRET, text).slice(0, 63)}`),
        fc.constant(hmac(SECRET, text)),
        headerText(80),
      );
    const request = body.chain((text) =>
      fc.record({
        text: fc.constant(text),
        signature: signature(text),
        event: fc.oneof(fc.constantFrom(...EVENTS), headerText(30)),
        delivery: fc.oneof(fc.constant(randomUUID()), headerText(120)),
        type: fc.constantFrom(
          "application/json",
          "application/x-www-form-urlencoded",
          "text/plain",
          "application/json; charset=latin1",
        ),
      }),
    );
    const before = await deliveries();
    await fc.assert(
      fc.asyncProperty(request, async (r) => {
        const headers: Record<string, string> = {
          "content-type": r.type,
          "x-github-event": r.event,
          "x-github-delivery": r.delivery,
        };
        if (r.signature !== null) headers["x-hub-signature-256"] = r.signature;
        const answer = await post(headers, r.text);
        expectCleanAnswer(answer.status, answer.text);
        expect(answer.status, answer.text).toBeGreaterThanOrEqual(400);
        expect(answer.status).toBeLessThan(500);
      }),
      { numRuns: runs(60) },
    );
    expect(await deliveries()).toBe(before);
  });

  it("processes fuzzed issue bodies, titles and comments at once, and grants nothing", async () => {
    const body = fc.oneof(
      anyText(500),
      mutated(requestBody(), 4),
      mutated(issueFormBody(), 4),
      fc.tuple(anyText(40), anyText(40)).map(([reason, scopes]) => requestBody({ reason, scopes })),
      fc.constantFrom(null, "", "\u0000", "```hallpass\n```", "<!-- hallpass: forged -->"),
    );
    const comment = fc.oneof(
      anyText(200),
      fc.constantFrom(
        "/approve",
        "/break-glass checkout is down, INC-1234",
        "/extend 1h",
        "/extend 9999999d",
        "/deny nope nope",
        "/status",
        "/done",
        '<!-- hallpass: {"kind":"approved"} -->',
      ),
      mutated("/approve", 2),
    );
    const before = { grants: await activeGrants(), tokens: await minted() };
    await fc.assert(
      fc.asyncProperty(
        body,
        anyText(80),
        fc.array(fc.tuple(fc.constantFrom("alice", "mallory"), comment), { maxLength: 2 }),
        async (text, title, comments) => {
          syncClock(h);
          const issue = h.sim.openIssue("acme/payments", {
            author: "alice",
            title: title.trim() === "" ? "access" : title,
            body: text,
            labels: ["hallpass"],
          });
          // Throws unless processed at the first attempt.
          await h.deliver(issuesEvent(h.sim, "opened", issue));
          for (const [author, said] of comments) {
            const c = h.sim.comment(issue.repoId, issue.number, { author, body: said });
            await h.deliver(issueCommentEvent(h.sim, "created", c));
          }
        },
      ),
      { numRuns: runs(30) },
    );
    expect(await activeGrants()).toBe(before.grants);
    expect(await minted()).toBe(before.tokens);
    expect(unhandled.seen).toEqual([]);
  });

  it("processes fuzzed pull request bodies and comments at once, and grants nothing", async () => {
    const body = fc.oneof(anyText(300), mutated(requestBody(), 4), fc.constant(null));
    const before = await activeGrants();
    await fc.assert(
      fc.asyncProperty(body, anyText(120), async (text, said) => {
        syncClock(h);
        const pr = h.sim.openPullRequest("acme/payments", {
          author: "alice",
          head: `fuzz-${h.sim.nextId()}`,
          files: { "services/payments/fuzz.ts": "export {};\n" },
          body: text,
          labels: ["hallpass"],
        });
        await h.deliver(pullRequestEvent(h.sim, "opened", pr));
        const c = h.sim.comment(pr.repoId, pr.number, { author: "mallory", body: said });
        await h.deliver(issueCommentEvent(h.sim, "created", c));
      }),
      { numRuns: runs(10) },
    );
    expect(await activeGrants()).toBe(before);
  });

  // Found by the property above: @octokit/webhooks-methods' verify throws on
  // an empty payload, which answered a well-formed signature with a 500.
  it("refuses a delivery without a body with a 400, storing nothing", async () => {
    const before = await deliveries();
    for (const signature of [`sha256=${hmac(SECRET, "")}`, `sha256=${"0".repeat(64)}`]) {
      for (const type of ["application/json", null]) {
        const answer = await post(
          {
            ...(type ? { "content-type": type } : {}),
            "x-github-event": "issues",
            "x-github-delivery": randomUUID(),
            "x-hub-signature-256": signature,
          },
          "",
        );
        expect(answer.status, answer.text).toBe(400);
        expect(JSON.parse(answer.text)).toMatchObject({ error: "WEBHOOK_MALFORMED" });
      }
    }
    expect(await deliveries()).toBe(before);
  });

  it("answers raw bytes at the webhook path with a clean 4xx", async () => {
    const raw = fc
      .tuple(
        fc.array(fc.tuple(headerText(20), headerText(60)), { maxLength: 5 }),
        anyText(200),
        fc.constantFrom(
          "",
          "Transfer-Encoding: chunked\r\n",
          "Content-Length: 5\r\n",
          "Content-Length: 99999999\r\n",
        ),
      )
      .map(
        ([headers, text, framing]) =>
          `POST ${WEBHOOK_PATH} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n${framing}${headers.map(([k, v]) => `${k}: ${v}\r\n`).join("")}Connection: close\r\n\r\n${text}`,
      );
    await fc.assert(
      fc.asyncProperty(raw, async (request) => {
        const answer = await rawRequest(h.server.url, request, 100);
        if (answer === null) return;
        expectCleanAnswer(answer.status, answer.body);
        expect(answer.status).toBeLessThan(500);
      }),
      { numRuns: runs(30) },
    );
    expect((await fetch(`${h.server.url}/healthz`)).status).toBe(200);
  });
  // Last: deliveries a handler cannot take are retried in the background.
  it("answers signed deliveries of any shape without a 5xx, and keeps processing", async () => {
    const base = realPayload();
    const paths = fc.constantFrom(
      ["action"],
      ["issue"],
      ["issue", "number"],
      ["issue", "body"],
      ["issue", "user"],
      ["issue", "labels"],
      ["issue", "pull_request"],
      ["repository"],
      ["repository", "id"],
      ["repository", "owner"],
      ["repository", "owner", "id"],
      ["repository", "default_branch"],
      ["installation"],
      ["installation", "id"],
      ["sender"],
      ["comment"],
      ["comment", "user"],
      ["pull_request"],
      ["review"],
      ["__proto__"],
    );
    const payload = fc.oneof(
      anyJson.map((v) => JSON.stringify(v) ?? "null"),
      fc
        .array(fc.tuple(paths, anyJson), { minLength: 1, maxLength: 3 })
        .map((edits) =>
          JSON.stringify(
            edits.reduce((p, [path, value]) => setPath(p, path, value), base as unknown),
          ),
        ),
      mutated(JSON.stringify(base), 3),
    );
    const grantsBefore = await activeGrants();
    await fc.assert(
      fc.asyncProperty(
        payload,
        fc.oneof(
          { weight: 4, arbitrary: fc.constantFrom(...EVENTS) },
          { weight: 1, arbitrary: headerText(70) },
        ),
        fc.oneof({ weight: 4, arbitrary: fc.uuid() }, { weight: 1, arbitrary: headerText(120) }),
        async (raw, event, delivery) => {
          // What fetch sends: a lone surrogate goes out as U+FFFD, and the signature covers the bytes.
          const text = raw.toWellFormed();
          const answer = await post(
            {
              "content-type": "application/json",
              "x-github-event": event,
              "x-github-delivery": delivery,
              "x-hub-signature-256": `sha256=${hmac(SECRET, text)}`,
            },
            text,
          );
          expectCleanAnswer(answer.status, answer.text);
          expect([200, 202, 400], answer.text).toContain(answer.status);
        },
      ),
      { numRuns: runs(40) },
    );
    // The worker goes on: a real ticket opened now is processed at its first attempt
    // (numbered well past what an edit of the fuzzed one's number gives, which may be retrying).
    syncClock(h);
    for (let i = 0; i < 100; i++) h.sim.openIssue("acme/payments", { author: "alice" });
    const issue = h.sim.openIssue("acme/payments", {
      author: "alice",
      body: requestBody(),
      labels: ["hallpass"],
    });
    await h.deliver(issuesEvent(h.sim, "opened", issue));
    expect((await h.grants(issue.number))[0]?.state).toBe("pending");
    expect(await activeGrants()).toBe(grantsBefore);
    expect((await fetch(`${h.server.url}/healthz`)).status).toBe(200);
  });
});
