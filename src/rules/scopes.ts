/**
 * Scope patterns: `METHOD /path/pattern`, e.g. `GET /v1/**` or
 * `POST /v1/refunds`.
 *
 * - METHOD is one of {@link HTTP_METHODS} or `*` (any of them). Methods are
 *   compared exactly: `GET` does not imply `HEAD`.
 * - Path segments are literals, `*` (exactly one segment, any non-empty text)
 *   or `**` (zero or more segments). A wildcard is always a whole segment:
 *   `v1*` is refused. `/v1/**` matches `/v1` itself and everything under it.
 *
 * Request paths: callers (the proxy) pass the path already percent-decoded
 * and normalised, without query or fragment. Anything that is not in that
 * form is refused, i.e. matched by no pattern: a path not starting with `/`,
 * empty segments (`//`, and so a trailing `/`), `.` or `..` segments (also
 * with a `;` parameter, as in `..;`), a backslash, `?`, `#`, control
 * characters, or a percent-encoded `/`, `\`, `.` or `%` left in the decoded
 * path (a double encoding). A proxy that accepts trailing slashes strips them
 * before matching.
 */

export const HTTP_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"] as const;
export type HttpMethod = (typeof HTTP_METHODS)[number];

export type Segment =
  | { readonly kind: "literal"; readonly value: string }
  | { readonly kind: "star" }
  | { readonly kind: "globstar" };

/** A compiled pattern; `text` is the canonical form it was compiled from. */
export interface ScopePattern {
  readonly text: string;
  readonly method: HttpMethod | "*";
  readonly segments: readonly Segment[];
}

export type CompileResult =
  | { readonly ok: true; readonly pattern: ScopePattern }
  | { readonly ok: false; readonly message: string };

/** Longest pattern accepted, in characters and in segments. */
export const MAX_PATTERN_LENGTH = 1024;
export const MAX_PATTERN_SEGMENTS = 64;

const METHODS: ReadonlySet<string> = new Set(HTTP_METHODS);
const LITERAL = /^[A-Za-z0-9\-._~!$&'()+,;=:@]+$/;
const REFUSED_IN_PATH = /[\\?#]|\p{Cc}|%(?:2f|5c|2e|25)/iu;

/**
 * Compiles `METHOD /path` once, for {@link matchScope} and
 * {@link patternWithin}.
 *
 * @example compileScope("GET /v1/charges/*")
 */
export function compileScope(text: string): CompileResult {
  if (typeof text !== "string") return fail("a scope pattern is text: METHOD /path");
  if (text.length > MAX_PATTERN_LENGTH) {
    return fail(`pattern is longer than ${MAX_PATTERN_LENGTH} characters`);
  }
  const match = /^(\S+) (\S+)$/.exec(text);
  if (match === null) {
    return fail(`${JSON.stringify(text)}: expected METHOD /path, e.g. "GET /v1/**"`);
  }
  const [, method = "", path = ""] = match;
  if (method !== "*" && !METHODS.has(method)) {
    const upper = method.toUpperCase();
    return fail(
      METHODS.has(upper)
        ? `method ${JSON.stringify(method)}: methods are upper case, write ${upper}`
        : `method ${JSON.stringify(method)}: use one of ${HTTP_METHODS.join(", ")} or *`,
    );
  }
  if (!path.startsWith("/")) return fail(`path ${JSON.stringify(path)} must start with /`);
  const parts = path === "/" ? [] : path.slice(1).split("/");
  if (parts.length > MAX_PATTERN_SEGMENTS) {
    return fail(`path has more than ${MAX_PATTERN_SEGMENTS} segments`);
  }
  const segments: Segment[] = [];
  for (const part of parts) {
    if (part === "**") {
      // `**/**` means the same as `**`; one keeps matching linear.
      if (segments.at(-1)?.kind !== "globstar") segments.push({ kind: "globstar" });
    } else if (part === "*") {
      segments.push({ kind: "star" });
    } else if (part === "") {
      return fail(`path ${JSON.stringify(path)} has an empty segment (// or a trailing /)`);
    } else if (part.includes("*")) {
      return fail(
        `segment ${JSON.stringify(part)}: * and ** stand for whole segments only, e.g. /v1/*/items`,
      );
    } else if (!LITERAL.test(part) || refusedSegment(part)) {
      return fail(
        `segment ${JSON.stringify(part)} can never match a normalised path ` +
          `(letters, digits and -._~!$&'()+,;=:@ only; no . or .. segments)`,
      );
    } else {
      segments.push({ kind: "literal", value: part });
    }
  }
  return {
    ok: true,
    pattern: { text: `${method} ${path}`, method: method as HttpMethod | "*", segments },
  };
}

/**
 * The segments of a normalised request path, or `null` when the path is
 * refused (see the module comment). `"/"` has no segments.
 */
export function pathSegments(path: string): readonly string[] | null {
  if (typeof path !== "string" || !path.startsWith("/") || REFUSED_IN_PATH.test(path)) {
    return null;
  }
  if (path === "/") return [];
  const parts = path.slice(1).split("/");
  for (const part of parts) if (refusedSegment(part)) return null;
  return parts;
}

/**
 * Whether a request is inside the pattern. `path` must be decoded and
 * normalised; any other path is refused and never matches.
 *
 * @example matchScope(compiled("GET /v1/**"), "GET", "/v1/charges/ch_1") // true
 * @example matchScope(compiled("GET /v1/**"), "GET", "/v1/../admin")     // false
 */
export function matchScope(pattern: ScopePattern, method: string, path: string): boolean {
  if (!METHODS.has(method)) return false;
  if (pattern.method !== "*" && pattern.method !== method) return false;
  const segments = pathSegments(path);
  return segments !== null && matchSegments(pattern.segments, segments);
}

/** Whether any of the patterns matches the request. */
export function matchAnyScope(
  patterns: readonly ScopePattern[],
  method: string,
  path: string,
): boolean {
  return matchingScope(patterns, method, path) !== null;
}

/** The first of the patterns that matches the request (the path is read once), or null. */
export function matchingScope(
  patterns: readonly ScopePattern[],
  method: string,
  path: string,
): ScopePattern | null {
  if (!METHODS.has(method)) return null;
  const segments = pathSegments(path);
  if (segments === null) return null;
  for (const pattern of patterns) {
    if (
      (pattern.method === "*" || pattern.method === method) &&
      matchSegments(pattern.segments, segments)
    ) {
      return pattern;
    }
  }
  return null;
}

/**
 * Containment: true iff every request matched by `inner` is matched by
 * `outer`. Exact, not a heuristic: a policy pattern is allowed under an
 * operator ceiling only when this holds.
 *
 * Why it is exact: segments are an unbounded alphabet, and `outer` can tell a
 * segment apart only from its own literals. So an inner `*` (or each segment
 * of an inner `**`) is checked as one "fresh" segment equal to no literal: if
 * `outer` matches the fresh segment at a position, it matches any segment
 * there. What remains is inclusion of two regular languages over a finite
 * alphabet, decided by walking `inner` against the subset construction of
 * `outer`.
 *
 * @example patternWithin(compiled("GET /v1/charges/*"), compiled("GET /v1/**")) // true
 * @example patternWithin(compiled("* /v1/**"), compiled("GET /v1/**"))          // false
 */
export function patternWithin(inner: ScopePattern, outer: ScopePattern): boolean {
  if (outer.method !== "*" && inner.method !== outer.method) return false;
  return segmentsWithin(inner.segments, outer.segments);
}

function segmentsWithin(inner: readonly Segment[], outer: readonly Segment[]): boolean {
  const m = outer.length;
  const closure = (states: Set<number>): Set<number> => {
    for (const j of states) if (outer[j]?.kind === "globstar") states.add(j + 1);
    return states;
  };
  // `null` is the fresh segment: equal to no literal.
  const step = (states: ReadonlySet<number>, symbol: string | null): Set<number> => {
    const next = new Set<number>();
    for (const j of states) {
      const token = outer[j];
      if (token === undefined) continue;
      if (token.kind === "globstar") next.add(j);
      else if (token.kind === "star" || token.value === symbol) next.add(j + 1);
    }
    return closure(next);
  };

  const seen = new Set<string>();
  const queue: Array<[number, Set<number>]> = [[0, closure(new Set([0]))]];
  for (let item = queue.pop(); item !== undefined; item = queue.pop()) {
    const [i, states] = item;
    const key = `${i}:${[...states].sort((a, b) => a - b).join(",")}`;
    if (seen.has(key)) continue;
    seen.add(key);
    // From any inner position the end is reachable, so a dead outer means a
    // word of inner that outer does not match.
    if (states.size === 0) return false;
    const token = inner[i];
    if (token === undefined) {
      if (!states.has(m)) return false;
      continue;
    }
    if (token.kind === "globstar") {
      queue.push([i + 1, states], [i, step(states, null)]);
    } else {
      queue.push([i + 1, step(states, token.kind === "star" ? null : token.value)]);
    }
  }
  return true;
}

function matchSegments(pattern: readonly Segment[], path: readonly string[]): boolean {
  // Simulates the pattern as an automaton over segments: linear in
  // pattern × path, whatever the number of `**`; two state sets, swapped.
  const size = pattern.length + 1;
  let states = new Uint8Array(size);
  let next = new Uint8Array(size);
  const close = (s: Uint8Array): void => {
    for (let j = 0; j < pattern.length; j++) {
      if (s[j] === 1 && pattern[j]?.kind === "globstar") s[j + 1] = 1;
    }
  };
  states[0] = 1;
  close(states);
  for (const segment of path) {
    next.fill(0);
    let alive = false;
    for (let j = 0; j < pattern.length; j++) {
      if (states[j] !== 1) continue;
      const token = pattern[j];
      if (token === undefined) continue;
      if (token.kind === "globstar") next[j] = 1;
      else if (token.kind === "star" || token.value === segment) next[j + 1] = 1;
      else continue;
      alive = true;
    }
    if (!alive) return false;
    close(next);
    const previous = states;
    states = next;
    next = previous;
  }
  return states[pattern.length] === 1;
}

function refusedSegment(part: string): boolean {
  // `..;x` is `..` to servers that strip path parameters.
  const semicolon = part.indexOf(";");
  const bare = semicolon === -1 ? part : part.slice(0, semicolon);
  return bare === "" || bare === "." || bare === "..";
}

function fail(message: string): CompileResult {
  return { ok: false, message };
}
