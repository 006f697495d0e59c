import { describe, expect, it } from "vitest";
import {
  CODEOWNERS_MAX_BYTES,
  CODEOWNERS_PATHS,
  type Codeowners,
  type CodeownersFile,
  type CodeownersPath,
  type Ownership,
  ownersOf,
  parseCodeowners,
  selectCodeowners,
} from "#src/rules/codeowners.js";

/** Ownership in one short string: `owned 4 @a @b`, `unowned 3`, `unowned -`, `blocked 7 9`. */
function short(o: Ownership): string {
  if (o.status === "owned") return `owned ${o.line} ${o.owners.map((x) => x.text).join(" ")}`;
  if (o.status === "unowned") return `unowned ${o.line ?? "-"}`;
  return `blocked ${o.lines.join(" ")}`.trim();
}

function who(text: string | Codeowners, path: string): string {
  return short(ownersOf(typeof text === "string" ? parseCodeowners(text) : text, path));
}

function file(...lines: string[]): string {
  return `${lines.join("\n")}\n`;
}

describe("the example file from GitHub's documentation", () => {
  // The rules of GitHub's example, with comments of our own; line numbers matter.
  const example = parseCodeowners(
    file(
      "# Owners of everything, unless a later line matches.", // 1
      "*       @global-owner1 @global-owner2", // 2
      "# The last matching line wins, so JavaScript has its own owner.", // 3
      "*.js    @js-owner #an inline comment after the owners", // 4
      "*.go docs@example.com", // 5
      "*.txt @octo-org/octocats", // 6
      "/build/logs/ @doctocat", // 7
      "docs/*  docs@example.com", // 8
      "apps/ @octocat", // 9
      "/docs/ @doctocat", // 10
      "/scripts/ @doctocat @octocat", // 11
      "**/logs @octocat", // 12
      "/apps/ @octocat", // 13
      "/apps/github", // 14
    ),
  );

  it("reads every line and skips none", () => {
    expect(example.skipped).toEqual([]);
    expect(example.rules.map((r) => r.line)).toEqual([2, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14]);
    expect(example.rules[1]?.owners.map((o) => o.text)).toEqual(["@js-owner"]);
  });

  it.each([
    ["README.md", "owned 2 @global-owner1 @global-owner2"],
    [".env", "owned 2 @global-owner1 @global-owner2"],
    ["src/index.js", "owned 4 @js-owner"],
    ["index.js", "owned 4 @js-owner"],
    ["cmd/main.go", "owned 5 docs@example.com"],
    ["notes/todo.txt", "owned 6 @octo-org/octocats"],
    ["build/logs/today.log", "owned 12 @octocat"],
    ["build/output/a.bin", "owned 2 @global-owner1 @global-owner2"],
    ["docs/getting-started.md", "owned 10 @doctocat"],
    ["docs/build-app/troubleshooting.md", "owned 10 @doctocat"],
    ["lib/apps/config.yml", "owned 9 @octocat"],
    ["apps/web/index.html", "owned 13 @octocat"],
    ["apps/web/index.js", "owned 13 @octocat"],
    ["apps/github/readme.md", "unowned 14"],
    ["apps/github", "unowned 14"],
    ["scripts/deploy.sh", "owned 11 @doctocat @octocat"],
    ["deeply/nested/logs/x.log", "owned 12 @octocat"],
    ["deeply/nested/logs", "owned 12 @octocat"],
    ["src/logs.txt", "owned 6 @octo-org/octocats"],
  ])("%s → %s", (path, expected) => {
    expect(who(example, path)).toBe(expected);
  });

  it.each([
    ["/", "owned 2 @global-owner1 @global-owner2"],
    ["docs/", "owned 10 @doctocat"],
    ["apps/", "owned 13 @octocat"],
    ["apps/github/", "unowned 14"],
    ["build/logs/", "owned 12 @octocat"],
    ["scripts/ci/", "owned 11 @doctocat @octocat"],
    ["lib/apps/", "owned 9 @octocat"],
  ])("directory %s → %s", (path, expected) => {
    expect(who(example, path)).toBe(expected);
  });

  it("blocks what the example's `docs/*` may or may not govern at depth", () => {
    const o = ownersOf(example, "guide/docs/intro.md");
    expect(short(o)).toBe("blocked 8");
    expect(o.status === "blocked" && o.reason).toMatch(
      /line 8 \(`docs\/\*`\) may or may not apply/,
    );
  });
});

describe("pattern rules", () => {
  it("`docs/*` matches direct children only; `docs/**` matches at any depth", () => {
    const shallow = file("* @all", "/docs/* @shallow");
    expect(who(shallow, "docs/a.md")).toBe("owned 2 @shallow");
    expect(who(shallow, "docs/.hidden")).toBe("owned 2 @shallow");
    expect(who(shallow, "docs/sub/b.md")).toBe("owned 1 @all");
    expect(who(shallow, "docs")).toBe("owned 1 @all");
    const deep = file("* @all", "/docs/** @deep");
    expect(who(deep, "docs/a.md")).toBe("owned 2 @deep");
    expect(who(deep, "docs/sub/b.md")).toBe("owned 2 @deep");
    expect(who(deep, "docs")).toBe("owned 1 @all");
  });

  it("a leading slash anchors to the root; a bare name matches at any depth", () => {
    const text = file("/build @root", "logs @any");
    expect(who(text, "build/x")).toBe("owned 1 @root");
    expect(who(text, "build")).toBe("owned 1 @root");
    expect(who(text, "src/build/x")).toBe("unowned -");
    expect(who(text, "buildx/y")).toBe("unowned -");
    expect(who(text, "logs")).toBe("owned 2 @any");
    expect(who(text, "a/b/logs/c")).toBe("owned 2 @any");
    expect(who(text, "a/logsx")).toBe("unowned -");
  });

  it("a slash in the middle anchors (gitignore); matching deeper is blocked as unsure", () => {
    const text = file("* @all", "src/api @api");
    expect(who(text, "src/api/x.ts")).toBe("owned 2 @api");
    expect(who(text, "src/api")).toBe("owned 2 @api");
    expect(who(text, "lib/src/api/x.ts")).toBe("blocked 2");
    expect(who(text, "lib/api/x.ts")).toBe("owned 1 @all");
  });

  it("a trailing slash matches a directory's contents at any depth, not a file of that name", () => {
    const text = file("logs/ @any", "/tmp/ @root");
    expect(who(text, "logs/a")).toBe("owned 1 @any");
    expect(who(text, "x/logs/a/b")).toBe("owned 1 @any");
    expect(who(text, "logs")).toBe("unowned -");
    expect(who(text, "tmp/a/b")).toBe("owned 2 @root");
    expect(who(text, "x/tmp/a")).toBe("unowned -");
  });

  it("`*` stays within one segment", () => {
    const text = file("/src/*.ts @ts");
    expect(who(text, "src/a.ts")).toBe("owned 1 @ts");
    expect(who(text, "src/.ts")).toBe("owned 1 @ts");
    expect(who(text, "src/lib/a.ts")).toBe("unowned -");
    expect(who(text, "src/a.tsx")).toBe("unowned -");
  });

  it("`**` matches across segments: `**/x`, `x/**`, `a/**/b`", () => {
    const text = file("**/fixtures @fx", "/gen/** @gen", "/a/**/b @ab");
    expect(who(text, "fixtures")).toBe("owned 1 @fx");
    expect(who(text, "t/u/fixtures/v.json")).toBe("owned 1 @fx");
    expect(who(text, "gen/x")).toBe("owned 2 @gen");
    expect(who(text, "gen/x/y/z")).toBe("owned 2 @gen");
    expect(who(text, "a/b")).toBe("owned 3 @ab");
    expect(who(text, "a/x/b")).toBe("owned 3 @ab");
    expect(who(text, "a/x/y/b/c")).toBe("owned 3 @ab");
    expect(who(text, "a/xb")).toBe("unowned -");
    expect(who(text, "z/a/b")).toBe("unowned -");
  });

  it("the last matching line wins across nested, deep and unanchored rules", () => {
    const text = file(
      "/a/b/c/d/e/f/ @deep", // 1
      "* @all", // 2
      "/a/b/ @ab", // 3
      "*.md @md", // 4
      "/a/ @a", // 5
      "/a/b/c/d/e/ @e", // 6
      "/x/ @x", // 7
    );
    expect(who(text, "a/b/c/d/e/f/g.md")).toBe("owned 6 @e");
    expect(who(text, "a/b/c/d/e/f/")).toBe("owned 6 @e");
    expect(who(text, "a/b/c.md")).toBe("owned 5 @a");
    expect(who(text, "a/")).toBe("owned 5 @a");
    expect(who(text, "b/c.md")).toBe("owned 4 @md");
    expect(who(text, "b/")).toBe("owned 2 @all");
    expect(who(text, "x/a/b/c/d/e/f/g")).toBe("owned 7 @x");
  });

  it("`?` matches exactly one character other than `/`", () => {
    const text = file("/file?.txt @q");
    expect(who(text, "file1.txt")).toBe("owned 1 @q");
    expect(who(text, "fileé.txt")).toBe("owned 1 @q");
    expect(who(text, "file😀.txt")).toBe("owned 1 @q");
    expect(who(text, "file.txt")).toBe("unowned -");
    expect(who(text, "file10.txt")).toBe("unowned -");
  });

  it("dotfiles are matched by `*` like other files", () => {
    const text = file("* @all", "*.yml @yaml", "/.github/ @sec");
    expect(who(text, ".env")).toBe("owned 1 @all");
    expect(who(text, ".config/app/x")).toBe("owned 1 @all");
    expect(who(text, ".circleci/config.yml")).toBe("owned 2 @yaml");
    expect(who(text, ".github/workflows/ci.yml")).toBe("owned 3 @sec");
  });

  it("paths are case-sensitive", () => {
    const text = file("/Docs/ @upper", "*.MD @md");
    expect(who(text, "Docs/a")).toBe("owned 1 @upper");
    expect(who(text, "docs/a")).toBe("unowned -");
    expect(who(text, "x/README.MD")).toBe("owned 2 @md");
    expect(who(text, "x/README.md")).toBe("unowned -");
  });

  it("escaped spaces are part of the pattern (GitHub accepts `\\ `)", () => {
    const text = file("/My\\ Docs/ @a", "/notes/To\\ Do.md @b");
    expect(who(text, "My Docs/x.md")).toBe("owned 1 @a");
    expect(who(text, "My Docs/")).toBe("owned 1 @a");
    expect(who(text, "notes/To Do.md")).toBe("owned 2 @b");
    expect(who(text, "notes/To")).toBe("unowned -");
  });

  it("other escapes make characters literal", () => {
    const text = file("/a\\*b @star", "/q\\?.txt @q");
    expect(who(text, "a*b")).toBe("owned 1 @star");
    expect(who(text, "axb")).toBe("unowned -");
    expect(who(text, "q?.txt")).toBe("owned 2 @q");
    expect(who(text, "qq.txt")).toBe("unowned -");
  });
});

describe("owners", () => {
  it("normalises user and team names to lower case and keeps the text as written", () => {
    const co = parseCodeowners("* @MonaLisa @Octo-Org/Team_A Docs@Example.COM\n");
    expect(co.rules[0]?.owners).toEqual([
      { kind: "user", text: "@MonaLisa", login: "monalisa" },
      { kind: "team", text: "@Octo-Org/Team_A", org: "octo-org", slug: "team_a" },
      { kind: "email", text: "Docs@Example.COM", email: "docs@example.com" },
    ]);
  });

  it("lists an owner once however it is spelled", () => {
    const co = parseCodeowners("* @mona @MONA @org/t @ORG/T\n");
    expect(co.rules[0]?.owners.map((o) => o.text)).toEqual(["@mona", "@org/t"]);
  });

  it("ends the owners at an inline ` #` comment", () => {
    expect(who("*.js @a # owners of js\n", "x.js")).toBe("owned 1 @a");
    expect(who("*.js @a #tight\n", "x.js")).toBe("owned 1 @a");
    expect(who("*.js\t#only a comment\n", "x.js")).toBe("unowned 1");
    expect(who("  # an indented comment\n* @a\n", "x")).toBe("owned 2 @a");
  });

  it("leaves a path unowned by a matching line without owners, never falling through", () => {
    const text = file("* @all", "/apps/ @apps", "/apps/legacy/", "*.md @docs");
    expect(who(text, "apps/legacy/x.ts")).toBe("unowned 3");
    expect(who(text, "apps/legacy/")).toBe("unowned 3");
    expect(who(text, "apps/legacy/x.md")).toBe("owned 4 @docs");
    expect(who(text, "apps/new/x.ts")).toBe("owned 2 @apps");
  });

  it("leaves a path unowned, with no line, when nothing matches", () => {
    expect(ownersOf(parseCodeowners("/a/ @x\n"), "b/c")).toEqual({ status: "unowned", line: null });
  });
});

describe("lines GitHub skips", () => {
  const text = [
    "* @all", // 1
    "!negated @a", // 2
    "/src/[ab].ts @a", // 3
    "\\#hash @a", // 4
    "/x/ owner-without-at", // 5
    "/y/ @ok @bad!name", // 6
    "/ @a", // 7
    "a//b @a", // 8
    "./x @a", // 9
    "/a/***/b @a", // 10
    "/end\\", // 11
    "/z/ @a\u0000", // 12
    "/esc\\/aped @a", // 13
    "/h#sh @a", // 14
    "/o/ @a#b", // 15
    "/w/ @org/team/extra", // 16
    "/\\!bang @a", // 17
  ].join("\n");
  const co = parseCodeowners(text);

  it("reports each with its line number, text and reason", () => {
    expect(co.rules.map((r) => r.line)).toEqual([1, 17]);
    const reasons = Object.fromEntries(co.skipped.map((s) => [s.line, s.reason]));
    expect(reasons).toEqual({
      2: expect.stringMatching(/negation/),
      3: expect.stringMatching(/character ranges/),
      4: expect.stringMatching(/escaping a leading `#`/),
      5: expect.stringMatching(/invalid owner `owner-without-at`/),
      6: expect.stringMatching(/invalid owner `@bad!name`/),
      7: expect.stringMatching(/matches nothing/),
      8: expect.stringMatching(/empty, `\.` or `\.\.` path segment/),
      9: expect.stringMatching(/empty, `\.` or `\.\.` path segment/),
      10: expect.stringMatching(/three or more consecutive `\*`/),
      11: expect.stringMatching(/unfinished escape/),
      12: expect.stringMatching(/control character U\+0000/),
      13: expect.stringMatching(/escaped `\/`/),
      14: expect.stringMatching(/`#` inside a pattern/),
      15: expect.stringMatching(/`#` inside the owner `@a#b`/),
      16: expect.stringMatching(/invalid owner `@org\/team\/extra`/),
    });
    expect(co.skipped.find((s) => s.line === 6)?.text).toBe("/y/ @ok @bad!name");
  });

  it("skips a leading escaped `!`, which GitHub does not document", () => {
    const co = parseCodeowners("\\!bang @a\n");
    expect(co.skipped.map((x) => [x.line, x.reason])).toEqual([
      [1, "escaping a leading `!` with `\\` is not documented by GitHub"],
    ]);
    expect(who(co, "!bang")).toBe("blocked 1");
  });

  it("reads an escaped `!` elsewhere as a literal, like gitignore", () => {
    const strict = parseCodeowners("/\\!bang @a\n");
    expect(strict.rules[0]?.pattern).toBe("/\\!bang");
    expect(who(strict, "!bang")).toBe("owned 1 @a");
  });
});

describe("failing closed on skipped lines", () => {
  it("blocks when an invalid line after the winning rule would govern the path", () => {
    const o = ownersOf(
      parseCodeowners(file("* @all", "/services/ @platform", "/services/payments/ @pay @bad!")),
      "services/payments/",
    );
    expect(o).toEqual({
      status: "blocked",
      lines: [3],
      reason:
        "CODEOWNERS line 3 is invalid (invalid owner `@bad!`, expected @user, @org/team or an e-mail address) and would govern services/payments/; fix it before anything under services/payments/ can be approved",
    });
  });

  it("does not fall back to an earlier, broader owner", () => {
    expect(who(file("* @all", "/docs/[a-z]*.md @docs"), "docs/intro.md")).toBe("blocked 2");
  });

  it("judges `[ ]` as matching anything in the segment, the literal reading included", () => {
    const text = file("* @all", "/svc/pay[m]ents/ @x");
    expect(who(text, "svc/payments/")).toBe("blocked 2");
    expect(who(text, "svc/pay[m]ents/a")).toBe("blocked 2");
    expect(who(text, "svc/ledger/")).toBe("owned 1 @all");
  });

  it("blocks when an invalid line would govern a path nothing else matches", () => {
    expect(who(file("/other/ @o", "!/services/ @x"), "services/a.ts")).toBe("blocked 2");
  });

  it("does not block when the invalid line comes before a valid later match", () => {
    expect(who(file("/services/ @bad!", "/services/ @ok"), "services/a.ts")).toBe("owned 2 @ok");
  });

  it("does not block when the invalid line cannot govern the path", () => {
    const text = file("* @all", "/other/[ab]/ @x", "/docs/*.md @bad!");
    expect(who(text, "services/a.ts")).toBe("owned 1 @all");
    expect(who(text, "docs/")).toBe("owned 1 @all");
  });

  it("names every line that would govern the path", () => {
    const o = ownersOf(parseCodeowners(file("* @a", "/x/y @e", "!x @b", "x/ @c d")), "x/y");
    expect(short(o)).toBe("blocked 3 4");
    expect(o.status === "blocked" && o.reason).toMatch(/line 3 .*; CODEOWNERS line 4 .*fix them/);
  });

  it("judges a line with a stray carriage return by each of its pieces", () => {
    const co = parseCodeowners("* @all\n/docs/ @docs\r/services/ @evil\n");
    expect(co.skipped.map((s) => s.line)).toEqual([2]);
    expect(who(co, "services/payments/")).toBe("blocked 2");
    expect(who(co, "docs/a.md")).toBe("blocked 2");
    expect(who(co, "src/a.ts")).toBe("owned 1 @all");
  });

  it("judges a `#` inside a pattern both as a comment and as a literal", () => {
    const text = file("* @all", "/services/#payments @x");
    expect(who(text, "services/a.ts")).toBe("blocked 2");
    expect(who(text, "services/#payments/a")).toBe("blocked 2");
    expect(who(text, "lib/a.ts")).toBe("owned 1 @all");
  });
});

describe("patterns GitHub may read two ways", () => {
  it("blocks a last wildcard segment that may or may not cover what is below", () => {
    const text = file("* @all", "/src/b* @b");
    expect(who(text, "src/bar")).toBe("owned 2 @b");
    expect(who(text, "src/bar/baz.txt")).toBe("blocked 2");
    expect(who(text, "src/bar/")).toBe("blocked 2");
    expect(who(text, "src/foo/bar")).toBe("owned 1 @all");
  });

  it("blocks `**` inside a segment where crossing directories would change the answer", () => {
    const text = file("* @all", "/src/**.js @js");
    expect(who(text, "src/a.js")).toBe("owned 2 @js");
    expect(who(text, "src/lib/a.js")).toBe("blocked 2");
    expect(who(text, "src/lib/a.ts")).toBe("owned 1 @all");
  });

  // gitignore reads `foo/**/` as the directories below `foo` (so what is in
  // them), never a file directly in `foo`; other readings take all of `foo`.
  it.each(["foo/**/", "/foo/**/", "**/foo/**/"])(
    "never hands a file directly in foo to `%s`'s owners: gitignore matches only below a subdirectory",
    (pattern) => {
      const co = parseCodeowners(file("* @security", `${pattern} @team-x`));
      expect(who(co, "foo/config.yml")).toBe("blocked 2");
      expect(who(co, "foo/")).toBe("blocked 2");
      expect(who(co, "foo/x/bar")).toBe("owned 2 @team-x");
      expect(who(co, "foo/x/y/z.yml")).toBe("owned 2 @team-x");
      expect(who(co, "foo/x/")).toBe("owned 2 @team-x");
      expect(who(co, "foo")).toBe("owned 1 @security");
      expect(who(co, "bar/config.yml")).toBe("owned 1 @security");
      const o = ownersOf(co, "foo/config.yml");
      expect(o.status === "blocked" && o.reason).toContain("directly inside");
    },
  );

  it("reads `**/foo/**/` at any depth and `/foo/**/` at the root only", () => {
    const any = file("* @security", "**/foo/**/ @team-x");
    expect(who(any, "a/foo/config.yml")).toBe("blocked 2");
    expect(who(any, "a/foo/x/bar")).toBe("owned 2 @team-x");
    const root = file("* @security", "/foo/**/ @team-x");
    expect(who(root, "a/foo/x/bar")).toBe("owned 1 @security");
  });

  it("reads `/foo/*/`, gitignore's `/foo/**/` written unambiguously, one way", () => {
    const text = file("* @security", "/foo/*/ @team-x");
    expect(who(text, "foo/config.yml")).toBe("owned 1 @security");
    expect(who(text, "foo/x/bar")).toBe("owned 2 @team-x");
    expect(who(text, "foo/x/y/z.yml")).toBe("owned 2 @team-x");
    expect(who(text, "foo/x/")).toBe("owned 2 @team-x");
  });

  it("blocks a file at the root for `**/`, which gitignore reads as the files in a directory", () => {
    const text = file("* @security", "**/ @team-x");
    expect(who(text, "config.yml")).toBe("blocked 2");
    expect(who(text, "a/config.yml")).toBe("owned 2 @team-x");
    expect(who(text, "a/")).toBe("owned 2 @team-x");
  });

  it("does not block when every reading names the same owners", () => {
    const text = file("* @api", "payments/api/ @API");
    expect(who(text, "services/payments/api/x.ts")).toBe("owned 1 @api");
  });

  it("does not block when the unsure line comes before the winning rule", () => {
    const text = file("payments/api/ @api", "/services/ @platform");
    expect(who(text, "services/payments/api/x.ts")).toBe("owned 2 @platform");
  });
});

describe("directories", () => {
  const text = file(
    "* @all", // 1
    "/services/ @platform", // 2
    "/services/payments/ @pay", // 3
    "/services/payments/*.md @docs", // 4
    "/services/payments/secrets/ @sec", // 5
    "/services/payments/* @shallow", // 6
  );

  it("are owned by the last rule covering everything below them", () => {
    expect(who(text, "services/payments/")).toBe("owned 3 @pay");
    expect(who(text, "services/")).toBe("owned 2 @platform");
    expect(who(text, "services/ledger/")).toBe("owned 2 @platform");
    expect(who(text, "services/payments/secrets/")).toBe("owned 5 @sec");
    expect(who(text, "services/payments/secrets/old/")).toBe("owned 5 @sec");
    expect(who(text, "/")).toBe("owned 1 @all");
  });

  it("while their files follow the last matching rule", () => {
    expect(who(text, "services/payments/README.md")).toBe("owned 6 @shallow");
    expect(who(text, "services/payments/api/x.ts")).toBe("owned 3 @pay");
    expect(who(text, "services/payments/secrets/k.pem")).toBe("owned 5 @sec");
  });

  it("are covered by `d/`, `d/**`, `d` and by `*` or `**`, not by `d/*`", () => {
    for (const pattern of ["/d/", "d/", "/d/**", "/d", "d", "*", "**", "/**", "/*/", "**/d/"]) {
      expect(who(file("/x/ @x", `${pattern} @p`), "d/"), pattern).toBe("owned 2 @p");
    }
    for (const pattern of ["/d/*", "/d/*.js", "/d/sub/", "/*", "/e/", "d/*/"]) {
      expect(who(file(`${pattern} @p`), "d/"), pattern).toBe("unowned -");
    }
  });

  it("without a trailing slash, a path is a file", () => {
    expect(who(text, "services/payments")).toBe("owned 2 @platform");
  });
});

describe("paths", () => {
  it("tolerate one leading slash", () => {
    expect(who("/a/ @x\n", "/a/b")).toBe("owned 1 @x");
  });

  it.each(["", "a//b", "//a", "a/./b", "../a", "a/..", "a\u0000b"])("refuses %j", (path) => {
    const o = ownersOf(parseCodeowners("* @x\n"), path);
    expect(o.status).toBe("blocked");
  });
});

describe("file format", () => {
  it("ignores a UTF-8 BOM and reads CRLF line ends", () => {
    const co = parseCodeowners("\uFEFF/docs/ @a\r\n\r\n*.md @b\r\n");
    expect(co.skipped).toEqual([]);
    expect(co.rules.map((r) => [r.line, r.pattern])).toEqual([
      [1, "/docs/"],
      [3, "*.md"],
    ]);
    expect(who(co, "docs/x.txt")).toBe("owned 1 @a");
  });

  it("separates by tabs and runs of spaces and ignores trailing blanks and blank lines", () => {
    const co = parseCodeowners("\n   \n\t/a/\t\t@x  \t @y   \t\n\n");
    expect(co.rules.map((r) => [r.line, r.pattern, r.owners.map((o) => o.text)])).toEqual([
      [3, "/a/", ["@x", "@y"]],
    ]);
  });

  it("handles very long lines", () => {
    const long = `/${"a".repeat(100_000)}/ ${Array.from({ length: 5000 }, (_, i) => `@u${i}`).join(" ")}`;
    const co = parseCodeowners(`${long}\n/b/ @b\n`);
    expect(co.rules.map((r) => r.line)).toEqual([1, 2]);
    expect(co.rules[0]?.owners).toHaveLength(5000);
    expect(who(co, `${"a".repeat(100_000)}/x`)).toMatch(/^owned 1 @u0 /);
  });

  it("an empty file owns nothing", () => {
    expect(who("", "a")).toBe("unowned -");
  });
});

describe("selectCodeowners", () => {
  const pick = (files: Partial<Record<CodeownersPath, CodeownersFile>>) => {
    const asked: string[] = [];
    const co = selectCodeowners((path) => {
      asked.push(path);
      return files[path] ?? null;
    });
    return { co, asked };
  };

  it("looks in .github/, then the root, then docs/, and stops at the first file", () => {
    expect(CODEOWNERS_PATHS).toEqual([".github/CODEOWNERS", "CODEOWNERS", "docs/CODEOWNERS"]);
    const all = pick({
      ".github/CODEOWNERS": "* @g\n",
      CODEOWNERS: "* @r\n",
      "docs/CODEOWNERS": "* @d\n",
    });
    expect(all.co.path).toBe(".github/CODEOWNERS");
    expect(all.asked).toEqual([".github/CODEOWNERS"]);
    expect(who(all.co, "x")).toBe("owned 1 @g");
    const root = pick({ CODEOWNERS: "* @r\n", "docs/CODEOWNERS": "* @d\n" });
    expect([root.co.path, who(root.co, "x")]).toEqual(["CODEOWNERS", "owned 1 @r"]);
    const docs = pick({ "docs/CODEOWNERS": "* @d\n" });
    expect([docs.co.path, who(docs.co, "x")]).toEqual(["docs/CODEOWNERS", "owned 1 @d"]);
  });

  it("uses the first file even when it is empty", () => {
    const { co } = pick({ ".github/CODEOWNERS": "", CODEOWNERS: "* @r\n" });
    expect(co.path).toBe(".github/CODEOWNERS");
    expect(co.found).toBe(true);
    expect(who(co, "x")).toBe("unowned -");
  });

  it("reports no file when none exists", () => {
    const { co, asked } = pick({});
    expect(asked).toEqual([...CODEOWNERS_PATHS]);
    expect(co).toMatchObject({ path: null, found: false, tooLarge: false });
    expect(who(co, "x")).toBe("unowned -");
  });

  it("loads a file of 3 MB minus one byte", () => {
    const text = `* @a\n${"#".repeat(CODEOWNERS_MAX_BYTES - 7)}\n`;
    expect(Buffer.byteLength(text)).toBe(CODEOWNERS_MAX_BYTES - 1);
    const { co } = pick({ CODEOWNERS: text });
    expect(co.tooLarge).toBe(false);
    expect(who(co, "x")).toBe("owned 1 @a");
  });

  it("blocks every path when the file is exactly 3 MB, counted in UTF-8 bytes", () => {
    const text = `* @a\n${"#".repeat(CODEOWNERS_MAX_BYTES - 5)}`;
    expect(Buffer.byteLength(text)).toBe(CODEOWNERS_MAX_BYTES);
    const { co } = pick({ CODEOWNERS: text, "docs/CODEOWNERS": "* @d\n" });
    expect(co).toMatchObject({ path: "CODEOWNERS", tooLarge: true, bytes: CODEOWNERS_MAX_BYTES });
    const o = ownersOf(co, "x");
    expect(o).toMatchObject({ status: "blocked", lines: [] });
    expect(o.status === "blocked" && o.reason).toMatch(
      /^CODEOWNERS is too large \(3145728 bytes\)/,
    );
    const wide = `* @a\n#${"é".repeat(CODEOWNERS_MAX_BYTES / 2)}`;
    expect(wide.length).toBeLessThan(CODEOWNERS_MAX_BYTES);
    expect(parseCodeowners(wide).tooLarge).toBe(true);
  });

  it("blocks every path when the caller reports the file as too large, without falling back", () => {
    const { co } = pick({ ".github/CODEOWNERS": { tooLarge: true }, CODEOWNERS: "* @r\n" });
    expect(co).toMatchObject({ path: ".github/CODEOWNERS", tooLarge: true, bytes: null });
    expect(short(ownersOf(co, "services/payments/"))).toBe("blocked");
  });
});
