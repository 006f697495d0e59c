/**
 * Shared pieces of the fuzz tests (test/fuzz/): inputs nobody should send,
 * and the checks every answer to them must pass. fast-check picks a new seed
 * each run and prints it with the shrunk counterexample on failure; replay one
 * with `fc.assert(..., { seed, path })`.
 */
import fc from "fast-check";
import { expect } from "vitest";

/**
 * `numRuns` for a property: `n`, times `FUZZ_SCALE` when set (a longer hunt
 * than the suite's budget allows, e.g. `FUZZ_SCALE=20 npx vitest run test/fuzz`).
 */
export function runs(n: number): number {
  const scale = Number(process.env.FUZZ_SCALE ?? 1);
  return Number.isFinite(scale) && scale > 0 ? Math.max(1, Math.round(n * scale)) : n;
}

/** Strings that have broken parsers before: NULs, BOMs, bidi overrides, prototype keys, huge runs. */
export const NASTY_STRINGS = [
  "",
  " ",
  "\u0000",
  "\uFEFF",
  "\u202E",
  "\u200B",
  "\uD800",
  "\r",
  "\r\n",
  "\t",
  "__proto__",
  "constructor",
  "toString",
  "null",
  "undefined",
  "NaN",
  "-0",
  "1e309",
  "9007199254740993",
  "\u0024{{ secrets.X }}",
  "%00",
  "%",
  "%zz",
  "../..",
  "~",
  "<!--",
  "-->",
  "```",
  "```hallpass",
  "###",
  "/approve",
  "*",
  "**",
  "&a",
  "*a",
  "!!js/function",
  "---",
  "a".repeat(10_000),
  "é".repeat(3_000),
  "😀".repeat(2_000),
] as const;

/** Any text: binary, full Unicode, bytes read as UTF-8 or Latin-1, and the nasty ones. */
export const anyText = (maxLength = 200): fc.Arbitrary<string> =>
  fc.oneof(
    fc.string({ unit: "binary", maxLength }),
    fc.string({ unit: "grapheme-composite", maxLength }),
    fc.string({ maxLength }),
    fc.uint8Array({ maxLength }).map((b) => Buffer.from(b).toString("utf8")),
    fc.uint8Array({ maxLength }).map((b) => Buffer.from(b).toString("latin1")),
    fc.constantFrom(...NASTY_STRINGS),
  );

/** Printable ASCII, what an HTTP client lets through in a header value. */
export const headerText = (maxLength = 120): fc.Arbitrary<string> =>
  fc.oneof(
    fc.string({ unit: fc.integer({ min: 0x20, max: 0x7e }).map(String.fromCharCode), maxLength }),
    fc.constantFrom("", " ", "Bearer", "Bearer ", "Basic", "Basic =", "sha256=", "null"),
  );

/** JSON values, with keys that are names of Object.prototype now and then. */
export const anyJson: fc.Arbitrary<unknown> = fc.letrec<{ value: unknown }>((tie) => ({
  value: fc.oneof(
    { depthSize: "small", withCrossShrink: true },
    fc.constantFrom(null, true, false, 0, -1, 1.5, 2 ** 53, -(2 ** 63), 1e308, ""),
    anyText(40),
    fc.integer(),
    fc.double({ noNaN: true, noDefaultInfinity: true }),
    fc.array(tie("value"), { maxLength: 5 }),
    fc.dictionary(
      fc.oneof(fc.string({ maxLength: 10 }), fc.constantFrom("__proto__", "constructor")),
      tie("value"),
      { maxKeys: 5 },
    ),
  ),
})).value;

/** One edit of a text: insert, delete, duplicate or replace a span. */
type Edit =
  | { readonly kind: "insert"; readonly at: number; readonly text: string }
  | { readonly kind: "delete" | "duplicate"; readonly at: number; readonly length: number }
  | {
      readonly kind: "replace";
      readonly at: number;
      readonly length: number;
      readonly text: string;
    };

const edit: fc.Arbitrary<Edit> = fc.oneof(
  fc.record({ kind: fc.constant("insert" as const), at: fc.nat(), text: anyText(20) }),
  fc.record({
    kind: fc.constantFrom("delete" as const, "duplicate" as const),
    at: fc.nat(),
    length: fc.integer({ min: 1, max: 30 }),
  }),
  fc.record({
    kind: fc.constant("replace" as const),
    at: fc.nat(),
    length: fc.integer({ min: 1, max: 10 }),
    text: anyText(10),
  }),
);

function applyEdit(text: string, e: Edit): string {
  const at = text.length === 0 ? 0 : e.at % (text.length + 1);
  switch (e.kind) {
    case "insert":
      return text.slice(0, at) + e.text + text.slice(at);
    case "delete":
      return text.slice(0, at) + text.slice(at + e.length);
    case "duplicate":
      return (
        text.slice(0, at + e.length) + text.slice(at, at + e.length) + text.slice(at + e.length)
      );
    case "replace":
      return text.slice(0, at) + e.text + text.slice(at + e.length);
  }
}

/** `base` with one to `maxEdits` random edits: inputs that are nearly right. */
export const mutated = (base: string, maxEdits = 4): fc.Arbitrary<string> =>
  fc
    .array(edit, { minLength: 1, maxLength: maxEdits })
    .map((edits) => edits.reduce(applyEdit, base));

/** Lines of `base` shuffled, dropped or repeated. */
export const reshuffled = (base: string): fc.Arbitrary<string> => {
  const lines = base.split("\n");
  return fc
    .array(fc.nat({ max: lines.length - 1 }), { maxLength: lines.length * 2 })
    .map((picks) => picks.map((i) => lines[i]).join("\n"));
};

/**
 * What leaks from a stack trace or the server's insides into a response body
 * (never what a refusal may echo of the input, such as a path).
 */
const INTERNALS =
  /\n\s+at \S|node:internal|file:\/\/|\.(?:ts|js|mjs|cjs):\d+:\d+|Cannot read propert|is not a function|is not iterable|Maximum call stack|duplicate key value|violates .* constraint|invalid input syntax/;

export interface AnswerRules {
  /** 5xx codes (`error` of the JSON body) this door documents, e.g. `NOT_READY`. */
  readonly documented5xx?: readonly string[];
}

/**
 * Checks an HTTP answer to bad input: no stack trace or internal detail in the
 * body; an error status carries the JSON error shape `{error, message}`; a
 * 5xx only with a code the door documents.
 */
export function expectCleanAnswer(status: number, body: string, rules: AnswerRules = {}): void {
  expect(body, "the body shows the server's insides").not.toMatch(INTERNALS);
  if (status < 400) return;
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch {
    expect.fail(`a ${status} without a JSON body: ${body.slice(0, 200)}`);
  }
  expect(parsed, `the error shape of a ${status}`).toMatchObject({
    error: expect.any(String),
    message: expect.any(String),
  });
  if (status >= 500) {
    const code = (parsed as { error: string }).error;
    expect(rules.documented5xx ?? [], `an undocumented ${status} ${code}`).toContain(code);
  }
}

/**
 * Collects unhandled promise rejections while fuzzing, so a property can say
 * "none happened" next to the input that caused one. Call `stop` after.
 */
export function watchUnhandled(): { readonly seen: unknown[]; stop(): void } {
  const seen: unknown[] = [];
  const listener = (reason: unknown) => {
    seen.push(reason);
  };
  process.on("unhandledRejection", listener);
  return { seen, stop: () => process.off("unhandledRejection", listener) };
}
