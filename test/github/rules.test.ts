/**
 * The server reads a policy the way `hallpass policy check` does: the same
 * loader, over real HTTP from the GitHub simulator on one side and from a
 * checkout (with local copies of the other repositories' files) on the
 * other, with the same verdict and the same messages.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { PassThrough } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { policyCheck } from "#src/cli/policy-check.js";
import type { GitHub } from "#src/github/api.js";
import { loadRules, type RepoRules } from "#src/github/rules.js";
import type { Policy } from "#src/rules/policy.js";
import { formatPolicyError, POLICY_READ_LIMIT } from "#src/rules/policy-load.js";
import { GitHubSimulator } from "../support/github/simulator.js";
import { issueCommentEvent, issuesEvent } from "../support/github/webhooks.js";
import { type Hallpass, startHallpass } from "../support/hallpass.js";
import { TestOctokit } from "../support/octokit.js";
import { operatorYaml, POLICY, requestBody } from "../tickets/fixtures.js";

const APP_ID = 4711;
const quiet = { debug() {}, info() {}, warn() {}, error() {} };
const CODEOWNERS = "/services/payments/ @bob\n";
const RESOURCES = `resources:
  payments-api:
    path: services/payments/
    scopes:
      read: ["GET /v1/**"]
`;

let sim: GitHubSimulator;
let gh: GitHub;
const dirs: string[] = [];

beforeAll(async () => {
  sim = await GitHubSimulator.start({ appId: APP_ID });
  sim.addOrg("acme", { members: ["bob"] });
  sim.addRepo("acme/.github", { files: { "README.md": "org\n" } });
  sim.addRepo("acme/base", { files: { "README.md": "shared\n" } });
  const installationId = sim.addInstallation("acme").id;
  gh = new TestOctokit({
    baseUrl: sim.apiUrl,
    auth: { appId: APP_ID, privateKey: sim.privateKeyPem, installationId },
    log: quiet,
  }) as GitHub;
});

afterAll(async () => {
  await sim.close();
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

/** Files of the repository under test and of the organization's `.github` and `acme/base`; absent = no such file. */
interface World {
  readonly policy?: string;
  readonly org?: string;
  readonly base?: string;
}

let repos = 0;
/** The repository `serverRules` created last, and a way to read its rules again. */
let last: { name: string; reload: () => Promise<RepoRules> };

/** Seeds the simulator with `world` and reads the rules as the server does. */
async function serverRules(world: World): Promise<RepoRules> {
  sim.commit("acme/.github", { files: { ".github/hallpass.yml": world.org ?? null } });
  sim.commit("acme/base", { files: { ".github/hallpass.yml": world.base ?? null } });
  const name = `service-${++repos}`;
  const repo = sim.addRepo(`acme/${name}`, {
    files: {
      CODEOWNERS,
      ...(world.policy === undefined ? {} : { ".github/hallpass.yml": world.policy }),
    },
  });
  last = { name, reload: () => loadRules(gh, { owner: "acme", name, id: repo.id }, "main") };
  return last.reload();
}

/** `hallpass policy check` on a checkout of `world`'s repository, given copies of the other files. */
async function checkedOffline(world: World) {
  const dir = mkdtempSync(join(tmpdir(), "hallpass-rules-"));
  dirs.push(dir);
  const write = (path: string, text: string): string => {
    mkdirSync(dirname(join(dir, path)), { recursive: true });
    writeFileSync(join(dir, path), text);
    return join(dir, path);
  };
  write("checkout/CODEOWNERS", CODEOWNERS);
  if (world.policy !== undefined) write("checkout/.github/hallpass.yml", world.policy);
  const copies = new Map<string, string>();
  if (world.org !== undefined) copies.set(".github", write("org.yml", world.org));
  if (world.base !== undefined) copies.set("base", write("base.yml", world.base));
  const stdout = new PassThrough();
  const chunks: Buffer[] = [];
  stdout.on("data", (c: Buffer) => chunks.push(c));
  const code = await policyCheck(
    join(dir, "checkout"),
    true,
    { stdout, stderr: new PassThrough() },
    { extends: copies },
  );
  const report = JSON.parse(Buffer.concat(chunks).toString("utf8")) as {
    resources: { name: string; path: string; scopes: Record<string, string[]> }[];
    errors: { file: string; line: number | null; message: string }[];
  };
  return {
    code,
    resources: report.resources.map(({ name, path, scopes }) => ({ name, path, scopes })),
    errors: report.errors.map(
      (e) => `${e.file}${e.line === null ? "" : `:${e.line}`}: ${e.message}`,
    ),
  };
}

function resourcesOf(policy: Policy) {
  return [...policy.resources.values()].map((r) => ({
    name: r.name,
    path: r.path,
    scopes: Object.fromEntries(
      [...r.scopes].map(([s, patterns]) => [s, patterns.map((p) => p.text)]),
    ),
  }));
}

/** Both verdicts, which must agree. */
async function bothWays(world: World) {
  const rules = await serverRules(world);
  const offline = await checkedOffline(world);
  if (rules.policy === null) throw new Error("the server found no policy");
  const server = rules.policy.ok
    ? { ok: true, resources: resourcesOf(rules.policy.policy), errors: [] as string[] }
    : { ok: false, resources: [], errors: rules.policy.errors.map(formatPolicyError) };
  expect(offline).toEqual({
    code: server.ok ? 0 : 1,
    resources: server.resources,
    errors: server.errors,
  });
  return { rules, server };
}

describe("the server and policy check read a policy the same way", () => {
  it.each<[string, World, string[]]>([
    [
      "YAML aliases",
      { policy: `x: &label hallpass\nlabel: *label\n${RESOURCES}` },
      [".github/hallpass.yml:2: YAML aliases (*name) are not allowed: write each value out"],
    ],
    [
      "an alias in the organization's file",
      { policy: `_extends: .github\n${RESOURCES}`, org: "x: &a access\nlabel: *a\n" },
      [
        ".github:.github/hallpass.yml:2: YAML aliases (*name) are not allowed: write each value out",
      ],
    ],
    [
      "a file over the character cap",
      { policy: `# ${"x".repeat(300_000)}\n${RESOURCES}` },
      [".github/hallpass.yml: file is larger than 262,144 characters"],
    ],
    [
      "a file too large to read",
      { policy: `# ${"x".repeat(POLICY_READ_LIMIT)}\n${RESOURCES}` },
      [
        `.github/hallpass.yml: file is ${(POLICY_READ_LIMIT + 3 + RESOURCES.length).toLocaleString("en-US")} bytes, too large to be a policy`,
      ],
    ],
    [
      "a syntax error",
      { policy: `${RESOURCES}    default_ttl: [1h\n` },
      [expect.stringMatching(/^\.github\/hallpass\.yml:\d+: YAML: /) as unknown as string],
    ],
    [
      "a bad key in the organization's file, by its name and line",
      { policy: `_extends: .github\n${RESOURCES}`, org: "# shared\nlabel: access\nlable: x\n" },
      ['.github:.github/hallpass.yml:3: lable: unknown key "lable" (did you mean label?)'],
    ],
    [
      "a cycle",
      {
        policy: `_extends: .github\n${RESOURCES}`,
        org: "_extends: base\n",
        base: "label: access\n_extends: .github\n",
      },
      [
        "base:.github/hallpass.yml:2: _extends: .github:.github/hallpass.yml is already in the chain " +
          "(.github/hallpass.yml → .github:.github/hallpass.yml → base:.github/hallpass.yml → " +
          ".github:.github/hallpass.yml): a cycle",
      ],
    ],
    [
      "a bad _extends",
      { policy: `${RESOURCES}_extends: "base:../secrets.yml"\n` },
      [
        ".github/hallpass.yml:6: _extends: the path must not start with / nor have empty, . or .. segments",
      ],
    ],
    [
      "an organization's policy without resources",
      { org: "label: access\n" },
      [".github:.github/hallpass.yml:1: resources: is required"],
    ],
  ])("%s: the same errors", async (_, world, errors) => {
    const { server } = await bothWays(world);
    expect(server.errors).toEqual(errors);
  });

  it("_extends from the organization's .github: its keys fill in, the repository's win", async () => {
    const { rules } = await bothWays({
      policy: `_extends: .github\n${RESOURCES}`,
      org: `label: access\n${RESOURCES.replace("read", "write")}`,
    });
    expect(rules.policy?.ok && rules.policy.policy.label).toBe("access");
    expect(
      rules.policy?.ok && [...rules.policy.policy.resources.get("payments-api")!.scopes.keys()],
    ).toEqual(["read"]);
    expect(rules.policyFiles).toEqual([
      { repo: `acme/${last.name}`, path: ".github/hallpass.yml", sha: rules.sha },
      { repo: "acme/.github", path: ".github/hallpass.yml", sha: sim.branchHead("acme/.github") },
    ]);
  });

  it("falls back to the organization's .github when the repository has no policy", async () => {
    const { rules } = await bothWays({
      org: `_extends: base\n${RESOURCES}`,
      base: "label: access\n",
    });
    expect(rules.policy?.ok && rules.policy.policy.label).toBe("access");
    expect(rules.policyFiles.map((f) => [f.repo, f.sha])).toEqual([
      ["acme/.github", sim.branchHead("acme/.github")],
      ["acme/base", sim.branchHead("acme/base")],
    ]);
  });

  it("refuses an _extends naming a file that does not exist; policy check says it cannot know", async () => {
    const world = { policy: `_extends: base\n${RESOURCES}` };
    const rules = await serverRules(world);
    expect(rules.policy?.ok === false && rules.policy.errors.map(formatPolicyError)).toEqual([
      ".github/hallpass.yml:1: _extends: base:.github/hallpass.yml does not exist (or hallpass cannot read it)",
    ]);
    expect((await checkedOffline(world)).errors).toEqual([
      ".github/hallpass.yml:1: _extends: policy check cannot read base:.github/hallpass.yml offline, so the merged policy is not checked",
    ]);
  });

  it("has no policy when neither the repository nor its organization has one", async () => {
    const rules = await serverRules({});
    expect(rules).toMatchObject({ policy: null, policyFiles: [] });
  });
});

describe("the rules cache", () => {
  it("is keyed on every commit the rules were read from: an organization's change is seen", async () => {
    const first = await serverRules({
      policy: `_extends: .github\n${RESOURCES}`,
      org: "label: one\n",
    });
    const repo = `acme/${last.name}`;
    const load = last.reload;
    expect(first.policy?.ok && first.policy.policy.label).toBe("one");

    sim.clearRequests();
    expect(await load()).toBe(first);
    // The branch heads only; no file read again.
    expect(sim.requests().map((r) => `${r.method} ${r.path}`)).toEqual([
      `GET /repos/${repo}/branches/main`,
      "GET /repos/acme/.github",
      "GET /repos/acme/.github/branches/main",
    ]);

    sim.commit("acme/.github", { files: { ".github/hallpass.yml": "label: two\n" } });
    const second = await load();
    expect(second.policy?.ok && second.policy.policy.label).toBe("two");
    expect(second.sha).toBe(first.sha);
    expect(second.policyFiles[1]).toEqual({
      repo: "acme/.github",
      path: ".github/hallpass.yml",
      sha: sim.branchHead("acme/.github"),
    });
    expect(await load()).toBe(second);
  });

  it("sees an organization's policy appear for a repository that has none", async () => {
    const none = await serverRules({});
    expect(none.policy).toBeNull();
    sim.commit("acme/.github", { files: { ".github/hallpass.yml": `label: org\n${RESOURCES}` } });
    const rules = await last.reload();
    expect(rules.policy?.ok && rules.policy.policy.label).toBe("org");
  });
});

describe("a ticket under an organization's policy", () => {
  let h: Hallpass;
  beforeAll(async () => {
    h = await startHallpass({
      operatorYaml,
      seed: (s) => {
        const org = s.addOrg("acme", { members: ["alice", "bob"] });
        s.addTeam("acme", "sre", { members: [] });
        s.addTeam("acme", "oncall", { members: [] });
        s.addRepo("acme/.github", { files: { ".github/hallpass.yml": POLICY } });
        s.addRepo("acme/base", { files: { ".github/hallpass.yml": "_extends: .github\n" } });
        const repo = s.addRepo("acme/payments", {
          files: { CODEOWNERS: "/services/payments/ @bob\n", "services/payments/api.ts": "" },
        });
        for (const login of ["alice", "bob"]) s.setPermission("acme/payments", login, "write");
        s.addInstallation("acme");
        return { repoId: repo.id, ownerId: org.user.id };
      },
    });
  });
  afterAll(() => h.stop());

  it("is granted by the organization's fallback policy, then refused once the chain loops", async () => {
    const issue = h.sim.openIssue("acme/payments", {
      author: "alice",
      body: requestBody(),
      labels: ["hallpass"],
    });
    await h.deliver(issuesEvent(h.sim, "opened", issue));
    const approval = h.sim.comment("acme/payments", issue.number, {
      author: "bob",
      body: "/approve",
    });
    await h.deliver(issueCommentEvent(h.sim, "created", approval));
    const [grant] = await h.grants(issue.number);
    expect(grant).toMatchObject({ state: "active", approvers: ["bob"] });

    h.sim.commit("acme/.github", {
      files: { ".github/hallpass.yml": `_extends: base\n${POLICY}` },
    });
    const next = h.sim.openIssue("acme/payments", {
      author: "alice",
      body: requestBody(),
      labels: ["hallpass"],
    });
    await h.deliver(issuesEvent(h.sim, "opened", next));
    expect(await h.grants(next.number)).toEqual([]);
    const notices = (await h.effects(next.number)).map((e) => e.notice);
    expect(notices.map((n) => n.kind)).toEqual(["request_invalid"]);
    expect(JSON.stringify(notices[0]?.problems)).toContain(
      "_extends: .github:.github/hallpass.yml is already in the chain",
    );
  });
});
