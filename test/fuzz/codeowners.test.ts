/**
 * CODEOWNERS files through their parser: whatever a repository holds at the
 * three locations, an answer comes back, owners only ever come from the
 * winning line as written, and a line GitHub would skip can block a path but
 * never hand it to someone else.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  CODEOWNERS_PATHS,
  type CodeownersFile,
  ownersOf,
  parseCodeowners,
  selectCodeowners,
} from "#src/rules/codeowners.js";
import { anyText, mutated, reshuffled, runs } from "../support/fuzz.js";

const FILE = `# owners
* @acme/platform
/services/payments/ @bob @acme/payments-owners
services/ledger/** @carol
*.md docs@example.com
/services/payments/legacy/ @dave
`;

const segment = fc.constantFrom(
  "services",
  "payments",
  "ledger",
  "legacy",
  "a.md",
  "x.ts",
  "ü",
  ".d",
);
const repoPath = fc.oneof(
  fc
    .tuple(fc.array(segment, { maxLength: 4 }), fc.boolean())
    .map(([segs, dir]) => `${segs.join("/")}${dir ? "/" : ""}`),
  anyText(40),
  fc.constantFrom("/", "", "//", "../x", "a/./b", "a\u0000b", "services/payments/"),
);

const owner = fc.constantFrom("@bob", "@acme/eng", "x@example.com", "@mallory", "@a/b/c", "bob");
const line = fc.oneof(
  fc
    .tuple(
      fc.constantFrom(
        "*",
        "/services/",
        "services/payments/",
        "**/x.ts",
        "/a/*",
        "*.md",
        "legacy",
        "services/**/",
      ),
      fc.array(owner, { maxLength: 3 }),
    )
    .map(([p, o]) => [p, ...o].join(" ")),
  fc.constantFrom(
    "# comment",
    "",
    "   ",
    "\r",
    "!x @bob",
    "[ab] @bob",
    "\\#x @bob",
    "* @bob # tail",
  ),
  anyText(40),
);
const file = fc.oneof(
  fc.array(line, { maxLength: 12 }).map((lines) => lines.join("\n")),
  mutated(FILE, 6),
  reshuffled(FILE),
  anyText(400),
);
const location: fc.Arbitrary<CodeownersFile> = fc.oneof(
  file,
  fc.constant(null),
  fc.constantFrom({ tooLarge: true as const }, { tooLarge: true as const, bytes: 4_000_000 }),
);

/** Lines GitHub skips whole: an owner that is not one, or a pattern it does not support. */
const skippedLine = fc
  .tuple(
    fc.constantFrom("*", "/services/", "services/payments/", "**/x.ts", "*.md", "!x", "[ab]"),
    fc.constantFrom("bad-owner", "@", "@bad!name", "@bob"),
  )
  .map(([p, o]) => `${p} ${o}`);

describe("CODEOWNERS files through their parser", () => {
  it("answers for any files at the three locations, with owners from the winning line only", () => {
    fc.assert(
      fc.property(
        fc.array(location, { minLength: 3, maxLength: 3 }),
        fc.array(repoPath, { minLength: 1, maxLength: 5 }),
        (files, paths) => {
          const co = selectCodeowners((p) => files[CODEOWNERS_PATHS.indexOf(p)] ?? null);
          const chosen = files.findIndex((f) => f !== null);
          expect(co.path).toBe(chosen === -1 ? null : CODEOWNERS_PATHS[chosen]);
          const text = typeof files[chosen] === "string" ? (files[chosen] as string) : null;
          const lines = text?.replace(/^\uFEFF/, "").split("\n") ?? [];
          for (const path of paths) {
            const o = ownersOf(co, path);
            expect(["owned", "unowned", "blocked"]).toContain(o.status);
            if (o.status === "blocked") {
              expect(o.reason.length).toBeGreaterThan(0);
              continue;
            }
            if (o.status !== "owned") continue;
            expect(co.tooLarge).toBe(false);
            const tokens = (lines[o.line - 1] ?? "").replace(/\r$/, "").split(/[ \t]+/);
            expect(o.owners.length).toBeGreaterThan(0);
            for (const owned of o.owners) expect(tokens).toContain(owned.text);
          }
        },
      ),
      { numRuns: runs(300) },
    );
  });

  it("a line GitHub skips may block a path, never give it other owners", () => {
    fc.assert(
      fc.property(file, skippedLine, fc.nat(), repoPath, (text, extra, where, path) => {
        const lines = text.split("\n");
        const at = where % (lines.length + 1);
        const withExtra = [...lines.slice(0, at), extra, ...lines.slice(at)].join("\n");
        const co = parseCodeowners(withExtra);
        fc.pre(co.skipped.some((s) => s.line === at + 1));
        const before = ownersOf(parseCodeowners(text), path);
        const after = ownersOf(co, path);
        if (after.status === "blocked") return;
        const owners = (o: typeof before) =>
          o.status === "owned" ? o.owners.map((x) => x.text.toLowerCase()) : [];
        expect(after.status).toBe(before.status);
        expect(owners(after)).toEqual(owners(before));
      }),
      { numRuns: runs(300) },
    );
  });
});
