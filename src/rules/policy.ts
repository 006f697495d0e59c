import { z } from "zod";
import { formatDuration, parseDuration } from "#src/rules/duration.js";
import { durationField, patternField, textOf } from "#src/rules/fields.js";
import { type Principal, parsePrincipal } from "#src/rules/principal.js";
import type { ScopePattern } from "#src/rules/scopes.js";
import {
  type KeyPath,
  kindOf,
  type Locate,
  loadYaml,
  type SourceError,
  validateSource,
} from "#src/rules/yaml-source.js";

/**
 * The repository policy, `.github/hallpass.yml` on the default branch
 * (SPEC §2). Repository policy can only narrow what the operator allows; see
 * `bindPolicy` for the check against the operator's ceilings.
 *
 * Defaults: `label` hallpass; `default_ttl` 1h (but never above an explicit
 * `max_ttl`); `max_ttl` = `default_ttl`; `approvals` 1; `token_ttl` 15m (but
 * never above `max_ttl`); `request_ttl` 24h; no `rate_limit` (unlimited);
 * `break_glass.review_within` 24h; `actions.allow_forks` and
 * `actions.allow_pull_request_target` false.
 *
 * Unknown keys are errors: a typo such as `max_tll` must not silently leave a
 * default in place.
 */
export interface Policy {
  readonly label: string;
  /** In file order; look names up here, never on a plain object. */
  readonly resources: ReadonlyMap<string, ResourcePolicy>;
}

export interface ResourcePolicy {
  readonly name: string;
  /** The path whose CODEOWNERS approve, relative to the repository root, as written (minus a leading `/`). */
  readonly path: string;
  /** Scope name → patterns, in file order. */
  readonly scopes: ReadonlyMap<string, readonly ScopePattern[]>;
  /** Seconds. */
  readonly defaultTtl: number;
  readonly maxTtl: number;
  readonly tokenTtl: number;
  readonly requestTtl: number;
  /** Distinct code owners needed. */
  readonly approvals: number;
  readonly autoApprove: readonly AutoApproveRule[];
  readonly breakGlass: BreakGlassRule | null;
  readonly rateLimit: { readonly count: number; readonly perSeconds: 1 | 60 } | null;
  readonly actions: ActionsConstraints;
}

export interface AutoApproveRule {
  /** Position in `auto_approve`, from 0: how decisions and quota uses name the rule. */
  readonly index: number;
  readonly scopes: readonly string[];
  readonly maxTtl: number;
  readonly requesters: readonly Principal[];
  /** Per requester; `null` = no quota. */
  readonly quota: { readonly count: number; readonly windowSeconds: number } | null;
}

export interface BreakGlassRule {
  readonly requesters: readonly Principal[];
  readonly maxTtl: number;
  readonly reviewWithin: number;
}

/** What a GitHub Actions OIDC token must say to be exchanged for this resource; `null` = any. */
export interface ActionsConstraints {
  readonly environments: readonly string[] | null;
  readonly jobWorkflowRefs: readonly string[] | null;
  readonly runnerEnvironment: "github-hosted" | "self-hosted" | null;
  readonly allowForks: boolean;
  readonly allowPullRequestTarget: boolean;
}

/** A policy file problem, located by line and key path. */
export type PolicyError = SourceError;

export type PolicyResult =
  | { readonly ok: true; readonly policy: Policy }
  | { readonly ok: false; readonly errors: readonly PolicyError[] };

export const POLICY_FILE = ".github/hallpass.yml";
/** Larger policy files are refused unread. */
export const POLICY_MAX_CHARS = 256 * 1024;
/** Resource names: they are also the proxy's path prefix. */
export const RESOURCE_NAME = /^[a-z][a-z0-9-]{0,62}$/;
export const SCOPE_NAME = /^[a-z][a-z0-9_-]{0,63}$/;

const DEFAULT_TTL = 3_600;
const DEFAULT_TOKEN_TTL = 15 * 60;

/**
 * Parses and validates `.github/hallpass.yml`. Never throws; every error
 * names its key path and line.
 *
 * @example
 * const result = parsePolicyYaml(text);
 * if (!result.ok) for (const e of result.errors) console.error(`${e.file}:${e.line}: ${e.path}: ${e.message}`);
 */
export function parsePolicyYaml(text: string, file = POLICY_FILE): PolicyResult {
  const loaded = loadYaml(text, file, POLICY_MAX_CHARS);
  if (!loaded.ok) return { ok: false, errors: loaded.errors };
  return validate(loaded.value, file, loaded.locate);
}

/**
 * Validates an already-parsed policy (e.g. Probot's `context.config`, with
 * `_extends` resolved). Errors carry no line.
 */
export function parsePolicyObject(value: unknown, file = POLICY_FILE): PolicyResult {
  return validate(value, file, null);
}

function validate(value: unknown, file: string, locate: Locate | null): PolicyResult {
  const result = validateSource(policySchema, value, file, locate, knownKeys);
  return result.ok ? { ok: true, policy: result.value } : result;
}

// ---- schema ---------------------------------------------------------------

const duration = durationField;

const principal = textOf("@user or @org/team").transform((text, ctx) => {
  const parsed = parsePrincipal(text);
  if (parsed.ok) return parsed.principal;
  ctx.addIssue({ code: "custom", message: parsed.message });
  return z.NEVER;
});

const requesters = z.array(principal).min(1).max(100);

const scopeName = textOf("a scope name").regex(SCOPE_NAME, {
  error: "scope names are lower case letters, digits, _ and -, starting with a letter",
});

const pattern = patternField;

const codeownersPath = textOf("a path in the repository, such as services/payments/").transform(
  (text, ctx) => {
    const path = text.replace(/^\/+/, "");
    const message =
      text.length > 1024
        ? "path is longer than 1024 characters"
        : /[*?[\]!\\]|\p{Cc}/u.test(path)
          ? "a plain path, not a pattern: no *, ?, [, ], !, \\ or control characters"
          : path
                .split("/")
                .some((s, i, all) => s === "." || s === ".." || (s === "" && i < all.length - 1))
            ? "path must not contain empty, . or .. segments"
            : path.startsWith("#")
              ? "path must not start with #"
              : null;
    if (message === null) return path === "" ? "/" : path;
    ctx.addIssue({ code: "custom", message });
    return z.NEVER;
  },
);

const quota = textOf("a quota such as 5/7d").transform((text, ctx) => {
  const match = /^(\d{1,6})\/(.+)$/.exec(text.trim());
  const window = match ? parseDuration(match[2] ?? "") : null;
  const count = Number(match?.[1]);
  if (match === null || window === null) {
    ctx.addIssue({
      code: "custom",
      message: `${JSON.stringify(text)}: expected N/<duration>, e.g. 5/7d`,
    });
  } else if (!window.ok) {
    ctx.addIssue({ code: "custom", message: `quota window: ${window.message}` });
  } else if (count < 1) {
    ctx.addIssue({ code: "custom", message: "quota count must be at least 1" });
  } else {
    return { count, windowSeconds: window.seconds };
  }
  return z.NEVER;
});

const rateLimit = textOf("a rate such as 20/s or 600/m").transform((text, ctx) => {
  const match = /^(\d{1,7})\/([sm])$/.exec(text.trim());
  const count = Number(match?.[1]);
  if (match !== null && count >= 1)
    return { count, perSeconds: match[2] === "s" ? 1 : 60 } as const;
  ctx.addIssue({
    code: "custom",
    message: `${JSON.stringify(text)}: expected N/s or N/m with N at least 1, e.g. 20/s`,
  });
  return z.NEVER;
});

const workflowRef = textOf("owner/repo/path@ref").regex(/^[\w.-]+\/[\w.-]+\/[^\s@]+@[^\s]+$/, {
  error: "expected owner/repo/.github/workflows/file.yml@ref",
});

const autoApprove = z.strictObject({
  scopes: z.array(scopeName).min(1).max(100),
  max_ttl: duration,
  requesters,
  quota: quota.optional(),
});

const breakGlass = z.strictObject({
  requesters,
  max_ttl: duration,
  review_within: duration.default(24 * 3_600),
});

const actions = z.strictObject({
  environments: z.array(textOf("an environment name").min(1).max(255)).min(1).max(100).optional(),
  job_workflow_refs: z.array(workflowRef).min(1).max(100).optional(),
  runner_environment: z.enum(["github-hosted", "self-hosted"]).optional(),
  allow_forks: z.boolean().default(false),
  allow_pull_request_target: z.boolean().default(false),
});

const resource = z
  .strictObject({
    path: codeownersPath,
    scopes: z
      .record(scopeName, z.array(pattern).min(1).max(100))
      .refine((scopes) => Object.keys(scopes).length > 0, { error: "needs at least one scope" }),
    default_ttl: duration.optional(),
    max_ttl: duration.optional(),
    approvals: z.int().min(1).max(100).default(1),
    token_ttl: duration.optional(),
    request_ttl: duration.default(24 * 3_600),
    auto_approve: z.array(autoApprove).max(50).default([]),
    break_glass: breakGlass.optional(),
    rate_limit: rateLimit.optional(),
    actions: actions.default({ allow_forks: false, allow_pull_request_target: false }),
  })
  .superRefine(
    (r, ctx) => {
      const { defaultTtl, maxTtl } = ttls(r);
      const over = (path: KeyPath, what: string, seconds: number): void =>
        ctx.addIssue({
          code: "custom",
          path: [...path],
          message: `${what} ${formatDuration(seconds)} is longer than max_ttl ${formatDuration(maxTtl)}`,
        });
      if (r.default_ttl !== undefined && defaultTtl > maxTtl) {
        over(["default_ttl"], "default_ttl", defaultTtl);
      }
      if (r.token_ttl !== undefined && r.token_ttl > maxTtl)
        over(["token_ttl"], "token_ttl", r.token_ttl);
      const defined = Object.keys(r.scopes);
      for (const [i, rule] of r.auto_approve.entries()) {
        for (const [j, scope] of rule.scopes.entries()) {
          if (!Object.hasOwn(r.scopes, scope)) {
            ctx.addIssue({
              code: "custom",
              path: ["auto_approve", i, "scopes", j],
              message: `scope ${JSON.stringify(scope)} is not defined in scopes (${defined.join(", ")})`,
            });
          }
        }
        if (rule.max_ttl > maxTtl)
          over(["auto_approve", i, "max_ttl"], "auto_approve max_ttl", rule.max_ttl);
      }
      if (r.break_glass && r.break_glass.max_ttl > maxTtl) {
        over(["break_glass", "max_ttl"], "break_glass max_ttl", r.break_glass.max_ttl);
      }
    },
    // Cross-field checks only once every field parsed.
    { when: (payload) => payload.issues.length === 0 },
  );

type RawResource = z.output<typeof resource>;

const policySchema = z
  .strictObject(
    {
      label: textOf("a label name").trim().min(1).max(50).default("hallpass"),
      resources: z
        .record(
          textOf("a resource name").regex(RESOURCE_NAME, {
            error:
              "resource names are lower case letters, digits and -, starting with a letter (at most 63)",
          }),
          resource,
        )
        .refine((resources) => Object.keys(resources).length > 0, {
          error: "needs at least one resource",
        }),
      /** Resolved by Probot before the policy reaches us; left alone here. */
      _extends: z.string().optional(),
    },
    {
      error: (issue) =>
        issue.code === "invalid_type"
          ? `the file must be a mapping with "label" and "resources", got ${kindOf(issue.input)}`
          : undefined,
    },
  )
  .transform(
    (raw): Policy => ({
      label: raw.label,
      resources: new Map(
        Object.entries(raw.resources).map(([name, r]) => [name, toResource(name, r)]),
      ),
    }),
  );

function ttls(r: RawResource): { defaultTtl: number; maxTtl: number } {
  const defaultTtl = r.default_ttl ?? Math.min(DEFAULT_TTL, r.max_ttl ?? DEFAULT_TTL);
  return { defaultTtl, maxTtl: r.max_ttl ?? defaultTtl };
}

function toResource(name: string, r: RawResource): ResourcePolicy {
  const { defaultTtl, maxTtl } = ttls(r);
  return {
    name,
    path: r.path,
    scopes: new Map(Object.entries(r.scopes)),
    defaultTtl,
    maxTtl,
    tokenTtl: r.token_ttl ?? Math.min(DEFAULT_TOKEN_TTL, maxTtl),
    requestTtl: r.request_ttl,
    approvals: r.approvals,
    autoApprove: r.auto_approve.map((rule, index) => ({
      index,
      scopes: [...new Set(rule.scopes)],
      maxTtl: rule.max_ttl,
      requesters: rule.requesters,
      quota: rule.quota ?? null,
    })),
    breakGlass: r.break_glass
      ? {
          requesters: r.break_glass.requesters,
          maxTtl: r.break_glass.max_ttl,
          reviewWithin: r.break_glass.review_within,
        }
      : null,
    rateLimit: r.rate_limit ?? null,
    actions: {
      environments: r.actions.environments ?? null,
      jobWorkflowRefs: r.actions.job_workflow_refs ?? null,
      runnerEnvironment: r.actions.runner_environment ?? null,
      allowForks: r.actions.allow_forks,
      allowPullRequestTarget: r.actions.allow_pull_request_target,
    },
  };
}

/** Keys that exist at a path, for "did you mean" hints on unknown keys. */
function knownKeys(path: KeyPath): readonly string[] {
  const shape = path.map((step, i) =>
    i === 1 && path[0] === "resources" ? "*" : typeof step === "number" ? "#" : step,
  );
  switch (shape.join("/")) {
    case "":
      return ["label", "resources"];
    case "resources/*":
      return Object.keys(resource.shape);
    case "resources/*/auto_approve/#":
      return Object.keys(autoApprove.shape);
    case "resources/*/break_glass":
      return Object.keys(breakGlass.shape);
    case "resources/*/actions":
      return Object.keys(actions.shape);
    default:
      return [];
  }
}
