import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { block, code, inline, isGitHubLogin, person, plain } from "#src/tickets/escape.js";

/** Pieces that mean something to GitHub, mixed with plain text. */
const HOSTILE = [
  "@",
  "@acme/admins",
  "@octocat",
  "a@b.com",
  "<",
  ">",
  "<img src=x onerror=alert(1)>",
  "<!-- hallpass:",
  "-->",
  "|",
  "||",
  "\n",
  "\r\n",
  "\r",
  "\u2028",
  "#12",
  "acme/app#3",
  "GH-4",
  "gh-5",
  "https://evil.example/x",
  "www.evil.example",
  "WWW.",
  "[",
  "]",
  "](",
  "![x](y)",
  "`",
  "```",
  "~~~",
  "*",
  "**",
  "_",
  "~",
  "$",
  "$$",
  "\\",
  "&",
  "&lt;",
  "&#64;",
  "&#8203;",
  "&nbsp;",
  "1.",
  "2)",
  "-",
  "+",
  "=",
  "===",
  "---",
  " ",
  "    ",
  "\t",
  "\u202e",
  "\u2066",
  "\u2069",
  "\u0000",
  "\u0007",
  "\u001b[31m",
  "\u007f",
  "\u0085",
  "\ud800",
  "é",
  "😀",
  "a",
  "Z",
  "0",
  "9",
  "word",
];

const hostileText = fc.oneof(
  fc.array(fc.constantFrom(...HOSTILE), { maxLength: 40 }).map((parts) => parts.join("")),
  fc.string({ unit: "binary", maxLength: 80 }),
  fc.string({ unit: "grapheme-ascii", maxLength: 80 }),
);

/** Undoes the escapes, for checking that nothing a reader should see was lost. */
function unescaped(escaped: string): string {
  return escaped.replace(
    /&#8203;|&nbsp;|&#124;|&lt;|&gt;|&amp;|\\([!-/:-@[-`{-~])/g,
    (match, punct: string | undefined) =>
      punct ??
      ({ "&#8203;": "", "&nbsp;": " ", "&#124;": "|", "&lt;": "<", "&gt;": ">", "&amp;": "&" }[
        match
      ] as string),
  );
}

/** What escaping keeps of a text: controls and bidi marks as U+FFFD, line breaks as `\n`, tabs as spaces. */
function neutral(text: string): string {
  return [
    ...text
      .toWellFormed()
      .replace(/\r\n?|[\u2028\u2029]/g, "\n")
      .replace(/\t/g, " "),
  ]
    .map((c) => {
      const cp = c.codePointAt(0) ?? 0;
      const bad =
        (cp < 0x20 && c !== "\n") ||
        (cp >= 0x7f && cp <= 0x9f) ||
        (cp >= 0x202a && cp <= 0x202e) ||
        (cp >= 0x2066 && cp <= 0x2069);
      return bad ? "\uFFFD" : c;
    })
    .join("");
}

/** Properties every escaped text has, whatever went in. */
function expectInert(out: string): void {
  expect(out).not.toMatch(/@\w/);
  expect(out).not.toContain("<");
  expect(out).not.toContain("|");
  expect(out).not.toMatch(/(?<!&)#\d/);
  expect(out).not.toMatch(/\bgh-\d/i);
  expect(out).not.toContain("://");
  expect(out).not.toMatch(/\bwww\./i);
  expect(out).not.toMatch(/(?<!\\)[`*_[\]~$]/);
  expect([...out].filter((c) => c !== "\n" && neutral(c) !== c)).toEqual([]);
  // An `&` is ours (an entity we wrote), never the text's.
  expect(out).not.toMatch(/&(?!#8203;|nbsp;|#124;|lt;|gt;|amp;)/);
}

describe("inline", () => {
  it("never leaves a mention, reference, tag, pipe, newline or formatting", () => {
    fc.assert(
      fc.property(hostileText, fc.integer({ min: 1, max: 400 }), (text, max) => {
        const out = inline(text, max);
        expectInert(out);
        expect(out).not.toContain("\n");
        expect(out.length).toBeLessThanOrEqual(max);
      }),
      { numRuns: 2_000 },
    );
  });

  it("loses nothing a reader should see when it fits", () => {
    fc.assert(
      fc.property(hostileText, (text) => {
        const out = inline(text, 100_000);
        expect(unescaped(out)).toBe(
          neutral(text)
            .replace(/\s*\n\s*/g, " ")
            .trim(),
        );
      }),
      { numRuns: 1_000 },
    );
  });

  it("never starts a block: headings, lists, quotes, rules", () => {
    for (const text of [
      "# x",
      "- x",
      "+ x",
      "* x",
      "1. x",
      "12) x",
      "> x",
      "---",
      "===",
      "~~~",
      "```js",
    ]) {
      const out = inline(text, 100);
      expect(out.startsWith("\\") || out.startsWith("&gt;") || /^\d+\\[.)]/.test(out)).toBe(true);
    }
  });

  it("escapes a hostile reason readably", () => {
    expect(inline("ping @acme/admins <img src=x> | ](http://x) #7 GH-8 *bold*", 500)).toBe(
      "ping @&#8203;acme/admins &lt;img src=x&gt; &#124; \\]\\(http:&#8203;//x\\) \\#&#8203;7 GH-&#8203;8 \\*bold\\*",
    );
  });

  it("cannot fake hallpass's hidden marker", () => {
    expect(inline("<!-- hallpass:abc/0 -->", 100)).toBe("&lt;\\!-- hallpass:abc/0 --&gt;");
  });

  it("neutralises controls and bidi overrides, and folds lines", () => {
    expect(inline("a\u202eb\u2066c\u0000d\r\ne\tf", 100)).toBe("a\uFFFDb\uFFFDc\uFFFDd e f");
  });

  it("truncates with an ellipsis and never cuts an escape", () => {
    expect(inline("abcdefghij", 5)).toBe("abcd…");
    expect(inline("aaa<bbb", 6)).toBe("aaa…");
    expect(inline("😀😀😀", 4)).toBe("😀…");
    expect(inline("short", 5)).toBe("short");
  });
});

describe("block", () => {
  it("keeps every line inside the quote, inert", () => {
    fc.assert(
      fc.property(hostileText, fc.integer({ min: 3, max: 600 }), (text, max) => {
        const out = block(text, max);
        for (const line of out.split("\n")) expect(line.startsWith(">")).toBe(true);
        expectInert(out.replace(/^> ?/gm, ""));
        expect(out.length).toBeLessThanOrEqual(max);
      }),
      { numRuns: 2_000 },
    );
  });

  it("loses nothing a reader should see when it fits (indentation up to 16 spaces)", () => {
    fc.assert(
      fc.property(hostileText, (text) => {
        const out = block(text, 1_000_000);
        const lines = neutral(text)
          .replace(/\s+$/, "")
          .split("\n")
          .map((line) => (line.trim() === "" ? "" : line.replace(/^ {17,}/, " ".repeat(16))));
        expect(out.split("\n").map((line) => unescaped(line.replace(/^> ?/, "")))).toEqual(lines);
      }),
      { numRuns: 1_000 },
    );
  });

  it("quotes Markdown as text", () => {
    expect(block("# title\n\n- item\n    code\n```\n<b>x</b>", 500)).toBe(
      [
        "> \\#&#8203; title",
        ">",
        "> \\- item",
        "> &nbsp;&nbsp;&nbsp;&nbsp;code",
        "> \\`\\`\\`",
        "> &lt;b&gt;x&lt;/b&gt;",
      ].join("\n"),
    );
  });

  it("truncates at a line's edge or inside it, keeping the quote", () => {
    const out = block("line one\nline two\nline three", 20);
    expect(out).toBe("> line one\n> line t…");
    expect(out.length).toBeLessThanOrEqual(20);
  });
});

describe("code", () => {
  it("shows identifiers as code spans, without mentioning", () => {
    expect(code("acme/sre")).toBe("`acme/sre`");
    expect(code("GET /v1/**")).toBe("`GET /v1/**`");
  });

  it("escapes what a code span cannot hold", () => {
    expect(code("a`b")).toBe("a\\`b");
    expect(code("a|b")).toBe("a&#124;b");
    expect(code("<img>")).toBe("&lt;img&gt;");
    expect(code("x\ny")).toBe("`x y`");
  });
});

describe("person", () => {
  it("shows logins and teams without their @", () => {
    expect(person("@acme/sre")).toBe("`acme/sre`");
    expect(person("@@bob")).toBe("`bob`");
    expect(person("dependabot[bot]")).toBe("`dependabot[bot]`");
    expect(person("x`y @z")).toBe("x\\`y @&#8203;z");
  });
});

describe("plain", () => {
  it("is one bounded line with controls neutralised and nothing escaped", () => {
    expect(plain("Access *granted*\n\u202e", 100)).toBe("Access *granted* \uFFFD");
    expect(plain("x".repeat(10), 5)).toBe("xxxx…");
  });
});

describe("isGitHubLogin", () => {
  it("accepts GitHub's login syntax only", () => {
    for (const ok of ["a", "octocat", "a-b", "A1-b2-c3", "x".repeat(39)])
      expect(isGitHubLogin(ok)).toBe(true);
    for (const bad of [
      "",
      "-a",
      "a-",
      "a--b",
      "x".repeat(40),
      "dependabot[bot]",
      "a b",
      "acme/sre",
      "@a",
    ]) {
      expect(isGitHubLogin(bad)).toBe(false);
    }
  });
});
