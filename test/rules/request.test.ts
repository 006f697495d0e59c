import { createHash } from "node:crypto";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { canonicalJson } from "#src/audit/event.js";
import type { BoundResource } from "#src/rules/bind.js";
import {
  type AccessRequest,
  MAX_BODY_CHARS,
  parseRequest,
  type RequestResult,
  requestHash,
} from "#src/rules/request.js";
import {
  BLOCK_BODY,
  BLOCK_BODY_COMMA_SCOPES,
  FORM_BODY,
  FORM_BODY_CHECKBOXES,
  FORM_BODY_WITH_START,
} from "./fixtures/bodies.js";
import { bound } from "./fixtures/bound.js";

const NOW = new Date("2026-11-23T18:00:00Z");
const resources = bound();
const parse = (body: string | null, now = NOW) => parseRequest(body, resources, now);

function requestOf(result: RequestResult): AccessRequest {
  if (!result.ok) throw new Error(JSON.stringify(result.problems));
  return result.request;
}

function problemsOf(result: RequestResult): readonly string[] {
  if (result.ok) throw new Error(`expected problems, got ${JSON.stringify(result.request)}`);
  return result.problems;
}

const form = (fields: Record<string, string>): string =>
  Object.entries(fields)
    .map(([heading, value]) => `### ${heading}\n\n${value}`)
    .join("\n\n");

const good = {
  Resource: "payments-api",
  Scopes: "read",
  Duration: "1h",
  Reason: "Investigating a failed refund for INC-4711.",
  Start: "_No response_",
};

describe("parseRequest: issue forms", () => {
  it("reads an issue form as GitHub renders it", () => {
    expect(requestOf(parse(FORM_BODY))).toEqual({
      resource: "payments-api",
      scopes: ["read", "refund"],
      durationSeconds: 7_200,
      reason:
        "Refunds for INC-4711 failed overnight; I need to look at the charges and re-issue three refunds.",
      start: null,
      source: "issue-form",
    });
  });

  it("reads the same request from CRLF line ends", () => {
    expect(requestOf(parse(FORM_BODY.replace(/\n/g, "\r\n")))).toEqual(requestOf(parse(FORM_BODY)));
  });

  it("reads a scheduled start", () => {
    expect(requestOf(parse(FORM_BODY_WITH_START)).start).toEqual(new Date("2026-11-24T09:00:00Z"));
  });

  it("reads checkboxes and takes default_ttl for an empty duration", () => {
    const request = requestOf(parse(FORM_BODY_CHECKBOXES));
    expect(request.scopes).toEqual(["read"]);
    expect(request.durationSeconds).toBe(3_600);
  });

  it("matches headings case-insensitively, with trailing spaces and closing #s", () => {
    const body = form(good)
      .replace("### Resource", "###   RESOURCE   ")
      .replace("### Scopes", "### scopes ###")
      .replace("### Reason", "  ### Reason:\t");
    expect(requestOf(parse(body)).resource).toBe("payments-api");
  });

  it("ignores other sections of the form and text around it", () => {
    const body = `Intro text\n\n${form({ ...good, "Ticket link": "https://example.com/INC-4711" })}`;
    expect(requestOf(parse(body)).scopes).toEqual(["read"]);
  });

  it("keeps a multi-line reason, stopping at the next section", () => {
    const reason = "Line one of the reason.\n\n- point a\n- point b\n\n## not a section";
    const request = requestOf(parse(form({ ...good, Reason: reason })));
    expect(request.reason).toBe(reason);
  });

  it.each([
    ["Resource", /^Resource is missing; this repository's resources: payments-api, ledger-api$/],
    ["Scopes", /^Scopes is empty: choose from read, refund$/],
    ["Reason", /^Reason is missing/],
  ])("reports a missing %s", (field, problem) => {
    const fields: Record<string, string> = { ...good };
    delete fields[field];
    expect(problemsOf(parse(form(fields)))).toEqual([expect.stringMatching(problem)]);
    fields[field] = "_No response_";
    expect(problemsOf(parse(form(fields)))).toEqual([expect.stringMatching(problem)]);
  });

  it("reports every problem at once", () => {
    const problems = problemsOf(
      parse(
        form({ Resource: "payments-api", Scopes: "read, write", Duration: "8h", Reason: "pls" }),
      ),
    );
    expect(problems).toEqual([
      'scope "write" is not defined for payments-api; allowed: read, refund',
      "Duration 8h is longer than the maximum for payments-api, 4h",
      "Reason is too short (3 characters); write at least 10",
    ]);
  });

  it.each([
    [
      "an unknown resource",
      { Resource: "billing-api" },
      'unknown resource "billing-api"; this repository\'s resources: payments-api, ledger-api',
    ],
    [
      "a bad duration",
      { Duration: "90" },
      'Duration: "90" has no unit: write 90s, 90m, 90h or 90d',
    ],
    [
      "a duration over max_ttl",
      { Resource: "ledger-api", Duration: "2h" },
      "Duration 2h is longer than the maximum for ledger-api, 1h",
    ],
    [
      "a start in the past",
      { Start: "2026-11-23T17:59:59Z" },
      "Start 2026-11-23T17:59:59.000Z is in the past",
    ],
    [
      "a start too far ahead",
      { Start: "2026-12-23T18:00:01Z" },
      "Start 2026-12-23T18:00:01.000Z is more than 30d ahead",
    ],
    [
      "a start with an offset",
      { Start: "2026-11-24T09:00:00+02:00" },
      'Start "2026-11-24T09:00:00+02:00" is not a UTC time; write it in UTC, e.g. 2026-03-01T09:00:00Z',
    ],
    [
      "a start that is no date",
      { Start: "2026-02-30T09:00:00Z" },
      'Start "2026-02-30T09:00:00Z" is not a real date and time; write it in UTC, e.g. 2026-03-01T09:00:00Z',
    ],
    [
      "two resources",
      { Resource: "payments-api\nledger-api" },
      "### Resource has several lines; write one value",
    ],
    [
      "a reason of invisible characters",
      { Reason: "\u200b".repeat(40) },
      expect.stringMatching(/^Reason is missing/),
    ],
    [
      "a reason padded with spaces",
      { Reason: "a    b    c" },
      "Reason is too short (5 characters); write at least 10",
    ],
  ])("reports %s", (_, fields, problem) => {
    expect(problemsOf(parse(form({ ...good, ...fields })))).toEqual([problem]);
  });

  it("accepts a start exactly 30 days ahead and just after now", () => {
    expect(requestOf(parse(form({ ...good, Start: "2026-12-23T18:00:00Z" }))).start).toEqual(
      new Date("2026-12-23T18:00:00Z"),
    );
    expect(requestOf(parse(form({ ...good, Start: "2026-11-23T18:00" + "Z" }))).start).toEqual(NOW);
  });

  it("reports a repeated section instead of choosing one", () => {
    const body = `${form(good)}\n\n### Resource\n\nledger-api`;
    expect(problemsOf(parse(body))).toEqual(["### Resource appears 2 times; keep one"]);
  });
});

describe("parseRequest: ```hallpass blocks", () => {
  it("reads a block with a list of scopes", () => {
    expect(requestOf(parse(BLOCK_BODY))).toEqual({
      resource: "payments-api",
      scopes: ["read", "refund"],
      durationSeconds: 7_200,
      reason: "Refunds for INC-4711 failed overnight; re-issue three refunds.",
      start: null,
      source: "block",
    });
  });

  it("reads comma-separated scopes and a start", () => {
    const request = requestOf(parse(BLOCK_BODY_COMMA_SCOPES));
    expect(request.scopes).toEqual(["read", "refund"]);
    expect(request.start).toEqual(new Date("2026-11-24T09:00:00Z"));
  });

  it("accepts ~~~ fences and the info string in any case", () => {
    const body = BLOCK_BODY.replace("```hallpass", "~~~ HallPass ").replace(
      "```\n\nThanks",
      "~~~\n\nThanks",
    );
    expect(requestOf(parse(body)).resource).toBe("payments-api");
  });

  it.each([
    [
      "two blocks",
      `${BLOCK_BODY}\n\n${BLOCK_BODY}`,
      ["the body has 2 ```hallpass blocks; keep exactly one"],
    ],
    [
      "a block and a form",
      `${form(good)}\n\n${BLOCK_BODY}`,
      ["the body has both issue-form sections (### Resource ...) and a ```hallpass block; use one"],
    ],
    [
      "an unclosed block",
      "```hallpass\nresource: payments-api\n",
      ["the ```hallpass block is not closed with ```"],
    ],
    [
      "a duration without unit",
      BLOCK_BODY.replace("duration: 2h", "duration: 90"),
      ["in the ```hallpass block: duration 90 has no unit; write e.g. 90m or 90h"],
    ],
    [
      "an unknown key",
      BLOCK_BODY.replace("duration:", "durration:"),
      [
        'in the ```hallpass block: unknown key "durration"; the keys are resource, scopes, duration, reason, start',
      ],
    ],
    [
      "YAML that is not a mapping",
      "```hallpass\n- payments-api\n```",
      [
        "in the ```hallpass block: expected keys resource, scopes, duration, reason (and optionally start)",
      ],
    ],
    [
      "an alias",
      "```hallpass\nresource: &r payments-api\nreason: *r\n```",
      [
        "in the ```hallpass block, line 2: YAML aliases (*name) are not allowed: write each value out",
      ],
    ],
    [
      "broken YAML",
      "```hallpass\nresource: [\n```",
      [expect.stringMatching(/^in the ```hallpass block, line \d+: YAML: /)],
    ],
    [
      "scopes of the wrong type",
      BLOCK_BODY.replace("scopes: [refund, read]", "scopes: {a: 1}"),
      ["in the ```hallpass block: scopes must be a list or comma-separated text"],
    ],
  ])("reports %s", (_, body, problems) => {
    expect(problemsOf(parse(body))).toEqual(problems);
  });

  it("does not read a block or headings hidden in another code block", () => {
    const hidden = `\`\`\`\`markdown\n${BLOCK_BODY}\n${form(good)}\n\`\`\`\``;
    expect(problemsOf(parse(hidden))).toEqual([expect.stringMatching(/^no request found/)]);
    expect(requestOf(parse(`${hidden}\n\n${FORM_BODY}`)).scopes).toEqual(["read", "refund"]);
  });

  it("does not read a block or sections hidden in an HTML comment", () => {
    const hidden = `<!--\n${BLOCK_BODY.replace("payments-api", "ledger-api")}\n-->\n${FORM_BODY}`;
    expect(requestOf(parse(hidden)).resource).toBe("payments-api");
    const unclosed = `${FORM_BODY}\n<!-- ### Resource\n\nledger-api`;
    expect(requestOf(parse(unclosed)).resource).toBe("payments-api");
    const inline = form({ ...good, Resource: "<!-- ledger-api -->payments-api" });
    expect(requestOf(parse(inline)).resource).toBe("payments-api");
  });

  it("treats headings inside the block as block content", () => {
    const body = "```hallpass\n### Resource\n```";
    expect(problemsOf(parse(body))[0]).toMatch(/^in the ```hallpass block/);
  });
});

describe("parseRequest: hostile text", () => {
  it("refuses a body over GitHub's limit without reading it", () => {
    const body = `${FORM_BODY}\n${"x".repeat(MAX_BODY_CHARS)}`;
    expect(problemsOf(parse(body))).toEqual([
      "the body is longer than 65,536 characters (GitHub's limit for an issue body) and was not read",
    ]);
    expect(
      requestOf(parse(`${FORM_BODY}\n${" ".repeat(MAX_BODY_CHARS - FORM_BODY.length - 1)}`))
        .resource,
    ).toBe("payments-api");
  });

  it("answers an empty or missing body", () => {
    expect(problemsOf(parse(null))).toEqual([
      expect.stringMatching(/^no request found: fill in the issue form/),
    ]);
    expect(problemsOf(parse(""))).toEqual([expect.stringMatching(/^no request found/)]);
  });

  it.each([
    ["Cyrillic а", "p\u0430yments-api", "U+0430"],
    ["Greek α", "p\u03b1yments-api", "U+03B1"],
    ["a zero-width joiner", "pay\u200dments-api", "U+200D"],
    ["a zero-width space", "payments-api\u200b", "U+200B"],
    ["a right-to-left override", "\u202epayments-api", "U+202E"],
  ])("does not let %s match a real resource", (_, name, code) => {
    const problems = problemsOf(parse(form({ ...good, Resource: name })));
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatch(/look-alike and invisible characters are not accepted/);
    expect(problems[0]).toContain(code);
    expect(problems[0]).toMatch(/this repository's resources: payments-api, ledger-api$/);
  });

  it("does not let a look-alike scope through", () => {
    const problems = problemsOf(parse(form({ ...good, Scopes: "r\u0435ad" })));
    expect(problems).toEqual([
      'scope "r\\u{435}ad" contains characters that are not plain ASCII letters, digits or punctuation (U+0435); look-alike and invisible characters are not accepted',
    ]);
  });

  it("maps compatibility forms to ASCII (NFKC) and compares case-insensitively", () => {
    const request = requestOf(
      parse(
        form({ ...good, Resource: "ＰＡＹＭＥＮＴＳ－ＡＰＩ", Scopes: "READ", Duration: "１ｈ" }),
      ),
    );
    expect(request).toMatchObject({
      resource: "payments-api",
      scopes: ["read"],
      durationSeconds: 3_600,
    });
  });

  it.each([
    ["HTML", "<b>payments-api</b>"],
    ["a mention", "@payments-api"],
    ["a link", "[payments-api](https://evil.example)"],
    ["a prototype name", "constructor"],
    ["a prototype name", "__proto__"],
  ])("refuses %s as a resource name", (_, name) => {
    expect(problemsOf(parse(form({ ...good, Resource: name })))[0]).toMatch(/^unknown resource /);
  });

  it("refuses a prototype name as a scope", () => {
    expect(problemsOf(parse(form({ ...good, Scopes: "constructor, toString" })))).toEqual([
      'scope "constructor" is not defined for payments-api; allowed: read, refund',
      'scope "toString" is not defined for payments-api; allowed: read, refund',
    ]);
  });

  it("keeps mentions and HTML in the reason as text", () => {
    const reason = "@acme/everyone <img src=x onerror=alert(1)> please approve quickly";
    expect(requestOf(parse(form({ ...good, Reason: reason }))).reason).toBe(reason);
  });

  it("shortens and escapes echoed text", () => {
    const problems = problemsOf(parse(form({ ...good, Resource: `a\u0000"${"b".repeat(500)}` })));
    expect(problems[0]!.length).toBeLessThan(300);
    expect(problems[0]).toContain('"a\\u{0}\\u{22}bbb');
  });

  it.each([
    ["a heading line of spaces", `###${" ".repeat(60_000)}x`],
    ["many fences", "```\n".repeat(16_000)],
    ["many comment openers", "<!--".repeat(16_000)],
    ["many headings", "### Reason\n".repeat(6_000)],
    ["a long line of commas", `### Scopes\n\n${",".repeat(60_000)}`],
    ["deep YAML", `\`\`\`hallpass\n${"[".repeat(20_000)}\n\`\`\``],
  ])("stays fast on %s", (_, body) => {
    const started = performance.now();
    expect(parse(body).ok).toBe(false);
    expect(performance.now() - started).toBeLessThan(2_000);
  });

  it("never throws on arbitrary text", () => {
    const piece = fc.oneof(
      fc.string({ maxLength: 30 }),
      fc.constantFrom(
        "### Resource\n",
        "### Scopes\n",
        "### Duration\n",
        "### Reason\n",
        "### Start\n",
        "```hallpass\n",
        "```\n",
        "````\n",
        "~~~\n",
        "<!--",
        "-->",
        "payments-api\n",
        "read, refund\n",
        "_No response_\n",
        "\r\n",
        "\u200d",
        "resource: payments-api\n",
      ),
    );
    fc.assert(
      fc.property(fc.array(piece, { maxLength: 40 }), (pieces) => {
        const result = parse(pieces.join(""));
        if (result.ok) expect(resources.has(result.request.resource)).toBe(true);
        else for (const problem of result.problems) expect(typeof problem).toBe("string");
      }),
      { numRuns: 500 },
    );
  });
});

describe("requestHash", () => {
  const request = requestOf(parse(FORM_BODY));
  const payments = resources.get("payments-api")!;
  const hash = (r: Parameters<typeof requestHash>[0], on = payments) => requestHash(r, on);

  it("is sha256 of the canonical JSON of the terms and what they allow", () => {
    const allows = {
      actions: payments.policy.actions,
      audience: payments.operator.audience,
      max_ttl: Math.min(payments.maxTtl, payments.policy.maxTtl, payments.operator.maxTtl),
      permissions: Object.fromEntries(
        ["read", "refund"].map((s) => [s, payments.policy.scopes.get(s)!.map((p) => p.text)]),
      ),
      rate_limit: payments.policy.rateLimit,
      token_ttl: payments.policy.tokenTtl,
    };
    const canonical = canonicalJson({
      allows,
      duration: 7200,
      resource: "payments-api",
      scopes: ["read", "refund"],
      start: null,
    });
    expect(canonical).toContain(
      '"duration":7200,"resource":"payments-api","scopes":["read","refund"],"start":null}',
    );
    expect(hash(request)).toBe(createHash("sha256").update(canonical).digest("hex"));
  });

  it("ignores the reason and the order of scopes", () => {
    expect(hash({ ...request, reason: "something else entirely" } as AccessRequest)).toBe(
      hash(request),
    );
    expect(hash({ ...request, scopes: ["refund", "read"] })).toBe(hash(request));
  });

  it.each([
    ["resource", { resource: "ledger-api" }],
    ["scopes", { scopes: ["read"] }],
    ["duration", { durationSeconds: 7_201 }],
    ["start", { start: new Date("2026-11-24T09:00:00Z") }],
  ])("changes with the %s", (_, change) => {
    expect(hash({ ...request, ...change })).not.toBe(hash(request));
  });

  it("changes when the policy widens what a scope allows, or a ceiling", () => {
    const widened: BoundResource = {
      ...payments,
      policy: {
        ...payments.policy,
        scopes: new Map([
          ...payments.policy.scopes,
          [
            "read",
            [...payments.policy.scopes.get("read")!, ...payments.policy.scopes.get("refund")!],
          ],
        ]),
      },
    };
    expect(hash(request, widened)).not.toBe(hash(request));
    const longer: BoundResource = { ...payments, policy: { ...payments.policy, tokenTtl: 7_200 } };
    expect(hash(request, longer)).not.toBe(hash(request));
  });
});
