import { describe, expect, it } from "vitest";
import { bindPolicy } from "#src/rules/bind.js";
import { type OperatorConfig, parseOperatorYaml } from "#src/rules/operator.js";
import { type Policy, parsePolicyYaml } from "#src/rules/policy.js";
import { OPERATOR_CONFIG, SPEC_POLICY } from "./fixtures/policies.js";

function policyOf(text: string): Policy {
  const result = parsePolicyYaml(text);
  if (!result.ok) throw new Error(JSON.stringify(result.errors));
  return result.policy;
}

function operatorOf(text: string): OperatorConfig {
  const result = parseOperatorYaml(text, "config.yml");
  if (!result.ok) throw new Error(JSON.stringify(result.errors));
  return result.config;
}

const operator = operatorOf(OPERATOR_CONFIG);
const home = { id: 1001, ownerId: 2002, fullName: "acme/payments" };

const policyFor = (name: string, scopes: string, maxTtl = "1h") =>
  policyOf(`resources:
  ${name}:
    path: services/
    max_ttl: ${maxTtl}
    scopes:
${scopes}`);

describe("bindPolicy", () => {
  it("binds the spec example to its home repository", () => {
    const result = bindPolicy(policyOf(SPEC_POLICY), operator, home);
    expect(result.errors).toEqual([]);
    expect(result.warnings).toEqual([]);
    const bound = result.resources.get("payments-api")!;
    expect(bound.maxTtl).toBe(4 * 3_600);
    expect(bound.operator.audience).toBe("acme/payments/payments-api");
    expect(bound.policy.scopes.get("refund")!.map((p) => p.text)).toEqual([
      "POST /v1/refunds",
      "GET /v1/charges/*",
    ]);
  });

  it("binds by id and only warns when the repository was renamed", () => {
    const result = bindPolicy(policyOf(SPEC_POLICY), operator, {
      ...home,
      fullName: "acme/payments-v2",
    });
    expect(result.errors).toEqual([]);
    expect(result.resources.has("payments-api")).toBe(true);
    expect(result.warnings).toEqual([
      "resource payments-api: the operator configured the repository as acme/payments, GitHub now calls it acme/payments-v2 (renamed?)",
    ]);
  });

  it("refuses a resource bound to another repository, without saying which", () => {
    const result = bindPolicy(policyFor("other-api", '      all: ["GET /**"]\n'), operator, home);
    expect(result.resources.size).toBe(0);
    expect(result.errors).toEqual([
      {
        resource: "other-api",
        path: "resources.other-api",
        message: "resource other-api is not bound to this repository (id 1001)",
      },
    ]);
  });

  it("refuses a repository that has the configured name but another id (re-created or renamed into it)", () => {
    const result = bindPolicy(policyOf(SPEC_POLICY), operator, {
      id: 9999,
      ownerId: 2002,
      fullName: "acme/payments",
    });
    expect(result.resources.size).toBe(0);
    expect(result.errors).toHaveLength(1);
    expect(result.errors[0]!.message).toMatch(
      /not bound to this repository \(id 9999\): it is bound to a repository with the same name, acme\/payments, but id 1001/,
    );
  });

  it("refuses a transferred repository (same id, another owner)", () => {
    const result = bindPolicy(policyOf(SPEC_POLICY), operator, { ...home, ownerId: 7777 });
    expect(result.resources.size).toBe(0);
    expect(result.errors[0]!.message).toMatch(/under another owner/);
  });

  it("refuses a resource the operator never configured", () => {
    const result = bindPolicy(policyFor("billing-api", '      all: ["GET /**"]\n'), operator, home);
    expect(result.resources.size).toBe(0);
    expect(result.errors[0]).toMatchObject({
      path: "resources.billing-api",
      message: expect.stringMatching(/not configured on this hallpass server/),
    });
  });

  it("refuses a max_ttl above the ceiling", () => {
    const result = bindPolicy(
      policyFor("ledger-api", '      read: ["GET /ledger/**"]\n', "2h"),
      operator,
      home,
    );
    expect(result.resources.size).toBe(0);
    expect(result.errors).toEqual([
      {
        resource: "ledger-api",
        path: "resources.ledger-api.max_ttl",
        message: "max_ttl 2h is longer than the operator allows for ledger-api (1h)",
      },
    ]);
  });

  it.each([
    ["POST /v1/**", false],
    ["* /v1/refunds", false],
    ["DELETE /v1/refunds", false],
    ["GET /**", false],
    ["GET /v1/charges/*", true],
    ["POST /v1/refunds/*", true],
    ["POST /v1/refunds", true],
    ["GET /v1", true],
  ])("scope %j within the ceiling: %s", (pattern, within) => {
    const result = bindPolicy(
      policyFor("payments-api", `      read: ["GET /v1/**"]\n      s: ["${pattern}"]\n`),
      operator,
      home,
    );
    expect(result.resources.has("payments-api")).toBe(within);
    expect(result.errors).toEqual(
      within
        ? []
        : [
            {
              resource: "payments-api",
              path: "resources.payments-api.scopes.s[0]",
              message: `"${pattern}" is wider than the operator allows for payments-api: each pattern must lie within one of "GET /v1/**", "POST /v1/refunds", "POST /v1/refunds/*"`,
            },
          ],
    );
  });

  it("needs each pattern within one ceiling pattern, not within their union", () => {
    const split = operatorOf(`resources:
  a:
    repository: { id: 1001, owner_id: 2002, name: acme/payments }
    max_ttl: 1h
    scopes: ["GET /x", "GET /x/*/**"]
`);
    const result = bindPolicy(policyFor("a", '      all: ["GET /x/**"]\n'), split, home);
    expect(result.resources.size).toBe(0);
    expect(result.errors[0]!.path).toBe("resources.a.scopes.all[0]");
  });

  it("binds the good resources and reports the bad ones", () => {
    const result = bindPolicy(
      policyOf(`${SPEC_POLICY}  other-api:
    path: other/
    scopes:
      all: ["GET /**"]
`),
      operator,
      home,
    );
    expect([...result.resources.keys()]).toEqual(["payments-api"]);
    expect(result.errors.map((e) => e.resource)).toEqual(["other-api"]);
  });
});
