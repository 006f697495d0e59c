import { readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import type { Output } from "#src/cli/audit.js";
import { HallpassError } from "#src/errors.js";
import type { RepositoryIdentity } from "#src/rules/bind.js";
import {
  CODEOWNERS_MAX_BYTES,
  CODEOWNERS_PATHS,
  type CodeownersFile,
  type CodeownersPath,
  selectCodeowners,
} from "#src/rules/codeowners.js";
import { formatDuration } from "#src/rules/duration.js";
import {
  OPERATOR_MAX_CHARS,
  type OperatorConfigResult,
  parseOperatorYaml,
} from "#src/rules/operator.js";
import { POLICY_FILE } from "#src/rules/policy.js";
import {
  type BindingUsed,
  type CheckError,
  type CheckedResource,
  checkPolicy,
  type OperatorCheck,
  type PolicyCheckReport,
  policyCheckJson,
} from "#src/rules/policy-check.js";
import {
  HOME_POLICY,
  loadPolicy,
  POLICY_READ_LIMIT,
  type PolicySource,
  type PolicyText,
  parseExtends,
} from "#src/rules/policy-load.js";

export const POLICY_CHECK_USAGE = `usage: hallpass policy check [--repo DIR] [--config FILE [--repo-id N --owner-id N]] [--json]

  Checks .github/hallpass.yml and CODEOWNERS of a checkout with the server's
  own loader, offline, and prints what each resource grants and who approves.
  Errors are printed as file:line: message; exit 1 on any.

  --repo DIR       the checkout (default: .)
  --config FILE    also bind the policy as the server would, with the operator's
                   config (HALLPASS_CONFIG): each resource bound to this
                   repository, its max_ttl and scopes within the ceilings
  --repo-id N      with --config: the repository's id and its owner's id
  --owner-id N     (gh api repos/OWNER/REPO --jq '.id, .owner.id'); without
                   them, the ids the operator bound the policy's first
                   configured resource to, which the report names
  --json           the report as one JSON object
`;

export interface PolicyCheckOptions {
  /**
   * Local copies of files in other repositories, by the reference
   * `_extends` writes (`.github`, `acme/base:policies/hallpass.yml`); the
   * organization's policy, read when the checkout has none, is `.github`.
   * A file not given cannot be read offline: the check says so and fails.
   */
  readonly extends?: ReadonlyMap<string, string>;
  /** The operator's config file, to bind the policy against. */
  readonly operatorConfig?: string;
  /** The repository's ids, with `operatorConfig`; default: see `BindingUsed`. */
  readonly repository?: RepositoryIdentity;
}

/**
 * `hallpass policy check`: reads `.github/hallpass.yml` and CODEOWNERS
 * (GitHub's search order) from a checkout and prints what the policy grants
 * and who approves. No server or network: the policy goes through the
 * server's loader, and a file it would read from another repository
 * (`_extends`, the organization's `.github`) is an error unless given in
 * `options.extends`. With `options.operatorConfig`, the policy is also bound
 * against the operator's ceilings, as the server binds it.
 *
 * @returns 0 when there is no error, 1 otherwise
 */
export async function policyCheck(
  repo: string,
  json: boolean,
  out: Output,
  options: PolicyCheckOptions = {},
): Promise<number> {
  const dir = await stat(repo).catch(() => null);
  if (!dir?.isDirectory())
    throw new HallpassError("BAD_REQUEST", `--repo: ${repo} is not a directory`);
  const operator =
    options.operatorConfig === undefined
      ? undefined
      : await readOperator(options.operatorConfig, options.repository ?? null);
  const loaded = await loadPolicy(checkoutSource(repo, options.extends ?? new Map()));
  const files = new Map<CodeownersPath, CodeownersFile>();
  for (const path of CODEOWNERS_PATHS) {
    const text = await readText(join(repo, path), CODEOWNERS_MAX_BYTES);
    files.set(path, typeof text === "number" ? { tooLarge: true, bytes: text } : text);
  }
  const report = checkPolicy(
    loaded,
    selectCodeowners((path) => files.get(path) ?? null),
    operator,
  );
  if (json) {
    out.stdout.write(`${JSON.stringify(policyCheckJson(report))}\n`);
  } else {
    out.stdout.write(render(report));
    for (const e of report.errors) out.stderr.write(formatCheckError(e));
  }
  return report.errors.length === 0 ? 0 : 1;
}

/**
 * `file:line: message`, the form the policy workflow's problem matcher
 * annotates, then a YAML error's excerpt, indented (which it does not).
 */
export function formatCheckError(e: CheckError): string {
  const head = `${e.file}${e.line === null ? "" : `:${e.line}`}: ${e.message}\n`;
  if (e.excerpt === undefined) return head;
  return `${head}${e.excerpt
    .split("\n")
    .map((l) => `    ${l}\n`)
    .join("")}`;
}

async function readOperator(
  file: string,
  repository: RepositoryIdentity | null,
): Promise<OperatorCheck> {
  const text = await readText(file, OPERATOR_MAX_CHARS * 4);
  if (text === null) throw new HallpassError("BAD_REQUEST", `--config: ${file} is not a file`);
  const result: OperatorConfigResult =
    typeof text === "number"
      ? {
          ok: false,
          errors: [{ file, line: null, path: "", message: `file is ${text} bytes, too large` }],
        }
      : parseOperatorYaml(text, file);
  return { file, result, repository };
}

/** The checkout's own policy file, and the given copies of other repositories' files. */
function checkoutSource(repo: string, given: ReadonlyMap<string, string>): PolicySource {
  const copies = new Map<string, string>();
  for (const [ref, path] of given) {
    const parsed = parseExtends(ref, HOME_POLICY);
    if (!parsed.ok) throw new HallpassError("BAD_REQUEST", `extends ${ref}: ${parsed.message}`);
    copies.set(parsed.target.file, path);
  }
  const asPolicyText = (text: string | number): PolicyText =>
    typeof text === "number" ? { tooLarge: true, bytes: text } : text;
  return {
    orgFallback: true,
    async read(target) {
      if (target === HOME_POLICY) {
        const text = await readText(join(repo, POLICY_FILE), POLICY_READ_LIMIT);
        return text === null ? null : asPolicyText(text);
      }
      const copy = copies.get(target.file);
      if (copy === undefined) return "offline";
      const text = await readText(copy, POLICY_READ_LIMIT);
      if (text === null) {
        throw new HallpassError("BAD_REQUEST", `extends ${target.file}: ${copy} is not a file`);
      }
      return asPolicyText(text);
    },
  };
}

/** The file's text; `null` when absent; its size when it is `limit` bytes or more. */
async function readText(path: string, limit: number): Promise<string | number | null> {
  try {
    const info = await stat(path);
    if (!info.isFile()) return null;
    if (info.size >= limit) return info.size;
    return await readFile(path, "utf8");
  } catch (error) {
    const code = (error as { code?: string }).code;
    if (code === "ENOENT" || code === "ENOTDIR") return null;
    throw new HallpassError("BAD_REQUEST", `cannot read ${path} (${code})`, { cause: error });
  }
}

function render(report: PolicyCheckReport): string {
  const lines: string[] = [];
  if (report.label !== null) lines.push(`label: ${report.label}`);
  if (report.binding !== null) lines.push(describeBinding(report.binding));
  if (lines.length > 0) lines.push("");
  for (const r of report.resources) lines.push(...describe(r, report.codeownersFile), "");
  for (const w of report.warnings) lines.push(`warning: ${w}`);
  const n = report.errors.length;
  lines.push(n === 0 ? "policy OK" : `${n} error${n === 1 ? "" : "s"}`);
  return `${lines.join("\n")}\n`;
}

function describe(r: CheckedResource, codeownersFile: string | null): string[] {
  const { policy: p, ownership } = r;
  const d = formatDuration;
  const who =
    ownership.status === "owned"
      ? `${r.approvers.join(" ") || "none"} (${codeownersFile} line ${ownership.line})`
      : ownership.status;
  const lines = [
    `${p.name}  (path ${p.path})`,
    `  approvers: ${who}; ${p.approvals} approval${p.approvals === 1 ? "" : "s"} needed`,
  ];
  if (r.emailOwners.length > 0) {
    lines.push(`  e-mail owners cannot approve: ${r.emailOwners.join(" ")}`);
  }
  lines.push("  scopes:");
  for (const [name, patterns] of p.scopes) {
    lines.push(`    ${name}: ${patterns.map((x) => x.text).join(", ")}`);
  }
  lines.push(
    `  ttl: default ${d(p.defaultTtl)}, max ${d(p.maxTtl)}, token ${d(p.tokenTtl)}, ` +
      `stale after ${d(p.requestTtl)}`,
  );
  for (const rule of p.autoApprove) {
    lines.push(
      `  auto-approve: ${rule.scopes.join(", ")} up to ${d(rule.maxTtl)} for ` +
        `${rule.requesters.map((x) => x.text).join(" ")}` +
        (rule.quota ? `, ${rule.quota.count} per ${d(rule.quota.windowSeconds)} each` : ""),
    );
  }
  if (p.breakGlass) {
    lines.push(
      `  break-glass: ${p.breakGlass.requesters.map((x) => x.text).join(" ")} up to ` +
        `${d(p.breakGlass.maxTtl)}, review within ${d(p.breakGlass.reviewWithin)}`,
    );
  }
  if (p.rateLimit) {
    lines.push(`  rate limit: ${p.rateLimit.count}/${p.rateLimit.perSeconds === 1 ? "s" : "m"}`);
  }
  const a = p.actions;
  lines.push(
    `  actions: environments ${a.environments?.join(", ") ?? "any"}; ` +
      `workflows ${a.jobWorkflowRefs?.join(", ") ?? "any"}; ` +
      `runners ${a.runnerEnvironment ?? "any"}; forks ${a.allowForks ? "yes" : "no"}; ` +
      `pull_request_target ${a.allowPullRequestTarget ? "yes" : "no"}`,
  );
  if (p.actions.people)
    lines.push("  people: tokens also for pull request tickets and actions rules");
  if (r.operator !== undefined) lines.push(describeOperator(r.operator));
  return lines;
}

function describeBinding(b: BindingUsed): string {
  const { id, ownerId, fullName } = b.repository;
  const ids = `repository id ${id}, owner id ${ownerId}`;
  switch (b.source.kind) {
    case "given":
      return `operator config ${b.file}, as ${ids} (from --repo-id and --owner-id)`;
    case "operator":
      return (
        `operator config ${b.file}, as ${fullName ?? "the repository"} (${ids}): the ids the ` +
        `operator bound ${b.source.resource} to; pass --repo-id and --owner-id to check the real repository's`
      );
    case "none":
      return `operator config ${b.file}: it configures none of this policy's resources`;
  }
}

function describeOperator(o: NonNullable<CheckedResource["operator"]>): string {
  const c = o.configured;
  if (c === null) return "  operator: not configured (see errors)";
  const ceiling =
    `ceilings max_ttl ${formatDuration(c.maxTtl)}, scopes ` +
    c.scopes.map((x) => x.text).join(", ");
  return o.bound === null
    ? `  operator: bound to ${c.repository.name}; ${ceiling}; does not bind (see errors)`
    : `  operator: bound to ${c.repository.name}; ${ceiling}; grants up to ${formatDuration(o.bound.maxTtl)}`;
}
