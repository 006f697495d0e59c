import { createServer, type IncomingHttpHeaders } from "node:http";
import type { AddressInfo } from "node:net";
import { Octokit } from "@octokit/rest";
import { verify } from "@octokit/webhooks-methods";
import type {
  InstallationDeletedEvent,
  InstallationRepositoriesRemovedEvent,
  InstallationSuspendEvent,
  InstallationUnsuspendEvent,
  IssueCommentEditedEvent,
  IssuesDeletedEvent,
  IssuesLabeledEvent,
  IssuesOpenedEvent,
  IssuesTransferredEvent,
  MembershipRemovedEvent,
  OrganizationMemberRemovedEvent,
  PullRequestClosedEvent,
  PullRequestReviewDismissedEvent,
  PullRequestReviewSubmittedEvent,
  PullRequestSynchronizeEvent,
  PushEvent,
  RepositoryArchivedEvent,
  RepositoryDeletedEvent,
  RepositoryTransferredEvent,
} from "@octokit/webhooks-types";
import { ProbotOctokit } from "probot";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { loadConfig } from "#src/config.js";
import { createGitHubApp } from "#src/github/app.js";
import { createLogger } from "#src/log.js";
import { cleanEnv } from "../env.js";
import { generateAppKey } from "./auth.js";
import { GitHubSimulator } from "./simulator.js";
import { example } from "./webhook-parts.js";
import {
  installationEvent,
  installationRepositoriesEvent,
  issueCommentEvent,
  issuesEvent,
  membershipEvent,
  organizationEvent,
  pullRequestEvent,
  pullRequestReviewEvent,
  pushEvent,
  repositoryEndEvent,
} from "./webhooks.js";

const APP_ID = 4242;
const quiet = { debug() {}, info() {}, warn() {}, error() {} };

let sim: GitHubSimulator;
let installationId: number;

/** Probot's Octokit as the App's installation, with retry and throttling delays shrunk for tests. */
function installationOctokit() {
  return new ProbotOctokit({
    baseUrl: sim.apiUrl,
    auth: { appId: APP_ID, privateKey: sim.privateKeyPem, installationId },
    log: quiet,
    retry: { retryAfterBaseValue: 1 },
    throttle: { retryAfterBaseValue: 50 },
  });
}

function appOctokit(privateKey = sim.privateKeyPem) {
  return new ProbotOctokit({
    baseUrl: sim.apiUrl,
    auth: { appId: APP_ID, privateKey },
    log: quiet,
  });
}

beforeAll(async () => {
  sim = await GitHubSimulator.start({ appId: APP_ID });
  sim.addOrg("acme", { members: ["alice", "bob"], admins: ["olivia"] });
  sim.addTeam("acme", "sre", { members: ["alice"], maintainers: ["carol"] });
  sim.addRepo("acme/.github", {
    files: { ".github/hallpass.yml": "label: hallpass\nrequest_ttl: 24h\n" },
  });
  sim.addRepo("acme/payments", {
    files: {
      ".github/hallpass.yml": "_extends: .github\nlabel: access\n",
      CODEOWNERS: "services/payments/ @acme/sre\n",
    },
    collaborators: { alice: "write", bob: "maintain", dave: "triage" },
  });
  sim.addRepo("acme/ledger");
  sim.addRepo("other/secret");
  installationId = sim.addInstallation("acme").id;
});

afterAll(() => sim.close());

afterEach(() => {
  const unexpected = sim.unexpected;
  sim.clearRequests();
  sim.limits = null;
  expect(unexpected).toEqual([]);
});

/** A raw call with an installation token: status, headers and body as GitHub sends them. */
async function call(
  token: string,
  method: string,
  path: string,
  body?: unknown,
  signal?: AbortSignal,
): Promise<{
  status: number;
  headers: Headers;
  body: { message?: string } & Record<string, unknown>;
}> {
  const response = await fetch(`${sim.apiUrl}${path}`, {
    method,
    headers: { authorization: `token ${token}`, "content-type": "application/json" },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    ...(signal ? { signal } : {}),
  });
  const text = await response.text();
  return { status: response.status, headers: response.headers, body: text ? JSON.parse(text) : {} };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe("GitHubSimulator", () => {
  it("authenticates as the App, then as its installation, with Probot's Octokit", async () => {
    const app = appOctokit();
    expect((await app.request("GET /app")).data).toMatchObject({ id: APP_ID, slug: "hallpass" });
    const { data: found } = await app.rest.apps.getRepoInstallation({
      owner: "acme",
      repo: "payments",
    });
    expect(found.id).toBe(installationId);

    const { data: repo } = await installationOctokit().rest.repos.get({
      owner: "acme",
      repo: "payments",
    });
    expect(repo).toMatchObject({ full_name: "acme/payments", default_branch: "main" });
    expect(sim.requests({ path: `/app/installations/${installationId}/access_tokens` })).toEqual([
      expect.objectContaining({ method: "POST", auth: "app", status: 201 }),
    ]);
    expect(sim.requests({ path: "/repos/acme/payments" })).toEqual([
      expect.objectContaining({ auth: "installation", installationId, status: 200 }),
    ]);
  });

  it("is where the server's Probot goes with GHE_HOST and GHE_PROTOCOL", async () => {
    const config = loadConfig(cleanEnv(sim.appEnv("webhook-secret")));
    expect(config.github.apiUrl).toBe(sim.apiUrl);
    const probot = await createGitHubApp(config, config.app!, createLogger("silent"), []);
    const octokit = await probot.auth(installationId);
    const listed = octokit.rest.issues.listForRepo({ owner: "acme", repo: "ledger" });
    const request = await sim.waitForRequest({ method: "GET", path: "/repos/acme/ledger/issues" });
    expect(request).toMatchObject({ auth: "installation", status: 200 });
    expect((await listed).data).toEqual([]);
  });

  it("refuses missing and wrong credentials as GitHub does", async () => {
    const bare = await fetch(`${sim.apiUrl}/repos/acme/payments`);
    expect(bare.status).toBe(401);
    expect(await bare.json()).toEqual({
      message: "Requires authentication",
      documentation_url: "https://docs.github.com/rest",
      status: "401",
    });

    const wrongToken = new Octokit({ baseUrl: sim.apiUrl, auth: "ghs_not-issued", log: quiet });
    await expect(
      wrongToken.rest.repos.get({ owner: "acme", repo: "payments" }),
    ).rejects.toMatchObject({
      status: 401,
      response: { data: { message: "Bad credentials" } },
    });

    const wrongKey = appOctokit(generateAppKey().privateKeyPem);
    await expect(wrongKey.auth({ type: "installation", installationId })).rejects.toMatchObject({
      status: 401,
      response: { data: { message: "A JSON web token could not be decoded" } },
    });

    const uninstalled = sim.addInstallation("other");
    const auth = await appOctokit().auth({ type: "installation", installationId: uninstalled.id });
    const revoked = new Octokit({
      baseUrl: sim.apiUrl,
      auth: (auth as { token: string }).token,
      log: quiet,
    });
    await revoked.rest.repos.get({ owner: "other", repo: "secret" });
    sim.deleteInstallation(uninstalled.id);
    await expect(revoked.rest.repos.get({ owner: "other", repo: "secret" })).rejects.toMatchObject({
      status: 401,
    });

    const octokit = installationOctokit();
    await expect(octokit.rest.users.getAuthenticated()).rejects.toMatchObject({ status: 403 });
    // The installation is on acme: other accounts' repositories do not exist for it.
    await expect(octokit.rest.repos.get({ owner: "other", repo: "secret" })).rejects.toMatchObject({
      status: 404,
      response: { data: { message: "Not Found" } },
    });
  });

  it("serves policy files to octokit.config.get, with org-wide defaults and _extends", async () => {
    const octokit = installationOctokit();
    const extended = await octokit.config.get({
      owner: "acme",
      repo: "payments",
      path: ".github/hallpass.yml",
    });
    expect(extended.config).toEqual({ label: "access", request_ttl: "24h" });
    expect(sim.requests({ method: "GET", path: /\/contents\// }).map((r) => r.path)).toEqual([
      "/repos/acme/payments/contents/.github/hallpass.yml",
      "/repos/acme/.github/contents/.github/hallpass.yml",
    ]);
    const orgDefault = await octokit.config.get({
      owner: "acme",
      repo: "ledger",
      path: ".github/hallpass.yml",
    });
    expect(orgDefault.config).toEqual({ label: "hallpass", request_ttl: "24h" });

    const before = sim.branchHead("acme/payments");
    sim.commit("acme/payments", {
      files: { ".github/hallpass.yml": "label: changed\n" },
      author: "alice",
    });
    const { data: old } = await octokit.rest.repos.getContent({
      owner: "acme",
      repo: "payments",
      path: ".github/hallpass.yml",
      ref: before,
    });
    expect(old).toMatchObject({ type: "file", encoding: "base64", path: ".github/hallpass.yml" });
    const content = "content" in old ? Buffer.from(old.content, "base64").toString() : "";
    expect(content).toBe("_extends: .github\nlabel: access\n");
    await expect(
      octokit.rest.repos.getContent({ owner: "acme", repo: "payments", path: "nope.yml" }),
    ).rejects.toMatchObject({ status: 404 });
  });

  it("posts, edits and deletes comments, and the model and later reads see each change", async () => {
    const issue = sim.openIssue("acme/payments", {
      author: "alice",
      body: "please",
      labels: ["access"],
    });
    const { token } = (await appOctokit().auth({ type: "installation", installationId })) as {
      token: string;
    };
    const octokit = new Octokit({ baseUrl: sim.apiUrl, auth: token, log: quiet });
    const ticket = { owner: "acme", repo: "payments", issue_number: issue.number };

    const { data: posted } = await octokit.rest.issues.createComment({
      ...ticket,
      body: "requested",
    });
    expect(posted.user?.login).toBe("hallpass[bot]");
    sim.comment("acme/payments", issue.number, { author: "bob", body: "/approve" });
    await octokit.rest.issues.updateComment({
      owner: "acme",
      repo: "payments",
      comment_id: posted.id,
      body: "granted",
    });
    expect(sim.commentsOn("acme/payments", issue.number).map((c) => [c.author, c.body])).toEqual([
      ["hallpass[bot]", "granted"],
      ["bob", "/approve"],
    ]);

    const all = await octokit.paginate(octokit.rest.issues.listComments, {
      ...ticket,
      per_page: 1,
    });
    expect(all.map((c) => c.body)).toEqual(["granted", "/approve"]);
    await octokit.rest.issues.deleteComment({
      owner: "acme",
      repo: "payments",
      comment_id: posted.id,
    });
    expect(sim.commentsOn("acme/payments", issue.number).map((c) => c.body)).toEqual(["/approve"]);
    await expect(
      octokit.rest.issues.getComment({ owner: "acme", repo: "payments", comment_id: posted.id }),
    ).rejects.toMatchObject({ status: 404 });

    await octokit.rest.issues.update({ ...ticket, state: "closed" });
    expect(sim.issue("acme/payments", issue.number)).toMatchObject({
      state: "closed",
      closedBy: "hallpass[bot]",
    });
  });

  it("serves pull requests from the commit graph: reviews by page, commits, merge refs, compare", async () => {
    const pr = sim.openPullRequest("acme/payments", {
      author: "mallory",
      head: "feature",
      files: { "services/payments/app.ts": "export {};\n" },
    });
    const firstHead = pr.pull.head.sha;
    for (const user of ["alice", "carol", "olivia"])
      sim.review("acme/payments", pr.number, { user, state: "COMMENTED" });
    sim.review("acme/payments", pr.number, { user: "alice", state: "APPROVED" });
    sim.commit("acme/payments", { branch: "feature", files: { "b.txt": "b\n" }, author: "erin" });
    sim.commit("acme/payments", { files: { "main.txt": "moved on\n" }, author: "olivia" });

    const octokit = installationOctokit();
    const ref = { owner: "acme", repo: "payments", pull_number: pr.number };
    const reviews = await octokit.paginate(octokit.rest.pulls.listReviews, { ...ref, per_page: 3 });
    expect(reviews.map((r) => [r.user?.login, r.state, r.commit_id])).toEqual([
      ["alice", "COMMENTED", firstHead],
      ["carol", "COMMENTED", firstHead],
      ["olivia", "COMMENTED", firstHead],
      ["alice", "APPROVED", firstHead],
    ]);
    expect(sim.requests({ path: `/repos/acme/payments/pulls/${pr.number}/reviews` })).toHaveLength(
      2,
    );

    const { data: pull } = await octokit.rest.pulls.get(ref);
    expect(pull.head.sha).not.toBe(firstHead);
    const commits = await octokit.paginate(octokit.rest.pulls.listCommits, ref);
    expect(commits.map((c) => c.author?.login)).toEqual(["mallory", "erin"]);
    const { data: merge } = await octokit.rest.repos.getCommit({
      owner: "acme",
      repo: "payments",
      ref: pull.merge_commit_sha ?? "",
    });
    expect(merge.parents.map((p) => p.sha)).toEqual([
      sim.branchHead("acme/payments"),
      pull.head.sha,
    ]);

    const { data: mergeRef } = await octokit.rest.git.getRef({
      owner: "acme",
      repo: "payments",
      ref: `pull/${pr.number}/merge`,
    });
    expect(mergeRef.object.sha).toBe(pull.merge_commit_sha);
    const { data: mainRef } = await octokit.rest.git.getRef({
      owner: "acme",
      repo: "payments",
      ref: "heads/main",
    });
    expect(mainRef).toMatchObject({
      ref: "refs/heads/main",
      object: { sha: sim.branchHead("acme/payments") },
    });

    const { data: compared } = await octokit.rest.repos.compareCommitsWithBasehead({
      owner: "acme",
      repo: "payments",
      basehead: `main...${pull.head.sha}`,
    });
    expect(compared).toMatchObject({ status: "diverged", ahead_by: 2, behind_by: 1 });
    expect(compared.files?.map((f) => f.filename)).toEqual(["b.txt", "services/payments/app.ts"]);

    sim.addRepo("mallory/payments", { forkOf: "acme/payments" });
    const forked = sim.openPullRequest("acme/payments", {
      author: "mallory",
      head: { repo: "mallory/payments", branch: "patch" },
      files: { "x.txt": "x\n" },
    });
    const { data: fromFork } = await octokit.rest.pulls.get({ ...ref, pull_number: forked.number });
    expect(fromFork.head).toMatchObject({
      label: "mallory:patch",
      sha: forked.pull.head.sha,
      repo: { full_name: "mallory/payments", fork: true },
    });
  });

  it("answers who people are: collaborator permission, org and team membership, users", async () => {
    const octokit = installationOctokit();
    const permission = async (username: string) =>
      (
        await octokit.rest.repos.getCollaboratorPermissionLevel({
          owner: "acme",
          repo: "payments",
          username,
        })
      ).data;
    expect(await permission("bob")).toMatchObject({ permission: "write", role_name: "maintain" });
    expect(await permission("dave")).toMatchObject({ permission: "read", role_name: "triage" });
    expect(await permission("olivia")).toMatchObject({ permission: "admin" });
    expect(await permission("carol")).toMatchObject({ permission: "read" }); // the org's base permission
    expect(await permission("mallory")).toMatchObject({ permission: "none" });

    expect(
      (await octokit.rest.orgs.checkMembershipForUser({ org: "acme", username: "bob" })).status,
    ).toBe(204);
    await expect(
      octokit.rest.orgs.checkMembershipForUser({ org: "acme", username: "mallory" }),
    ).rejects.toMatchObject({ status: 404 });
    expect(
      (await octokit.rest.orgs.getMembershipForUser({ org: "acme", username: "olivia" })).data.role,
    ).toBe("admin");
    const members = await octokit.paginate(octokit.rest.teams.listMembersInOrg, {
      org: "acme",
      team_slug: "sre",
      per_page: 1,
    });
    expect(members.map((m) => m.login)).toEqual(["alice", "carol"]);
    const { data: carol } = await octokit.rest.teams.getMembershipForUserInOrg({
      org: "acme",
      team_slug: "sre",
      username: "carol",
    });
    expect(carol.role).toBe("maintainer");

    sim.removeOrgMember("acme", "alice");
    await expect(
      octokit.rest.teams.getMembershipForUserInOrg({
        org: "acme",
        team_slug: "sre",
        username: "alice",
      }),
    ).rejects.toMatchObject({ status: 404 });
    sim.addTeamMember("acme", "sre", "alice");

    const asBob = new Octokit({ baseUrl: sim.apiUrl, auth: sim.userToken("bob"), log: quiet });
    expect((await asBob.rest.users.getAuthenticated()).data).toMatchObject({
      login: "bob",
      type: "User",
    });
    expect((await octokit.rest.users.getByUsername({ username: "hallpass[bot]" })).data.type).toBe(
      "Bot",
    );
  });

  it("creates, updates and lists check runs on a commit", async () => {
    const octokit = installationOctokit();
    const pr = sim.openPullRequest("acme/payments", {
      author: "alice",
      head: "checks",
      files: { "c.txt": "c\n" },
    });
    const repo = { owner: "acme", repo: "payments" };
    const { data: created } = await octokit.rest.checks.create({
      ...repo,
      name: "hallpass",
      head_sha: pr.pull.head.sha,
      status: "in_progress",
    });
    expect(created.pull_requests.map((p) => p.number)).toEqual([pr.number]);
    await octokit.rest.checks.update({
      ...repo,
      check_run_id: created.id,
      conclusion: "success",
      output: { title: "Granted", summary: "ok" },
    });

    const { data: listed } = await octokit.rest.checks.listForRef({
      ...repo,
      ref: pr.pull.head.sha,
    });
    expect(listed.total_count).toBe(1);
    expect(listed.check_runs[0]).toMatchObject({
      status: "completed",
      conclusion: "success",
      output: { title: "Granted" },
    });
    expect(sim.checkRunsFor("acme/payments", pr.pull.head.sha)).toHaveLength(1);
  });

  it("fails and slows down on purpose: a 500 is retried, a secondary rate limit waited out", async () => {
    const octokit = installationOctokit();
    await octokit.rest.repos.get({ owner: "acme", repo: "ledger" }); // token fetched before the faults
    sim.failNext({ method: "GET", path: "/repos/acme/ledger", status: 500, times: 2 });
    await octokit.rest.repos.get({ owner: "acme", repo: "ledger" });
    expect(sim.requests({ path: "/repos/acme/ledger" }).map((r) => r.status)).toEqual([
      200, 500, 500, 200,
    ]);

    sim.failNext({ path: /^\/repos\/acme\/ledger\/issues\//, status: 403, retryAfter: 1 });
    sim.openIssue("acme/ledger", { author: "bob" });
    await octokit.rest.issues.get({ owner: "acme", repo: "ledger", issue_number: 1 });
    const [limited, retried] = sim.requests({ path: "/repos/acme/ledger/issues/1" });
    expect(limited).toMatchObject({ status: 403, fault: true });
    expect(retried).toMatchObject({ status: 200, fault: false });
    // retry-after: 1 second, at the test's 50 ms per second.
    expect((retried?.at ?? 0) - (limited?.at ?? 0)).toBeGreaterThanOrEqual(45);

    sim.latencyMs = 40;
    const started = Date.now();
    await octokit.rest.repos.get({ owner: "acme", repo: "ledger" });
    sim.latencyMs = 0;
    expect(Date.now() - started).toBeGreaterThanOrEqual(40);
  });

  it("fails in every way GitHub does: 503 and 504, slow answers, no answer, and a write done though its answer failed", async () => {
    const token = sim.installationToken(installationId);
    const issue = sim.openIssue("acme/ledger", { author: "bob" });
    const comments = `/repos/acme/ledger/issues/${issue.number}/comments`;

    sim.failNext({ path: "/repos/acme/ledger", status: 503 });
    sim.failNext({ path: "/repos/acme/ledger", status: 504 });
    expect((await call(token, "GET", "/repos/acme/ledger")).status).toBe(503);
    const timedOut = await call(token, "GET", "/repos/acme/ledger");
    expect(timedOut.status).toBe(504);
    expect(timedOut.body.message).toMatch(/couldn't respond to your request in time/);

    // Slow: the endpoint's own answer, late.
    sim.failNext({ path: "/repos/acme/ledger", delayMs: 80 });
    const started = Date.now();
    expect((await call(token, "GET", "/repos/acme/ledger")).status).toBe(200);
    expect(Date.now() - started).toBeGreaterThanOrEqual(80);

    // GitHub timed out after creating the comment: a 502, and the comment is there.
    sim.failNext({ method: "POST", path: comments, status: 502, applied: true });
    expect((await call(token, "POST", comments, { body: "one" })).status).toBe(502);
    // A 502 that did nothing.
    sim.failNext({ method: "POST", path: comments, status: 502 });
    expect((await call(token, "POST", comments, { body: "never" })).status).toBe(502);
    // No answer: the client gives up; the comment was created all the same.
    sim.failNext({ method: "POST", path: comments, noAnswer: "hang" });
    await expect(
      call(token, "POST", comments, { body: "two" }, AbortSignal.timeout(150)),
    ).rejects.toMatchObject({ name: "TimeoutError" });
    // The connection closed without an answer, nothing done.
    sim.failNext({ method: "POST", path: comments, noAnswer: "close", applied: false });
    await expect(call(token, "POST", comments, { body: "three" })).rejects.toThrow(/fetch failed/);

    await expect.poll(() => sim.commentsOn("acme/ledger", issue.number).length).toBe(2);
    expect(sim.commentsOn("acme/ledger", issue.number).map((c) => c.body)).toEqual(["one", "two"]);
    expect(
      sim.requests({ method: "POST", path: comments }).map((r) => [r.status, r.fault]),
    ).toEqual([
      [502, true],
      [502, true],
      [0, true],
      [0, true],
    ]);
    expect(() => sim.failNext({ path: comments })).toThrow(/needs a status, delayMs or noAnswer/);
  });

  it("counts the primary rate limit per installation, says so on every answer, and refuses once it is spent", async () => {
    const other = sim.addInstallation("acme", { repositories: ["acme/ledger"] }).id;
    const token = sim.installationToken(installationId);
    sim.limits = { primary: { limit: 3, windowMs: 1_200 } };
    const answers = [];
    for (let i = 0; i < 4; i++) answers.push(await call(token, "GET", "/repos/acme/ledger"));
    expect(answers.map((a) => a.status)).toEqual([200, 200, 200, 403]);
    expect(answers.map((a) => a.headers.get("x-ratelimit-remaining"))).toEqual([
      "2",
      "1",
      "0",
      "0",
    ]);
    expect(answers.map((a) => a.headers.get("x-ratelimit-used"))).toEqual(["1", "2", "3", "3"]);
    const [first, , , refused] = answers;
    expect(first?.headers.get("x-ratelimit-limit")).toBe("3");
    expect(first?.headers.get("x-ratelimit-resource")).toBe("core");
    const reset = Number(first?.headers.get("x-ratelimit-reset"));
    expect(reset * 1000).toBeGreaterThanOrEqual(Date.now());
    expect(reset * 1000).toBeLessThanOrEqual(Date.now() + 2_200);
    expect(refused?.body.message).toBe(
      `API rate limit exceeded for installation ID ${installationId}.`,
    );
    expect(refused?.headers.get("x-ratelimit-reset")).toBe(String(reset));
    expect(sim.rateLimit(installationId)).toEqual({ limit: 3, used: 3, remaining: 0, reset });

    // Another installation has a limit of its own; the App's JWT is not counted.
    const elsewhere = await call(sim.installationToken(other), "GET", "/repos/acme/ledger");
    expect(elsewhere.headers.get("x-ratelimit-remaining")).toBe("2");
    expect((await appOctokit().rest.apps.getAuthenticated()).status).toBe(200);

    // A fresh window once the reset time has passed.
    await sleep(Math.max(0, reset * 1000 - Date.now()) + 10);
    const again = await call(token, "GET", "/repos/acme/ledger");
    expect(again.status).toBe(200);
    expect(again.headers.get("x-ratelimit-remaining")).toBe("2");

    // 429 when asked; and without limits, every answer says 4,999 remain.
    sim.limits = { primary: { limit: 0 }, status: 429 };
    expect((await call(token, "GET", "/repos/acme/ledger")).status).toBe(429);
    sim.limits = null;
    const unlimited = await call(token, "GET", "/repos/acme/ledger");
    expect(unlimited.headers.get("x-ratelimit-remaining")).toBe("4999");
    expect(sim.rateLimit(installationId)).toBeNull();
  });

  it("refuses content created too fast with a secondary rate limit and retry-after, per minute and per hour", async () => {
    const issue = sim.openIssue("acme/ledger", { author: "bob" });
    const comments = `/repos/acme/ledger/issues/${issue.number}/comments`;
    const token = sim.installationToken(installationId);
    sim.limits = { secondary: { perMinute: 2, minuteMs: 1_000, perHour: 3, hourMs: 2_500 } };

    const post = (body: string) => call(token, "POST", comments, { body });
    expect((await post("1")).status).toBe(201);
    expect((await post("2")).status).toBe(201);
    const limited = await post("3");
    expect(limited.status).toBe(403);
    expect(limited.body.message).toMatch(/^You have exceeded a secondary rate limit/);
    expect(limited.headers.get("retry-after")).toBe("1");
    // Every request still counts against the primary limit, and says so.
    expect(limited.headers.get("x-ratelimit-used")).toBe("3");
    // Reads are not content: not limited.
    expect((await call(token, "GET", comments)).status).toBe(200);
    expect(sim.commentsOn("acme/ledger", issue.number)).toHaveLength(2);

    await sleep(1_000);
    expect((await post("3")).status).toBe(201);
    // The hour's three are used: refused until the hour (2.5 s here) is over.
    const hourly = await post("4");
    expect(hourly.status).toBe(403);
    expect(Number(hourly.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
    expect(Number(hourly.headers.get("retry-after"))).toBeLessThanOrEqual(2);

    // GitHub may leave retry-after out.
    sim.limits = { secondary: { perMinute: 0, retryAfter: false } };
    const silent = await post("5");
    expect(silent.status).toBe(403);
    expect(silent.headers.get("retry-after")).toBeNull();
    expect(sim.commentsOn("acme/ledger", issue.number).map((c) => c.body)).toEqual(["1", "2", "3"]);
  });

  it("redirects a renamed repository's old name by id, until another repository takes the name", async () => {
    const original = sim.addRepo("acme/old-name");
    sim.renameRepo("acme/old-name", "acme/new-name");
    const octokit = installationOctokit();
    const { data: moved } = await octokit.rest.repos.get({ owner: "acme", repo: "old-name" });
    expect(moved).toMatchObject({ id: original.id, full_name: "acme/new-name" });
    expect(sim.requests({ path: "/repos/acme/old-name" })[0]?.status).toBe(301);
    const issue = sim.openIssue("acme/new-name", { author: "alice" });
    await octokit.rest.issues.createComment({
      owner: "acme",
      repo: "old-name",
      issue_number: issue.number,
      body: "hi",
    });
    expect(sim.commentsOn("acme/new-name", issue.number).map((c) => c.body)).toEqual(["hi"]);

    const reused = sim.addRepo("acme/old-name");
    const { data: fresh } = await octokit.rest.repos.get({ owner: "acme", repo: "old-name" });
    expect(fresh.id).toBe(reused.id);
    expect(fresh.id).not.toBe(original.id);
  });

  it("signs deliveries, lists them to the App and redelivers a missed one", async () => {
    const received: { headers: IncomingHttpHeaders; body: string }[] = [];
    const app = createServer((req, res) => {
      let body = "";
      req.on("data", (chunk) => {
        body += chunk;
      });
      req.on("end", () => {
        received.push({ headers: req.headers, body });
        res.writeHead(202).end();
      });
    });
    await new Promise<void>((resolve) => app.listen(0, "127.0.0.1", resolve));
    try {
      sim.webhookTarget = {
        url: `http://127.0.0.1:${(app.address() as AddressInfo).port}`,
        secret: "s3cret",
      };
      const issue = sim.openIssue("acme/payments", { author: "alice", labels: ["access"] });
      const { response } = await sim.deliver(issuesEvent(sim, "opened", issue));
      expect(response?.status).toBe(202);
      expect(received[0]?.headers).toMatchObject({
        "x-github-event": "issues",
        "content-type": "application/json",
      });
      const signature = String(received[0]?.headers["x-hub-signature-256"]);
      expect(await verify("s3cret", received[0]?.body ?? "", signature)).toBe(true);

      const { delivery: missed } = await sim.deliver(
        issuesEvent(sim, "labeled", issue, { label: "access" }),
        { drop: true },
      );
      expect(received).toHaveLength(1);

      const octokit = appOctokit();
      const failed = await octokit.paginate(octokit.rest.apps.listWebhookDeliveries, {
        per_page: 1,
      });
      expect(failed.map((d) => [d.guid, d.status_code, d.action])).toEqual([
        [missed.guid, 0, "labeled"],
        [received[0]?.headers["x-github-delivery"], 202, "opened"],
      ]);
      await octokit.rest.apps.redeliverWebhookDelivery({ delivery_id: missed.id });
      await sim.settled();
      expect(received[1]?.headers["x-github-delivery"]).toBe(missed.guid);
      expect(sim.deliveries.at(-1)).toMatchObject({
        guid: missed.guid,
        redelivery: true,
        statusCode: 202,
      });
    } finally {
      sim.webhookTarget = null;
      await new Promise((resolve) => app.close(resolve));
    }
  });

  it("builds webhooks from the model that typecheck and keep the shape of GitHub's examples", () => {
    const issue = sim.openIssue("acme/payments", { author: "alice", labels: ["access"] });
    const comment = sim.comment("acme/payments", issue.number, { author: "bob", body: "/approve" });
    sim.editComment(comment.id, "/approve now");
    const pr = sim.openPullRequest("acme/payments", {
      author: "erin",
      head: "hooks",
      files: { "h.txt": "h\n" },
    });
    const before = pr.pull.head.sha;
    sim.commit("acme/payments", { branch: "hooks", files: { "h.txt": "h2\n" }, author: "erin" });
    const review = sim.review("acme/payments", pr.number, {
      user: "alice",
      state: "APPROVED",
      commitId: before,
    });
    const mainBefore = sim.branchHead("acme/payments");
    const merge = sim.mergePullRequest("acme/payments", pr.number, { by: "olivia" });
    sim.dismissReview("acme/payments", pr.number, review.id);

    // Each annotation is the type check: these are @octokit/webhooks-types' payloads.
    const opened: IssuesOpenedEvent = issuesEvent(sim, "opened", issue).payload;
    const labeled: IssuesLabeledEvent = issuesEvent(sim, "labeled", issue, {
      label: "access",
    }).payload;
    const edited: IssueCommentEditedEvent = issueCommentEvent(sim, "edited", comment).payload;
    const synced: PullRequestSynchronizeEvent = pullRequestEvent(sim, "synchronize", pr, {
      before,
    }).payload;
    const closed: PullRequestClosedEvent = pullRequestEvent(sim, "closed", pr).payload;
    const submitted: PullRequestReviewSubmittedEvent = pullRequestReviewEvent(
      sim,
      "submitted",
      review,
    ).payload;
    const dismissed: PullRequestReviewDismissedEvent = pullRequestReviewEvent(
      sim,
      "dismissed",
      review,
    ).payload;
    const pushed: PushEvent = pushEvent(sim, {
      repo: "acme/payments",
      branch: "main",
      before: mainBefore,
    }).payload;
    const removed: OrganizationMemberRemovedEvent = organizationEvent(sim, "member_removed", {
      org: "acme",
      member: "bob",
    }).payload;
    const left: MembershipRemovedEvent = membershipEvent(sim, "removed", {
      org: "acme",
      team: "sre",
      member: "alice",
    }).payload;
    const uninstalled: InstallationDeletedEvent = installationEvent(sim, "deleted", {
      installationId,
    }).payload;

    expect(opened).toMatchObject({
      action: "opened",
      installation: { id: installationId },
      sender: { login: "alice" },
    });
    expect(opened.issue).toMatchObject({
      number: issue.number,
      user: { login: "alice" },
      labels: [{ name: "access" }],
    });
    expect(labeled.label?.name).toBe("access");
    expect(edited).toMatchObject({
      changes: { body: { from: "/approve" } },
      comment: { body: "/approve now" },
    });
    expect(synced).toMatchObject({ before, after: pr.pull.head.sha, number: pr.number });
    expect(closed.pull_request).toMatchObject({
      merged: true,
      merge_commit_sha: merge,
      merged_by: { login: "olivia" },
    });
    expect(submitted.review).toMatchObject({
      state: "approved",
      commit_id: before,
      user: { login: "alice" },
    });
    expect(dismissed.review.state).toBe("dismissed");
    expect(pushed).toMatchObject({ ref: "refs/heads/main", before: mainBefore, after: merge });
    expect(pushed.commits.flatMap((c) => [...c.added, ...c.modified])).toEqual(
      expect.arrayContaining(["h.txt"]),
    );
    expect(removed.membership.user.login).toBe("bob");
    expect(left.team).toMatchObject({ slug: "sre" });
    expect(uninstalled.repositories?.map((r) => r.full_name)).toContain("acme/payments");

    // Every field of the example each payload started from is still there.
    const shapes: [object, object][] = [
      [example("issues", "opened"), opened],
      [example("issue_comment", "edited"), edited],
      [example("pull_request", "synchronize"), synced],
      [example("pull_request", "closed"), closed],
      [example("pull_request_review", "submitted"), submitted],
      [example("push"), pushed],
      [example("organization", "member_removed"), removed],
      [example("membership", "removed"), left],
      [example("installation", "deleted"), uninstalled],
    ];
    for (const [base, built] of shapes) expect(missingFields(base, built)).toEqual([]);
  });

  it("builds the webhooks of what ends a ticket on GitHub's side, in the shape of GitHub's examples", () => {
    const issue = sim.openIssue("acme/payments", { author: "alice", labels: ["access"] });
    const moved = sim.openIssue("acme/ledger", { author: "alice", labels: ["access"] });
    const ledger = sim.repo("acme/ledger").id;
    const scratch = sim.addRepo("acme/scratch").id;

    const transferred: IssuesTransferredEvent = issuesEvent(sim, "transferred", issue, {
      to: moved,
    }).payload;
    const deleted: IssuesDeletedEvent = issuesEvent(sim, "deleted", issue).payload;
    const suspended: InstallationSuspendEvent = installationEvent(sim, "suspend", {
      installationId,
      sender: "olivia",
    }).payload;
    const unsuspended: InstallationUnsuspendEvent = installationEvent(sim, "unsuspend", {
      installationId,
    }).payload;
    const removed: InstallationRepositoriesRemovedEvent = installationRepositoriesEvent(
      sim,
      "removed",
      { installationId, repos: [ledger] },
    ).payload;
    const archived: RepositoryArchivedEvent = repositoryEndEvent(sim, "archived", {
      repo: ledger,
      sender: "olivia",
    }).payload;
    sim.renameRepo(scratch, "other/scratch");
    const transferredRepo: RepositoryTransferredEvent = repositoryEndEvent(sim, "transferred", {
      repo: scratch,
      sender: "olivia",
      from: "acme",
    }).payload;
    sim.deleteRepo(ledger);
    const repoDeleted: RepositoryDeletedEvent = repositoryEndEvent(sim, "deleted", {
      repo: ledger,
      sender: "olivia",
    }).payload;

    expect(transferred).toMatchObject({
      issue: { number: issue.number },
      repository: { full_name: "acme/payments" },
      changes: {
        new_issue: { number: moved.number },
        new_repository: { full_name: "acme/ledger" },
      },
      installation: { id: installationId },
    });
    expect(deleted).toMatchObject({ action: "deleted", issue: { number: issue.number } });
    expect(suspended.installation).toMatchObject({
      id: installationId,
      suspended_by: { login: "olivia" },
    });
    expect(suspended.installation.suspended_at).toEqual(expect.any(String));
    expect(unsuspended.installation).toMatchObject({ suspended_by: null, suspended_at: null });
    expect(removed).toMatchObject({
      installation: { id: installationId },
      repositories_removed: [{ id: ledger, full_name: "acme/ledger" }],
    });
    expect(archived).toMatchObject({
      action: "archived",
      repository: { id: ledger, archived: true },
      installation: { id: installationId },
    });
    expect(transferredRepo).toMatchObject({
      repository: { id: scratch, full_name: "other/scratch" },
      changes: { owner: { from: { user: { login: "acme" } } } },
    });
    expect(repoDeleted).toMatchObject({ action: "deleted", repository: { id: ledger } });

    const shapes: [object, object][] = [
      [example("issues", "transferred"), transferred],
      [example("issues", "deleted"), deleted],
      [example("installation", "suspend"), suspended],
      [example("installation", "unsuspend"), unsuspended],
      [example("installation_repositories", "removed"), removed],
      [example("repository", "privatized"), archived],
      [example("repository", "transferred"), transferredRepo],
      [example("repository", "deleted"), repoDeleted],
    ];
    for (const [base, built] of shapes) expect(missingFields(base, built)).toEqual([]);
  });
});

/** Paths of fields `example` has that `built` lacks (objects compared field by field, arrays by first item). */
function missingFields(example: unknown, built: unknown, path = ""): string[] {
  if (!isObject(example) || !isObject(built)) return [];
  if (Array.isArray(example)) {
    return Array.isArray(built) && example.length > 0 && built.length > 0
      ? missingFields(example[0], built[0], `${path}[0]`)
      : [];
  }
  return Object.entries(example).flatMap(([key, value]) =>
    key in built
      ? missingFields(value, (built as Record<string, unknown>)[key], `${path}.${key}`)
      : [`${path}.${key}`],
  );
}

function isObject(value: unknown): value is object {
  return value !== null && typeof value === "object";
}
