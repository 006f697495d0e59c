import { createHash } from "node:crypto";
import { canonicalJson } from "#src/audit/event.js";
import type { BoundResource } from "#src/rules/bind.js";
import { formatDuration, parseDuration } from "#src/rules/duration.js";
import { RESOURCE_NAME } from "#src/rules/policy.js";
import { extractFields, type RawFields } from "#src/rules/request-body.js";

export { MAX_BODY_CHARS } from "#src/rules/request-body.js";

/** An access request as read from a ticket and checked against the bound policy. */
export interface AccessRequest {
  readonly resource: string;
  /** Scope names, unique, sorted. Never empty. */
  readonly scopes: readonly string[];
  /** Seconds; the resource's `default_ttl` when the ticket gave none. */
  readonly durationSeconds: number;
  /** As written, trimmed. Not part of {@link requestHash}. */
  readonly reason: string;
  /** Scheduled start, or `null` for "as soon as approved". */
  readonly start: Date | null;
  readonly source: "issue-form" | "block";
}

export type RequestResult =
  | { readonly ok: true; readonly request: AccessRequest }
  | { readonly ok: false; readonly problems: readonly string[] };

/** A reason needs at least this many visible characters. */
export const MIN_REASON_CHARS = 10;
/** A scheduled start may be at most this far ahead, whatever the policy. */
export const MAX_START_AHEAD_SECONDS = 30 * 86_400;
const MAX_SCOPES = 50;

/**
 * Reads and checks the request in an issue or PR body against the resources
 * bound to this repository (see `extractFields` for the accepted forms).
 * Never throws; problems are sentences for the ticket, echoing user text only
 * in escaped, shortened form.
 *
 * Decisions: an empty or missing Scopes is a problem (access is never widened
 * by leaving a field out; the problem lists the choices); a missing Duration
 * means the resource's `default_ttl`; names are NFKC-normalised, must then be
 * ASCII (a look-alike such as Cyrillic `а` or a zero-width joiner is refused,
 * never matched) and are compared case-insensitively.
 *
 * @param now when the body was written or edited: a start in the past or more
 *   than {@link MAX_START_AHEAD_SECONDS} ahead is refused.
 */
export function parseRequest(
  body: string | null | undefined,
  resources: ReadonlyMap<string, BoundResource>,
  now: Date,
): RequestResult {
  const extracted = extractFields(body);
  if (!extracted.ok) return extracted;
  return validate(extracted.fields, resources, now);
}

/**
 * What approvals are bound to: sha256 (hex) of the canonical JSON (RFC 8785)
 * of the request's terms — resource, scopes (sorted), duration (seconds),
 * start (ISO 8601 or null) — and of what they allow under the rules they
 * were read with: each scope's patterns, the longest window, the token
 * lifetime, the rate limit and the rules for CI runs. A policy change that
 * widens any of these between an approval and its activation makes another
 * hash, so the approval no longer counts. The reason is left out: rewording
 * it keeps approvals.
 */
export function requestHash(
  request: Pick<AccessRequest, "resource" | "scopes" | "durationSeconds" | "start">,
  resource: BoundResource,
): string {
  const scopes = [...request.scopes].sort();
  const terms = {
    resource: request.resource,
    scopes,
    duration: request.durationSeconds,
    start: request.start === null ? null : request.start.toISOString(),
    allows: {
      permissions: Object.fromEntries(
        scopes.map((s) => [s, (resource.policy.scopes.get(s) ?? []).map((p) => p.text)]),
      ),
      max_ttl: Math.min(resource.maxTtl, resource.policy.maxTtl, resource.operator.maxTtl),
      token_ttl: resource.policy.tokenTtl,
      rate_limit: resource.policy.rateLimit,
      actions: resource.policy.actions,
      audience: resource.operator.audience,
    },
  };
  return createHash("sha256").update(canonicalJson(terms), "utf8").digest("hex");
}

function validate(
  fields: RawFields,
  resources: ReadonlyMap<string, BoundResource>,
  now: Date,
): RequestResult {
  const problems: string[] = [];
  const names = [...resources.keys()];
  const available =
    names.length === 0
      ? "this repository has no resources bound on this hallpass server"
      : `this repository's resources: ${names.join(", ")}`;

  let resource: BoundResource | undefined;
  if (fields.resource === undefined) {
    problems.push(`Resource is missing; ${available}`);
  } else {
    const name = asciiName(fields.resource, "resource");
    if (!name.ok) problems.push(`${name.message}; ${available}`);
    else if (!RESOURCE_NAME.test(name.value) || !resources.has(name.value)) {
      problems.push(`unknown resource ${show(fields.resource)}; ${available}`);
    } else {
      resource = resources.get(name.value);
    }
  }

  const scopes = new Set<string>();
  const defined = resource ? [...resource.policy.scopes.keys()] : [];
  const choices = resource ? `: choose from ${defined.join(", ")}` : "";
  if (fields.scopes === undefined || fields.scopes.length === 0) {
    problems.push(`Scopes is empty${choices || "; name at least one scope"}`);
  } else if (fields.scopes.length > MAX_SCOPES) {
    problems.push(`Scopes lists more than ${MAX_SCOPES} scopes`);
  } else {
    for (const text of fields.scopes) {
      const name = asciiName(text, "scope");
      if (!name.ok) problems.push(name.message);
      else if (resource && !resource.policy.scopes.has(name.value)) {
        problems.push(
          `scope ${show(text)} is not defined for ${resource.name}; allowed: ${defined.join(", ")}`,
        );
      } else scopes.add(name.value);
    }
  }

  let durationSeconds: number | undefined;
  if (fields.duration === undefined) {
    durationSeconds = resource?.policy.defaultTtl;
  } else {
    const parsed = parseDuration(fields.duration.normalize("NFKC"));
    if (!parsed.ok) problems.push(`Duration: ${parsed.message}`);
    else if (resource && parsed.seconds > resource.maxTtl) {
      problems.push(
        `Duration ${formatDuration(parsed.seconds)} is longer than the maximum for ` +
          `${resource.name}, ${formatDuration(resource.maxTtl)}`,
      );
    } else durationSeconds = parsed.seconds;
  }

  const reason = fields.reason?.trim() ?? "";
  const visible = visibleLength(reason);
  if (visible === 0) {
    problems.push(
      `Reason is missing: say why you need access (at least ${MIN_REASON_CHARS} characters)`,
    );
  } else if (visible < MIN_REASON_CHARS) {
    problems.push(
      `Reason is too short (${visible} characters); write at least ${MIN_REASON_CHARS}`,
    );
  }

  let start: Date | null = null;
  if (fields.start !== undefined) {
    const parsed = parseStart(fields.start.normalize("NFKC").trim(), now);
    if (typeof parsed === "string") problems.push(parsed);
    else start = parsed;
  }

  if (problems.length > 0 || resource === undefined || durationSeconds === undefined) {
    return { ok: false, problems };
  }
  return {
    ok: true,
    request: {
      resource: resource.name,
      scopes: [...scopes].sort(),
      durationSeconds,
      reason,
      start,
      source: fields.source,
    },
  };
}

/** NFKC, then printable ASCII only, lower-cased. */
function asciiName(
  text: string,
  what: string,
): { ok: true; value: string } | { ok: false; message: string } {
  const normalised = text.normalize("NFKC").trim();
  const foreign = [...new Set(normalised.match(/[^\x20-\x7e]/gu) ?? [])];
  if (foreign.length === 0) return { ok: true, value: normalised.toLowerCase() };
  const codes = foreign
    .slice(0, 5)
    .map((c) => `U+${(c.codePointAt(0) ?? 0).toString(16).toUpperCase().padStart(4, "0")}`);
  return {
    ok: false,
    message:
      `${what} ${show(text)} contains characters that are not plain ASCII letters, digits or ` +
      `punctuation (${codes.join(", ")}${foreign.length > 5 ? ", ..." : ""}); ` +
      "look-alike and invisible characters are not accepted",
  };
}

const START = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2}))?Z$/;

function parseStart(text: string, now: Date): Date | string {
  const example = "write it in UTC, e.g. 2026-03-01T09:00:00Z";
  const match = START.exec(text);
  if (match === null) return `Start ${show(text)} is not a UTC time; ${example}`;
  const [y, mo, d, h, mi, s] = match.slice(1).map((part) => Number(part ?? 0)) as number[];
  const at = new Date(Date.UTC(y ?? 0, (mo ?? 1) - 1, d ?? 0, h ?? 0, mi ?? 0, s ?? 0));
  if (
    at.getUTCFullYear() !== y ||
    at.getUTCMonth() + 1 !== mo ||
    at.getUTCDate() !== d ||
    at.getUTCHours() !== h ||
    at.getUTCMinutes() !== mi
  ) {
    return `Start ${show(text)} is not a real date and time; ${example}`;
  }
  if (at.getTime() < now.getTime()) return `Start ${at.toISOString()} is in the past`;
  if (at.getTime() - now.getTime() > MAX_START_AHEAD_SECONDS * 1000) {
    return `Start ${at.toISOString()} is more than ${formatDuration(MAX_START_AHEAD_SECONDS)} ahead`;
  }
  return at;
}

/** Characters a reader sees: NFKC, without format characters (zero-width...), whitespace collapsed. */
function visibleLength(text: string): number {
  const cleaned = text
    .normalize("NFKC")
    .replace(/\p{Cf}/gu, "")
    .replace(/\s+/g, " ")
    .trim();
  return [...cleaned].length;
}

/** User text for a message: quoted, at most 60 characters, anything not printable ASCII escaped. */
function show(text: string): string {
  const chars = [...text];
  let out = "";
  for (const char of chars.slice(0, 60)) {
    const code = char.codePointAt(0) ?? 0;
    out +=
      code >= 0x20 && code < 0x7f && char !== '"' && char !== "\\"
        ? char
        : `\\u{${code.toString(16).toUpperCase()}}`;
  }
  return `"${out}${chars.length > 60 ? "..." : ""}"`;
}
