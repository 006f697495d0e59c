import { z } from "zod";
import { formatDuration, parseDuration } from "#src/rules/duration.js";
import { durationField, patternField, textOf } from "#src/rules/fields.js";
import { type Principal, parsePrincipal } from "#src/rules/principal.js";
import type { ScopePattern } from "#src/rules/scopes.js";
import {
  errorMap,
  formatPath,
  issuesToErrors,
  type KeyPath,
  kindOf,
  type Locate,
  loadYaml,
  prototypeKeys,
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
 * `actions.allow_pull_request_target` false; `people` false.
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
  /**
   * The resource's `people: true`: people's tokens (`POST /v1/token`) also
   * for pull request tickets and for grants with the rules above, which
   * otherwise give them none. Recorded with these rules in each grant;
   * absent when false, so a policy without the key keeps its approvals.
   */
  readonly people?: true;
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
 * One file of a policy chain (see `loadPolicy`), parsed, with `_extends`
 * already taken out: the file name errors use, its top-level mapping, and
 * where its keys are written.
 */
export interface PolicyLayer {
  readonly file: string;
  readonly value: unknown;
  readonly locate: Locate;
}

/**
 * Validates the policy merged from a chain of files, nearest first: each
 * top-level key (`label`, `resources`) is taken whole from the first file
 * that sets it, as Probot's `config.get` merges (`Object.assign`); nothing
 * below the top level is merged. Every error names the file the offending
 * key came from and its line there; an error about the whole policy (such
 * as a missing `resources`) names the first file. A layer that is not a
 * mapping is validated alone. Never throws.
 *
 * @example
 * parsePolicyLayers([repoFile, orgFile]); // the repository's `resources`, the organization's `label`
 */
export function parsePolicyLayers(layers: readonly PolicyLayer[]): PolicyResult {
  const first = layers[0];
  if (first === undefined) {
    return {
      ok: false,
      errors: [{ file: POLICY_FILE, line: null, path: "", message: "no policy file" }],
    };
  }
  const notMapping = layers.find((l) => !isMapping(l.value));
  if (notMapping) return validate(notMapping.value, notMapping.file, notMapping.locate);
  // __proto__ keys first, in every file: zod would drop them, and merging must never assign one.
  const proto = layers.flatMap((l) =>
    prototypeKeys(l.value).map((path) => ({
      file: l.file,
      line: l.locate(path),
      path: formatPath(path),
      message: "the key __proto__ is not allowed",
    })),
  );
  if (proto.length > 0) return { ok: false, errors: proto };

  const origin = new Map<string, PolicyLayer>();
  const merged: Record<string, unknown> = {};
  for (const layer of layers) {
    for (const [key, value] of Object.entries(layer.value as Record<string, unknown>)) {
      if (origin.has(key)) continue;
      origin.set(key, layer);
      merged[key] = value;
    }
  }
  const result = policySchema.safeParse(merged, { error: errorMap });
  if (result.success) return { ok: true, policy: result.data };

  // Each issue goes to the file its top-level key came from; unknown
  // top-level keys are one issue, split per key.
  const layerOf = (key: PropertyKey | undefined): PolicyLayer =>
    (typeof key === "string" ? origin.get(key) : undefined) ?? first;
  const byLayer = new Map<PolicyLayer, z.core.$ZodIssue[]>(layers.map((l) => [l, []]));
  for (const issue of result.error.issues) {
    if (issue.code === "unrecognized_keys" && issue.path.length === 0) {
      for (const key of issue.keys) byLayer.get(layerOf(key))?.push({ ...issue, keys: [key] });
    } else {
      byLayer.get(layerOf(issue.path[0]))?.push(issue);
    }
  }
  const errors = [...byLayer].flatMap(([layer, issues]) =>
    issuesToErrors(issues, layer.file, layer.locate, knownKeys),
  );
  return { ok: false, errors };
}

function isMapping(value: unknown): boolean {
  return value !== null && typeof value === "object" && !Array.isArray(value);
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
      message: `${clipped(text)}: expected N/<duration>, e.g. 5/7d`,
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

/** A value quoted in an error, bounded: a policy file can hold a value of any length. */
function clipped(text: string): string {
  return JSON.stringify(text.length > 80 ? `${text.slice(0, 79)}…` : text);
}

const rateLimit = textOf("a rate such as 20/s or 600/m").transform((text, ctx) => {
  const match = /^(\d{1,7})\/([sm])$/.exec(text.trim());
  const count = Number(match?.[1]);
  if (match !== null && count >= 1)
    return { count, perSeconds: match[2] === "s" ? 1 : 60 } as const;
  ctx.addIssue({
    code: "custom",
    message: `${clipped(text)}: expected N/s or N/m with N at least 1, e.g. 20/s`,
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
    people: z.boolean().default(false),
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
      /**
       * Followed by `loadPolicy`, which takes it out of each file before the
       * merged policy is validated; a file validated alone may carry it.
       */
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
      ...(r.people ? { people: true as const } : {}),
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
