import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { type Ownership, ownersOf, parseCodeowners } from "#src/rules/codeowners.js";

/**
 * An independent reference for the primary reading of a pattern: gitignore
 * semantics (a leading or middle slash anchors, a name matching a directory
 * covers what is below it, `**` only counts as a whole segment) with GitHub's
 * `dir/*` not recursing, translated to a regular expression over `path + "/"`.
 */
function reference(pattern: string): RegExp {
  // Split on unescaped slashes; a segment is a list of [char, escaped] pairs.
  const segs: [string, boolean][][] = [[]];
  for (let i = 0; i < pattern.length; i++) {
    const escaped = pattern[i] === "\\" && i + 1 < pattern.length;
    const ch = escaped ? (pattern[++i] as string) : (pattern[i] as string);
    if (ch === "/" && !escaped) segs.push([]);
    else segs[segs.length - 1]?.push([ch, escaped]);
  }
  const is = (seg: [string, boolean][] | undefined, text: string) =>
    seg !== undefined && seg.map(([c, e]) => (e ? `\\${c}` : c)).join("") === text;
  const leading = segs.length > 1 && segs[0]?.length === 0;
  if (leading) segs.shift();
  let contents = segs.length > 1 && segs[segs.length - 1]?.length === 0;
  if (contents) segs.pop();
  const anchored = leading || segs.length > 1;
  // `x/**/` is `x/**` for directories only: below a directory inside `x`.
  let below = 1;
  if (is(segs[segs.length - 1], "**")) {
    segs.pop();
    if (contents) below = 2;
    contents = true;
  }
  const exact = !contents && is(segs[segs.length - 1], "*");
  let re = anchored ? "^" : "^(?:[^/]+/)*";
  for (const seg of segs) {
    if (is(seg, "**")) {
      re += "(?:[^/]+/)*";
      continue;
    }
    for (const [ch, escaped] of seg) {
      if (!escaped && ch === "*") re += "[^/]*";
      else if (!escaped && ch === "?") re += "[^/]";
      else re += ch.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");
    }
    re += "/";
  }
  re += contents ? `(?:[^/]+/){${below},}$` : exact ? "$" : "(?:[^/]+/)*$";
  return new RegExp(re, "u");
}

const matches = (pattern: string, path: string) => reference(pattern).test(`${path}/`);

const name = fc.constantFrom("a", "b", "ab", ".d", "a.js", "b.md", "ü");
const glob = fc.constantFrom("*", "a*", "*.js", "?", "a?", "*b*", ".*", "?*");
const pathOf = (min: number) => fc.array(name, { minLength: min, maxLength: 5 });

/** Patterns GitHub reads one way only. */
const pattern = fc
  .record({
    leading: fc.boolean(),
    middle: fc.array(fc.oneof(name, glob, fc.constant("**")), { maxLength: 3 }),
    tail: fc.oneof(
      name.map((n) => ({ last: n, slash: false })),
      fc.constantFrom("*", "**").map((last) => ({ last, slash: false })),
      fc.oneof(name, glob).map((last) => ({ last, slash: true })),
    ),
  })
  .map(({ leading, middle, tail }) => {
    const segs = [...middle, tail.last];
    const lead = leading || (segs.length > 1 && segs[0] !== "**") ? "/" : "";
    return `${lead}${segs.join("/")}${tail.slash ? "/" : ""}`;
  });

const owner = fc.constantFrom("@a", "@b", "@org/t", "x@example.com");
const rule = fc.record({ pattern, owners: fc.array(owner, { maxLength: 2 }) });
const rulesText = (rules: { pattern: string; owners: string[] }[]) =>
  `${rules.map((r) => [r.pattern, ...r.owners].join(" ")).join("\n")}\n`;

/** Lines of every sort, valid and not, for the properties that must hold regardless. */
const anyLine = fc.oneof(
  rule.map((r) => [r.pattern, ...r.owners].join(" ")),
  fc.constantFrom(
    "# comment",
    "",
    "!a @a",
    "/[ab]/ @b",
    "a/b @a",
    "*.js @b",
    "/a/b* @a",
    "**.md @b",
    "/a/**/ @a",
    "**/a/**/ @b",
    "**/ @b",
    "* bad-owner",
    "/a/ @a\r* @b",
    "/a/#b @a",
  ),
  fc.string({ unit: "binary", maxLength: 30 }),
);

function ownersLine(o: Ownership): number | null {
  return o.status === "blocked" ? null : o.line;
}

describe("properties", () => {
  it("the last matching rule wins", () => {
    fc.assert(
      fc.property(fc.array(rule, { maxLength: 8 }), pathOf(1), (rules, segs) => {
        const path = segs.join("/");
        const co = parseCodeowners(rulesText(rules));
        expect(co.skipped).toEqual([]);
        let last = -1;
        rules.forEach((r, i) => {
          if (matches(r.pattern, path)) last = i;
        });
        const o = ownersOf(co, path);
        if (last < 0) {
          expect(o).toEqual({ status: "unowned", line: null });
          return;
        }
        const expected = [...new Set((rules[last]?.owners ?? []).map((x) => x.toLowerCase()))];
        if (expected.length === 0) expect(o).toEqual({ status: "unowned", line: last + 1 });
        else {
          expect(o.status).toBe("owned");
          expect(ownersLine(o)).toBe(last + 1);
          expect(o.status === "owned" && o.owners.map((x) => x.text.toLowerCase())).toEqual(
            expected,
          );
        }
      }),
      { numRuns: 500 },
    );
  });

  it("a path never gets owners from a line that does not match it", () => {
    fc.assert(
      fc.property(fc.array(anyLine, { maxLength: 10 }), pathOf(1), (lines, segs) => {
        const path = segs.join("/");
        const co = parseCodeowners(lines.join("\n"));
        const o = ownersOf(co, path);
        if (o.status !== "owned") return;
        const winner = co.rules.find((r) => r.line === o.line);
        expect(winner).toBeDefined();
        // A rule GitHub may read two ways wins only when every reading matches,
        // the primary (gitignore) reading included.
        expect(matches(winner?.pattern ?? "", path)).toBe(true);
        expect(o.owners).toEqual(winner?.owners);
      }),
      { numRuns: 500 },
    );
  });

  it("a directory is owned only by a rule matching every file below it", () => {
    fc.assert(
      fc.property(
        fc.array(rule, { maxLength: 8 }),
        pathOf(0),
        fc.array(pathOf(1), { minLength: 1, maxLength: 5 }),
        (rules, dir, below) => {
          const co = parseCodeowners(rulesText(rules));
          const o = ownersOf(co, `${dir.join("/")}/`);
          if (o.status === "blocked" || o.line === null) return;
          const r = rules[o.line - 1] as { pattern: string };
          for (const rest of below)
            expect(matches(r.pattern, [...dir, ...rest].join("/"))).toBe(true);
        },
      ),
      { numRuns: 500 },
    );
  });

  it("ownership is unaffected by appending rules that cannot match", () => {
    const unrelated = fc.constantFrom(
      "/zz/ @z",
      "/zz/**/*.js @y",
      "zz/ @z",
      "/zz/[ab] @x",
      "!/zz/ @x",
      "/zz/q @bad!",
      "# trailing comment",
      "",
      "/zz/sub",
    );
    fc.assert(
      fc.property(
        fc.array(anyLine, { maxLength: 8 }),
        fc.array(unrelated, { minLength: 1, maxLength: 4 }),
        pathOf(1),
        fc.boolean(),
        (lines, extra, segs, dir) => {
          const path = `${segs.join("/")}${dir ? "/" : ""}`;
          const before = ownersOf(parseCodeowners(lines.join("\n")), path);
          const after = ownersOf(parseCodeowners([...lines, ...extra].join("\n")), path);
          expect(after).toEqual(before);
        },
      ),
      { numRuns: 500 },
    );
  });

  it("parseCodeowners and ownersOf never throw, whatever the input", () => {
    const text = fc.oneof(
      fc.string({ unit: "binary", maxLength: 400 }),
      fc.string({ unit: "grapheme-composite", maxLength: 200 }),
      fc.array(anyLine, { maxLength: 20 }).map((l) => l.join("\r\n")),
      fc.uint8Array({ maxLength: 300 }).map((b) => Buffer.from(b).toString("utf8")),
      fc.uint8Array({ maxLength: 300 }).map((b) => Buffer.from(b).toString("latin1")),
    );
    const path = fc.oneof(
      fc.string({ unit: "binary", maxLength: 40 }),
      pathOf(0).map((s) => s.join("/")),
    );
    fc.assert(
      fc.property(text, path, (t, p) => {
        const co = parseCodeowners(t);
        for (const q of [p, `${p}/`, "/", "a/b.js"]) {
          const o = ownersOf(co, q);
          expect(["owned", "unowned", "blocked"]).toContain(o.status);
        }
      }),
      { numRuns: 1000 },
    );
  });

  it("parseCodeowners handles huge inputs", () => {
    const lines = fc.sample(anyLine, { numRuns: 2000, seed: 42 }).join("\n");
    const big = `${lines}\n`.repeat(Math.ceil(2_500_000 / Buffer.byteLength(`${lines}\n`)));
    const co = parseCodeowners(big);
    expect(co.tooLarge).toBe(false);
    expect(co.rules.length + co.skipped.length).toBeGreaterThan(10_000);
    ownersOf(co, "a/b/c.js");
    ownersOf(co, "a/");
    expect(parseCodeowners(big + big).tooLarge).toBe(true);
    const oneLine = parseCodeowners(`/${"ab*".repeat(500_000)} @a`);
    expect(ownersOf(oneLine, `${"ab".repeat(10_000)}x`).status).toBe("unowned");
  });
});
