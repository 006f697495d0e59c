import { describe, expect, it } from "vitest";
import type { ActionsConstraints } from "#src/rules/policy.js";
import {
  checkConstraints,
  parseConstraints,
  type RunClaims,
  routeOfRun,
} from "#src/rules/workflow-run.js";

const run = (claims: Partial<RunClaims>): RunClaims => ({
  event_name: "pull_request",
  ref: "refs/pull/7/merge",
  job_workflow_ref: "acme/app/.github/workflows/deploy.yml@refs/heads/main",
  runner_environment: "github-hosted",
  ...claims,
});

describe("routeOfRun", () => {
  it.each([
    [run({}), undefined, { kind: "pull_request", number: 7 }],
    [run({}), 7, { kind: "pull_request", number: 7 }],
    [
      run({ event_name: "workflow_dispatch", ref: "refs/heads/main" }),
      12,
      { kind: "dispatch", number: 12, branch: "main" },
    ],
    [
      run({ event_name: "workflow_dispatch", ref: "refs/heads/release/v2" }),
      12,
      { kind: "dispatch", number: 12, branch: "release/v2" },
    ],
    [
      run({ event_name: "pull_request_target", ref: "refs/heads/main" }),
      7,
      { kind: "pull_request_target", number: 7 },
    ],
  ])("routes %o naming %s", (claims, named, route) => {
    expect(routeOfRun(claims, named)).toEqual({ ok: true, route });
  });

  it.each([
    [run({ event_name: "workflow_run" }), undefined, "RUN_EVENT"],
    [run({ event_name: "issue_comment" }), 7, "RUN_EVENT"],
    [run({ event_name: "push", ref: "refs/heads/main" }), 7, "RUN_EVENT"],
    [run({ event_name: "merge_group" }), 7, "RUN_EVENT"],
    [run({ ref: "refs/pull/7/head" }), undefined, "RUN_REF"],
    [run({ ref: "refs/pull/07/merge" }), undefined, "RUN_REF"],
    [run({ ref: "refs/heads/main" }), undefined, "RUN_REF"],
    [run({}), 8, "RUN_TICKET"],
    [run({ event_name: "workflow_dispatch", ref: "refs/heads/main" }), undefined, "RUN_TICKET"],
    [run({ event_name: "workflow_dispatch", ref: "refs/tags/v1" }), 12, "RUN_REF"],
    [run({ event_name: "pull_request_target", ref: "refs/heads/main" }), undefined, "RUN_TICKET"],
  ])("refuses %o naming %s with %s", (claims, named, code) => {
    const routed = routeOfRun(claims, named);
    expect(routed.ok).toBe(false);
    if (!routed.ok) expect(routed.refusal.code).toBe(code);
  });

  it("never echoes a long claim whole", () => {
    const routed = routeOfRun(run({ event_name: "x".repeat(5_000) }), 1);
    expect(routed.ok).toBe(false);
    if (!routed.ok) expect(routed.refusal.message.length).toBeLessThan(400);
  });
});

describe("checkConstraints", () => {
  const none: ActionsConstraints = {
    environments: null,
    jobWorkflowRefs: null,
    runnerEnvironment: null,
    allowForks: false,
    allowPullRequestTarget: false,
  };

  it("allows any run when the policy sets no rule", () => {
    expect(checkConstraints(none, run({ runner_environment: "self-hosted" }))).toBeNull();
  });

  it("compares environments without regard to case, as GitHub does", () => {
    const rules = { ...none, environments: ["production"] };
    expect(checkConstraints(rules, run({ environment: "Production" }))).toBeNull();
    expect(checkConstraints(rules, run({ environment: "staging" }))?.code).toBe("RUN_ENVIRONMENT");
    expect(checkConstraints(rules, run({}))?.code).toBe("RUN_ENVIRONMENT");
  });

  it("matches job workflow refs and the runner exactly", () => {
    const ref = "acme/app/.github/workflows/deploy.yml@refs/heads/main";
    const rules = { ...none, jobWorkflowRefs: [ref], runnerEnvironment: "github-hosted" as const };
    expect(checkConstraints(rules, run({ job_workflow_ref: ref }))).toBeNull();
    expect(checkConstraints(rules, run({ job_workflow_ref: ref.toUpperCase() }))?.code).toBe(
      "RUN_WORKFLOW",
    );
    expect(checkConstraints(rules, run({ runner_environment: "self-hosted" }))?.code).toBe(
      "RUN_RUNNER",
    );
  });
});

describe("parseConstraints", () => {
  it("reads the lifecycle's record, and {} as no rules", () => {
    expect(parseConstraints({})).toEqual({
      environments: null,
      jobWorkflowRefs: null,
      runnerEnvironment: null,
      allowForks: false,
      allowPullRequestTarget: false,
    });
    expect(parseConstraints({ allowForks: true, environments: ["prod"] })).toMatchObject({
      allowForks: true,
      environments: ["prod"],
    });
  });

  it("refuses a record it cannot read", () => {
    expect(parseConstraints({ allowForks: "yes" })).toBeNull();
    expect(parseConstraints([])).toBeNull();
  });
});
