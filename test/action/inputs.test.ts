import { describe, expect, it } from "vitest";
import * as policy from "#src/rules/policy.js";
import { parseInputs, type RawInputs, RESOURCE_NAME, SCOPE_NAME } from "../../action/src/inputs.js";

const raw = (overrides: Partial<RawInputs> = {}): RawInputs => ({
  url: "https://hallpass.acme.dev",
  resource: "payments-api",
  scopes: "",
  ticket: "",
  audience: "",
  "export-env": "HALLPASS_TOKEN",
  ...overrides,
});

const problems = (overrides: Partial<RawInputs>) => {
  try {
    parseInputs(raw(overrides));
  } catch (error) {
    return (error as Error).message.split("\n");
  }
  throw new Error("accepted");
};

describe("Action inputs", () => {
  it("names resources and scopes exactly as the server does", () => {
    expect(RESOURCE_NAME.source).toBe(policy.RESOURCE_NAME.source);
    expect(SCOPE_NAME.source).toBe(policy.SCOPE_NAME.source);
  });

  it("defaults the audience to the server URL, without its trailing slash", () => {
    expect(parseInputs(raw({ url: "https://hallpass.acme.dev/" }))).toEqual({
      url: "https://hallpass.acme.dev",
      resource: "payments-api",
      scopes: [],
      ticket: undefined,
      audience: "https://hallpass.acme.dev",
      exportEnv: "HALLPASS_TOKEN",
    });
    expect(parseInputs(raw({ audience: "hallpass-prod" })).audience).toBe("hallpass-prod");
  });

  it("keeps a path prefix of the server URL", () => {
    expect(parseInputs(raw({ url: "https://acme.dev/hallpass//" })).url).toBe(
      "https://acme.dev/hallpass",
    );
  });

  it("splits scopes on commas and new lines, once each", () => {
    expect(parseInputs(raw({ scopes: "read, refund\n\nread\n" })).scopes).toEqual([
      "read",
      "refund",
    ]);
  });

  it("reads the ticket as an issue number, with or without #", () => {
    expect(parseInputs(raw({ ticket: "42" })).ticket).toBe(42);
    expect(parseInputs(raw({ ticket: "#7" })).ticket).toBe(7);
  });

  it("exports nothing when export-env is empty", () => {
    expect(parseInputs(raw({ "export-env": "" })).exportEnv).toBeNull();
  });

  it("exports under no name the runner or the job relies on", () => {
    for (const name of [
      "PATH",
      "NODE_OPTIONS",
      "ACTIONS_RUNTIME_TOKEN",
      "runner_temp",
      "A-B",
      "1X",
    ]) {
      expect(problems({ "export-env": name }), name).toHaveLength(1);
    }
    expect(parseInputs(raw({ "export-env": "PATHS" })).exportEnv).toBe("PATHS");
  });

  it("accepts http only for localhost", () => {
    expect(parseInputs(raw({ url: "http://localhost:3000" })).url).toBe("http://localhost:3000");
    expect(parseInputs(raw({ url: "http://127.0.0.1:3000" })).url).toBe("http://127.0.0.1:3000");
    expect(problems({ url: "http://hallpass.acme.dev" })).toEqual([
      "input url: must be an https:// URL (http:// only for localhost): the ID token is sent to it",
    ]);
  });

  it("refuses URLs that are not a base URL", () => {
    expect(problems({ url: "hallpass.acme.dev" })).toEqual([
      'input url: "hallpass.acme.dev" is not a URL',
    ]);
    expect(problems({ url: "https://user:pw@hallpass.acme.dev" })).toEqual([
      "input url: must be the server's base URL, without credentials, query or fragment",
    ]);
    expect(problems({ url: "https://hallpass.acme.dev/?x=1" })).toHaveLength(1);
    expect(problems({ url: "ftp://hallpass.acme.dev" })).toHaveLength(1);
  });

  it("names every wrong input at once", () => {
    expect(
      problems({
        url: "",
        resource: "Payments",
        scopes: "read, Refund",
        ticket: "0",
        "export-env": "GITHUB_TOKEN",
      }),
    ).toEqual([
      "input url: required: the base URL of the hallpass server",
      'input resource: "Payments" is not a resource name: lower case letters, digits and -, starting with a letter (at most 63)',
      'input scopes: "Refund" is not a scope name: lower case letters, digits, _ and -, starting with a letter',
      'input ticket: "0" is not an issue number (such as 42)',
      'input export-env: "GITHUB_TOKEN" is not a name a step may export (letters, digits and _; not GITHUB_*, RUNNER_*, ACTIONS_*, PATH or NODE_OPTIONS); empty exports nothing',
    ]);
  });

  it("says a missing resource is required, once", () => {
    expect(problems({ resource: "" })).toEqual([
      "input resource: required: the resource to get a token for, e.g. payments-api",
    ]);
  });
});
