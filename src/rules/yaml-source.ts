import {
  isMap,
  isScalar,
  isSeq,
  LineCounter,
  type Node,
  parseDocument,
  visit,
  type YAMLError,
} from "yaml";
import type { z } from "zod";

/** One problem in a YAML file: where (file, 1-based line, key path) and what. */
export interface SourceError {
  readonly file: string;
  /** 1-based; `null` when the input had no text (an already-parsed object). */
  readonly line: number | null;
  /** Key path, e.g. `resources.payments-api.max_ttl`; `""` for the whole file. */
  readonly path: string;
  readonly message: string;
  /**
   * For a YAML syntax error (and a refused alias): the 1-based column, and
   * the line as written with a caret under that column (two lines, control
   * and invisible characters replaced, the value masked under `hideValues`),
   * for a reader to see what the parser saw.
   */
  readonly column?: number;
  readonly excerpt?: string;
}

/** A path as zod reports it. */
export type KeyPath = readonly PropertyKey[];

/** Finds the line of a key path. */
export type Locate = (path: KeyPath) => number | null;

export type YamlLoad =
  | { readonly ok: true; readonly value: unknown; readonly locate: Locate }
  | { readonly ok: false; readonly errors: readonly SourceError[] };

/**
 * Parses one YAML document for validation, safely: the text is capped, the
 * first document only (several are an error), aliases are refused (so no
 * alias bombs, and no value that silently stands for another), unknown tags
 * and duplicate keys are errors, and nothing throws.
 *
 * A file that does not parse gives one error, the first in the file, with
 * its line, column and an excerpt: what the parser reports after it is
 * mostly the same mistake seen again. With `hideValues`, the excerpt keeps
 * the line's indentation and key but shows its value as `*`s (for files in
 * which a secret pasted by mistake must not be echoed).
 */
export function loadYaml(
  text: string,
  file: string,
  maxChars: number,
  options: { readonly hideValues?: boolean } = {},
): YamlLoad {
  const whole = (message: string, line: number | null = null): YamlLoad => ({
    ok: false,
    errors: [{ file, line, path: "", message }],
  });
  if (typeof text !== "string") return whole("expected the text of a YAML file");
  if (text.length > maxChars) {
    return whole(`file is larger than ${maxChars.toLocaleString("en-US")} characters`);
  }
  try {
    const lineCounter = new LineCounter();
    const doc = parseDocument(text, {
      lineCounter,
      prettyErrors: false,
      uniqueKeys: true,
      version: "1.2",
      schema: "core",
    });
    const lineAt = (offset: number): number => lineCounter.linePos(offset).line;
    const at = (offset: number, message: string, keepIndent = false): YamlLoad => {
      const { line, col } = lineCounter.linePos(anchor(text, offset, keepIndent));
      const start = lineCounter.lineStarts[line - 1] ?? 0;
      const excerpt = caretExcerpt(text, start, col, options.hideValues === true);
      return { ok: false, errors: [{ file, line, path: "", message, column: col, excerpt }] };
    };
    const [first] = [...doc.errors, ...doc.warnings].sort((a, b) => a.pos[0] - b.pos[0]);
    if (first !== undefined) {
      return at(first.pos[0], `YAML: ${describeYamlError(first)}`, first.code === "TAB_AS_INDENT");
    }
    let alias: Node | undefined;
    visit(doc, {
      Alias(_, node) {
        alias = node;
        return visit.BREAK;
      },
    });
    if (alias !== undefined) {
      const message = "YAML aliases (*name) are not allowed: write each value out";
      return alias.range ? at(alias.range[0], message) : whole(message);
    }
    if (doc.contents === null) return whole("file is empty", 1);
    const lineOf = (node: unknown): number | null => {
      const range = (node as { range?: [number, number, number] } | null)?.range;
      return range ? lineAt(range[0]) : null;
    };
    // The line of the key a path ends in (where `max_ttl:` is written), or of
    // the list item; for a missing key, the line of the mapping's own key.
    const locate: Locate = (path) => {
      let node: unknown = doc.contents;
      let line = lineOf(node);
      for (const step of path) {
        if (isMap(node)) {
          const pair = node.items.find((p) => isScalar(p.key) && String(p.key.value) === step);
          if (pair === undefined) return line;
          node = pair.value;
          line = lineOf(pair.key) ?? line;
        } else if (isSeq(node) && typeof step === "number" && node.items[step] !== undefined) {
          node = node.items[step];
          line = lineOf(node) ?? line;
        } else {
          return line;
        }
      }
      return line;
    };
    return { ok: true, value: doc.toJS({ maxAliasCount: 0 }), locate };
  } catch (error) {
    return whole(`could not read the YAML: ${(error as Error).message.split("\n", 1)[0]}`);
  }
}

/** The parser's message, first line only; the one that names the parser's own API is reworded. */
function describeYamlError(error: YAMLError): string {
  if (error.code === "MULTIPLE_DOCS") {
    return "the file holds multiple documents (separated by a --- line); keep one";
  }
  return error.message.split("\n", 1)[0] ?? error.code;
}

/**
 * Where to point for an error the parser noticed at `offset`: on a blank
 * line or at the end of the file (an unclosed bracket or quote), at the last
 * character written before it; in a line's indentation, at its first
 * character (unless the indentation is the mistake).
 */
function anchor(text: string, offset: number, keepIndent: boolean): number {
  const start = text.lastIndexOf("\n", offset - 1) + 1;
  const newline = text.indexOf("\n", offset);
  const end = newline === -1 ? text.length : newline;
  const line = text.slice(start, end);
  if (line.trim() === "") {
    const before = text.slice(0, start).trimEnd();
    return before === "" ? offset : before.length - 1;
  }
  const indent = line.length - line.trimStart().length;
  return !keepIndent && offset - start < indent ? start + indent : offset;
}

/** Longest excerpt shown, in characters; longer lines are cut around the column. */
const EXCERPT_WIDTH = 120;

/**
 * The line starting at `start`, and a caret under column `col` (1-based).
 * Tabs are kept on the caret line so it lines up; control and format
 * characters (a terminal escape, a bidirectional override) are shown as `?`.
 */
function caretExcerpt(text: string, start: number, col: number, hideValues: boolean): string {
  const end = text.indexOf("\n", start);
  let line = text.slice(start, end === -1 ? undefined : end).replace(/\r$/, "");
  if (hideValues) {
    // Indentation, list dashes and a plain key stay; everything after them is masked.
    const kept = /^[ \t]*(?:-[ \t]+)*(?:[\w.-]+:(?=[ \t]|$))?/.exec(line)?.[0] ?? "";
    line = kept + line.slice(kept.length).replace(/\S/g, "*");
  }
  let column = Math.max(1, Math.min(col, line.length + 1));
  if (line.length > EXCERPT_WIDTH) {
    const from = Math.max(0, Math.min(column - 1 - EXCERPT_WIDTH / 2, line.length - EXCERPT_WIDTH));
    const head = from > 0 ? "..." : "";
    const tail = from + EXCERPT_WIDTH < line.length ? "..." : "";
    line = `${head}${line.slice(from, from + EXCERPT_WIDTH)}${tail}`;
    column = column - from + head.length;
  }
  const shown = line.replace(/[^\P{Cc}\t]|\p{Cf}/gu, "?");
  const pad = shown.slice(0, column - 1).replace(/[^\t]/g, " ");
  return `${shown}\n${pad}^`;
}

/**
 * Paths of `__proto__` keys anywhere in a parsed value. zod drops such keys
 * silently; a policy key must never be ignored, so callers report them.
 */
export function prototypeKeys(value: unknown, path: KeyPath = [], depth = 0): KeyPath[] {
  if (value === null || typeof value !== "object" || depth > 64) return [];
  const found: KeyPath[] = [];
  if (Object.hasOwn(value, "__proto__")) found.push([...path, "__proto__"]);
  for (const [key, item] of Object.entries(value)) {
    if (key === "__proto__") continue;
    found.push(
      ...prototypeKeys(item, [...path, Array.isArray(value) ? Number(key) : key], depth + 1),
    );
  }
  return found;
}

/** `resources.payments-api.auto_approve[0].scopes` */
export function formatPath(path: KeyPath): string {
  let out = "";
  for (const step of path) {
    if (typeof step === "number") out += `[${step}]`;
    else out += out === "" ? String(step) : `.${String(step)}`;
  }
  return out;
}

/**
 * The key path `formatPath` wrote, back as steps: `resources.x.scopes.read[0]`
 * → `["resources", "x", "scopes", "read", 0]`. For paths of names without
 * `.` or `[` (resource and scope names), which is what the rules write.
 */
export function parsePath(text: string): KeyPath {
  const path: PropertyKey[] = [];
  for (const part of text.split(".")) {
    const [key = "", ...indexes] = part.split("[");
    if (key !== "") path.push(key);
    for (const index of indexes) path.push(Number(index.replace(/\]$/, "")));
  }
  return path;
}

/**
 * Messages for zod issues that never echo a value (values may be secrets
 * or hostile text); the messages of our own custom issues pass through.
 */
export const errorMap: z.core.$ZodErrorMap = (issue) => {
  switch (issue.code) {
    case "invalid_type":
      if (issue.expected === "int" && typeof issue.input === "number")
        return "must be a whole number";
      return issue.input === undefined
        ? "is required"
        : `expected ${article(issue.expected)}, got ${kindOf(issue.input)}`;
    case "invalid_value":
      return `expected one of ${issue.values.map((v) => JSON.stringify(v)).join(", ")}`;
    case "too_small":
      return issue.origin === "array"
        ? `needs at least ${issue.minimum} item${issue.minimum === 1 ? "" : "s"}`
        : issue.origin === "string"
          ? "must not be empty"
          : `must be at least ${issue.minimum}`;
    case "too_big":
      return issue.origin === "array"
        ? `has more than ${issue.maximum} items`
        : issue.origin === "string"
          ? `is longer than ${issue.maximum} characters`
          : `must be at most ${issue.maximum}`;
    default:
      return undefined;
  }
};

/** Turns zod issues into located errors, one per unknown key. */
export function issuesToErrors(
  issues: readonly z.core.$ZodIssue[],
  file: string,
  locate: Locate | null,
  known: (path: KeyPath) => readonly string[] = () => [],
): SourceError[] {
  const errors: SourceError[] = [];
  const add = (path: KeyPath, message: string): void => {
    errors.push({ file, line: locate?.(path) ?? null, path: formatPath(path), message });
  };
  for (const issue of issues) {
    if (issue.code === "unrecognized_keys") {
      for (const key of issue.keys) {
        const hint = closest(key, known(issue.path));
        add(
          [...issue.path, key],
          `unknown key ${JSON.stringify(key)}${hint ? ` (did you mean ${hint}?)` : ""}`,
        );
      }
    } else if (issue.code === "invalid_key") {
      add(issue.path, issue.issues[0]?.message ?? issue.message);
    } else {
      add(issue.path, issue.message);
    }
  }
  // File order; errors without a line (parsed objects) keep zod's order.
  return errors.sort((a, b) => (a.line ?? 0) - (b.line ?? 0));
}

/**
 * Validates a parsed document against `schema`: `__proto__` keys are refused
 * first (zod would drop them silently), then every issue becomes an error
 * located by `locate` (null for objects parsed elsewhere: no lines).
 */
export function validateSource<T>(
  schema: z.ZodType<T>,
  value: unknown,
  file: string,
  locate: Locate | null,
  known: (path: KeyPath) => readonly string[],
): { ok: true; value: T } | { ok: false; errors: SourceError[] } {
  const proto = prototypeKeys(value);
  if (proto.length > 0) {
    return {
      ok: false,
      errors: proto.map((path) => ({
        file,
        line: locate?.(path) ?? null,
        path: formatPath(path),
        message: "the key __proto__ is not allowed",
      })),
    };
  }
  const result = schema.safeParse(value, { error: errorMap });
  if (result.success) return { ok: true, value: result.data };
  return { ok: false, errors: issuesToErrors(result.error.issues, file, locate, known) };
}

/** "a mapping", "a list", "text", "a number"... for messages. */
export function kindOf(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "a list";
  switch (typeof value) {
    case "string":
      return "text";
    case "number":
      return "a number";
    case "boolean":
      return "true/false";
    case "object":
      return "a mapping";
    default:
      return typeof value;
  }
}

function article(expected: string): string {
  switch (expected) {
    case "object":
      return "a mapping";
    case "array":
      return "a list";
    case "string":
      return "text";
    case "number":
      return "a number";
    case "int":
      return "a whole number";
    case "boolean":
      return "true or false";
    default:
      return expected;
  }
}

/** The known key nearest to a typo (edit distance ≤ 2), if any. */
function closest(key: string, known: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = 3;
  for (const candidate of known) {
    const distance = editDistance(key.toLowerCase(), candidate);
    if (distance < bestDistance) {
      best = candidate;
      bestDistance = distance;
    }
  }
  return best;
}

function editDistance(a: string, b: string): number {
  if (Math.abs(a.length - b.length) > 2 || a.length > 64) return 3;
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      current[j] = Math.min(
        (previous[j] ?? 0) + 1,
        (current[j - 1] ?? 0) + 1,
        (previous[j - 1] ?? 0) + (a[i - 1] === b[j - 1] ? 0 : 1),
      );
    }
    previous = current;
  }
  return previous[b.length] ?? 3;
}
