import { formatDuration } from "#src/rules/duration.js";
import type { OperatorConfig, OperatorResource } from "#src/rules/operator.js";
import type { Policy, ResourcePolicy } from "#src/rules/policy.js";
import { patternWithin } from "#src/rules/scopes.js";

/** A repository policy resource the operator has bound to this repository, within its ceilings. */
export interface BoundResource {
  readonly name: string;
  readonly policy: ResourcePolicy;
  readonly operator: OperatorResource;
  /** The effective longest grant, seconds: `min(policy.maxTtl, operator.maxTtl)`. */
  readonly maxTtl: number;
}

/** The repository a policy was read from, as GitHub identifies it now. */
export interface RepositoryIdentity {
  readonly id: number;
  readonly ownerId: number;
  /** `owner/repo` now; only for messages and the rename warning. */
  readonly fullName?: string;
}

export interface BindError {
  readonly resource: string;
  /** Key path in the policy file, e.g. `resources.payments-api.scopes.read[0]`. */
  readonly path: string;
  readonly message: string;
}

export interface BindResult {
  /** The resources that bound cleanly, in policy order. */
  readonly resources: ReadonlyMap<string, BoundResource>;
  /** One per problem; a resource with any error is left out of `resources`. */
  readonly errors: readonly BindError[];
  /** Not fatal: e.g. the repository's name differs from the configured one. */
  readonly warnings: readonly string[];
}

/**
 * Checks a repository policy against the operator config, resource by
 * resource. A resource binds only when the operator bound it to this
 * repository *by id* (repository id and owner id: a deleted and re-created,
 * renamed or transferred repository does not inherit a binding), its
 * `max_ttl` is within the ceiling, and every scope pattern lies within some
 * single ceiling pattern (`patternWithin`). Naming a resource is never a
 * claim to it: an unbound name is an error, not a grant.
 */
export function bindPolicy(
  policy: Policy,
  operator: OperatorConfig,
  repo: RepositoryIdentity,
): BindResult {
  const resources = new Map<string, BoundResource>();
  const errors: BindError[] = [];
  const warnings: string[] = [];
  for (const resource of policy.resources.values()) {
    const before = errors.length;
    const fail = (path: string, message: string): void => {
      errors.push({ resource: resource.name, path: `resources.${resource.name}${path}`, message });
    };
    const configured = operator.resources.get(resource.name);
    if (configured === undefined) {
      fail(
        "",
        `resource ${resource.name} is not configured on this hallpass server; ` +
          "the operator binds resources to repositories",
      );
      continue;
    }
    const identity = identityProblem(resource.name, configured, repo);
    if (identity !== null) {
      fail("", identity);
      continue;
    }
    const sameName = repo.fullName?.toLowerCase() === configured.repository.name.toLowerCase();
    if (repo.fullName !== undefined && !sameName) {
      warnings.push(
        `resource ${resource.name}: the operator configured the repository as ` +
          `${configured.repository.name}, GitHub now calls it ${repo.fullName} (renamed?)`,
      );
    }
    if (resource.maxTtl > configured.maxTtl) {
      fail(
        ".max_ttl",
        `max_ttl ${formatDuration(resource.maxTtl)} is longer than the operator allows ` +
          `for ${resource.name} (${formatDuration(configured.maxTtl)})`,
      );
    }
    for (const [scope, patterns] of resource.scopes) {
      for (const [i, pattern] of patterns.entries()) {
        if (!configured.scopes.some((ceiling) => patternWithin(pattern, ceiling))) {
          fail(
            `.scopes.${scope}[${i}]`,
            `${JSON.stringify(pattern.text)} is wider than the operator allows for ` +
              `${resource.name}: each pattern must lie within one of ` +
              configured.scopes.map((c) => JSON.stringify(c.text)).join(", "),
          );
        }
      }
    }
    if (errors.length === before) {
      resources.set(resource.name, {
        name: resource.name,
        policy: resource,
        operator: configured,
        maxTtl: Math.min(resource.maxTtl, configured.maxTtl),
      });
    }
  }
  return { resources, errors, warnings };
}

function identityProblem(
  name: string,
  configured: OperatorResource,
  repo: RepositoryIdentity,
): string | null {
  const { id, ownerId, name: configuredName } = configured.repository;
  if (id === repo.id && ownerId === repo.ownerId) return null;
  const base = `resource ${name} is not bound to this repository (id ${repo.id})`;
  if (id === repo.id) {
    return `${base}: the operator bound it to this repository id under another owner; a transferred repository must be bound again`;
  }
  // Only a repository that carries the configured name learns which id it was.
  if (repo.fullName?.toLowerCase() === configuredName.toLowerCase()) {
    return (
      `${base}: it is bound to a repository with the same name, ${configuredName}, but id ${id}; ` +
      "a renamed or re-created repository does not inherit bindings, the operator must bind it again"
    );
  }
  return base;
}
