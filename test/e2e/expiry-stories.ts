/**
 * Time running out, on the server's real clock. `hallpass serve` takes no
 * clock of a test's, and warns a fixed ten minutes before a grant ends
 * (`DEFAULT_WARN_BEFORE_S`, no setting changes it), and only grants longer
 * than that: one grant cannot show both its warning and its expiry within a
 * test run. So two stories, side by side: a 20-second window expires by
 * itself; the shortest window that is warned (10m1s) is warned at once.
 */
import type { ExpectStatic } from "vitest";
import { requestBody } from "../tickets/fixtures.js";
import { tokenRows, usage, usageRows } from "./comments.js";
import { noticeOn, type Stack, step } from "./stack.js";

/** The server's lead for the expiry warning, in seconds. */
const WARN_BEFORE_S = 600;

/** An issue ticket by alice for `duration`, approved by bob, once granted. */
async function grantedTicket(s: Stack, expect: ExpectStatic, duration: string) {
  const n = await s.openIssue("alice", requestBody({ scopes: "read", duration }));
  await noticeOn(expect, s, n, "📝 Access requested");
  const approvedAt = Date.now();
  await s.comment(n, "bob", "/approve");
  const granted = await noticeOn(expect, s, n, "✅ Access granted");
  return { n, granted, approvedAt, grantedSeenAt: Date.now() };
}

/** The Window cell of a comment: `2030-01-01 10:00 UTC → 2030-01-01 10:10 UTC (10m 1s)`. */
const windowOf = (body: string) => /\| Window \| (.*) \|/.exec(body)?.[1] ?? "";

/**
 * Story 3a: a 20-second grant, used by a `workflow_dispatch` run's token,
 * expires by the sweeper at its end: the closing comment sums its use, the
 * proxy refuses the token, and a later run gets none.
 */
export async function expiryStory(s: Stack, expect: ExpectStatic): Promise<void> {
  const { n, granted, approvedAt, grantedSeenAt } = await step(
    "alice asks for 20s, bob approves",
    () => grantedTicket(s, expect, "20s"),
  );
  expect(windowOf(granted.body)).toMatch(/ UTC → .* UTC \(20s\)$/);
  const api = s.api(`expiry-${n}`);

  const job = await step(
    "her workflow_dispatch run gets a token that ends with the grant",
    async () => {
      const job = await s.action(s.dispatchRun("alice"), { ticket: String(n) });
      expect(job.main.errors).toEqual([]);
      expect(job.main.code).toBe(0);
      // A token never outlives its grant: the policy's 15m token_ttl is cut to
      // the window, which began when bob's approval was decided (a JWT's exp is
      // in whole seconds).
      const expiresAt = Date.parse(job.main.outputs["expires-at"] ?? "");
      expect(expiresAt).toBeGreaterThanOrEqual(approvedAt + 19_000);
      expect(expiresAt).toBeLessThanOrEqual(grantedSeenAt + 20_000);
      return job;
    },
  );
  const token = job.main.outputs.token ?? "";
  const expiresAt = Date.parse(job.main.outputs["expires-at"] ?? "");

  await step("the token reads through the proxy while the window lasts", async () => {
    for (const i of [1, 2]) {
      expect(await api.call(token, "GET", `/v1/charges/ch_${i}`)).toMatchObject({ status: 200 });
    }
    expect(api.seen()).toHaveLength(2);
  });

  await step("at the window's end hallpass expires the grant and says what was used", async () => {
    const expired = await noticeOn(expect, s, n, "⌛ Access expired", 40_000);
    expect(Date.now()).toBeGreaterThanOrEqual(expiresAt);
    expect(expired.body).toContain("| By | hallpass (policy) |");
    expect(expired.body).toContain("| Reason | its time ran out |");
    expect(usageRows(expired.body)).toEqual([usage("GET /v1/**", 2, "2xx")]);
    expect(tokenRows(expired.body)).toEqual([
      ["CI", expect.stringMatching(/:run:\d+:1$/), "alice", expect.stringMatching(/^\d+$/), "1"],
    ]);
  });

  await step("the proxy refuses the token from then on; nothing reaches the API", async () => {
    expect(await api.call(token, "GET", "/v1/charges/ch_late")).toMatchObject({ status: 401 });
    expect(api.seen()).toHaveLength(2);
  });

  await step(
    `no warning came first: the window is not longer than the lead (${WARN_BEFORE_S} s)`,
    () => {
      expect(s.notices(n).map((x) => x.heading)).toEqual([
        "📝 Access requested",
        "✅ Access granted",
        "⌛ Access expired",
      ]);
    },
  );

  await step("a run after the end gets no token", async () => {
    const late = await s.action(s.dispatchRun("alice"), { ticket: String(n) });
    expect(late.main.code).toBe(1);
    expect(late.main.outputs).toEqual({});
    expect(late.main.errors[0]).toMatch(/has expired.*\(GRANT_NOT_ACTIVE\)/);
  });

  await step("the job's post step gives its expired token back without failing", async () => {
    const post = await job.post();
    expect(post.code).toBe(0);
    expect(post.warnings).toEqual([]);
    expect(post.stdout).toMatch(/hallpass: the token \(jti [0-9a-f-]{36}\) had already expired/);
  });
}

/**
 * Story 3b: a 10m1s grant, one second longer than the warning's lead, is
 * warned as soon as it starts; `/done` then ends it, with no second warning.
 */
export async function warningStory(s: Stack, expect: ExpectStatic): Promise<void> {
  const { n, granted } = await step("alice asks for 10m1s, bob approves", () =>
    grantedTicket(s, expect, "10m1s"),
  );
  expect(windowOf(granted.body)).toMatch(/ UTC → .* UTC \(10m 1s\)$/);

  await step("hallpass warns her, naming the end, within seconds", async () => {
    const warning = await noticeOn(expect, s, n, "⏳ Access ends soon", 30_000);
    const end = /→ (\d{4}-\d\d-\d\d \d\d:\d\d UTC)/.exec(windowOf(granted.body))?.[1];
    expect(end).toBeDefined();
    expect(warning.body).toContain(`@alice, access through this ticket ends at **${end}**.`);
    expect(warning.body).toContain("Comment `/extend 30m`");
  });

  await step("she finishes early with /done: no second warning, no tokens used", async () => {
    await s.comment(n, "alice", "/done");
    const ended = await noticeOn(expect, s, n, "🔒 Access revoked");
    expect(ended.body).toContain("No tokens were minted.");
    expect(s.notices(n).map((x) => x.heading)).toEqual([
      "📝 Access requested",
      "✅ Access granted",
      "⏳ Access ends soon",
      "🔒 Access revoked",
    ]);
  });
}
