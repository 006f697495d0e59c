/**
 * CODEOWNERS with GitHub's semantics, failing closed where GitHub is lenient.
 *
 * GitHub skips a line it cannot read and carries on; an approval service must
 * not. Here a skipped line, or a pattern GitHub may read two ways, that could
 * decide who owns a path makes that path `blocked` until the file is fixed.
 */
import { Buffer } from "node:buffer";
import {
  type CompiledPattern,
  compilePattern,
  coverDirectory,
  literalPrefix,
  matchFile,
  NOTHING,
  type Tri,
  unionOf,
} from "#src/rules/codeowners-pattern.js";

/** Where GitHub looks for the file, in order; the first that exists is used. */
export const CODEOWNERS_PATHS = [".github/CODEOWNERS", "CODEOWNERS", "docs/CODEOWNERS"] as const;

/** GitHub does not load a CODEOWNERS file of this size or more. */
export const CODEOWNERS_MAX_BYTES = 3 * 1024 * 1024;

/** An owner as written (`text`), with the normalised identity used to compare. */
export type Owner =
  | { readonly kind: "user"; readonly text: string; readonly login: string }
  | { readonly kind: "team"; readonly text: string; readonly org: string; readonly slug: string }
  | { readonly kind: "email"; readonly text: string; readonly email: string };

/** What CODEOWNERS says about one path. */
export type Ownership =
  /** The last matching rule names these owners (at `line`). */
  | { readonly status: "owned"; readonly owners: readonly Owner[]; readonly line: number }
  /** No rule matches, or the last matching rule names no owners. */
  | { readonly status: "unowned"; readonly line: number | null }
  /**
   * Nothing may be approved: the file is too large, the path is not a clean
   * repository path, or a skipped or ambiguous line could govern the path.
   */
  | { readonly status: "blocked"; readonly reason: string; readonly lines: readonly number[] };

/** One of {@link CODEOWNERS_PATHS}. */
export type CodeownersPath = (typeof CODEOWNERS_PATHS)[number];

/** A line GitHub uses: its pattern (as written), its owners and the compiled pattern. */
export interface CodeownersRule {
  readonly line: number;
  readonly pattern: string;
  readonly owners: readonly Owner[];
  readonly matcher: CompiledPattern;
}

/** A line GitHub skips (or that cannot be read safely), with what it could have matched. */
export interface SkippedLine {
  readonly line: number;
  readonly text: string;
  readonly reason: string;
  /** A widened reading of the line's pattern: everything it could plausibly govern. */
  readonly matcher: CompiledPattern;
}

/** A parsed CODEOWNERS file (or the absence of one). */
export interface Codeowners {
  /** Where it was found, when chosen by {@link selectCodeowners}. */
  readonly path: CodeownersPath | null;
  /** False when no location holds a file: then nothing is owned. */
  readonly found: boolean;
  /** Size in UTF-8 bytes, when known. */
  readonly bytes: number | null;
  /** At or over {@link CODEOWNERS_MAX_BYTES}: GitHub ignores the file, every path is blocked. */
  readonly tooLarge: boolean;
  readonly rules: readonly CodeownersRule[];
  readonly skipped: readonly SkippedLine[];
}

/** What the caller knows about one location: its text, nothing there, or that it is too large. */
export type CodeownersFile = string | null | { readonly tooLarge: true; readonly bytes?: number };

/**
 * Parse CODEOWNERS text. Never throws. A text of {@link CODEOWNERS_MAX_BYTES}
 * UTF-8 bytes or more is not parsed (`tooLarge`). A leading BOM is ignored;
 * lines end at `\n` (a `\r` before it is dropped) and are numbered from 1.
 *
 * A line is a pattern, then owners separated by spaces or tabs, up to a `#`
 * that starts a token. Like GitHub, a line with anything invalid (an owner
 * that is not `@user`, `@org/team` or an e-mail address, `!`, `[ ]`, `\#`) is
 * skipped whole and reported in `skipped`. Owners are checked for syntax only:
 * GitHub also rejects owners that do not exist or lack write access, which
 * only the caller can find out: if an owner of the deciding line cannot be
 * resolved, block the path (GitHub may skip the whole line).
 *
 * @example
 * const co = parseCodeowners("*  @acme/eng\n/services/payments/ @acme/payments\n");
 * ownersOf(co, "services/payments/"); // owned by @acme/payments, line 2
 */
export function parseCodeowners(text: string): Codeowners {
  const bytes = Buffer.byteLength(text, "utf8");
  const base = { path: null, found: true, bytes };
  if (bytes >= CODEOWNERS_MAX_BYTES) return { ...base, tooLarge: true, rules: [], skipped: [] };
  const rules: CodeownersRule[] = [];
  const skipped: SkippedLine[] = [];
  const owners = new Map<string, Owner | null>();
  const lines = (text.startsWith("\uFEFF") ? text.slice(1) : text).split("\n");
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i] as string;
    const parsed = parseLine(raw.endsWith("\r") ? raw.slice(0, -1) : raw, i + 1, owners);
    if (parsed === null) continue;
    if ("reason" in parsed) skipped.push(parsed);
    else rules.push(parsed);
  }
  return { ...base, tooLarge: false, rules, skipped };
}

/**
 * Pick the file GitHub would use: the first of {@link CODEOWNERS_PATHS} that
 * exists, even if empty. `read` reports what the caller fetched from the
 * default branch for each location; a file of {@link CODEOWNERS_MAX_BYTES} or
 * more, reported as `{ tooLarge: true }` or as its text, blocks every path.
 *
 * @example
 * const files = { "CODEOWNERS": "* @acme/eng\n" } as Record<string, string>;
 * const co = selectCodeowners((path) => files[path] ?? null); // co.path === "CODEOWNERS"
 */
export function selectCodeowners(read: (path: CodeownersPath) => CodeownersFile): Codeowners {
  for (const path of CODEOWNERS_PATHS) {
    const file = read(path);
    if (file === null || file === undefined) continue;
    if (typeof file === "string") return { ...parseCodeowners(file), path };
    const bytes = typeof file.bytes === "number" ? file.bytes : null;
    return { path, found: true, bytes, tooLarge: true, rules: [], skipped: [] };
  }
  return { path: null, found: false, bytes: null, tooLarge: false, rules: [], skipped: [] };
}

/**
 * Who owns `path` (a repository path; one leading `/` is tolerated).
 *
 * A file path (`services/payments/api.ts`) is owned by the last rule matching
 * it. A directory path ends with `/` (`services/payments/`; `/` is the root)
 * and is owned by the last rule that matches *every* file that could exist
 * below it: `/d/`, `d/`, `d/**`, `*`, a rule for a parent directory. A rule
 * for part of it (`d/*.js`, `d/sub/`, and `d/*`, which misses `d/sub/x`) is
 * ignored for the directory as a whole. A matching rule without owners leaves
 * the path `unowned`; it never falls through to an earlier rule.
 *
 * Blocked, never guessed: when the file is too large, when the path is not a
 * clean repository path, when a skipped line after the winning rule (or with
 * none) could govern the path, or when a later rule may or may not apply
 * (see `codeowners-pattern.ts`) and would name different owners.
 */
export function ownersOf(codeowners: Codeowners, path: string): Ownership {
  // 1. Refuse what cannot be decided at all.
  if (codeowners.tooLarge) return blocked(tooLarge(codeowners), []);
  const target = parsePath(path);
  if (typeof target === "string") return blocked(target, []);
  const shown = target.dir ? `${target.segs.join("/")}/` : target.segs.join("/");
  const test = target.dir
    ? directoryTest(target.segs)
    : (p: CompiledPattern) => matchFile(p, target.segs);

  // 2. The last rule that surely applies, and the later ones that only may.
  let winner: CodeownersRule | null = null;
  const unsure: CodeownersRule[] = [];
  const next = candidates(codeowners, target.segs);
  for (let i = next(); i >= 0; i = next()) {
    const rule = codeowners.rules[i] as CodeownersRule;
    const t = test(rule.matcher);
    if (t === "yes") {
      winner = rule;
      break;
    }
    if (t === "maybe") unsure.push(rule);
  }

  // 3. Block on anything later that could overrule it: a skipped line that
  //    could govern the path, or an unsure rule naming other owners.
  const problems: { line: number; text: string }[] = [];
  for (const s of codeowners.skipped) {
    if (s.line <= (winner?.line ?? 0) || test(s.matcher) === "no") continue;
    const text = `CODEOWNERS line ${s.line} is invalid (${s.reason}) and would govern ${shown}`;
    problems.push({ line: s.line, text });
  }
  const decided = identities(winner?.owners ?? []);
  for (const rule of unsure) {
    if (identities(rule.owners) === decided) continue;
    const text = `CODEOWNERS line ${rule.line} (\`${clip(rule.pattern)}\`) may or may not apply to ${shown}: ${rule.matcher.notes.join("; ")}`;
    problems.push({ line: rule.line, text });
  }
  if (problems.length > 0) {
    problems.sort((a, b) => a.line - b.line);
    const it = problems.length > 1 ? "them" : "it";
    const what = target.dir ? `anything under ${shown}` : shown;
    const reason = `${problems.map((p) => p.text).join("; ")}; fix ${it} before ${what} can be approved`;
    return blocked(
      reason,
      problems.map((p) => p.line),
    );
  }

  // 4. The winner decides; without owners, the path is unowned.
  if (winner === null) return { status: "unowned", line: null };
  if (winner.owners.length === 0) return { status: "unowned", line: winner.line };
  return { status: "owned", owners: winner.owners, line: winner.line };
}

function blocked(reason: string, lines: readonly number[]): Ownership {
  return { status: "blocked", reason, lines };
}

function tooLarge(codeowners: Codeowners): string {
  const where = codeowners.path ?? "The CODEOWNERS file";
  const size = codeowners.bytes === null ? "" : ` (${codeowners.bytes} bytes)`;
  return `${where} is too large${size}: GitHub does not load a CODEOWNERS file of ${CODEOWNERS_MAX_BYTES} bytes or more, so nothing can be approved until it is smaller`;
}

/** Rules by the literal names their paths start with, a few levels deep. */
interface IndexNode {
  readonly rules: number[];
  readonly children: Map<string, IndexNode>;
}

const INDEX_DEPTH = 4;
const indexes = new WeakMap<Codeowners, IndexNode>();

function indexOf(codeowners: Codeowners): IndexNode {
  let root = indexes.get(codeowners);
  if (root !== undefined) return root;
  root = { rules: [], children: new Map() };
  for (let i = 0; i < codeowners.rules.length; i++) {
    let node = root;
    const prefix = literalPrefix((codeowners.rules[i] as CodeownersRule).matcher);
    for (const name of prefix.slice(0, INDEX_DEPTH)) {
      let child = node.children.get(name);
      if (child === undefined) {
        child = { rules: [], children: new Map() };
        node.children.set(name, child);
      }
      node = child;
    }
    node.rules.push(i);
  }
  indexes.set(codeowners, root);
  return root;
}

/**
 * Indexes of the rules that can match a path starting with `segs`, last
 * first, then -1. The others need a literal first name the path does not have.
 */
function candidates(codeowners: Codeowners, segs: readonly string[]): () => number {
  const lists: (readonly number[])[] = [];
  let node: IndexNode | undefined = indexOf(codeowners);
  for (let depth = 0; node !== undefined; depth++) {
    if (node.rules.length > 0) lists.push(node.rules);
    const name = depth < INDEX_DEPTH ? segs[depth] : undefined;
    node = name === undefined ? undefined : node.children.get(name);
  }
  const at = lists.map((list) => list.length - 1);
  if (lists.length === 1) {
    const only = lists[0] as readonly number[];
    let k = only.length;
    return () => (--k >= 0 ? (only[k] as number) : -1);
  }
  return () => {
    let best = -1;
    let value = -1;
    for (let j = 0; j < lists.length; j++) {
      const v = (lists[j] as readonly number[])[at[j] as number] ?? -1;
      if (v > value) {
        best = j;
        value = v;
      }
    }
    if (best >= 0) at[best] = (at[best] as number) - 1;
    return value;
  };
}

/** The directory test: probes are the directory followed by `depth` unknown names. */
function directoryTest(dir: readonly string[]): (p: CompiledPattern) => Tri {
  const probes: (string | null)[][] = [];
  const probe = (depth: number) => {
    let p = probes[depth];
    if (p === undefined) {
      p = [...dir, ...new Array<null>(depth).fill(null)];
      probes[depth] = p;
    }
    return p;
  };
  return (p) => coverDirectory(p, probe);
}

// A control character (Unicode category Cc) other than tab. GitHub's handling
// is unknown (a lone `\r` may end a line), so such a line is skipped and
// judged by each of its pieces.
const CONTROL = /[^\P{Cc}\t]/u;
const CONTROLS = /[^\P{Cc}\t]/gu;

function parseLine(
  raw: string,
  line: number,
  cache: Map<string, Owner | null>,
): CodeownersRule | SkippedLine | null {
  const control = CONTROL.exec(raw);
  if (control !== null) {
    const code = (control[0].codePointAt(0) as number).toString(16).toUpperCase().padStart(4, "0");
    const pieces = raw.split(CONTROLS).map((piece) => firstToken(piece, 0));
    return skip(line, raw, `contains the control character U+${code}`, widen(pieces));
  }
  const start = skipBlanks(raw, 0);
  if (start === raw.length || raw[start] === "#") return null;
  const pattern = firstToken(raw, start) as string;
  const compiled = compilePattern(pattern);
  if (!compiled.ok) return skip(line, raw, compiled.reason, widen([pattern]));

  const owners: Owner[] = [];
  const seen = new Set<string>();
  for (const token of raw.slice(start + pattern.length).split(/[ \t]+/)) {
    if (token === "") continue;
    if (token.startsWith("#")) break;
    if (token.includes("#")) {
      const reason = `\`#\` inside the owner \`${clip(token)}\` is ambiguous, GitHub may read a comment`;
      return skip(line, raw, reason, compiled.pattern);
    }
    let owner = cache.get(token);
    if (owner === undefined) {
      owner = parseOwner(token);
      cache.set(token, owner);
    }
    if (owner === null) {
      const reason = `invalid owner \`${clip(token)}\`, expected @user, @org/team or an e-mail address`;
      return skip(line, raw, reason, compiled.pattern);
    }
    const id = identity(owner);
    if (!seen.has(id)) owners.push(owner);
    seen.add(id);
  }
  return { line, pattern, owners, matcher: compiled.pattern };
}

function skip(line: number, text: string, reason: string, matcher: CompiledPattern): SkippedLine {
  return { line, text, reason, matcher };
}

function skipBlanks(s: string, from: number): number {
  let i = from;
  while (i < s.length && (s[i] === " " || s[i] === "\t")) i++;
  return i;
}

/** The pattern token at or after `from`: up to the first unescaped blank. */
function firstToken(s: string, from: number): string | null {
  const start = skipBlanks(s, from);
  if (start === s.length || s[start] === "#") return null;
  let i = start;
  while (i < s.length && s[i] !== " " && s[i] !== "\t")
    i += s[i] === "\\" && i + 1 < s.length ? 2 : 1;
  return s.slice(start, i);
}

/** Everything a skipped line's pattern could govern: each piece, and each piece cut at `#`. */
function widen(tokens: readonly (string | null)[]): CompiledPattern {
  const patterns: CompiledPattern[] = [];
  for (const token of tokens) {
    if (token === null) continue;
    const cut = token.slice(0, Math.max(0, token.indexOf("#"))).replace(/\\$/, "");
    for (const candidate of cut === "" ? [token] : [token, cut]) {
      const compiled = compilePattern(candidate, true);
      if (compiled.ok) patterns.push(compiled.pattern);
    }
  }
  return patterns.length === 0 ? NOTHING : unionOf(patterns);
}

const USER = /^@([A-Za-z0-9][A-Za-z0-9_-]{0,99})$/;
const TEAM = /^@([A-Za-z0-9][A-Za-z0-9-]{0,99})\/([A-Za-z0-9_][A-Za-z0-9_-]{0,99})$/;
const EMAIL =
  /^[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63})*\.[A-Za-z]{2,63}$/;

/** `@user`, `@org/team` or an e-mail address; names compare case-insensitively. */
function parseOwner(text: string): Owner | null {
  const team = TEAM.exec(text);
  if (team !== null) {
    const [, org, slug] = team as unknown as [string, string, string];
    return { kind: "team", text, org: org.toLowerCase(), slug: slug.toLowerCase() };
  }
  const user = USER.exec(text);
  if (user !== null) return { kind: "user", text, login: (user[1] as string).toLowerCase() };
  if (text.length <= 254 && EMAIL.test(text)) {
    return { kind: "email", text, email: text.toLowerCase() };
  }
  return null;
}

function identity(owner: Owner): string {
  if (owner.kind === "user") return `user:${owner.login}`;
  if (owner.kind === "team") return `team:${owner.org}/${owner.slug}`;
  return `email:${owner.email}`;
}

function identities(owners: readonly Owner[]): string {
  return [...new Set(owners.map(identity))].sort().join(" ");
}

/** A repository path as segments, or why it cannot be one. */
function parsePath(path: string): { segs: string[]; dir: boolean } | string {
  if (typeof path !== "string" || path === "") {
    return "the path is empty; name a file, or a directory ending with `/` (`/` for the whole repository)";
  }
  const p = path.startsWith("/") ? path.slice(1) : path;
  if (p === "") return { segs: [], dir: true };
  const dir = p.endsWith("/");
  const segs = (dir ? p.slice(0, -1) : p).split("/");
  for (const seg of segs) {
    if (seg === "" || seg === "." || seg === ".." || CONTROL.test(seg)) {
      return `\`${clip(path)}\` is not a clean repository path (empty, \`.\` or \`..\` segment, or a control character)`;
    }
  }
  return { segs, dir };
}

function clip(s: string): string {
  return s.length > 80 ? `${s.slice(0, 79)}…` : s;
}
