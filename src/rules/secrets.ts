import type { OperatorConfig, SecretRef } from "#src/rules/operator.js";
import { Secret } from "#src/secret.js";

export { Secret };

/** The resolved secrets of one resource. */
export interface ResourceSecrets {
  /**
   * The header the proxy injects, `value` with its prefix, `bare` without
   * (what an upstream echoing it back would show); `null` when none is configured.
   */
  readonly credential: {
    readonly header: string;
    readonly value: Secret;
    readonly bare: Secret;
  } | null;
  readonly introspectionSecret: Secret | null;
  /** PEM certificates the proxy trusts for this resource's upstream (not a secret, read alike). */
  readonly upstreamCa: string | null;
}

/** Where secrets come from: the process environment and the filesystem, passed in. */
export interface SecretSources {
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly readFile: (path: string) => string | Promise<string>;
}

export type SecretsResult =
  | { readonly ok: true; readonly secrets: ReadonlyMap<string, ResourceSecrets> }
  | { readonly ok: false; readonly errors: readonly { path: string; message: string }[] };

/**
 * What an HTTP header value may hold (RFC 9110 §5.5; the check of Node and
 * undici): a credential with anything else is accepted here but refused by
 * the HTTP client on every forwarded request.
 */
const HEADER_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;
const UNSENDABLE =
  "contains a character an HTTP header cannot carry (only printable ASCII and Latin-1)";

/** Introspection secrets shorter than this are refused as guessable. */
export const MIN_INTROSPECTION_SECRET_LENGTH = 16;

/**
 * Resolves the `env:`/`file:` references of the operator config. Errors name
 * the key path and the reference (variable name or file path), never a value;
 * a file's trailing newline is dropped.
 */
export async function resolveSecrets(
  config: OperatorConfig,
  sources: SecretSources,
): Promise<SecretsResult> {
  const errors: { path: string; message: string }[] = [];
  const secrets = new Map<string, ResourceSecrets>();
  for (const resource of config.resources.values()) {
    const base = `resources.${resource.name}`;
    let credential: ResourceSecrets["credential"] = null;
    if (resource.credential) {
      const path = `${base}.credential.value`;
      const value = await read(resource.credential.value, sources, (message) =>
        errors.push({ path, message }),
      );
      if (value !== null && /\p{Cc}/u.test(value)) {
        errors.push({
          path,
          message: `${describe(resource.credential.value)} contains a control character (line break, NUL...)`,
        });
      } else if (!HEADER_VALUE.test(resource.credential.prefix)) {
        errors.push({
          path: `${base}.credential.prefix`,
          message: `the prefix ${UNSENDABLE}`,
        });
      } else if (value !== null && !HEADER_VALUE.test(value)) {
        errors.push({ path, message: `${describe(resource.credential.value)} ${UNSENDABLE}` });
      } else if (value !== null) {
        credential = {
          header: resource.credential.header,
          value: new Secret(resource.credential.prefix + value),
          bare: new Secret(value),
        };
      }
    }
    let introspectionSecret: Secret | null = null;
    if (resource.introspectionSecret) {
      const ref = resource.introspectionSecret;
      const path = `${base}.introspection_secret`;
      const value = await read(ref, sources, (message) => errors.push({ path, message }));
      if (value !== null && value.length < MIN_INTROSPECTION_SECRET_LENGTH) {
        errors.push({
          path,
          message: `${describe(ref)} is shorter than ${MIN_INTROSPECTION_SECRET_LENGTH} characters`,
        });
      } else if (value !== null) {
        introspectionSecret = new Secret(value);
      }
    }
    let upstreamCa: string | null = null;
    if (resource.proxy.upstreamCa) {
      const ref = resource.proxy.upstreamCa;
      const path = `${base}.upstream_ca`;
      const value = await read(ref, sources, (message) => errors.push({ path, message }));
      if (value !== null && !/-----BEGIN CERTIFICATE-----/.test(value)) {
        errors.push({ path, message: `${describe(ref)} holds no PEM certificate` });
      } else {
        upstreamCa = value;
      }
    }
    secrets.set(resource.name, { credential, introspectionSecret, upstreamCa });
  }
  return errors.length > 0 ? { ok: false, errors } : { ok: true, secrets };
}

async function read(
  ref: SecretRef,
  sources: SecretSources,
  fail: (message: string) => void,
): Promise<string | null> {
  let value: string | undefined;
  if (ref.source === "env") {
    value = sources.env[ref.name];
    if (value === undefined) {
      fail(`${describe(ref)} is not set`);
      return null;
    }
  } else {
    try {
      value = (await sources.readFile(ref.path)).replace(/\r?\n$/, "");
    } catch (error) {
      // The error's code only: some readers put file contents in messages.
      const code = (error as { code?: unknown } | null)?.code;
      fail(`${describe(ref)} cannot be read${typeof code === "string" ? ` (${code})` : ""}`);
      return null;
    }
  }
  if (value === "") {
    fail(`${describe(ref)} is empty`);
    return null;
  }
  return value;
}

function describe(ref: SecretRef): string {
  return ref.source === "env" ? `environment variable ${ref.name}` : `file ${ref.path}`;
}
