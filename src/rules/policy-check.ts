import {
  CODEOWNERS_PATHS,
  type Codeowners,
  type Ownership,
  ownersOf,
} from "#src/rules/codeowners.js";
import { POLICY_FILE, type ResourcePolicy } from "#src/rules/policy.js";
import type { LoadedPolicy } from "#src/rules/policy-load.js";

/**
 * `hallpass policy check`, without the filesystem: a repository's policy and
 * CODEOWNERS checked together, as the server would read them from the
 * default branch (the policy through the server's own loader, `loadPolicy`),
 * but with no server, operator config or network. Operator
 * ceilings and bindings are not checked here (the repository cannot see
 * them); the server reports those on tickets.
 */

export interface CheckedResource {
  readonly policy: ResourcePolicy;
  readonly ownership: Ownership;
  /** User and team owners of the path, as CODEOWNERS writes them, in its order. */
  readonly approvers: readonly string[];
  /** E-mail owners of the path: listed by CODEOWNERS, never able to approve. */
  readonly emailOwners: readonly string[];
}

export interface CheckError {
  readonly file: string;
  readonly line: number | null;
  readonly message: string;
}

export interface PolicyCheckReport {
  /** Empty when the policy does not parse. */
  readonly resources: readonly CheckedResource[];
  readonly errors: readonly CheckError[];
  /** The CODEOWNERS file used, or `null` when there is none. */
  readonly codeownersFile: string | null;
}

/**
 * Checks a loaded policy (`loadPolicy`, as the server reads it) against a
 * CODEOWNERS selection (`selectCodeowners`). Errors: policy errors, exactly
 * as the server reports them, CODEOWNERS lines GitHub skips, a missing or
 * oversized CODEOWNERS, and resource paths that are unowned, blocked, or
 * owned by too few people to ever reach `approvals`.
 */
export function checkPolicy(loaded: LoadedPolicy, codeowners: Codeowners): PolicyCheckReport {
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

  const parsed = loaded.result;
  if (parsed === null) {
    return {
      resources: [],
      errors: [{ file: POLICY_FILE, line: null, message: "no policy file" }, ...errors],
      codeownersFile: coFile,
    };
  }
  if (!parsed.ok) {
    const policyErrors = parsed.errors.map((e) => ({
      file: e.file,
      line: e.line,
      message: e.path === "" ? e.message : `${e.path}: ${e.message}`,
    }));
    return { resources: [], errors: [...policyErrors, ...errors], codeownersFile: coFile };
  }

  const placeOf = (name: string) => loaded.where(["resources", name, "path"]);
  const coName = coFile ?? "CODEOWNERS";
  const resources: CheckedResource[] = [];
  for (const policy of parsed.policy.resources.values()) {
    const ownership = ownersOf(codeowners, policy.path);
    const owners = ownership.status === "owned" ? ownership.owners : [];
    const approvers = owners.filter((o) => o.kind !== "email").map((o) => o.text);
    const emailOwners = owners.filter((o) => o.kind === "email").map((o) => o.text);
    resources.push({ policy, ownership, approvers, emailOwners });
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
  return { resources, errors, codeownersFile: coFile };
}

/** The `--json` output, exactly: `{resources: [...], errors: [...]}`. */
export function policyCheckJson(report: PolicyCheckReport): {
  resources: {
    name: string;
    path: string;
    approvers: string[];
    approvals: number;
    scopes: Record<string, string[]>;
    default_ttl_s: number;
    max_ttl_s: number;
  }[];
  errors: { file: string; line: number | null; message: string }[];
} {
  return {
    resources: report.resources.map(({ policy, approvers }) => ({
      name: policy.name,
      path: policy.path,
      approvers: [...approvers],
      approvals: policy.approvals,
      scopes: Object.fromEntries(
        [...policy.scopes].map(([name, patterns]) => [name, patterns.map((p) => p.text)]),
      ),
      default_ttl_s: policy.defaultTtl,
      max_ttl_s: policy.maxTtl,
    })),
    errors: report.errors.map((e) => ({ file: e.file, line: e.line, message: e.message })),
  };
}
