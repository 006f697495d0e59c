import { describe, expect, it } from "vitest";
import * as policy from "#src/rules/policy.js";
import {
  MAX_WAIT_S,
  parseInputs,
  type RawInputs,
  RESOURCE_NAME,
  SCOPE_NAME,
} from "../../action/src/inputs.js";

const raw = (overrides: Partial<RawInputs> = {}): RawInputs => ({
  url: "https://hallpass.acme.dev",
  resource: "payments-api",
  scopes: "",
  ticket: "",
  audience: "",
  "export-env": "HALLPASS_TOKEN",
  "wait-for-approval": "0",
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
      waitForApprovalS: 0,
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
        "wait-for-approval": "soon",
      }),
    ).toEqual([
      "input url: required: the base URL of the hallpass server",
      'input resource: "Payments" is not a resource name: lower case letters, digits and -, starting with a letter (at most 63)',
      'input scopes: "Refund" is not a scope name: lower case letters, digits, _ and -, starting with a letter',
      'input ticket: "0" is not an issue number (such as 42)',
      'input export-env: "GITHUB_TOKEN" is not a name a step may export (letters, digits and _; not GITHUB_*, RUNNER_*, ACTIONS_*, PATH or NODE_OPTIONS); empty exports nothing',
      'input wait-for-approval: "soon": unexpected "s" at position 1',
    ]);
  });

  it("reads wait-for-approval as the server reads durations", () => {
    const wait = (value: string) =>
      parseInputs(raw({ "wait-for-approval": value })).waitForApprovalS;
    expect(wait("15m")).toBe(900);
    expect(wait("90s")).toBe(90);
    expect(wait("1h30m")).toBe(5_400);
    expect(wait("6h")).toBe(MAX_WAIT_S);
  });

  it("waits not at all for 0, 0m or nothing", () => {
    for (const value of ["0", "00", "0s", "0m", "0h", ""]) {
      expect(parseInputs(raw({ "wait-for-approval": value })).waitForApprovalS, value).toBe(0);
    }
  });

  it("refuses a wait it could read two ways, or longer than a job runs", () => {
    expect(problems({ "wait-for-approval": "15" })).toEqual([
      'input wait-for-approval: "15" has no unit: write 15s, 15m, 15h or 15d',
    ]);
    expect(problems({ "wait-for-approval": "15M" })).toEqual([
      'input wait-for-approval: "15M": unit "M" is ambiguous (month or minute?): use m for minutes',
    ]);
    expect(problems({ "wait-for-approval": "1.5h" })).toEqual([
      'input wait-for-approval: "1.5h": fractions are not allowed; write e.g. 1h30m instead of 1.5h',
    ]);
    expect(problems({ "wait-for-approval": "-5m" })).toEqual([
      'input wait-for-approval: "-5m": a duration has no sign',
    ]);
    expect(problems({ "wait-for-approval": "m" })).toHaveLength(1);
    expect(problems({ "wait-for-approval": "6h1s" })).toEqual([
      'input wait-for-approval: "6h1s" is longer than 6h, the longest a job runs on a GitHub-hosted runner',
    ]);
  });

  it("says a missing resource is required, once", () => {
    expect(problems({ resource: "" })).toEqual([
      "input resource: required: the resource to get a token for, e.g. payments-api",
    ]);
  });
});
