import { RESOURCE_NAME } from "#src/rules/policy.js";

/**
 * The request target of a proxied request, `/<resource>/<path>?<query>`,
 * read once and in one way, so that what the scopes are matched against is
 * what the upstream will act on.
 *
 * The path is percent-decoded once (UTF-8, strictly: invalid or overlong
 * sequences are refused) and normalised to the form `rules/scopes.ts`
 * matches. Anything an upstream could read differently is refused rather
 * than rewritten:
 *
 * - a target that is not origin-form (absolute-form `http://…`, `*`);
 * - `.` and `..` segments, raw or encoded (`%2e`), and empty segments (`//`);
 * - encoded `/`, `\`, `.`, `%` (`%2f`, `%5c`, `%2e`, `%25`: double encodings);
 * - `;` path parameters, raw or encoded, and backslashes;
 * - characters outside RFC 3986's path characters, malformed `%` escapes,
 *   control characters once decoded.
 *
 * A single trailing `/` is dropped for matching (`/v1/charges/` is matched
 * as `/v1/charges`). What is forwarded is the path as the caller wrote it:
 * with every ambiguous form refused, the upstream's one decoding yields the
 * path that was matched.
 */

export type TargetRefusal =
  /** Not `/<resource>...` in origin-form. */
  | "request_target"
  /** No resource of that name. */
  | "unknown_resource";

export type Target =
  | {
      readonly ok: true;
      readonly resource: string;
      /** Decoded and normalised for matching, or null when the path is refused (`pathProblem`). */
      readonly path: string | null;
      /** Why the path is refused; null when it is not. */
      readonly pathProblem: string | null;
      /** What goes upstream (after its base path): the rest of the target as sent, `/v1/x?y=1`. */
      readonly forward: string;
      /** The path as sent, for the record when it cannot be normalised. */
      readonly rawPath: string;
    }
  | { readonly ok: false; readonly refusal: TargetRefusal; readonly message: string };

/** RFC 3986 `pchar` and `/`, minus `;` (path parameters): all a path may hold raw. */
const PATH_CHARS = /^[A-Za-z0-9\-._~!$&'()*+,=:@/%]*$/;
const ESCAPE = /%(?![0-9A-Fa-f]{2})/;
/** Encoded `/`, `\`, `.`, `%`, `;`: an upstream decoding once more, or splitting first, reads another path. */
const ENCODED_REFUSED = /%(?:2f|5c|2e|25|3b)/i;
const DECODER = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/**
 * Reads `/<resource>/<path>`. The resource part must be a resource name as
 * written (never encoded); the path part is checked and decoded.
 *
 * @example parseTarget("/payments-api/v1/charges?limit=3")
 *   // { ok: true, resource: "payments-api", path: "/v1/charges", forward: "/v1/charges?limit=3", ... }
 */
export function parseTarget(url: string): Target {
  if (!url.startsWith("/")) {
    return refused("request_target", "the request target must be a path: /<resource>/<path>");
  }
  const question = url.indexOf("?");
  const rawPath = question === -1 ? url : url.slice(0, question);
  if (url.includes("#")) return refused("request_target", "a request target has no fragment");
  const slash = rawPath.indexOf("/", 1);
  const resource = slash === -1 ? rawPath.slice(1) : rawPath.slice(1, slash);
  if (!RESOURCE_NAME.test(resource)) {
    return refused("unknown_resource", "no such resource: the path starts with /<resource>/");
  }
  const restPath = slash === -1 ? "" : rawPath.slice(slash);
  const problem = pathProblem(restPath);
  return {
    ok: true,
    resource,
    path: problem === null ? normalise(restPath) : null,
    pathProblem: problem,
    forward: (restPath || "/") + (question === -1 ? "" : url.slice(question)),
    rawPath: restPath || "/",
  };
}

/** Plain paths (no escapes, dots only inside segments, no empty segment): nothing to decode. */
const PLAIN = /^(?:\/[A-Za-z0-9\-_~!$&'()*+,=:@]+(?:\.[A-Za-z0-9\-_~!$&'()*+,=:@]+)*)+\/?$/;

/** Why a raw path (after the resource) is refused, or null. */
function pathProblem(raw: string): string | null {
  if (raw === "" || raw === "/" || PLAIN.test(raw)) return null;
  if (raw.includes("\\")) return "the path contains a backslash";
  if (raw.includes(";")) return "the path contains a ; (path parameters are refused)";
  if (!PATH_CHARS.test(raw)) return "the path contains characters that must be percent-encoded";
  if (ESCAPE.test(raw)) return "the path contains a malformed % escape";
  if (ENCODED_REFUSED.test(raw)) {
    return "the path contains an encoded /, \\, ., % or ; (%2f, %5c, %2e, %25, %3b)";
  }
  const decoded = decode(raw);
  if (decoded === null) return "the path is not valid UTF-8 once decoded";
  if (/\p{Cc}/u.test(decoded)) return "the path contains control characters once decoded";
  if (/[?#]/.test(decoded)) return "the path contains an encoded ? or #";
  const segments = (decoded.endsWith("/") ? decoded.slice(1, -1) : decoded.slice(1)).split("/");
  for (const segment of segments) {
    if (segment === "") return "the path contains an empty segment (//)";
    if (segment === "." || segment === "..") return "the path contains a . or .. segment";
  }
  return null;
}

/** The decoded path without a trailing `/`; only for paths `pathProblem` accepts. */
function normalise(raw: string): string {
  if (raw === "" || raw === "/") return "/";
  const decoded = decode(raw) ?? "";
  return decoded.endsWith("/") ? decoded.slice(0, -1) : decoded;
}

function decode(raw: string): string | null {
  if (!raw.includes("%")) return raw;
  const bytes: number[] = [];
  for (let i = 0; i < raw.length; i++) {
    const char = raw.charCodeAt(i);
    if (char === 0x25) {
      bytes.push(Number.parseInt(raw.slice(i + 1, i + 3), 16));
      i += 2;
    } else {
      bytes.push(char);
    }
  }
  try {
    return DECODER.decode(Uint8Array.from(bytes));
  } catch {
    return null;
  }
}

function refused(refusal: TargetRefusal, message: string): Target {
  return { ok: false, refusal, message };
}
