/**
 * CODEOWNERS path patterns, compiled once and matched segment by segment.
 *
 * GitHub documents its patterns as gitignore patterns minus `!`, `[ ]` and `\#`.
 * Where it leaves a case undocumented and careful implementations disagree, a
 * pattern compiles to several *readings* and a match is `"maybe"` when they
 * disagree, so that callers can refuse to guess:
 *
 * - anchoring: a slash only in the middle (`docs/api`) anchors the pattern to
 *   the root in gitignore; some implementations match it at any depth;
 * - a last segment with wildcards (`/src/b*`, `*.js`): gitignore also matches
 *   everything below a matching directory; GitHub has been reported not to;
 * - `**` inside a segment (`**.js`): gitignore reads it as `*`; other globs let
 *   it cross directories;
 * - `**` as the last segment before a trailing slash (`foo/**`, then `/`):
 *   gitignore reads it as `foo/**` for directories only, so it matches what is
 *   below a directory inside `foo` and never a file directly inside `foo`;
 *   implementations that drop the slash, or read the last `**` as zero or more
 *   directories, take all of `foo`.
 *
 * Matching is linear-time backtracking over segments and characters (no RegExp
 * built from input), so no pattern can make a lookup explode.
 */

/** `"maybe"`: the pattern matches under some plausible reading of GitHub's rules only. */
export type Tri = "yes" | "maybe" | "no";

const ANY = 0; // `**` as a whole segment: zero or more segments
const ONE = 1; // a segment matching every name (`*`)
const LIT = 2; // a literal name
const AFFIX = 3; // `pre*suf`
const GLOB = 4; // anything else with `*` and `?`

/** `?` and `*` inside a segment; literal runs are strings (escapes resolved). */
const Q = 0;
const S = 1;
type Tok = string | typeof Q | typeof S;

type Seg =
  | { readonly k: typeof ANY }
  | { readonly k: typeof ONE }
  | { readonly k: typeof LIT; readonly lit: string }
  | { readonly k: typeof AFFIX; readonly pre: string; readonly suf: string }
  | { readonly k: typeof GLOB; readonly toks: readonly Tok[] };

/** One concrete matcher: a path matches when the whole path matches `segs`. */
export interface Matcher {
  readonly segs: readonly Seg[];
  readonly hasAny: boolean;
  readonly endsAny: boolean;
}

/** A compiled pattern: each reading is a union of matchers. */
export interface CompiledPattern {
  readonly readings: readonly (readonly Matcher[])[];
  /** Why the readings differ (empty when there is one reading). */
  readonly notes: readonly string[];
  /** The only matcher, when there is one reading of one matcher (the common case). */
  readonly single: Matcher | null;
  /** A segment every matcher needs some name of the path to match: a cheap first test. */
  readonly required: Seg | null;
}

export type CompileResult =
  | { readonly ok: true; readonly pattern: CompiledPattern }
  | { readonly ok: false; readonly reason: string };

const ANY_SEG: Seg = { k: ANY };
const ONE_SEG: Seg = { k: ONE };

export const NOTE_ANCHOR =
  "GitHub does not document whether a pattern with a slash only in the middle is anchored to the root (start it with `/` or `**/`)";
export const NOTE_TAIL =
  "GitHub does not document whether a last segment with wildcards also matches what is below a matching directory (end the pattern with `/` or a plain name)";
export const NOTE_TRAILING_ANY =
  "GitHub does not document whether a pattern ending in `/**/` matches the files directly inside the directory before it, which gitignore does not (for everything below `dir`, write `dir/` or `dir/**`; for what is in its subdirectories only, `dir/*/`)";
export const NOTE_INNER =
  "GitHub does not document whether `**` inside a segment crosses directories (use `**` as a whole segment, or `*`)";

/**
 * Compile a pattern as written in CODEOWNERS (escapes included).
 *
 * Strict mode refuses what GitHub skips or what cannot be read safely, with a
 * reason. Lenient mode never refuses: it widens every such construct to
 * something that matches at least as much (`[a-z]` → `*`, `!x` → `x`, an
 * empty segment → `**`) and merges the readings, to judge what a skipped line
 * could have governed.
 */
export function compilePattern(raw: string, lenient = false): CompileResult {
  let text = raw;
  if (text.startsWith("!")) {
    if (!lenient) return refuse("negation with `!` is not supported by GitHub");
    text = text.slice(1);
  }
  if (text.startsWith("\\!") && !lenient) {
    return refuse("escaping a leading `!` with `\\` is not documented by GitHub");
  }
  if (text.startsWith("\\#") && !lenient) {
    return refuse("escaping a leading `#` with `\\` is not supported by GitHub");
  }
  const split = splitSegments(text, lenient);
  if (typeof split === "string") return refuse(split);
  const { leading, trailing, segs } = split;
  if (segs.length === 0) {
    if (!lenient) return refuse("the pattern matches nothing, use `*` for every file");
    return { ok: true, pattern: build([[S, S]], false, true, true) };
  }
  let inner = 0;
  for (let i = 0; i < segs.length; i++) {
    let toks = segs[i] as Tok[];
    if (toks.length === 0 || isDots(toks)) {
      if (!lenient) return refuse("empty, `.` or `..` path segment");
      toks = [S, S];
    }
    if (longestStarRun(toks) >= 3) {
      if (!lenient) return refuse("three or more consecutive `*`");
      toks = toks.filter((t, j) => !(t === S && toks[j - 1] === S && toks[j - 2] === S));
    }
    segs[i] = toks;
    inner += innerRuns(toks);
  }
  if (inner > 3) {
    if (!lenient) return refuse("too many `**` inside path segments");
    for (let i = 0; i < segs.length; i++) if (innerRuns(segs[i] as Tok[]) > 0) segs[i] = [S, S];
  }
  return { ok: true, pattern: build(segs, leading, trailing, lenient) };
}

/** The union of several patterns, as one reading (used for skipped lines). */
export function unionOf(patterns: readonly CompiledPattern[]): CompiledPattern {
  const all = patterns.flatMap((p) => p.readings.flat());
  const single = all.length === 1 ? (all[0] as Matcher) : null;
  return { readings: [all], notes: [], single, required: null };
}

/** A pattern that matches nothing. */
export const NOTHING: CompiledPattern = { readings: [[]], notes: [], single: null, required: null };

/**
 * The literal names every path matched by the pattern starts with (`/a/b/*.js`
 * → `["a", "b"]`; unanchored patterns → `[]`), to index rules by them.
 */
export function literalPrefix(pattern: CompiledPattern): string[] {
  let prefix: string[] | null = null;
  for (const m of pattern.readings.flat()) {
    const own: string[] = [];
    for (const seg of m.segs) {
      if (seg.k !== LIT) break;
      own.push(seg.lit);
    }
    let same = 0;
    while (prefix !== null && same < prefix.length && prefix[same] === own[same]) same++;
    prefix = prefix === null ? own : prefix.slice(0, same);
  }
  return prefix ?? [];
}

/** Does the pattern match the file at `path` (its segments)? */
export function matchFile(pattern: CompiledPattern, path: readonly string[]): Tri {
  if (pattern.single !== null) return matchSegs(pattern.single, path) ? "yes" : "no";
  if (!hasRequired(pattern, path)) return "no";
  let yes = 0;
  for (const reading of pattern.readings) {
    for (const m of reading) {
      if (matchSegs(m, path)) {
        yes++;
        break;
      }
    }
  }
  return triOf(yes, pattern.readings.length);
}

/**
 * Does the pattern match every file that could exist below the directory
 * whose segments are `probes(0)` (`[]` is the repository root)? `probes(d)` is
 * that directory followed by `d` unknown names (`null`), which only a segment
 * matching every name matches. For a union of matchers it suffices to probe
 * depths 1..n+1, n being the longest matcher: beyond that only a `**` can
 * still match, and then it matches at every greater depth.
 */
export function coverDirectory(
  pattern: CompiledPattern,
  probes: (depth: number) => readonly (string | null)[],
): Tri {
  if (pattern.single !== null) return coversOne(pattern.single, probes) ? "yes" : "no";
  if (!hasRequired(pattern, probes(1))) return "no";
  let yes = 0;
  for (const reading of pattern.readings) {
    if (
      reading.length === 1 ? coversOne(reading[0] as Matcher, probes) : coversAll(reading, probes)
    ) {
      yes++;
    }
  }
  return triOf(yes, pattern.readings.length);
}

function hasRequired(pattern: CompiledPattern, path: readonly (string | null)[]): boolean {
  const required = pattern.required;
  if (required === null) return true;
  for (const name of path) if (segMatch(required, name)) return true;
  return false;
}

function coversOne(m: Matcher, probes: (depth: number) => readonly (string | null)[]): boolean {
  if (m.endsAny) return matchSegs(m, probes(1));
  if (!m.hasAny) return false;
  return coversAll([m], probes);
}

function coversAll(
  ms: readonly Matcher[],
  probes: (depth: number) => readonly (string | null)[],
): boolean {
  if (ms.length === 0) return false;
  let max = 0;
  for (const m of ms) max = Math.max(max, m.segs.length);
  for (let depth = 1; depth <= max + 1; depth++) {
    const probe = probes(depth);
    if (!ms.some((m) => matchSegs(m, probe))) return false;
  }
  return true;
}

function triOf(yes: number, of: number): Tri {
  return yes === 0 ? "no" : yes === of ? "yes" : "maybe";
}

function refuse(reason: string): CompileResult {
  return { ok: false, reason };
}

/** Split on unescaped `/`, resolving escapes; returns a reason when strict parsing fails. */
function splitSegments(
  text: string,
  lenient: boolean,
): { leading: boolean; trailing: boolean; segs: Tok[][] } | string {
  const segs: Tok[][] = [];
  let toks: Tok[] = [];
  let lit = "";
  for (let i = 0; i < text.length; i++) {
    let ch = text[i] as string;
    if (ch === "\\") {
      if (i + 1 >= text.length) {
        if (!lenient) return "the pattern ends with an unfinished escape `\\`";
        continue;
      }
      ch = text[++i] as string;
      if (ch === "/" && !lenient) return "escaped `/` in the pattern";
      if (ch === "[" && !lenient) return "character ranges with `[ ]` are not supported by GitHub";
      if (ch === "#" && !lenient)
        return "`#` inside a pattern is ambiguous, GitHub may read a comment";
      if (ch !== "/") {
        lit += ch;
        continue;
      }
    }
    if (ch === "#" && !lenient) {
      return "`#` inside a pattern is ambiguous, GitHub may read a comment";
    }
    if (ch !== "/" && ch !== "*" && ch !== "?" && ch !== "[") {
      lit += ch;
      continue;
    }
    if (lit !== "") toks.push(lit);
    lit = "";
    if (ch === "/") {
      segs.push(toks);
      toks = [];
    } else if (ch === "[") {
      if (!lenient) return "character ranges with `[ ]` are not supported by GitHub";
      const close = text.indexOf("]", i);
      const slash = text.indexOf("/", i);
      if (close >= 0 && (slash < 0 || close < slash)) i = close;
      toks.push(S);
    } else {
      toks.push(ch === "*" ? S : Q);
    }
  }
  if (lit !== "") toks.push(lit);
  segs.push(toks);
  const leading = segs.length > 1 && (segs[0] as Tok[]).length === 0;
  if (leading) segs.shift();
  const trailing = segs.length > 1 && (segs[segs.length - 1] as Tok[]).length === 0;
  if (trailing) segs.pop();
  if (segs.length === 1 && (segs[0] as Tok[]).length === 0) segs.pop();
  return { leading, trailing, segs };
}

function isDots(toks: readonly Tok[]): boolean {
  return toks.length === 1 && (toks[0] === "." || toks[0] === "..");
}

function isWholeAny(toks: readonly Tok[]): boolean {
  return toks.length === 2 && toks[0] === S && toks[1] === S;
}

function longestStarRun(toks: readonly Tok[]): number {
  let run = 0;
  let longest = 0;
  for (const t of toks) {
    run = t === S ? run + 1 : 0;
    longest = Math.max(longest, run);
  }
  return longest;
}

/** Number of `**` runs inside a segment that is not `**` itself. */
function innerRuns(toks: readonly Tok[]): number {
  if (isWholeAny(toks)) return 0;
  let runs = 0;
  for (let i = 1; i < toks.length; i++) {
    if (toks[i] === S && toks[i - 1] === S && toks[i - 2] !== S) runs++;
  }
  return runs;
}

type Kind = "exact" | "prefix" | "contents";

function build(
  input: readonly Tok[][],
  leading: boolean,
  trailing: boolean,
  lenient: boolean,
): CompiledPattern {
  const segs = input.slice();
  // A slash only in the middle anchors in gitignore; `**/x` reads the same either way.
  const anchorUnsure = !leading && segs.length > 1 && !isWholeAny(segs[0] as Tok[]);
  const anchored = leading || segs.length > 1;

  let kind: Kind = "prefix";
  let tailUnsure = false;
  // `x/**/`: in gitignore the `x/**` is at least one name and a directory, so the
  // files it governs are two or more names below `x`; another reading takes all of `x`.
  let anyUnsure = false;
  const last = segs[segs.length - 1] as Tok[];
  if (trailing) {
    kind = "contents";
    anyUnsure = isWholeAny(last);
  } else if (isWholeAny(last)) {
    segs.pop();
    kind = "contents";
  } else if (last.length === 1 && last[0] === S) {
    kind = "exact";
  } else {
    tailUnsure = last.includes(S) || last.includes(Q);
  }

  let hasInner = false;
  for (const toks of segs) if (innerRuns(toks) > 0) hasInner = true;
  const plain = segs.map(toSeg);
  if (!anchorUnsure && !tailUnsure && !anyUnsure && !hasInner) {
    const m = finish(plain, anchored, kind);
    return { readings: [[m]], notes: [], single: m, required: null };
  }

  const notes: string[] = [];
  if (anchorUnsure) notes.push(NOTE_ANCHOR);
  if (tailUnsure) notes.push(NOTE_TAIL);
  if (anyUnsure) notes.push(NOTE_TRAILING_ANY);
  if (hasInner) notes.push(NOTE_INNER);
  // Each variant is the segments under one reading of a trailing `**/`: as
  // written, and gitignore's (the last `**` becomes one name, a directory).
  const variants: { segs: readonly Tok[][]; plain: readonly Seg[] }[] = [{ segs, plain }];
  if (anyUnsure) {
    variants.push({ segs: [...segs.slice(0, -1), [S]], plain: [...plain.slice(0, -1), ONE_SEG] });
  }
  const readings: Matcher[][] = [];
  for (const a of anchorUnsure ? [true, false] : [anchored]) {
    for (const k of tailUnsure ? (["prefix", "exact"] as const) : [kind]) {
      for (const v of variants) {
        readings.push([finish(v.plain, a, k)]);
        if (hasInner) readings.push(crossed(v.segs).map((list) => finish(list, a, k)));
      }
    }
  }
  const all = readings.flat();
  const required =
    [...plain]
      .reverse()
      .find((seg) => seg.k !== ANY && seg.k !== ONE && all.every((m) => m.segs.includes(seg))) ??
    null;
  if (!lenient) return { readings, notes, single: null, required };
  // Judging what a line could govern: every reading counts.
  const single = all.length === 1 ? (all[0] as Matcher) : null;
  return { readings: [all], notes: [], single, required };
}

/** The segment lists where `**` inside segments crosses directories (each run may or may not). */
function crossed(segs: readonly Tok[][]): Seg[][] {
  let out: Seg[][] = [[]];
  for (const toks of segs) {
    const options = isWholeAny(toks) ? [[ANY_SEG]] : crossings(toks);
    out = out.flatMap((prefix) => options.map((o) => [...prefix, ...o]));
  }
  return out;
}

/** Every way the `**` runs inside one segment may or may not cross directories. */
function crossings(toks: readonly Tok[]): Seg[][] {
  const pieces: Tok[][] = [[]];
  for (let i = 0; i < toks.length; i++) {
    if (toks[i] === S && toks[i + 1] === S) {
      pieces.push([]);
      i++;
    } else {
      (pieces[pieces.length - 1] as Tok[]).push(toks[i] as Tok);
    }
  }
  let out: Tok[][][] = [[pieces[0] as Tok[]]];
  for (const piece of pieces.slice(1)) {
    out = out.flatMap((list) => {
      const head = list.slice(0, -1);
      const tail = list[list.length - 1] as Tok[];
      return [
        [...head, [...tail, S, ...piece]],
        [...head, [...tail, S], [], [S, ...piece]],
      ];
    });
  }
  return out.map((list) => list.map((toks) => (toks.length === 0 ? ANY_SEG : toSeg(toks))));
}

function finish(segs: readonly Seg[], anchored: boolean, kind: Kind): Matcher {
  const out: Seg[] = anchored ? [] : [ANY_SEG];
  const tail = kind === "prefix" ? [ANY_SEG] : kind === "contents" ? [ONE_SEG, ANY_SEG] : [];
  let hasAny = !anchored;
  for (const list of [segs, tail]) {
    for (const seg of list) {
      if (seg.k !== ANY) out.push(seg);
      else if (out[out.length - 1]?.k !== ANY) out.push(seg);
      if (seg.k === ANY) hasAny = true;
    }
  }
  return { segs: out, hasAny, endsAny: out[out.length - 1]?.k === ANY };
}

function toSeg(input: readonly Tok[]): Seg {
  if (input.length === 1 && typeof input[0] === "string") return { k: LIT, lit: input[0] };
  if (isWholeAny(input)) return ANY_SEG;
  const toks = input.filter((t, i) => !(t === S && input[i - 1] === S));
  if (toks.length === 1 && toks[0] === S) return ONE_SEG;
  let stars = 0;
  let qs = 0;
  for (const t of toks) {
    if (t === S) stars++;
    else if (t === Q) qs++;
  }
  if (stars === 0 && qs === 0) return { k: LIT, lit: toks.join("") };
  if (stars + qs === toks.length && stars >= 1 && qs <= 1) return ONE_SEG;
  if (stars === 1 && qs === 0 && toks.length <= 3) {
    const at = toks.indexOf(S);
    const pre = at > 0 ? (toks[0] as string) : "";
    const suf = at < toks.length - 1 ? (toks[toks.length - 1] as string) : "";
    return { k: AFFIX, pre, suf };
  }
  return { k: GLOB, toks };
}

/** Whole-path match; `null` path segments stand for an unknown name. */
function matchSegs(m: Matcher, path: readonly (string | null)[]): boolean {
  const segs = m.segs;
  const n = path.length;
  const len = segs.length;
  if (!m.hasAny) {
    if (n !== len) return false;
    for (let i = 0; i < n; i++) if (!segMatch(segs[i] as Seg, path[i] ?? null)) return false;
    return true;
  }
  let si = 0;
  let pi = 0;
  let starSi = -1;
  let starPi = 0;
  while (pi < n) {
    if (si < len) {
      const s = segs[si] as Seg;
      if (s.k === ANY) {
        starSi = si++;
        starPi = pi;
        continue;
      }
      if (segMatch(s, path[pi] ?? null)) {
        si++;
        pi++;
        continue;
      }
    }
    if (starSi < 0) return false;
    si = starSi + 1;
    pi = ++starPi;
  }
  while (si < len && (segs[si] as Seg).k === ANY) si++;
  return si === len;
}

function segMatch(s: Seg, name: string | null): boolean {
  switch (s.k) {
    case ONE:
      return true;
    case LIT:
      return name === s.lit;
    case AFFIX:
      return (
        name !== null &&
        name.length >= s.pre.length + s.suf.length &&
        name.startsWith(s.pre) &&
        name.endsWith(s.suf)
      );
    case GLOB:
      return name !== null && globMatch(s.toks, name);
    default:
      return false;
  }
}

/** `*` and `?` within one name; `?` is one code point. */
function globMatch(toks: readonly Tok[], name: string): boolean {
  const n = name.length;
  const m = toks.length;
  let ti = 0;
  let pi = 0;
  let starTi = -1;
  let starPi = 0;
  for (;;) {
    if (ti < m) {
      const t = toks[ti] as Tok;
      if (t === S) {
        starTi = ti++;
        starPi = pi;
        continue;
      }
      if (pi < n) {
        if (t === Q) {
          pi += codePointLength(name, pi);
          ti++;
          continue;
        }
        if (name.startsWith(t, pi)) {
          pi += t.length;
          ti++;
          continue;
        }
      }
    } else if (pi === n) {
      return true;
    }
    if (starTi < 0 || starPi >= n) return false;
    starPi += codePointLength(name, starPi);
    ti = starTi + 1;
    pi = starPi;
  }
}

function codePointLength(s: string, i: number): number {
  const c = s.charCodeAt(i);
  if (c >= 0xd800 && c <= 0xdbff) {
    const d = s.charCodeAt(i + 1);
    if (d >= 0xdc00 && d <= 0xdfff) return 2;
  }
  return 1;
}
