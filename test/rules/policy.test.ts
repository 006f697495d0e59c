import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  type PolicyLayer,
  type PolicyResult,
  parsePolicyLayers,
  parsePolicyYaml,
} from "#src/rules/policy.js";
import { loadYaml } from "#src/rules/yaml-source.js";
import { SPEC_POLICY } from "./fixtures/policies.js";

function errorsOf(result: PolicyResult) {
  if (result.ok) throw new Error("expected errors");
  return result.errors;
}

const minimal = (extra = "") => `resources:
  payments-api:
    path: services/payments/
    scopes:
      read: ["GET /v1/**"]
${extra}`;

describe("parsePolicyYaml", () => {
  it("reads the example of SPEC §2", () => {
    const result = parsePolicyYaml(SPEC_POLICY);
    if (!result.ok) throw new Error(JSON.stringify(result.errors));
    const { policy } = result;
    expect(policy.label).toBe("hallpass");
    expect([...policy.resources.keys()]).toEqual(["payments-api"]);
    const r = policy.resources.get("payments-api")!;
    expect(r.path).toBe("services/payments/");
    expect([...r.scopes].map(([name, ps]) => [name, ps.map((p) => p.text)])).toEqual([
      ["read", ["GET /v1/**"]],
      ["refund", ["POST /v1/refunds", "GET /v1/charges/*"]],
    ]);
    expect(r).toMatchObject({
      defaultTtl: 3_600,
      maxTtl: 14_400,
      approvals: 1,
      tokenTtl: 900,
      requestTtl: 86_400,
      rateLimit: { count: 20, perSeconds: 1 },
      breakGlass: {
        requesters: [{ kind: "team", text: "@acme/oncall", org: "acme", slug: "oncall" }],
        maxTtl: 1_800,
        reviewWithin: 86_400,
      },
      actions: {
        environments: null,
        jobWorkflowRefs: null,
        runnerEnvironment: null,
        allowForks: false,
        allowPullRequestTarget: false,
      },
    });
    expect(r.autoApprove).toEqual([
      {
        index: 0,
        scopes: ["read"],
        maxTtl: 1_800,
        requesters: [{ kind: "team", text: "@acme/sre", org: "acme", slug: "sre" }],
        quota: { count: 5, windowSeconds: 7 * 86_400 },
      },
    ]);
  });

  it("fills in the defaults", () => {
    const result = parsePolicyYaml(minimal());
    if (!result.ok) throw new Error(JSON.stringify(result.errors));
    expect(result.policy.label).toBe("hallpass");
    expect(result.policy.resources.get("payments-api")).toMatchObject({
      defaultTtl: 3_600,
      maxTtl: 3_600,
      approvals: 1,
      tokenTtl: 900,
      requestTtl: 86_400,
      autoApprove: [],
      breakGlass: null,
      rateLimit: null,
      actions: { allowForks: false, allowPullRequestTarget: false },
    });
  });

  it.each([
    ["    max_ttl: 30m\n", { defaultTtl: 1_800, maxTtl: 1_800, tokenTtl: 900 }],
    ["    max_ttl: 10m\n", { defaultTtl: 600, maxTtl: 600, tokenTtl: 600 }],
    ["    default_ttl: 2h\n", { defaultTtl: 7_200, maxTtl: 7_200 }],
    ["    max_ttl: 8h\n", { defaultTtl: 3_600, maxTtl: 28_800 }],
    ["    rate_limit: 600/m\n", { rateLimit: { count: 600, perSeconds: 60 } }],
  ])("derives defaults from %j", (extra, expected) => {
    const result = parsePolicyYaml(minimal(extra));
    if (!result.ok) throw new Error(JSON.stringify(result.errors));
    expect(result.policy.resources.get("payments-api")).toMatchObject(expected);
  });

  it.each([
    ["/services/payments/", "services/payments/"],
    ["services/payments", "services/payments"],
    ["/", "/"],
  ])("keeps the CODEOWNERS path %j as %j", (written, kept) => {
    const result = parsePolicyYaml(minimal().replace("services/payments/", written));
    if (!result.ok) throw new Error(JSON.stringify(result.errors));
    expect(result.policy.resources.get("payments-api")!.path).toBe(kept);
  });

  it("reads the token exchange constraints", () => {
    const result = parsePolicyYaml(
      minimal(`    actions:
      environments: [production]
      job_workflow_refs: ["acme/payments/.github/workflows/deploy.yml@refs/heads/main"]
      runner_environment: github-hosted
      allow_forks: true
      allow_pull_request_target: false
`),
    );
    if (!result.ok) throw new Error(JSON.stringify(result.errors));
    expect(result.policy.resources.get("payments-api")!.actions).toEqual({
      environments: ["production"],
      jobWorkflowRefs: ["acme/payments/.github/workflows/deploy.yml@refs/heads/main"],
      runnerEnvironment: "github-hosted",
      allowForks: true,
      allowPullRequestTarget: false,
    });
  });

  // [what, file text, key path, line, message]
  it.each([
    [
      "typo in a key",
      minimal("    max_tll: 4h\n"),
      "resources.payments-api.max_tll",
      6,
      /unknown key "max_tll" \(did you mean max_ttl\?\)/,
    ],
    [
      "unknown top-level key",
      `lable: x\n${minimal()}`,
      "lable",
      1,
      /unknown key "lable" \(did you mean label\?\)/,
    ],
    [
      "duration without unit",
      minimal("    max_ttl: 4\n"),
      "resources.payments-api.max_ttl",
      6,
      /expected a duration with a unit, such as 30m or 1h, got a number/,
    ],
    [
      "bad duration",
      minimal("    default_ttl: 1h30\n"),
      "resources.payments-api.default_ttl",
      6,
      /ambiguous/,
    ],
    [
      "default over max",
      minimal("    default_ttl: 2h\n    max_ttl: 1h\n"),
      "resources.payments-api.default_ttl",
      6,
      /default_ttl 2h is longer than max_ttl 1h/,
    ],
    [
      "token over max",
      minimal("    max_ttl: 10m\n    token_ttl: 15m\n"),
      "resources.payments-api.token_ttl",
      7,
      /token_ttl 15m is longer than max_ttl 10m/,
    ],
    [
      "approvals 0",
      minimal("    approvals: 0\n"),
      "resources.payments-api.approvals",
      6,
      /at least 1/,
    ],
    [
      "approvals 1.5",
      minimal("    approvals: 1.5\n"),
      "resources.payments-api.approvals",
      6,
      /^must be a whole number$/,
    ],
    [
      "approvals as text",
      minimal("    approvals: two\n"),
      "resources.payments-api.approvals",
      6,
      /expected a number, got text/,
    ],
    [
      "bad scope name",
      minimal().replace("read:", "Read:"),
      "resources.payments-api.scopes.Read",
      5,
      /scope names are lower case/,
    ],
    [
      "bad pattern",
      minimal().replace("GET /v1/**", "GET /v1/a*"),
      "resources.payments-api.scopes.read[0]",
      5,
      /whole segments only/,
    ],
    [
      "no patterns",
      minimal().replace('["GET /v1/**"]', "[]"),
      "resources.payments-api.scopes.read",
      5,
      /at least 1 item/,
    ],
    [
      "no scopes",
      minimal().replace('      read: ["GET /v1/**"]\n', "").replace("scopes:", "scopes: {}"),
      "resources.payments-api.scopes",
      4,
      /at least one scope/,
    ],
    [
      "missing path",
      minimal().replace("    path: services/payments/\n", ""),
      "resources.payments-api.path",
      2,
      /is required/,
    ],
    [
      "glob path",
      minimal().replace("services/payments/", "services/*"),
      "resources.payments-api.path",
      3,
      /not a pattern/,
    ],
    [
      "dot-dot path",
      minimal().replace("services/payments/", "services/../x"),
      "resources.payments-api.path",
      3,
      /\.\. segments/,
    ],
    [
      "bad resource name",
      minimal().replace("payments-api:", "Payments_API:"),
      "resources.Payments_API",
      2,
      /resource names are lower case/,
    ],
    ["no resources", "resources: {}\n", "resources", 1, /at least one resource/],
    [
      "auto scope missing",
      minimal(
        "    auto_approve:\n      - scopes: [write]\n        max_ttl: 30m\n        requesters: ['@acme/sre']\n",
      ),
      "resources.payments-api.auto_approve[0].scopes[0]",
      7,
      /scope "write" is not defined in scopes \(read\)/,
    ],
    [
      "auto over max",
      minimal(
        "    auto_approve:\n      - scopes: [read]\n        max_ttl: 2h\n        requesters: ['@acme/sre']\n",
      ),
      "resources.payments-api.auto_approve[0].max_ttl",
      8,
      /auto_approve max_ttl 2h is longer than max_ttl 1h/,
    ],
    [
      "auto bad requester",
      minimal(
        "    auto_approve:\n      - scopes: [read]\n        max_ttl: 30m\n        requesters: [acme/sre]\n",
      ),
      "resources.payments-api.auto_approve[0].requesters[0]",
      9,
      /not @user or @org\/team/,
    ],
    [
      "auto no requesters",
      minimal(
        "    auto_approve:\n      - scopes: [read]\n        max_ttl: 30m\n        requesters: []\n",
      ),
      "resources.payments-api.auto_approve[0].requesters",
      9,
      /at least 1 item/,
    ],
    [
      "auto bad quota",
      minimal(
        "    auto_approve:\n      - scopes: [read]\n        max_ttl: 30m\n        requesters: ['@a']\n        quota: 5 per week\n",
      ),
      "resources.payments-api.auto_approve[0].quota",
      10,
      /expected N\/<duration>/,
    ],
    [
      "auto zero quota",
      minimal(
        "    auto_approve:\n      - scopes: [read]\n        max_ttl: 30m\n        requesters: ['@a']\n        quota: 0/7d\n",
      ),
      "resources.payments-api.auto_approve[0].quota",
      10,
      /at least 1/,
    ],
    [
      "auto unknown key",
      minimal(
        "    auto_approve:\n      - scopes: [read]\n        max_ttl: 30m\n        requesters: ['@a']\n        quotas: 1/1d\n",
      ),
      "resources.payments-api.auto_approve[0].quotas",
      10,
      /did you mean quota\?/,
    ],
    [
      "break glass over max",
      minimal("    break_glass:\n      requesters: ['@acme/oncall']\n      max_ttl: 2h\n"),
      "resources.payments-api.break_glass.max_ttl",
      8,
      /break_glass max_ttl 2h is longer than max_ttl 1h/,
    ],
    [
      "break glass without max",
      minimal("    break_glass:\n      requesters: ['@acme/oncall']\n"),
      "resources.payments-api.break_glass.max_ttl",
      6,
      /is required/,
    ],
    [
      "bad rate",
      minimal("    rate_limit: 20/h\n"),
      "resources.payments-api.rate_limit",
      6,
      /expected N\/s or N\/m/,
    ],
    [
      "bad runner",
      minimal("    actions:\n      runner_environment: cloud\n"),
      "resources.payments-api.actions.runner_environment",
      7,
      /"github-hosted", "self-hosted"/,
    ],
    [
      "fork flag as text",
      minimal("    actions:\n      allow_forks: 'yes'\n"),
      "resources.payments-api.actions.allow_forks",
      7,
      /true or false/,
    ],
    [
      "bad workflow ref",
      minimal("    actions:\n      job_workflow_refs: [deploy.yml]\n"),
      "resources.payments-api.actions.job_workflow_refs[0]",
      7,
      /owner\/repo/,
    ],
    ["label too long", `label: ${"x".repeat(51)}\n${minimal()}`, "label", 1, /longer than 50/],
  ])("%s: names the key path and line", (_, text, path, line, message) => {
    const errors = errorsOf(parsePolicyYaml(text));
    const error = errors.find((e) => e.path === path);
    expect(error, JSON.stringify(errors)).toBeDefined();
    expect(error).toMatchObject({ file: ".github/hallpass.yml", line });
    expect(error!.message).toMatch(message);
  });

  it("reports every error at once, in file order", () => {
    const errors = errorsOf(
      parsePolicyYaml(minimal("    max_ttl: 4\n    approvals: 0\n    max_tll: 1h\n")),
    );
    expect(errors.map((e) => [e.line, e.path])).toEqual([
      [6, "resources.payments-api.max_ttl"],
      [7, "resources.payments-api.approvals"],
      [8, "resources.payments-api.max_tll"],
    ]);
  });

  it("uses the file name it is given", () => {
    const errors = errorsOf(
      parsePolicyYaml(minimal("    max_tll: 1h\n"), "org/.github/hallpass.yml"),
    );
    expect(errors[0]!.file).toBe("org/.github/hallpass.yml");
  });

  it.each([
    ["an empty file", "", /file is empty/],
    ["a comment only", "# nothing\n", /file is empty/],
    ["a list", "- a\n- b\n", /must be a mapping with "label" and "resources", got a list/],
    ["a string", "hello\n", /must be a mapping .* got text/],
    ["a number", "42\n", /must be a mapping .* got a number/],
    ["null", "null\n", /must be a mapping .* got null/],
    ["two documents", `${minimal()}---\n${minimal()}`, /multiple documents/],
    ["a syntax error", "resources: [\n", /YAML/],
    ["a duplicate key", `${minimal()}    max_ttl: 1h\n    max_ttl: 2h\n`, /unique/],
    ["an unknown tag", `label: !secret x\n${minimal()}`, /tag/],
    [
      "an alias bomb",
      `a: &a ["x","x","x","x","x","x","x","x","x"]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: [*d,*d,*d,*d,*d,*d,*d,*d,*d]\n`,
      /aliases \(\*name\) are not allowed/,
    ],
    ["a merge key", `base: &b {path: x}\nresources:\n  a:\n    <<: *b\n`, /aliases/],
    ["a huge file", `# ${"x".repeat(300_000)}\n${minimal()}`, /larger than 262,144 characters/],
    ["deep nesting", `${"[".repeat(5_000)}${"]".repeat(5_000)}`, /./],
  ])("refuses %s with a clear error, without throwing", (_, text, message) => {
    const errors = errorsOf(parsePolicyYaml(text));
    expect(errors.length).toBeGreaterThan(0);
    expect(errors[0]!.message).toMatch(message);
  });

  it("does not let a prototype key through", () => {
    const errors = errorsOf(parsePolicyYaml(`${minimal()}  __proto__:\n    path: x\n`));
    expect(errors[0]!.path).toBe("resources.__proto__");
    expect(({} as Record<string, unknown>).path).toBeUndefined();
  });

  it("never throws on arbitrary text", () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.string({ maxLength: 200 }),
          fc
            .array(
              fc.constantFrom(
                "resources:",
                "\n",
                "  ",
                "- ",
                "payments-api:",
                "path: x",
                "scopes:",
                "&a",
                "*a",
                "{",
                "[",
                "'",
                ":",
                "max_ttl: 1h",
                "!!binary",
              ),
              { maxLength: 40 },
            )
            .map((parts) => parts.join("")),
        ),
        (text) => {
          const result = parsePolicyYaml(text);
          if (!result.ok) {
            for (const error of result.errors) {
              expect(typeof error.message).toBe("string");
              expect(error.line === null || error.line >= 1).toBe(true);
            }
          }
        },
      ),
      { numRuns: 300 },
    );
  });
});

/** A file of a chain, parsed as the loader parses it, `_extends` taken out. */
function layer(file: string, text: string): PolicyLayer {
  const loaded = loadYaml(text, file, 1_000_000);
  if (!loaded.ok) throw new Error(JSON.stringify(loaded.errors));
  const { _extends: _, ...value } = loaded.value as Record<string, unknown>;
  return { file, value, locate: loaded.locate };
}

describe("errors quoting a value", () => {
  it.each(["rate_limit"])("quote a long %s cut short", (key) => {
    const value = "a".repeat(10_000);
    const result = parsePolicyYaml(
      `resources:\n  payments-api:\n    path: src/\n    scopes: { read: ["GET /**"] }\n    ${key}: ${value}\n`,
    );
    expect(result.ok).toBe(false);
    const errors = result.ok ? [] : result.errors;
    const error = errors.find((e) => e.path.endsWith(key));
    expect(error?.message).toMatch(/^"a{79}…": expected N\//);
    for (const e of errors) expect(e.message.length).toBeLessThan(200);
  });
});

describe("parsePolicyLayers", () => {
  it("takes each top-level key whole from the nearest file that sets it", () => {
    const result = parsePolicyLayers([
      layer(".github/hallpass.yml", `_extends: .github\n${minimal()}`),
      layer(".github:.github/hallpass.yml", `label: access\n${minimal().replace("read", "write")}`),
    ]);
    if (!result.ok) throw new Error(JSON.stringify(result.errors));
    expect(result.policy.label).toBe("access");
    // Not merged below the top level: the organization's scope "write" is not added.
    expect([...(result.policy.resources.get("payments-api")?.scopes.keys() ?? [])]).toEqual([
      "read",
    ]);
  });

  it("is parsePolicyYaml for one file", () => {
    const text = minimal("    max_ttl: 4\n    approvals: 0\n    max_tll: 1h\n");
    expect(parsePolicyLayers([layer(".github/hallpass.yml", text)])).toEqual(parsePolicyYaml(text));
  });

  it("names the file and line each error was written at", () => {
    const errors = errorsOf(
      parsePolicyLayers([
        layer(".github/hallpass.yml", `_extends: base\n${minimal("    max_tll: 1h\n")}`),
        layer("base:.github/hallpass.yml", "# shared\nlabel: ''\nlabels: x\n"),
      ]),
    );
    expect(errors).toEqual([
      {
        file: ".github/hallpass.yml",
        line: 7,
        path: "resources.payments-api.max_tll",
        message: 'unknown key "max_tll" (did you mean max_ttl?)',
      },
      { file: "base:.github/hallpass.yml", line: 2, path: "label", message: "must not be empty" },
      {
        file: "base:.github/hallpass.yml",
        line: 3,
        path: "labels",
        message: 'unknown key "labels" (did you mean label?)',
      },
    ]);
  });

  it("reports what no file sets at the first file", () => {
    const errors = errorsOf(
      parsePolicyLayers([
        layer(".github/hallpass.yml", "_extends: base\nlabel: x\n"),
        layer("base:.github/hallpass.yml", "label: y\n"),
      ]),
    );
    expect(errors).toEqual([
      { file: ".github/hallpass.yml", line: 1, path: "resources", message: "is required" },
    ]);
  });

  it("refuses a prototype key in any file before merging", () => {
    const errors = errorsOf(
      parsePolicyLayers([
        layer(".github/hallpass.yml", minimal()),
        layer("base:.github/hallpass.yml", "label: x\n__proto__:\n  polluted: true\n"),
      ]),
    );
    expect(errors).toEqual([
      {
        file: "base:.github/hallpass.yml",
        line: 2,
        path: "__proto__",
        message: "the key __proto__ is not allowed",
      },
    ]);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it("never throws on arbitrary values", () => {
    fc.assert(
      fc.property(fc.array(fc.anything(), { minLength: 1, maxLength: 3 }), (values) => {
        const layers = values.map((value, i) => ({ file: `f${i}`, value, locate: () => null }));
        expect(parsePolicyLayers(layers).ok).toBe(false);
      }),
    );
  });
});
