/**
 * Issue tickets from request to revocation: one used by a
 * `workflow_dispatch` run's Action and ended by `/revoke`, one used by a
 * person's `hallpass token` and ended by the operator's `hallpass revoke`.
 */
import type { ExpectStatic } from "vitest";
import { issueFormBody, requestBody } from "../tickets/fixtures.js";
import { auditHashOf, tokenRows, usage, usageRows } from "./comments.js";
import { CREDENTIAL, noticeOn, REPO, type Stack, step, untilRefused } from "./stack.js";

const JWT = /^[\w-]+\.[\w-]+\.[\w-]+$/;

/**
 * Story 1: asked on the issue form → hallpass's request comment → `/approve`
 * by a code owner → grant comment → a `workflow_dispatch` run's Action gets
 * a masked token → the proxy forwards within the scope and refuses outside it
 * → `/revoke` → the next call is refused → the closing comment's usage is what
 * the API saw → the post step releases the token → `hallpass audit verify`.
 */
export async function issueStory(s: Stack, expect: ExpectStatic): Promise<void> {
  const n = await step("alice opens an issue from the issue form", () =>
    s.openIssue("alice", issueFormBody({ scopes: "read", duration: "1h" })),
  );
  const api = s.api(`issue-${n}`);

  await step("hallpass answers with the request as it understood it", async () => {
    const asked = await noticeOn(expect, s, n, "📝 Access requested");
    expect(asked.body).toContain("| Resource | `payments-api` |");
    expect(asked.body).toContain("| Scopes | `read` |");
    expect(asked.body).toContain("| Allows | `GET /v1/**` |");
    expect(asked.body).toContain("| Window | 1h from approval |");
    expect(asked.body).toContain("| Requester | `alice` |");
    expect(asked.body).toMatch(/needs 1 approval from a code owner \(.*`bob`.*\)/);
  });

  await step("bob, a code owner, approves with /approve", async () => {
    await s.comment(n, "bob", "/approve");
    const granted = await noticeOn(expect, s, n, "✅ Access granted");
    expect(granted.body).toContain("| Approved by | `bob` |");
    expect(granted.body).toMatch(/\| Window \| .* UTC → .* UTC \(1h\) \|/);
    // The workflow it shows names the ticket, as a workflow_dispatch run must.
    expect(granted.body).toContain("on: workflow_dispatch");
    expect(granted.body).toContain(`          ticket: ${n}`);
    expect(s.notices(n).map((x) => x.heading)).toEqual([
      "📝 Access requested",
      "✅ Access granted",
    ]);
  });

  const job = await step(
    "alice's workflow_dispatch run gets a token through the Action",
    async () => {
      const job = await s.action(s.dispatchRun("alice"), { ticket: String(n) });
      expect(job.main.errors).toEqual([]);
      expect(job.main.code).toBe(0);
      const token = job.main.outputs.token ?? "";
      expect(token).toMatch(JWT);
      expect(job.main.outputs.scopes).toBe("read");
      expect(job.main.env).toEqual({ HALLPASS_TOKEN: token });
      // Masked before use, and printed nowhere but in the mask command.
      expect(job.main.masks).toContain(token);
      const shown = `${job.main.stdout}\n${job.main.stderr}`.replace(`::add-mask::${token}`, "");
      expect(shown).not.toContain(token);
      // The policy's token_ttl (15m), well inside the grant's hour.
      const left = Date.parse(job.main.outputs["expires-at"] ?? "") - Date.now();
      expect(left).toBeGreaterThan(10 * 60_000);
      expect(left).toBeLessThanOrEqual(15 * 60_000);
      return job;
    },
  );
  const token = job.main.outputs.token ?? "";

  await step("the proxy forwards calls within the scope, with the real credential", async () => {
    for (const i of [1, 2, 3]) {
      expect(await api.call(token, "GET", `/v1/charges/ch_${i}`)).toMatchObject({ status: 200 });
    }
    const seen = api.seen();
    expect(seen.map((r) => `${r.method} ${r.url}`)).toEqual(
      [1, 2, 3].map((i) => `GET /v1/charges/ch_${i}`),
    );
    for (const r of seen) {
      expect(r.headers.authorization).toBe(`Bearer ${CREDENTIAL}`);
      expect(JSON.stringify(r.headers)).not.toContain(token);
    }
  });

  await step(
    "the proxy refuses calls outside the scope (403); nothing reaches the API",
    async () => {
      expect(await api.call(token, "POST", "/v1/refunds")).toMatchObject({
        status: 403,
        error: "SCOPE_NOT_GRANTED",
      });
      expect(await api.call(token, "DELETE", "/v1/charges/ch_1")).toMatchObject({
        status: 403,
        error: "SCOPE_NOT_GRANTED",
      });
      expect(api.seen()).toHaveLength(3);
    },
  );

  await step("bob revokes with /revoke, and the next proxy call is refused", async () => {
    await s.comment(n, "bob", "/revoke");
    await untilRefused(expect, api, token, "GET", "/v1/charges/ch_after");
    expect(api.callsWith(token).at(-1)?.error).toBe("TOKEN_REVOKED");
  });

  await step("the closing comment sums the usage as the API saw it", async () => {
    const ended = await noticeOn(expect, s, n, "🔒 Access revoked");
    expect(ended.body).toContain("| By | `bob` |");
    expect(ended.body).toContain("| Reason | revoked by bob |");
    // Calls made before the proxy heard of the revocation were forwarded: the API saw them.
    const { forwarded, revoked } = api.tally(token);
    expect(api.seen()).toHaveLength(forwarded);
    const rows = usageRows(ended.body);
    expect(rows).toEqual(
      expect.arrayContaining([
        usage("GET /v1/**", forwarded, "2xx"),
        usage("POST not let through: SCOPE_NOT_GRANTED", 1, "4xx"),
        usage("DELETE not let through: SCOPE_NOT_GRANTED", 1, "4xx"),
        usage("GET not let through: TOKEN_REVOKED", revoked, "4xx"),
      ]),
    );
    expect(rows).toHaveLength(4);
    expect(tokenRows(ended.body)).toEqual([
      [
        "CI",
        expect.stringMatching(/^repo:acme@\d+\/payments@\d+:run:\d+:1$/),
        "alice",
        expect.stringMatching(/^\d+$/),
        "1",
      ],
    ]);
  });

  await step("the job's post step gives the token back without failing the job", async () => {
    const post = await job.post();
    expect(post.code).toBe(0);
    expect(post.warnings).toEqual([]);
    expect(post.stdout).toMatch(/hallpass: released the token \(jti [0-9a-f-]{36}\)/);
  });

  await step("hallpass audit verify finds the chain intact", async () => {
    const verify = await s.operator(["audit", "verify"]);
    expect(verify.stderr).toBe("");
    expect(verify.code).toBe(0);
    expect(verify.stdout).toMatch(/^audit chain intact: \d+ events, tip [0-9a-f]{64}\n$/);
  });

  await step("every comment's audit event is in the ticket's evidence bundle", async () => {
    const exported = await s.operator(["audit", "export", "--ticket", `${REPO}#${n}`]);
    expect(exported.code).toBe(0);
    const events = exported.stdout
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as { type: string; hash?: string; event?: { kind: string } })
      .filter((l) => l.type === "event");
    expect(events.map((e) => e.event?.kind)).toEqual(
      expect.arrayContaining([
        "grant.requested",
        "approval.recorded",
        "grant.activated",
        "token.minted",
        "grant.revoked",
        "token.released",
      ]),
    );
    const hashes = new Set(events.map((e) => e.hash));
    const notices = s.notices(n);
    expect(notices).toHaveLength(3);
    for (const notice of notices) expect(hashes).toContain(auditHashOf(notice.body));
  });

  await step("neither the token nor the API's credential is in the server's log", () => {
    expect(s.output()).not.toContain(token);
    expect(s.output()).not.toContain(CREDENTIAL);
  });
}

/**
 * Story 4: a person's token. Asked in a `hallpass` block, approved by a code
 * owner through a team; `hallpass token` prints a narrowed token and runs a
 * command with one; both work through the proxy; the operator's `hallpass
 * revoke` ends the grant; the closing comment and `hallpass token` say so.
 */
export async function personStory(s: Stack, expect: ExpectStatic): Promise<void> {
  const githubToken = s.sim.userToken("alice");
  const asAlice = { GH_TOKEN: githubToken, HALLPASS_URL: s.url };
  const n = await step("alice asks for read and refund in a hallpass block", async () => {
    const n = await s.openIssue("alice", requestBody({ scopes: "read, refund", duration: "1h" }));
    await noticeOn(expect, s, n, "📝 Access requested");
    return n;
  });
  const ticket = `${REPO}#${n}`;
  const api = s.api(`person-${n}`);

  await step("carol, a code owner through her team, approves", async () => {
    await s.comment(n, "carol", "/approve");
    const granted = await noticeOn(expect, s, n, "✅ Access granted");
    expect(granted.body).toContain("| Approved by | `carol` |");
    expect(granted.body).toContain(`hallpass token ${ticket} -- <command>`);
  });

  const token = await step("hallpass token prints a token narrowed to refund", async () => {
    const printed = await s.person(["token", ticket, "--scope", "refund"], asAlice);
    expect(printed.stderr).toBe("");
    expect(printed.code).toBe(0);
    expect(printed.stdout).toMatch(/^[\w-]+\.[\w-]+\.[\w-]+\n$/);
    expect(printed.stdout).not.toContain(githubToken);
    return printed.stdout.trim();
  });

  await step("the proxy lets refund's endpoints through and refuses the rest of read", async () => {
    expect(await api.call(token, "POST", "/v1/refunds")).toMatchObject({ status: 200 });
    expect(await api.call(token, "GET", "/v1/charges/ch_1")).toMatchObject({ status: 200 });
    expect(await api.call(token, "GET", "/v1/balance")).toMatchObject({
      status: 403,
      error: "SCOPE_NOT_GRANTED",
    });
    expect(api.seen()).toHaveLength(2);
  });

  await step("hallpass token hands a command a token and passes its exit code on", async () => {
    const script = [
      `const r = await fetch(${JSON.stringify(`${s.proxyUrl}/payments-api/v1/charges/ch_2`)}, {`,
      `  headers: { "x-request-id": ${JSON.stringify(api.nextRequestId())},`,
      '    authorization: "Bearer " + process.env.HALLPASS_TOKEN } });',
      "process.stdout.write(String(r.status));",
      "process.exitCode = r.status === 200 ? 3 : 4;",
    ].join("\n");
    const ran = await s.person(
      ["token", ticket, "--", process.execPath, "--input-type=module", "-e", script],
      asAlice,
    );
    expect(ran).toMatchObject({ code: 3, stdout: "200", stderr: "" });
    expect(api.seen()).toHaveLength(3);
  });

  await step("the operator revokes with hallpass revoke; the proxy refuses", async () => {
    const revoked = await s.operator(["revoke", ticket, "--reason", "INC-42 is resolved"]);
    expect(revoked.stderr).toBe("");
    expect(revoked.code).toBe(0);
    expect(revoked.stdout).toMatch(new RegExp(`^revoked grant [0-9a-f-]{36} on ${ticket}\\n$`));
    await untilRefused(expect, api, token, "POST", "/v1/refunds");
  });

  await step("the closing comment says the operator ended it and what was used", async () => {
    const ended = await noticeOn(expect, s, n, "🔒 Access revoked");
    expect(ended.body).toContain("| By | the operator |");
    expect(ended.body).toContain("| Reason | revoked by the operator: INC-42 is resolved |");
    const refunds = api
      .callsWith(token)
      .filter((c) => c.method === "POST" && c.status === 200).length;
    const { revoked } = api.tally(token);
    expect(api.seen().filter((r) => r.url === "/v1/refunds")).toHaveLength(refunds);
    const rows = usageRows(ended.body);
    expect(rows).toEqual(
      expect.arrayContaining([
        usage("POST /v1/refunds", refunds, "2xx"),
        usage("GET /v1/charges/*", 1, "2xx"),
        // The command's token had every scope of the grant: read let its call through.
        usage("GET /v1/**", 1, "2xx"),
        usage("GET not let through: SCOPE_NOT_GRANTED", 1, "4xx"),
        usage("POST not let through: TOKEN_REVOKED", revoked, "4xx"),
      ]),
    );
    expect(rows).toHaveLength(5);
    expect(tokenRows(ended.body)).toEqual([["CLI", "github:alice", "—", "—", "2"]]);
  });

  await step("hallpass token now says the grant is over", async () => {
    const again = await s.person(["token", ticket], asAlice);
    expect(again.code).toBe(1);
    expect(again.stdout).toBe("");
    expect(again.stderr).toMatch(
      /^hallpass: the grant on .*#\d+ has been revoked: request access again\n$/,
    );
  });
}
