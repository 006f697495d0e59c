/**
 * Issue and PR bodies through the request parser: whatever a requester
 * writes, parseRequest answers (never throws), a request it accepts lies
 * within the bound policy, and its problems are bounded sentences.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import type { BoundResource } from "#src/rules/bind.js";
import {
  MAX_BODY_CHARS,
  MAX_START_AHEAD_SECONDS,
  MIN_REASON_CHARS,
  parseRequest,
  type RequestResult,
} from "#src/rules/request.js";
import { extractFields } from "#src/rules/request-body.js";
import { BLOCK_BODY, FORM_BODY, FORM_BODY_CHECKBOXES } from "../rules/fixtures/bodies.js";
import { bound } from "../rules/fixtures/bound.js";
import { anyText, mutated, reshuffled, runs } from "../support/fuzz.js";

const NOW = new Date("2026-11-23T18:00:00Z");
const resources = bound();

/** A field value: mostly good, sometimes nearly good, now and then anything. */
const value = (good: readonly string[], bad: readonly string[]) =>
  fc.oneof(
    { weight: 12, arbitrary: fc.constantFrom(...good) },
    { weight: 2, arbitrary: fc.constantFrom(...bad) },
    { weight: 1, arbitrary: anyText(60) },
  );

const fields = fc.record(
  {
    resource: value(
      ["payments-api", "PAYMENTS-API", " ledger-api ", "ｐａｙｍｅｎｔｓ-api"], // full width: NFKC makes it ASCII
      [
        "other-api",
        "p\u0430yments-api", // Cyrillic а
        "payments\u200D-api",
        "payments-api, ledger-api",
      ],
    ),
    scopes: value(
      ["read", "refund", "read, refund", "READ", "- [X] read\n- [ ] refund"],
      [
        "[read, refund]",
        "write",
        "read,,,",
        Array.from({ length: 60 }, (_, i) => `s${i}`).join(", "),
      ],
    ),
    duration: value(["1h", "30m", "1h30m"], ["4h1s", "0m", "90", "-1h", "1.5h", "9999999d"]),
    reason: value(
      ["Investigating refund failures for INC-4711"],
      ["short", "\u200B".repeat(20), "           "],
    ),
    start: value(
      ["2026-11-24T09:00:00Z"],
      ["2026-11-23T17:59:59Z", "2027-11-24T09:00Z", "2026-02-30T09:00Z", "tomorrow"],
    ),
  },
  { requiredKeys: ["resource", "scopes", "reason"] },
);

const TITLES = {
  resource: "Resource",
  scopes: "Scopes",
  duration: "Duration",
  reason: "Reason",
  start: "Start",
};

const junk = fc.oneof(
  { weight: 2, arbitrary: fc.constant("") },
  { weight: 1, arbitrary: anyText(40) },
);
const ORDER = ["resource", "scopes", "duration", "start", "reason"] as const;

/**
 * The fields rendered as an issue form (Reason last, as the templates put
 * it: the text after it is part of it) or a ```hallpass block, with junk around.
 */
const body = fc
  .tuple(fields, fc.boolean(), junk, junk, fc.constantFrom("", "<!-- x -->", "~~~"))
  .map(([f, asBlock, before, after, noise]) => {
    const present = ORDER.filter((k) => f[k] !== undefined);
    if (asBlock) {
      const lines = present.map((k) => `${k}: ${JSON.stringify(f[k])}`);
      return [before, "```hallpass", ...lines, "```", noise, after].join("\n");
    }
    const sections = present.map((k) => `### ${TITLES[k]}\n\n${f[k]}\n`);
    return [before, ...sections, noise, after].join("\n");
  });

const anyBody = fc.oneof(
  body,
  anyText(2_000),
  mutated(FORM_BODY, 6),
  mutated(BLOCK_BODY, 6),
  mutated(FORM_BODY_CHECKBOXES, 6),
  reshuffled(FORM_BODY),
  reshuffled(BLOCK_BODY),
);

/** What an accepted request must be, whatever body it came from. */
function expectWithinPolicy(result: RequestResult, now: Date): void {
  if (!result.ok) {
    expect(result.problems.length).toBeGreaterThan(0);
    for (const problem of result.problems) {
      expect(typeof problem).toBe("string");
      expect(problem.length).toBeGreaterThan(0);
      // Shortened: a problem quotes at most a snippet of what it refuses.
      expect(problem.length).toBeLessThan(1_000);
    }
    return;
  }
  const { request } = result;
  const resource = resources.get(request.resource) as BoundResource;
  expect(resource).toBeDefined();
  expect(request.scopes.length).toBeGreaterThan(0);
  expect([...request.scopes]).toEqual([...new Set(request.scopes)].sort());
  for (const scope of request.scopes) expect(resource.policy.scopes.has(scope)).toBe(true);
  expect(Number.isSafeInteger(request.durationSeconds)).toBe(true);
  expect(request.durationSeconds).toBeGreaterThan(0);
  expect(request.durationSeconds).toBeLessThanOrEqual(resource.maxTtl);
  // Characters a reader sees, as the rule counts them.
  const seen = request.reason
    .normalize("NFKC")
    .replace(/\p{Cf}/gu, "")
    .replace(/\s+/g, " ")
    .trim();
  expect([...seen].length).toBeGreaterThanOrEqual(MIN_REASON_CHARS);
  if (request.start !== null) {
    expect(Number.isNaN(request.start.getTime())).toBe(false);
    expect(request.start.getTime()).toBeGreaterThanOrEqual(now.getTime());
    expect(request.start.getTime() - now.getTime()).toBeLessThanOrEqual(
      MAX_START_AHEAD_SECONDS * 1000,
    );
  }
}

describe("issue and PR bodies through the request parser", () => {
  it("answers every body, and accepts only requests within the bound policy", () => {
    fc.assert(
      fc.property(anyBody, (text) => {
        expectWithinPolicy(parseRequest(text, resources, NOW), NOW);
      }),
      { numRuns: runs(300) },
    );
  });

  it("reads the same request whatever the line ends, and the same each time", () => {
    fc.assert(
      fc.property(body, (text) => {
        const lf = parseRequest(text, resources, NOW);
        expect(parseRequest(text.replace(/\n/g, "\r\n"), resources, NOW)).toEqual(lf);
        expect(parseRequest(text, resources, NOW)).toEqual(lf);
      }),
      { numRuns: runs(200) },
    );
  });

  it("reads nothing from a body with no resources bound, and nothing from a body too long", () => {
    fc.assert(
      fc.property(anyBody, (text) => {
        expect(parseRequest(text, new Map(), NOW).ok).toBe(false);
        const long = text.padEnd(MAX_BODY_CHARS + 1, "x");
        expect(parseRequest(long, resources, NOW).ok).toBe(false);
      }),
      { numRuns: runs(100) },
    );
  });

  it("a heading that names no field changes nothing", () => {
    const heading = fc.oneof(
      fc.constantFrom("Constructor", "__proto__", "toString", "hasOwnProperty", "valueOf", "Notes"),
      fc.stringMatching(/^[A-Za-z_]{1,12}$/),
    );
    fc.assert(
      fc.property(body, heading, fc.boolean(), (text, name, twice) => {
        fc.pre(
          !["resource", "scopes", "scope", "duration", "reason", "start"].includes(
            name.toLowerCase(),
          ),
        );
        const section = `### ${name}\n\nsome notes\n`;
        const plain = parseRequest(text, resources, NOW);
        // Before the request: text after it could be part of its last field.
        const withHeading = parseRequest(
          `${section}\n${twice ? `${section}\n` : ""}${text}`,
          resources,
          NOW,
        );
        if (plain.ok) expect(withHeading).toEqual(plain);
      }),
      { numRuns: runs(200) },
    );
  });

  // Found by the property above: headings named after Object.prototype's
  // members were taken for request fields.
  it("takes no heading named after an Object.prototype member for a field", () => {
    const block = [
      "The ### Constructor section explains the class.",
      "",
      "### Constructor",
      "",
      "It builds the client.",
      "",
      "```hallpass",
      "resource: payments-api",
      "scopes: [read]",
      "duration: 1h",
      "reason: Investigating refund failures for INC-4711",
      "```",
    ].join("\n");
    expect(parseRequest(block, resources, NOW)).toMatchObject({ ok: true });
    expect(extractFields("### __proto__\n\nx")).toMatchObject({ ok: false });
    expect(extractFields("### constructor\n\nx\n\n### constructor\n\ny")).toMatchObject({
      ok: false,
      problems: [expect.stringContaining("no request found")],
    });
  });

  it("never takes a value from inside another code block or an HTML comment", () => {
    fc.assert(
      fc.property(body, fc.constantFrom("````", "~~~", "<!--"), (inner, wrap) => {
        const closing = wrap === "<!--" ? "-->" : wrap;
        fc.pre(!inner.includes(closing));
        const hidden = `${wrap}\n${inner}\n${closing}`;
        expect(extractFields(hidden).ok).toBe(false);
      }),
      { numRuns: runs(150) },
    );
  });
});
