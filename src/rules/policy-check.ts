import {
  type BindError,
  type BoundResource,
  bindPolicy,
  type RepositoryIdentity,
} from "#src/rules/bind.js";
import {
  CODEOWNERS_PATHS,
  type Codeowners,
  type Ownership,
  ownersOf,
} from "#src/rules/codeowners.js";
import type {
  OperatorConfig,
  OperatorConfigResult,
  OperatorResource,
} from "#src/rules/operator.js";
import { POLICY_FILE, type Policy, type ResourcePolicy } from "#src/rules/policy.js";
import type { LoadedPolicy } from "#src/rules/policy-load.js";
import { parsePath, type SourceError } from "#src/rules/yaml-source.js";

/**
 * `hallpass policy check`, without the filesystem: a repository's policy and
 * CODEOWNERS checked together, as the server would read them from the
 * default branch (the policy through the server's own loader, `loadPolicy`),
 * with no server or network. Given the operator's config, the policy is also
 * bound as the server binds it (`bindPolicy`: the resource bound to this
 * repository by id, within its ceilings); without it, those checks are left
 * to the server, which reports them on tickets.
 */

export interface CheckedResource {
  readonly policy: ResourcePolicy;
  readonly ownership: Ownership;
  /** User and team owners of the path, as CODEOWNERS writes them, in its order. */
  readonly approvers: readonly string[];
  /** E-mail owners of the path: listed by CODEOWNERS, never able to approve. */
  readonly emailOwners: readonly string[];
  /**
   * With an operator config: the operator's resource of this name (`null`
   * when there is none), and the binding when it bound cleanly. `undefined`
   * without an operator config.
   */
  readonly operator?: {
    readonly configured: OperatorResource | null;
    readonly bound: BoundResource | null;
  };
}

export interface CheckError {
  readonly file: string;
  readonly line: number | null;
  readonly message: string;
  /** For a YAML syntax error: column and excerpt (see `SourceError`). */
  readonly column?: number;
  readonly excerpt?: string;
}

/** The operator config a policy is checked against, and the repository it is checked as. */
export interface OperatorCheck {
  /** How errors name the operator config. */
  readonly file: string;
  readonly result: OperatorConfigResult;
  /** The repository's ids as given (`--repo-id`, `--owner-id`); `null`: see {@link BindingUsed}. */
  readonly repository: RepositoryIdentity | null;
}

/** The repository identity the policy was bound as, and where it came from. */
export interface BindingUsed {
  readonly file: string;
  readonly repository: RepositoryIdentity;
  /**
   * `given`: the ids were passed in. `operator`: none were, so the ids are
   * those the operator bound `resource` to, the first of the policy's
   * resources it configures (which then binds by construction; the others
   * are checked against the same repository). `none`: the operator
   * configures none of the policy's resources.
   */
  readonly source:
    | { readonly kind: "given" }
    | { readonly kind: "operator"; readonly resource: string }
    | { readonly kind: "none" };
}

export interface PolicyCheckReport {
  /** `null` when the policy does not parse. */
  readonly label: string | null;
  /** Empty when the policy does not parse. */
  readonly resources: readonly CheckedResource[];
  readonly errors: readonly CheckError[];
  /** Not fatal: e.g. the operator configured the repository under another name. */
  readonly warnings: readonly string[];
  /** The CODEOWNERS file used, or `null` when there is none. */
  readonly codeownersFile: string | null;
  /** `null` without an operator config, or when it does not parse. */
  readonly binding: BindingUsed | null;
}

/**
 * Checks a loaded policy (`loadPolicy`, as the server reads it) against a
 * CODEOWNERS selection (`selectCodeowners`) and, when given, the operator's
 * config. Errors: policy errors, exactly as the server reports them,
 * CODEOWNERS lines GitHub skips, a missing or oversized CODEOWNERS, resource
 * paths that are unowned, blocked, or owned by too few people to ever reach
 * `approvals`; with `operator`, its own errors, and every resource the
 * server would not bind (not configured, bound to another repository, a
 * `max_ttl` or a scope pattern past the ceilings), at its line.
 */
export function checkPolicy(
  loaded: LoadedPolicy,
  codeowners: Codeowners,
  operator?: OperatorCheck,
): PolicyCheckReport {
  const errors: CheckError[] = [];
  const coFile = codeowners.path;
  if (!codeowners.found) {
    errors.push({
      file: "CODEOWNERS",
      line: null,
      message: `no CODEOWNERS file (looked for ${CODEOWNERS_PATHS.join(", ")}): nobody can approve`,
    });
  } else if (codeowners.tooLarge) {
    errors.push({
      file: coFile ?? "CODEOWNERS",
      line: null,
      message: "the file is 3 MB or larger: GitHub ignores it, so nothing can be approved",
    });
  }
  for (const skipped of codeowners.skipped) {
    errors.push({ file: coFile ?? "CODEOWNERS", line: skipped.line, message: skipped.reason });
  }

  if (operator !== undefined && !operator.result.ok) {
    errors.push(...operator.result.errors.map(toCheckError));
  }
  const failed = (policyErrors: CheckError[]): PolicyCheckReport => ({
    label: null,
    resources: [],
    errors: [...policyErrors, ...errors],
    warnings: [],
    codeownersFile: coFile,
    binding: null,
  });
  const parsed = loaded.result;
  if (parsed === null)
    return failed([{ file: POLICY_FILE, line: null, message: "no policy file" }]);
  if (!parsed.ok) return failed(parsed.errors.map(toCheckError));

  const placeOf = (name: string) => loaded.where(["resources", name, "path"]);
  const coName = coFile ?? "CODEOWNERS";
  const bind = operator?.result.ok ? bindAs(parsed.policy, operator.result.config, operator) : null;
  const resources: CheckedResource[] = [];
  for (const policy of parsed.policy.resources.values()) {
    const ownership = ownersOf(codeowners, policy.path);
    const owners = ownership.status === "owned" ? ownership.owners : [];
    const approvers = owners.filter((o) => o.kind !== "email").map((o) => o.text);
    const emailOwners = owners.filter((o) => o.kind === "email").map((o) => o.text);
    const checked = bind && {
      configured: bind.configured.get(policy.name) ?? null,
      bound: bind.result.resources.get(policy.name) ?? null,
    };
    resources.push({
      policy,
      ownership,
      approvers,
      emailOwners,
      ...(checked ? { operator: checked } : {}),
    });
    const fail = (message: string): void => {
      errors.push({
        ...placeOf(policy.name),
        message: `resources.${policy.name}.path: ${message}`,
      });
    };
    if (ownership.status === "blocked") {
      const lines =
        ownership.lines.length > 0 ? ` (${coName} line ${ownership.lines.join(", ")})` : "";
      fail(`${policy.path} is blocked: ${ownership.reason}${lines}; nothing can be approved`);
    } else if (ownership.status === "unowned") {
      fail(
        ownership.line === null
          ? `${policy.path} has no code owners${codeowners.found ? ` in ${coName}` : ""}; nobody can approve`
          : `${policy.path} has no code owners: ${coName} line ${ownership.line} names none; nobody can approve`,
      );
    } else if (approvers.length === 0) {
      fail(
        `${policy.path} is owned only by e-mail addresses (${coName} line ${ownership.line}), ` +
          "which cannot approve on GitHub",
      );
    } else if (owners.every((o) => o.kind !== "team") && approvers.length < policy.approvals) {
      fail(
        `approvals is ${policy.approvals} but ${policy.path} has only ${approvers.length} ` +
          `owner${approvers.length === 1 ? "" : "s"} (${coName} line ${ownership.line})`,
      );
    }
  }
  // In file order, as the policy's own errors are.
  const line = (e: CheckError): number => e.line ?? Number.MAX_SAFE_INTEGER;
  const unbound = (bind?.result.errors ?? []).map((e) => bindError(e, loaded));
  errors.push(...unbound.sort((a, b) => line(a) - line(b)));
  return {
    label: parsed.policy.label,
    resources,
    errors,
    warnings: bind ? [...bind.result.warnings] : [],
    codeownersFile: coFile,
    binding: bind?.used ?? null,
  };
}

/** Binds the policy as the repository given, or as the one the operator bound its first resource to. */
function bindAs(policy: Policy, config: OperatorConfig, check: OperatorCheck) {
  const configured = new Map(
    [...policy.resources.keys()].map((name) => [name, config.resources.get(name) ?? null]),
  );
  const first = [...configured.values()].find((r) => r !== null);
  let used: BindingUsed;
  if (check.repository !== null) {
    used = { file: check.file, repository: check.repository, source: { kind: "given" } };
  } else if (first) {
    const { id, ownerId, name } = first.repository;
    used = {
      file: check.file,
      repository: { id, ownerId, fullName: name },
      source: { kind: "operator", resource: first.name },
    };
  } else {
    // No resource is configured: bindPolicy reports each before it compares ids.
    used = { file: check.file, repository: { id: 0, ownerId: 0 }, source: { kind: "none" } };
  }
  return { used, configured, result: bindPolicy(policy, config, used.repository) };
}

function toCheckError(e: SourceError): CheckError {
  return {
    file: e.file,
    line: e.line,
    message: e.path === "" ? e.message : `${e.path}: ${e.message}`,
    ...(e.column === undefined ? {} : { column: e.column }),
    ...(e.excerpt === undefined ? {} : { excerpt: e.excerpt }),
  };
}

/** A binding problem at the line of the policy key it is about. */
function bindError(e: BindError, loaded: LoadedPolicy): CheckError {
  return { ...loaded.where(parsePath(e.path)), message: `${e.path}: ${e.message}` };
}

/** One resource of the `--json` output: everything the human report says of it. */
export interface ResourceJson {
  name: string;
  path: string;
  /** Users and teams who can approve, as CODEOWNERS writes them. */
  approvers: string[];
  email_owners: string[];
  approvals: number;
  /** Why `approvers` is what it is: the CODEOWNERS line, or why nothing can be approved. */
  ownership:
    | { status: "owned"; line: number }
    | { status: "unowned"; line: number | null }
    | { status: "blocked"; reason: string; lines: number[] };
  scopes: Record<string, string[]>;
  default_ttl_s: number;
  max_ttl_s: number;
  token_ttl_s: number;
  request_ttl_s: number;
  auto_approve: {
    scopes: string[];
    max_ttl_s: number;
    requesters: string[];
    quota: { count: number; window_s: number } | null;
  }[];
  break_glass: { requesters: string[]; max_ttl_s: number; review_within_s: number } | null;
  rate_limit: { count: number; per_s: 1 | 60 } | null;
  /** `null` for a rule that allows any value. */
  actions: {
    environments: string[] | null;
    job_workflow_refs: string[] | null;
    runner_environment: "github-hosted" | "self-hosted" | null;
    allow_forks: boolean;
    allow_pull_request_target: boolean;
  };
  people: boolean;
  /**
   * Only with an operator config: the operator's resource of this name
   * (`null`: not configured), whether it bound, and the longest grant then.
   */
  operator?: {
    repository: { id: number; owner_id: number; name: string };
    audience: string;
    max_ttl_s: number;
    scopes: string[];
    bound: boolean;
    effective_max_ttl_s: number | null;
  } | null;
}

export interface PolicyCheckJson {
  label: string | null;
  codeowners_file: string | null;
  /** `null` without an operator config (or when it does not parse). */
  binding: {
    config: string;
    repository: { id: number; owner_id: number; name: string | null };
    /** `given`: --repo-id and --owner-id; `operator`: the operator's binding of `resource`. */
    source: "given" | "operator" | "none";
    resource: string | null;
  } | null;
  resources: ResourceJson[];
  errors: {
    file: string;
    line: number | null;
    column: number | null;
    message: string;
    excerpt: string | null;
  }[];
  warnings: string[];
}

/** The `--json` output: what the human report shows, as data. */
export function policyCheckJson(report: PolicyCheckReport): PolicyCheckJson {
  const binding = report.binding;
  return {
    label: report.label,
    codeowners_file: report.codeownersFile,
    binding: binding && {
      config: binding.file,
      repository: {
        id: binding.repository.id,
        owner_id: binding.repository.ownerId,
        name: binding.repository.fullName ?? null,
      },
      source: binding.source.kind,
      resource: binding.source.kind === "operator" ? binding.source.resource : null,
    },
    resources: report.resources.map(resourceJson),
    errors: report.errors.map((e) => ({
      file: e.file,
      line: e.line,
      column: e.column ?? null,
      message: e.message,
      excerpt: e.excerpt ?? null,
    })),
    warnings: [...report.warnings],
  };
}

function resourceJson(r: CheckedResource): ResourceJson {
  const { policy: p, ownership: o } = r;
  const texts = (principals: readonly { text: string }[]) => principals.map((x) => x.text);
  const json: ResourceJson = {
    name: p.name,
    path: p.path,
    approvers: [...r.approvers],
    email_owners: [...r.emailOwners],
    approvals: p.approvals,
    ownership:
      o.status === "owned"
        ? { status: "owned", line: o.line }
        : o.status === "unowned"
          ? { status: "unowned", line: o.line }
          : { status: "blocked", reason: o.reason, lines: [...o.lines] },
    scopes: Object.fromEntries(
      [...p.scopes].map(([name, patterns]) => [name, patterns.map((x) => x.text)]),
    ),
    default_ttl_s: p.defaultTtl,
    max_ttl_s: p.maxTtl,
    token_ttl_s: p.tokenTtl,
    request_ttl_s: p.requestTtl,
    auto_approve: p.autoApprove.map((rule) => ({
      scopes: [...rule.scopes],
      max_ttl_s: rule.maxTtl,
      requesters: texts(rule.requesters),
      quota: rule.quota && { count: rule.quota.count, window_s: rule.quota.windowSeconds },
    })),
    break_glass: p.breakGlass && {
      requesters: texts(p.breakGlass.requesters),
      max_ttl_s: p.breakGlass.maxTtl,
      review_within_s: p.breakGlass.reviewWithin,
    },
    rate_limit: p.rateLimit && { count: p.rateLimit.count, per_s: p.rateLimit.perSeconds },
    actions: {
      environments: p.actions.environments && [...p.actions.environments],
      job_workflow_refs: p.actions.jobWorkflowRefs && [...p.actions.jobWorkflowRefs],
      runner_environment: p.actions.runnerEnvironment,
      allow_forks: p.actions.allowForks,
      allow_pull_request_target: p.actions.allowPullRequestTarget,
    },
    people: p.actions.people === true,
  };
  if (r.operator !== undefined) {
    const c = r.operator.configured;
    json.operator = c && {
      repository: { id: c.repository.id, owner_id: c.repository.ownerId, name: c.repository.name },
      audience: c.audience,
      max_ttl_s: c.maxTtl,
      scopes: c.scopes.map((x) => x.text),
      bound: r.operator.bound !== null,
      effective_max_ttl_s: r.operator.bound?.maxTtl ?? null,
    };
  }
  return json;
}
