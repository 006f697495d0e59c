/**
 * Whether a request is within a hallpass token's `hallpass.permissions`:
 * patterns "METHOD /path" (docs/policy.md), e.g. "GET /v1/**" or
 * "POST /v1/refunds".
 *
 * - METHOD is GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS, or * for any of
 *   them, compared exactly (GET does not allow HEAD).
 * - Each path segment is a literal, * (exactly one segment) or ** (zero or
 *   more segments); "/v1/**" covers "/v1" and everything under it.
 *
 * What this code does not understand, it refuses: a pattern it cannot read
 * allows nothing, and a request path that a server could read two ways
 * (percent-encoding, "." or ".." segments, "//", ";", "\") is not matched at
 * all (`requestSegments` returns null).
 */

const METHODS = new Set(["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]);
/** Plain segments only: unreserved and sub-delimiter characters, no %, ; or *. */
const PLAIN_PATH = /^\/$|^(\/[A-Za-z0-9._~!$&'()+,=:@-]+)+$/;

/**
 * The segments of a request path (without its query), or null when it is
 * not plain. One trailing "/" is dropped: "/v1/charges/" is "/v1/charges".
 *
 * @param {string} path
 * @returns {string[] | null}
 */
export function requestSegments(path) {
  const trimmed = path.length > 1 && path.endsWith("/") ? path.slice(0, -1) : path;
  if (!PLAIN_PATH.test(trimmed)) return null;
  const segments = trimmed === "/" ? [] : trimmed.slice(1).split("/");
  return segments.some((s) => s === "." || s === "..") ? null : segments;
}

/**
 * @param {unknown} permissions the token's `hallpass.permissions`
 * @param {string} method the request's method
 * @param {string[]} segments from `requestSegments`
 */
export function allows(permissions, method, segments) {
  if (!Array.isArray(permissions) || !METHODS.has(method)) return false;
  return permissions.some((permission) => {
    const pattern = compile(permission);
    return (
      pattern !== null &&
      (pattern.method === "*" || pattern.method === method) &&
      matches(pattern.segments, segments)
    );
  });
}

/** A permission as its method and segments, or null when it is not one this code reads. */
function compile(permission) {
  const match = typeof permission === "string" ? /^(\S+) (\/\S*)$/.exec(permission) : null;
  if (!match || (match[1] !== "*" && !METHODS.has(match[1]))) return null;
  const segments = match[2] === "/" ? [] : match[2].slice(1).split("/");
  const wildcardInside = (s) => s.includes("*") && s !== "*" && s !== "**";
  if (segments.some((s) => s === "" || wildcardInside(s))) return null;
  return { method: match[1], segments };
}

/** Walks the path once, keeping every pattern position it may have reached. */
function matches(pattern, path) {
  // A ** may also match no segment at all: step over it.
  const overGlobstars = (positions) => {
    for (const i of positions) if (pattern[i] === "**") positions.add(i + 1);
    return positions;
  };
  let positions = overGlobstars(new Set([0]));
  for (const segment of path) {
    const next = new Set();
    for (const i of positions) {
      if (pattern[i] === "**") next.add(i);
      else if (pattern[i] === "*" || pattern[i] === segment) next.add(i + 1);
    }
    positions = overGlobstars(next);
  }
  return positions.has(pattern.length);
}
