import { existsSync } from "node:fs";
import { lstat, mkdir, readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import { basename, dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import type { Output } from "#src/cli/audit.js";
import { HallpassError } from "#src/errors.js";
import { formatDuration } from "#src/rules/duration.js";
import { REPOSITORY_NAME } from "#src/rules/operator.js";
import { POLICY_FILE, type Policy, parsePolicyYaml, RESOURCE_NAME } from "#src/rules/policy.js";
import { MIN_REASON_CHARS } from "#src/rules/request.js";

export const INIT_USAGE = `usage: hallpass init [--repo DIR] [--resource NAME] [--force]

  Sets a repository up as the home of a production API: writes a commented
  policy (${POLICY_FILE}), the issue form people ask for access with
  (.github/ISSUE_TEMPLATE/hallpass.yml) and the workflow that checks policy
  changes on pull requests (.github/workflows/hallpass-policy-check.yml),
  then prints what is left to do: the label, CODEOWNERS, and the binding
  the operator of your hallpass server adds. Nothing is sent anywhere.

  --repo DIR        the repository's checkout (default: .)
  --resource NAME   the API's resource name (default: the directory's name
                    with -api, e.g. payments-api for payments); lower case
                    letters, digits and -, starting with a letter
  --force           replace files that exist; without it, init writes nothing
                    when any of them exists, and names them
`;

/** The files `init` writes, relative to the repository. */
export const INIT_FILES = {
  policy: POLICY_FILE,
  issueForm: ".github/ISSUE_TEMPLATE/hallpass.yml",
  workflow: ".github/workflows/hallpass-policy-check.yml",
} as const;

/** The policy workflow hallpass ships, relative to its own checkout. */
const SHIPPED_WORKFLOW = "action/workflows/hallpass-policy-check.yml";

export interface InitOptions {
  readonly repo: string;
  readonly resource?: string | undefined;
  readonly force: boolean;
}

/**
 * `hallpass init`.
 *
 * 1. Name the resource (`--resource`, else from the directory's name).
 * 2. Compose the three files: the policy skeleton, the issue form made from
 *    that policy as parsed (its label, resources and scopes), and the
 *    shipped policy workflow as it is.
 * 3. If any of them exists and `--force` is not given, write none and name
 *    them all; else write them (replacing a file, never writing through a
 *    symbolic link).
 * 4. Print the next steps, with `origin`'s owner/repo when `.git/config` has it.
 *
 * @returns 0 written; 1 when files exist (nothing written)
 * @throws BAD_REQUEST (exit 2) for a bad directory or resource name, or a
 *   path init cannot write (a folder that is a link or a file)
 */
export async function initCommand(options: InitOptions, out: Output): Promise<number> {
  const dir = options.repo;
  const info = await stat(dir).catch(() => null);
  if (!info?.isDirectory())
    throw new HallpassError("BAD_REQUEST", `--repo: ${dir} is not a directory`);
  const resource = options.resource ?? defaultResourceName(basename(resolve(dir)));
  if (resource === null) {
    throw new HallpassError(
      "BAD_REQUEST",
      `cannot make a resource name of the directory's name ${JSON.stringify(basename(resolve(dir)))}; pass --resource NAME`,
    );
  }
  if (!RESOURCE_NAME.test(resource)) {
    throw new HallpassError(
      "BAD_REQUEST",
      `--resource: ${JSON.stringify(resource)} is not a resource name: lower case letters, digits and -, starting with a letter (at most 63)`,
    );
  }

  const policyText = policySkeleton(resource);
  const parsed = parsePolicyYaml(policyText);
  if (!parsed.ok)
    throw new Error(`init: the policy skeleton does not parse: ${parsed.errors[0]?.message}`);
  const files: [string, string][] = [
    [INIT_FILES.policy, policyText],
    [INIT_FILES.issueForm, issueForm(parsed.policy)],
    [INIT_FILES.workflow, await shippedWorkflow()],
  ];

  const existing: string[] = [];
  const blocked = new Map<string, string>();
  for (const [path] of files) {
    const target = await lstat(join(dir, path)).catch(() => null);
    if (target?.isDirectory()) blocked.set(path, `${path} is a directory`);
    else if (target) existing.push(path);
    // Every folder on the way must be a real one: never write through a link.
    for (let up = dirname(path); up !== "."; up = dirname(up)) {
      const folder = await lstat(join(dir, up)).catch(() => null);
      if (folder && !folder.isDirectory()) {
        blocked.set(
          up,
          `${up} must be a directory${folder.isSymbolicLink() ? ", not a link" : ""}`,
        );
      }
    }
  }
  if (blocked.size > 0) {
    throw new HallpassError("BAD_REQUEST", `nothing written: ${[...blocked.values()].join("; ")}`);
  }
  if (existing.length > 0 && !options.force) {
    out.stderr.write(
      `hallpass init: nothing written; these files exist: ${existing.join(", ")} (--force replaces them)\n`,
    );
    return 1;
  }
  for (const [path, text] of files) await writeNew(join(dir, path), text, options.force);

  out.stdout.write(nextSteps(parsed.policy, dir, await originOf(dir)));
  return 0;
}

/**
 * `payments` → `payments-api`; `payments-api` stays. Lower-cased, runs of
 * other characters become `-`, leading non-letters dropped; `null` when
 * nothing is left.
 */
export function defaultResourceName(directory: string): string | null {
  const base = directory
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, "-")
    .replace(/^[^a-z]+/, "")
    .replace(/-+$/, "");
  if (base === "") return null;
  const name = base === "api" || base.endsWith("-api") ? base : `${base}-api`;
  if (RESOURCE_NAME.test(name)) return name;
  const short = `${base.slice(0, 59).replace(/-+$/, "")}-api`;
  return RESOURCE_NAME.test(short) ? short : null;
}

/** The commented policy `init` writes: one resource, one read scope, everything else shown as a comment. */
export function policySkeleton(resource: string): string {
  return `# hallpass policy: who may get short-lived access to ${resource}, and on what terms.
# hallpass reads this file from the default branch only. Check a change with
#   hallpass policy check --repo .
# Unknown keys are errors. Durations: 45s, 30m, 1h30m, 2h, 1d.

# The label that marks an issue or pull request as an access request.
label: hallpass

resources:
  # The name the operator of your hallpass server binds to this repository.
  ${resource}:
    # The code owners of this path (CODEOWNERS of the default branch) approve
    # requests. / is the whole repository; narrow it to the API's code, e.g.
    # services/payments/, so that its owners decide.
    path: /

    # Scope name -> "METHOD /path" patterns: * is one path segment, ** any
    # number. Each must lie within a ceiling the operator sets for ${resource}.
    # Keep the scope names in step with .github/ISSUE_TEMPLATE/hallpass.yml.
    scopes:
      read: ["GET /**"]
      # write: ["POST /v1/**", "PUT /v1/**"]

    default_ttl: 1h       # a request that names no duration
    max_ttl: 4h           # the longest grant (the operator's ceiling caps it)
    approvals: 1          # distinct code owners, never the requester
    # token_ttl: 15m      # each token minted for a grant
    # request_ttl: 24h    # a request nobody approves in time is closed as stale
    # rate_limit: 20/s    # the proxy's limit per grant

    # Requests that need no human, within these bounds:
    # auto_approve:
    #   - scopes: [read]
    #     max_ttl: 30m
    #     requesters: ["@your-org/sre"]
    #     quota: 5/7d     # per requester; past it, a code owner approves

    # Immediate short access with /break-glass, approved afterwards:
    # break_glass:
    #   requesters: ["@your-org/oncall"]
    #   max_ttl: 30m
    #   review_within: 24h

    # What a CI run must be to use a grant (the companion Action):
    # actions:
    #   environments: [production]
    #   job_workflow_refs: ["your-org/your-repo/.github/workflows/ops.yml@refs/heads/main"]
    #   runner_environment: github-hosted
`;
}

/**
 * The issue form for a policy: a dropdown of its resources, a checkbox per
 * scope, duration, reason and an optional start, labelled with its label.
 * GitHub renders the answers as the `### Resource` ... sections the request
 * parser reads (`extractFields`).
 */
export function issueForm(policy: Policy): string {
  const q = (text: string): string => JSON.stringify(text);
  const resources = [...policy.resources.values()];
  const scopes = [...new Set(resources.flatMap((r) => [...r.scopes.keys()]))];
  const scopeHelp = resources
    .map(
      (r) =>
        `${r.name}: ${[...r.scopes].map(([s, p]) => `${s} (${p.map((x) => x.text).join(", ")})`).join("; ")}`,
    )
    .join(". ");
  const ttlHelp = resources
    .map((r) => `${r.name} ${formatDuration(r.defaultTtl)}, at most ${formatDuration(r.maxTtl)}`)
    .join("; ");
  return `# hallpass access request. Made by hallpass init from .github/hallpass.yml:
# keep the resource and scope options in step with that file. The headings
# (Resource, Scopes, Duration, Reason, Start) are what hallpass reads.
name: Production access
description: Ask for short-lived access to a production API, approved by its code owners
title: "Access: "
labels: [${q(policy.label)}]
body:
  - type: markdown
    attributes:
      value: ${q("Code owners approve with `/approve`. Access ends when this issue is closed, on `/done`, or when the time is up.")}
  - type: dropdown
    id: resource
    attributes:
      label: Resource
      options: [${resources.map((r) => q(r.name)).join(", ")}]
      default: 0
    validations:
      required: true
  - type: checkboxes
    id: scopes
    attributes:
      label: Scopes
      description: ${q(`The narrowest that will do. ${scopeHelp}`)}
      options:
${scopes.map((s) => `        - label: ${q(s)}`).join("\n")}
  - type: input
    id: duration
    attributes:
      label: Duration
      description: ${q(`How long, e.g. 30m or 2h. Empty: the default (${ttlHelp}).`)}
      placeholder: 1h
  - type: textarea
    id: reason
    attributes:
      label: Reason
      description: ${q(`Why you need access; link the incident or ticket. At least ${MIN_REASON_CHARS} characters.`)}
    validations:
      required: true
  - type: input
    id: start
    attributes:
      label: Start
      description: "Optional: a later start, in UTC, such as 2030-01-31T09:00Z. Empty: as soon as approved."
`;
}

/** The shipped policy workflow: found beside this copy of hallpass (its source, or its build in dist/). */
async function shippedWorkflow(): Promise<string> {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const candidate = join(dir, SHIPPED_WORKFLOW);
    if (existsSync(candidate)) return readFile(candidate, "utf8");
    const parent = dirname(dir);
    if (existsSync(join(dir, "package.json")) || parent === dir) {
      throw new HallpassError(
        "NOT_FOUND",
        `${SHIPPED_WORKFLOW} is missing from this copy of hallpass; run init from a checkout of hallpass`,
      );
    }
    dir = parent;
  }
}

/** Writes a new file; with `replace`, over an existing one (renamed into place, so a symbolic link is replaced, not followed). */
async function writeNew(path: string, text: string, replace: boolean): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  if (!replace) {
    await writeFile(path, text, { flag: "wx" });
    return;
  }
  const temporary = `${path}.${process.pid}.tmp`;
  await writeFile(temporary, text, { flag: "wx" });
  try {
    await rename(temporary, path);
  } catch (error) {
    await rm(temporary, { force: true });
    throw new HallpassError("BAD_REQUEST", `cannot replace ${path}`, { cause: error });
  }
}

/** The GitHub repository of the checkout's `origin` remote. */
export interface Origin {
  readonly host: string;
  /** `owner/repo` */
  readonly fullName: string;
}

/**
 * `origin`'s host and owner/repo, read from `.git/config` (no git command is
 * run); `null` when the checkout has none that reads as a GitHub repository.
 */
export async function originOf(dir: string): Promise<Origin | null> {
  const text = await readFile(join(dir, ".git", "config"), "utf8").catch(() => null);
  if (text === null) return null;
  let inOrigin = false;
  for (const line of text.split(/\r?\n/)) {
    const section = /^\s*\[\s*([^\]]+?)\s*\]/.exec(line);
    if (section) {
      inOrigin = /^remote\s+"origin"$/.test(section[1] ?? "");
      continue;
    }
    const url = inOrigin ? /^\s*url\s*=\s*(\S+)\s*$/.exec(line)?.[1] : undefined;
    if (url !== undefined) return parseRemote(url);
  }
  return null;
}

/** `git@host:owner/repo.git`, `https://host/owner/repo`, `ssh://git@host/owner/repo.git`. */
export function parseRemote(url: string): Origin | null {
  const scp = /^[\w.-]+@([\w.-]+):\/?([^/]+\/[^/]+?)(?:\.git)?\/?$/.exec(url);
  let host: string | undefined;
  let fullName: string | undefined;
  if (scp) {
    [, host, fullName] = scp;
  } else {
    try {
      const parsed = new URL(url);
      host = parsed.hostname;
      fullName = parsed.pathname.replace(/^\/+|\/+$/g, "").replace(/\.git$/, "");
    } catch {
      return null;
    }
  }
  if (!host || !fullName || !REPOSITORY_NAME.test(fullName)) return null;
  return { host, fullName };
}

/** What is left to do after `init`, with the commands for it. */
export function nextSteps(policy: Policy, dir: string, origin: Origin | null): string {
  const repo = origin?.fullName ?? "OWNER/REPO";
  const host = origin && origin.host !== "github.com" ? ` --hostname ${origin.host}` : "";
  const ghRepo = origin
    ? ` --repo ${origin.host === "github.com" ? "" : `${origin.host}/`}${repo}`
    : "";
  const shown = shellWord(dir);
  const resources = [...policy.resources.values()];
  const paths = [...new Set(resources.map((r) => r.path))]
    .map((p) => (p === "/" ? "the whole repository (path /)" : `${p} (the policy's path)`))
    .join(", ");
  const binding = resources.flatMap((r) => [
    `       ${r.name}:`,
    "         repository:",
    "           id: REPO_ID",
    "           owner_id: OWNER_ID",
    `           name: ${repo}`,
    `         max_ttl: ${formatDuration(r.maxTtl)}`,
    `         scopes: [${[...r.scopes.values()]
      .flat()
      .map((p) => JSON.stringify(p.text))
      .join(", ")}]`,
  ]);
  const written = Object.values(INIT_FILES);
  return [
    "hallpass init wrote:",
    ...written.map((path) => `  ${path}`),
    "",
    "Next steps:",
    "",
    "1. Create the label the issue form applies; hallpass reads requests by it:",
    `     gh label create ${shellWord(policy.label)}${ghRepo} --description "Access request (hallpass)"`,
    "",
    `2. Have CODEOWNERS name who approves ${paths}, then check the policy:`,
    `     hallpass policy check --repo ${shown}`,
    "",
    `3. In ${INIT_FILES.workflow}, set HALLPASS_REPO and HALLPASS_REF`,
    "   to where your organization keeps hallpass.",
    "",
    `4. Ask the operator of your hallpass server to bind ${resources.map((r) => r.name).join(", ")} to this`,
    "   repository. Their config (HALLPASS_CONFIG) needs this, with REPO_ID and",
    `   OWNER_ID the two numbers of${origin ? "" : " (OWNER/REPO: the repository on GitHub)"}`,
    `     gh api${host} repos/${repo} --jq '.id, .owner.id'`,
    "",
    "     resources:",
    ...binding,
    "",
    "   Then check the policy against their config:",
    `     hallpass policy check --repo ${shown} --config FILE --repo-id REPO_ID --owner-id OWNER_ID`,
    "",
    "5. Merge to the default branch: hallpass reads the policy and CODEOWNERS there only.",
    "",
  ].join("\n");
}

/** A word as a POSIX shell reads it: plain when safe, else single-quoted. */
function shellWord(text: string): string {
  return /^[\w./@%+=:,-]+$/.test(text) ? text : `'${text.replace(/'/g, "'\\''")}'`;
}
