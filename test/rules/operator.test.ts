import { readFileSync } from "node:fs";
import { inspect } from "node:util";
import { describe, expect, it } from "vitest";
import {
  type OperatorConfig,
  type OperatorConfigResult,
  parseOperatorObject,
  parseOperatorYaml,
  parseSecretRef,
} from "#src/rules/operator.js";
import { resolveSecrets, Secret } from "#src/rules/secrets.js";
import { OPERATOR_CONFIG } from "./fixtures/policies.js";

const FILE = "/etc/hallpass/config.yml";

function configOf(result: OperatorConfigResult): OperatorConfig {
  if (!result.ok) throw new Error(JSON.stringify(result.errors));
  return result.config;
}

function errorsOf(result: OperatorConfigResult) {
  if (result.ok) throw new Error("expected errors");
  return result.errors;
}

const one = (body: string) => `resources:
  payments-api:
    repository: { id: 1001, owner_id: 2002, name: acme/payments }
    max_ttl: 8h
    scopes: ["GET /v1/**"]
${body}`;

describe("parseOperatorYaml", () => {
  it("reads resources, bindings, ceilings, proxy settings and secret references", () => {
    const config = configOf(parseOperatorYaml(OPERATOR_CONFIG, FILE));
    expect([...config.resources.keys()]).toEqual(["payments-api", "ledger-api", "other-api"]);
    const payments = config.resources.get("payments-api")!;
    expect(payments).toMatchObject({
      name: "payments-api",
      repository: { id: 1001, ownerId: 2002, name: "acme/payments" },
      audience: "acme/payments/payments-api",
      maxTtl: 8 * 3_600,
      upstream: "https://payments.internal.example/",
      credential: {
        header: "authorization",
        value: { source: "env", name: "PAYMENTS_API_TOKEN" },
        prefix: "Bearer ",
      },
      introspectionSecret: { source: "file", path: "/run/secrets/payments-introspection" },
    });
    expect(payments.scopes.map((s) => s.text)).toEqual([
      "GET /v1/**",
      "POST /v1/refunds",
      "POST /v1/refunds/*",
    ]);
    expect(config.resources.get("ledger-api")).toMatchObject({
      audience: "acme/payments/ledger-api",
      upstream: null,
      credential: null,
      introspectionSecret: null,
    });
  });

  it("accepts the documented example", () => {
    const text = readFileSync(
      new URL("../../docs/operator-config.example.yml", import.meta.url),
      "utf8",
    );
    const config = configOf(parseOperatorYaml(text, "docs/operator-config.example.yml"));
    expect([...config.resources.keys()]).toEqual(["payments-api", "ledger-api"]);
  });

  it("reads the proxy's settings, with defaults", () => {
    const config = configOf(
      parseOperatorYaml(
        one(
          "    upstream: https://payments.internal\n    upstream_ca: file:/etc/hallpass/ca.pem\n    timeouts: { connect: 2s, body: 1m }\n    max_request_body: 512kb\n    strip_cookies: [Session, csrftoken, session]\n",
        ),
        FILE,
      ),
    );
    expect(config.resources.get("payments-api")!.proxy).toEqual({
      upstreamCa: { source: "file", path: "/etc/hallpass/ca.pem" },
      timeouts: { connectMs: 2_000, headersMs: 30_000, bodyMs: 60_000 },
      maxRequestBodyBytes: 512 * 1024,
      stripCookies: ["session", "csrftoken"],
    });
    const plain = configOf(parseOperatorYaml(one(""), FILE)).resources.get("payments-api")!;
    expect(plain.proxy).toEqual({
      upstreamCa: null,
      timeouts: { connectMs: 5_000, headersMs: 30_000, bodyMs: 30_000 },
      maxRequestBodyBytes: 10 * 1024 * 1024,
      stripCookies: [],
    });
  });

  it("keeps an explicit audience", () => {
    const config = configOf(
      parseOperatorYaml(one("    audience: https://payments.example/api\n"), FILE),
    );
    expect(config.resources.get("payments-api")!.audience).toBe("https://payments.example/api");
  });

  it.each([
    [
      "http upstream off localhost",
      one("    upstream: http://payments.example\n"),
      "resources.payments-api.upstream",
      6,
      /https:\/\/ URL \(http:\/\/ only for localhost\)/,
    ],
    [
      "upstream with credentials",
      one("    upstream: https://user:pw@payments.example\n"),
      "resources.payments-api.upstream",
      6,
      /must not carry credentials/,
    ],
    [
      "upstream with a query",
      one("    upstream: https://payments.example/?a=1\n"),
      "resources.payments-api.upstream",
      6,
      /query or fragment/,
    ],
    [
      "upstream not a URL",
      one("    upstream: payments\n"),
      "resources.payments-api.upstream",
      6,
      /not a URL/,
    ],
    [
      "literal secret",
      one(
        "    upstream: https://p.example\n    credential:\n      header: authorization\n      value: sk_live_abc123\n",
      ),
      "resources.payments-api.credential.value",
      9,
      /expected env:NAME or file:\/absolute\/path/,
    ],
    [
      "relative file",
      one("    introspection_secret: file:secret.txt\n"),
      "resources.payments-api.introspection_secret",
      6,
      /env:NAME or file/,
    ],
    [
      "credential without upstream",
      one("    credential:\n      header: x-api-key\n      value: env:KEY\n"),
      "resources.payments-api.credential",
      6,
      /set upstream too/,
    ],
    [
      "reserved header",
      one(
        "    upstream: https://p.example\n    credential:\n      header: Host\n      value: env:KEY\n",
      ),
      "resources.payments-api.credential.header",
      8,
      /the proxy manages this header/,
    ],
    [
      "bad header",
      one(
        "    upstream: https://p.example\n    credential:\n      header: 'x api'\n      value: env:KEY\n",
      ),
      "resources.payments-api.credential.header",
      8,
      /not a header name/,
    ],
    [
      "prefix with a line break",
      one(
        '    upstream: https://p.example\n    credential:\n      header: authorization\n      value: env:KEY\n      prefix: "Bearer\\r\\nX-Evil: 1 "\n',
      ),
      "resources.payments-api.credential.prefix",
      10,
      /control characters/,
    ],
    [
      "repository name",
      one("").replace("acme/payments", "acme"),
      "resources.payments-api.repository.name",
      3,
      /expected owner\/repo/,
    ],
    [
      "repository id",
      one("").replace("id: 1001", "id: -1"),
      "resources.payments-api.repository.id",
      3,
      /at least 1/,
    ],
    [
      "missing owner id",
      one("").replace("owner_id: 2002, ", ""),
      "resources.payments-api.repository.owner_id",
      3,
      /is required/,
    ],
    [
      "bad ceiling pattern",
      one("").replace("GET /v1/**", "GET /v1/../x"),
      "resources.payments-api.scopes[0]",
      5,
      /can never match/,
    ],
    [
      "bad ceiling ttl",
      one("").replace("max_ttl: 8h", "max_ttl: 8"),
      "resources.payments-api.max_ttl",
      4,
      /expected a duration with a unit, such as 30m or 1h, got a number/,
    ],
    [
      "typo",
      one("    upstrem: https://p.example\n"),
      "resources.payments-api.upstrem",
      6,
      /unknown key "upstrem" \(did you mean upstream\?\)/,
    ],
    [
      "proxy settings without upstream",
      one("    max_request_body: 1mb\n"),
      "resources.payments-api.max_request_body",
      6,
      /max_request_body is for the proxy: set upstream too/,
    ],
    [
      "upstream_ca for an http upstream",
      one("    upstream: http://localhost:8080\n    upstream_ca: file:/etc/ca.pem\n"),
      "resources.payments-api.upstream_ca",
      7,
      /verifies an https:\/\/ upstream/,
    ],
    [
      "upstream_ca from the environment",
      one("    upstream: https://p.example\n    upstream_ca: env:CA\n"),
      "resources.payments-api.upstream_ca",
      7,
      /expected file:\/absolute\/path of a PEM file/,
    ],
    [
      "timeout without a unit",
      one("    upstream: https://p.example\n    timeouts: { headers: 30 }\n"),
      "resources.payments-api.timeouts.headers",
      7,
      /expected a duration with a unit/,
    ],
    [
      "timeout typo",
      one("    upstream: https://p.example\n    timeouts: { header: 30s }\n"),
      "resources.payments-api.timeouts.header",
      7,
      /unknown key "header" \(did you mean headers\?\)/,
    ],
    [
      "body limit without a unit",
      one("    upstream: https://p.example\n    max_request_body: 10\n"),
      "resources.payments-api.max_request_body",
      7,
      /expected a size with a unit, such as 512kb or 10mb, got a number/,
    ],
    [
      "body limit in an unknown unit",
      one("    upstream: https://p.example\n    max_request_body: 10m\n"),
      "resources.payments-api.max_request_body",
      7,
      /expected a whole number and a unit \(b, kb, mb, gb\)/,
    ],
    [
      "body limit too large",
      one("    upstream: https://p.example\n    max_request_body: 65gb\n"),
      "resources.payments-api.max_request_body",
      7,
      /between 1b and 64gb/,
    ],
    [
      "cookie name",
      one("    upstream: https://p.example\n    strip_cookies: ['a b']\n"),
      "resources.payments-api.strip_cookies[0]",
      7,
      /not a cookie name/,
    ],
    [
      "duplicate audience",
      `${one("    audience: shared\n")}  ledger-api:\n    repository: { id: 1, owner_id: 2, name: a/b }\n    max_ttl: 1h\n    scopes: ["GET /**"]\n    audience: shared\n`,
      "resources.ledger-api.audience",
      11,
      /also the audience of payments-api/,
    ],
  ])("%s: names the key path and line", (_, text, path, line, message) => {
    const errors = errorsOf(parseOperatorYaml(text, FILE));
    const error = errors.find((e) => e.path === path);
    expect(error, JSON.stringify(errors)).toBeDefined();
    expect(error).toMatchObject({ file: FILE, line });
    expect(error!.message).toMatch(message);
  });

  it("never repeats a literal secret in its errors", () => {
    const secret = "sk_live_TOPSECRET_0123456789";
    for (const text of [
      one(
        `    upstream: https://p.example\n    credential:\n      header: authorization\n      value: ${secret}\n`,
      ),
      one(`    introspection_secret: ${secret}\n`),
      one(`    upstream: https://user:${secret}@p.example\n`),
      one(`    upstream: ${secret}\n`),
    ]) {
      const errors = errorsOf(parseOperatorYaml(text, FILE));
      expect(JSON.stringify(errors)).not.toContain("TOPSECRET");
    }
  });

  it("allows http to localhost only", () => {
    for (const host of ["localhost:8080", "127.0.0.1:9000", "[::1]:9000"]) {
      const config = configOf(parseOperatorYaml(one(`    upstream: http://${host}/api\n`), FILE));
      expect(config.resources.get("payments-api")!.upstream).toBe(`http://${host}/api`);
    }
  });

  it("refuses a non-mapping root and an empty file", () => {
    expect(errorsOf(parseOperatorYaml("- a\n", FILE))[0]!.message).toMatch(/must be a mapping/);
    expect(errorsOf(parseOperatorYaml("", FILE))[0]!.message).toMatch(/empty/);
    expect(errorsOf(parseOperatorObject(null))[0]!.message).toMatch(/must be a mapping/);
  });
});

describe("parseSecretRef", () => {
  it.each([
    ["env:PAYMENTS_TOKEN", { source: "env", name: "PAYMENTS_TOKEN" }],
    ["file:/run/secrets/x", { source: "file", path: "/run/secrets/x" }],
    ["env:1BAD", null],
    ["env:", null],
    ["file:relative", null],
    ["file:/a\nb", null],
    ["Bearer abc", null],
  ])("%j", (text, expected) => {
    expect(parseSecretRef(text)).toEqual(expected);
  });
});

describe("resolveSecrets", () => {
  const config = configOf(parseOperatorYaml(OPERATOR_CONFIG, FILE));
  const files: Record<string, string> = {
    "/run/secrets/payments-introspection": "introspection-secret-0123456789\n",
  };
  const readFile = (path: string): string => {
    const content = files[path];
    if (content === undefined)
      throw Object.assign(new Error(`ENOENT: ${path}`), { code: "ENOENT" });
    return content;
  };

  it("resolves env and file references into values that never print", async () => {
    const result = await resolveSecrets(config, {
      env: { PAYMENTS_API_TOKEN: "tok_SECRETVALUE" },
      readFile,
    });
    if (!result.ok) throw new Error(JSON.stringify(result.errors));
    const payments = result.secrets.get("payments-api")!;
    expect(payments.credential!.header).toBe("authorization");
    expect(payments.credential!.value.reveal()).toBe("Bearer tok_SECRETVALUE");
    expect(payments.introspectionSecret!.reveal()).toBe("introspection-secret-0123456789");
    expect(payments.introspectionSecret!.equals("introspection-secret-0123456789")).toBe(true);
    expect(payments.introspectionSecret!.equals("introspection-secret-012345678")).toBe(false);
    expect(result.secrets.get("ledger-api")).toEqual({
      credential: null,
      introspectionSecret: null,
      upstreamCa: null,
    });

    const printed = [
      String(payments.credential!.value),
      `${payments.credential!.value}`,
      JSON.stringify(result.secrets.get("payments-api")),
      JSON.stringify([...result.secrets]),
      inspect(result, { depth: 10, showHidden: true }),
    ].join("\n");
    expect(printed).not.toContain("SECRETVALUE");
    expect(printed).not.toContain("introspection-secret-0");
    expect(printed).toContain("[secret]");
  });

  it("names the reference, never the value, when a secret is missing or unusable", async () => {
    const result = await resolveSecrets(config, {
      env: { PAYMENTS_API_TOKEN: "line1_SECRETVALUE\nX-Injected: yes" },
      readFile: () => {
        throw Object.assign(new Error("contents: SECRETVALUE"), { code: "EACCES" });
      },
    });
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.errors).toEqual([
      {
        path: "resources.payments-api.credential.value",
        message:
          "environment variable PAYMENTS_API_TOKEN contains a control character (line break, NUL...)",
      },
      {
        path: "resources.payments-api.introspection_secret",
        message: "file /run/secrets/payments-introspection cannot be read (EACCES)",
      },
    ]);
    expect(JSON.stringify(result)).not.toContain("SECRETVALUE");
  });

  it("refuses unset, empty and short secrets", async () => {
    const unset = await resolveSecrets(config, { env: {}, readFile: () => "short\n" });
    expect(unset.ok ? [] : unset.errors.map((e) => e.message)).toEqual([
      "environment variable PAYMENTS_API_TOKEN is not set",
      "file /run/secrets/payments-introspection is shorter than 16 characters",
    ]);
    const empty = await resolveSecrets(config, { env: { PAYMENTS_API_TOKEN: "" }, readFile });
    expect(empty.ok ? [] : empty.errors.map((e) => e.message)).toEqual([
      "environment variable PAYMENTS_API_TOKEN is empty",
    ]);
  });

  it("reads an upstream CA file and refuses one holding no certificate", async () => {
    const config = configOf(
      parseOperatorYaml(
        one("    upstream: https://p.example\n    upstream_ca: file:/etc/ca.pem\n"),
        FILE,
      ),
    );
    const pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
    const read = await resolveSecrets(config, { env: {}, readFile: () => pem });
    expect(read.ok && read.secrets.get("payments-api")?.upstreamCa).toBe(pem.trimEnd());
    const bad = await resolveSecrets(config, { env: {}, readFile: () => "not a certificate" });
    expect(bad).toEqual({
      ok: false,
      errors: [
        {
          path: "resources.payments-api.upstream_ca",
          message: "file /etc/ca.pem holds no PEM certificate",
        },
      ],
    });
  });

  it("prints a Secret as [secret] everywhere", () => {
    const secret = new Secret("hunter2");
    expect(`${secret}`).toBe("[secret]");
    expect(JSON.stringify({ secret })).toBe('{"secret":"[secret]"}');
    expect(inspect({ secret })).toBe("{ secret: [secret] }");
    expect(Object.keys(secret)).toEqual([]);
  });
});
