import { z } from "zod";
import { durationField, patternField, sizeField } from "#src/rules/fields.js";
import { RESOURCE_NAME } from "#src/rules/policy.js";
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
 * The operator's configuration: the YAML file named by `HALLPASS_CONFIG`.
 * It binds each resource to its home repository and sets the ceilings that
 * no repository policy can exceed (SPEC §2). Secrets are never written in it,
 * only referenced (`env:NAME` or `file:/path`) and resolved apart, by
 * `resolveSecrets`. See `docs/operator-config.example.yml`.
 *
 * ```yaml
 * resources:
 *   payments-api:                  # resource name: globally unique, the proxy path prefix
 *     repository:                  # the home repository; identity is the id pair
 *       id: 123456789
 *       owner_id: 4567
 *       name: acme/payments        # for display, and a warning when GitHub says otherwise
 *     audience: acme/payments/payments-api   # default: <owner>/<repo>/<resource>
 *     max_ttl: 8h                  # ceiling for any policy's max_ttl
 *     scopes: ["GET /v1/**", "POST /v1/refunds"]   # ceiling: widest patterns a policy may grant
 *     upstream: https://payments.internal.example   # proxy target (http only for localhost)
 *     upstream_ca: file:/etc/hallpass/internal-ca.pem  # trust for an internal TLS upstream
 *     timeouts: { connect: 5s, headers: 30s, body: 30s }
 *     max_request_body: 10mb
 *     strip_cookies: [session]     # cookies of the caller never forwarded
 *     credential:                  # injected by the proxy (needs upstream)
 *       header: authorization
 *       value: env:PAYMENTS_API_TOKEN
 *       prefix: "Bearer "
 *     introspection_secret: file:/run/secrets/payments-introspection
 * accept_other_github_tokens: false  # people's tokens: only user tokens of the App (hallpass login)
 * ```
 */
export interface OperatorConfig {
  readonly resources: ReadonlyMap<string, OperatorResource>;
  /**
   * `POST /v1/token` also takes GitHub tokens not issued to hallpass's own
   * App (personal access tokens, `gh auth token`), asking `GET /user` whose
   * they are. Absent or false: only user tokens of the App, checked with GitHub.
   */
  readonly acceptOtherGitHubTokens?: boolean;
}

export interface OperatorResource {
  readonly name: string;
  readonly repository: {
    readonly id: number;
    readonly ownerId: number;
    /** `owner/repo` as configured. */
    readonly name: string;
  };
  /** JWT `aud` of this resource's tokens. */
  readonly audience: string;
  /** Ceiling, seconds. */
  readonly maxTtl: number;
  /** Ceiling: every policy pattern must lie within one of these. */
  readonly scopes: readonly ScopePattern[];
  /** Normalised URL, or `null` when the proxy does not serve this resource. */
  readonly upstream: string | null;
  /** How the proxy talks to the upstream (defaults when there is none). */
  readonly proxy: ProxySettings;
  readonly credential: {
    /** Lower case. */
    readonly header: string;
    readonly value: SecretRef;
    readonly prefix: string;
  } | null;
  /** Shared secret of RFC 7662 callers for this resource. */
  readonly introspectionSecret: SecretRef | null;
}

/** The proxy's settings of one resource. */
export interface ProxySettings {
  /** PEM file of the CAs an https upstream's certificate must chain to; null: the system's. */
  readonly upstreamCa: { readonly source: "file"; readonly path: string } | null;
  readonly timeouts: {
    /** Connecting, TLS included. */
    readonly connectMs: number;
    /** From the request sent to the response's headers. */
    readonly headersMs: number;
    /** The longest pause between two chunks of the response body. */
    readonly bodyMs: number;
  };
  /** Requests with a larger body are refused (413). */
  readonly maxRequestBodyBytes: number;
  /** Cookies of the caller removed before forwarding, lower case. */
  readonly stripCookies: readonly string[];
}

export const DEFAULT_PROXY_SETTINGS: ProxySettings = Object.freeze({
  upstreamCa: null,
  timeouts: Object.freeze({ connectMs: 5_000, headersMs: 30_000, bodyMs: 30_000 }),
  maxRequestBodyBytes: 10 * 1024 * 1024,
  stripCookies: Object.freeze([]) as readonly string[],
});

/** Where a secret is, never the secret itself. */
export type SecretRef =
  | { readonly source: "env"; readonly name: string }
  | { readonly source: "file"; readonly path: string };

export type OperatorConfigResult =
  | { readonly ok: true; readonly config: OperatorConfig }
  | { readonly ok: false; readonly errors: readonly SourceError[] };

export const OPERATOR_MAX_CHARS = 1024 * 1024;

/** Headers the proxy owns: injecting them would break or smuggle requests. */
const RESERVED_HEADERS: ReadonlySet<string> = new Set([
  "host",
  "content-length",
  "content-type",
  "transfer-encoding",
  "connection",
  "keep-alive",
  "upgrade",
  "te",
  "trailer",
  "proxy-authorization",
  "proxy-authenticate",
  "proxy-connection",
]);

/**
 * Parses and validates the operator config file. Never throws; errors name
 * key path and line, and a YAML error's excerpt shows no value.
 */
export function parseOperatorYaml(text: string, file: string): OperatorConfigResult {
  const loaded = loadYaml(text, file, OPERATOR_MAX_CHARS, { hideValues: true });
  if (!loaded.ok) return { ok: false, errors: loaded.errors };
  return validate(loaded.value, file, loaded.locate);
}

/** Validates an already-parsed operator config. Errors carry no line. */
export function parseOperatorObject(
  value: unknown,
  file = "HALLPASS_CONFIG",
): OperatorConfigResult {
  return validate(value, file, null);
}

function validate(value: unknown, file: string, locate: Locate | null): OperatorConfigResult {
  const result = validateSource(operatorSchema, value, file, locate, knownKeys);
  return result.ok ? { ok: true, config: result.value } : result;
}

/** `env:NAME` or `file:/absolute/path`. */
export function parseSecretRef(text: string): SecretRef | null {
  const env = /^env:([A-Za-z_][A-Za-z0-9_]{0,127})$/.exec(text);
  if (env) return { source: "env", name: env[1] ?? "" };
  const file = /^file:(\/[^\p{Cc}]{0,4095})$/u.exec(text);
  if (file) return { source: "file", path: file[1] ?? "" };
  return null;
}

// ---- schema ---------------------------------------------------------------

const id = z.int().min(1).max(Number.MAX_SAFE_INTEGER);

/** `owner/repo`, as GitHub allows the two names. */
export const REPOSITORY_NAME = /^[A-Za-z0-9][A-Za-z0-9-]{0,38}\/[A-Za-z0-9._-]{1,100}$/;

const repoName = z.string().regex(REPOSITORY_NAME, { error: "expected owner/repo" });

const duration = durationField;
const pattern = patternField;

// The message never repeats the value: a literal secret pasted here must not
// end up in a log.
const secretRef = z.string().transform((text, ctx) => {
  const ref = parseSecretRef(text);
  if (ref) return ref;
  ctx.addIssue({
    code: "custom",
    message:
      "expected env:NAME or file:/absolute/path (secrets are referenced, never written here)",
  });
  return z.NEVER;
});

const upstream = z.string().transform((text, ctx) => {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    ctx.addIssue({ code: "custom", message: "not a URL" });
    return z.NEVER;
  }
  const local = ["localhost", "127.0.0.1", "[::1]"].includes(url.hostname);
  const message =
    url.protocol !== "https:" && !(url.protocol === "http:" && local)
      ? "must be an https:// URL (http:// only for localhost)"
      : url.username !== "" || url.password !== ""
        ? "must not carry credentials; use credential instead"
        : url.search !== "" || url.hash !== ""
          ? "must not have a query or fragment"
          : null;
  if (message === null) return url.href;
  ctx.addIssue({ code: "custom", message });
  return z.NEVER;
});

const credential = z.strictObject({
  header: z
    .string()
    .transform((h) => h.toLowerCase())
    .refine((h) => /^[a-z0-9!#$%&'*+.^_`|~-]+$/.test(h), { error: "not a header name" })
    .refine((h) => !RESERVED_HEADERS.has(h), {
      error: "the proxy manages this header; choose another",
    }),
  value: secretRef,
  prefix: z
    .string()
    .max(64)
    .refine((p) => !/\p{Cc}/u.test(p), {
      error: "must not contain control characters",
    })
    .default(""),
});

const fileRef = z.string().transform((text, ctx) => {
  const ref = parseSecretRef(text);
  if (ref?.source === "file") return ref;
  ctx.addIssue({ code: "custom", message: "expected file:/absolute/path of a PEM file" });
  return z.NEVER;
});

const timeouts = z.strictObject({
  connect: duration.optional(),
  headers: duration.optional(),
  body: duration.optional(),
});

const cookieName = z
  .string()
  .regex(/^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,256}$/, { error: "not a cookie name" })
  .transform((name) => name.toLowerCase());

/** Keys that only mean something to the proxy: they need `upstream`. */
const PROXY_KEYS = [
  "credential",
  "upstream_ca",
  "timeouts",
  "max_request_body",
  "strip_cookies",
] as const;

const resource = z
  .strictObject({
    repository: z.strictObject({ id, owner_id: id, name: repoName }),
    audience: z.string().min(1).max(255).optional(),
    max_ttl: duration,
    scopes: z.array(pattern).min(1).max(200),
    upstream: upstream.optional(),
    upstream_ca: fileRef.optional(),
    timeouts: timeouts.optional(),
    max_request_body: sizeField.optional(),
    strip_cookies: z.array(cookieName).max(100).optional(),
    credential: credential.optional(),
    introspection_secret: secretRef.optional(),
  })
  .superRefine(
    (r, ctx) => {
      for (const key of PROXY_KEYS) {
        if (r[key] !== undefined && r.upstream === undefined) {
          ctx.addIssue({
            code: "custom",
            path: [key],
            message: `${key} is for the proxy: set upstream too`,
          });
        }
      }
      if (r.upstream_ca && r.upstream && !r.upstream.startsWith("https:")) {
        ctx.addIssue({
          code: "custom",
          path: ["upstream_ca"],
          message: "upstream_ca verifies an https:// upstream; this upstream is http://",
        });
      }
    },
    { when: (payload) => payload.issues.length === 0 },
  );

const operatorSchema = z
  .strictObject(
    {
      resources: z.record(
        z.string().regex(RESOURCE_NAME, {
          error:
            "resource names are lower case letters, digits and -, starting with a letter (at most 63)",
        }),
        resource,
      ),
      accept_other_github_tokens: z.boolean().default(false),
    },
    {
      error: (issue) =>
        issue.code === "invalid_type"
          ? `the operator config must be a mapping with "resources", got ${kindOf(issue.input)}`
          : undefined,
    },
  )
  .transform((raw): OperatorConfig => {
    const resources = new Map<string, OperatorResource>();
    for (const [name, r] of Object.entries(raw.resources)) {
      resources.set(name, {
        name,
        repository: {
          id: r.repository.id,
          ownerId: r.repository.owner_id,
          name: r.repository.name,
        },
        audience: r.audience ?? `${r.repository.name}/${name}`,
        maxTtl: r.max_ttl,
        scopes: r.scopes,
        upstream: r.upstream ?? null,
        proxy: {
          upstreamCa: r.upstream_ca ?? null,
          timeouts: {
            connectMs: seconds(r.timeouts?.connect) ?? DEFAULT_PROXY_SETTINGS.timeouts.connectMs,
            headersMs: seconds(r.timeouts?.headers) ?? DEFAULT_PROXY_SETTINGS.timeouts.headersMs,
            bodyMs: seconds(r.timeouts?.body) ?? DEFAULT_PROXY_SETTINGS.timeouts.bodyMs,
          },
          maxRequestBodyBytes: r.max_request_body ?? DEFAULT_PROXY_SETTINGS.maxRequestBodyBytes,
          stripCookies: [...new Set(r.strip_cookies ?? [])],
        },
        credential: r.credential
          ? { header: r.credential.header, value: r.credential.value, prefix: r.credential.prefix }
          : null,
        introspectionSecret: r.introspection_secret ?? null,
      });
    }
    return { resources, acceptOtherGitHubTokens: raw.accept_other_github_tokens };
  })
  .superRefine((config, ctx) => {
    // A token for one resource must never be accepted by another's API.
    const seen = new Map<string, string>();
    for (const r of config.resources.values()) {
      const other = seen.get(r.audience);
      if (other !== undefined) {
        ctx.addIssue({
          code: "custom",
          path: ["resources", r.name, "audience"],
          message: `audience ${JSON.stringify(r.audience)} is also the audience of ${other}`,
        });
      }
      seen.set(r.audience, r.name);
    }
  });

function seconds(value: number | undefined): number | undefined {
  return value === undefined ? undefined : value * 1000;
}

function knownKeys(path: KeyPath): readonly string[] {
  const shape = path.map((step, i) => (i === 1 && path[0] === "resources" ? "*" : step));
  switch (shape.join("/")) {
    case "":
      return ["resources", "accept_other_github_tokens"];
    case "resources/*":
      return Object.keys(resource.shape);
    case "resources/*/repository":
      return ["id", "owner_id", "name"];
    case "resources/*/credential":
      return Object.keys(credential.shape);
    case "resources/*/timeouts":
      return Object.keys(timeouts.shape);
    default:
      return [];
  }
}
