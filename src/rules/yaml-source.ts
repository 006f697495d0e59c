import { isMap, isScalar, isSeq, LineCounter, type Node, parseDocument, visit } from "yaml";
import type { z } from "zod";

/** One problem in a YAML file: where (file, 1-based line, key path) and what. */
export interface SourceError {
  readonly file: string;
  /** 1-based; `null` when the input had no text (an already-parsed object). */
  readonly line: number | null;
  /** Key path, e.g. `resources.payments-api.max_ttl`; `""` for the whole file. */
  readonly path: string;
  readonly message: string;
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
 */
export function loadYaml(text: string, file: string, maxChars: number): YamlLoad {
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
    const problems = [...doc.errors, ...doc.warnings].map((e) => ({
      file,
      line: lineAt(e.pos[0]),
      path: "",
      message: `YAML: ${e.message.split("\n", 1)[0]}`,
    }));
    if (problems.length > 0) return { ok: false, errors: problems };
    let alias: Node | undefined;
    visit(doc, {
      Alias(_, node) {
        alias = node;
        return visit.BREAK;
      },
    });
    if (alias !== undefined) {
      return whole(
        "YAML aliases (*name) are not allowed: write each value out",
        alias.range ? lineAt(alias.range[0]) : null,
      );
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
