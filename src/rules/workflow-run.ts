import { z } from "zod";
import type { ErrorCode } from "#src/errors.js";
import type { ActionsConstraints } from "#src/rules/policy.js";

/**
 * Which workflow runs may use which ticket's grant (SPEC §4), as pure
 * functions of the verified claims of the run's ID token. The exchange
 * (`tokens/exchange.ts`) does the I/O around them.
 */

/** What these rules read of a GitHub Actions ID token (`ActionsClaims`). */
export interface RunClaims {
  readonly event_name: string;
  readonly ref: string;
  readonly environment?: string | undefined;
  readonly job_workflow_ref: string;
  readonly runner_environment: string;
}

/** A check that failed: its code and a message for the caller. */
export interface RunRefusal {
  readonly code: ErrorCode;
  readonly message: string;
}

/**
 * How a run reaches its ticket:
 *
 * - `pull_request`: a run of pull request `number` (ref `refs/pull/N/merge`),
 *   on GitHub's test merge commit;
 * - `dispatch`: a `workflow_dispatch` run on `branch` naming the issue
 *   `number` (the branch must be the default one: checked with GitHub);
 * - `pull_request_target`: a run in the base repository's context naming
 *   the pull request `number` (only when the grant's policy allows it).
 */
export type RunRoute =
  | { readonly kind: "pull_request"; readonly number: number }
  | { readonly kind: "dispatch"; readonly number: number; readonly branch: string }
  | { readonly kind: "pull_request_target"; readonly number: number };

/**
 * Runs of these events act for code or people other than the run's own:
 * `workflow_run` for another run (often a fork's), `issue_comment` for any
 * commenter, on the default branch's workflow.
 */
const REFUSED_EVENTS: Readonly<Record<string, string>> = {
  workflow_run:
    "workflow_run runs are refused: they act for another run, whose code may come from a fork",
  issue_comment:
    "issue_comment runs are refused: anyone who can comment can trigger them; use workflow_dispatch",
};

const MERGE_REF = /^refs\/pull\/([1-9][0-9]{0,9})\/merge$/;
const BRANCH_REF = /^refs\/heads\/(.+)$/;

/**
 * The ticket a run may use, from its event and ref and the ticket the job
 * named in its request (`named`).
 */
export function routeOfRun(
  claims: RunClaims,
  named: number | undefined,
): { ok: true; route: RunRoute } | { ok: false; refusal: RunRefusal } {
  const refuse = (code: ErrorCode, message: string) =>
    ({ ok: false, refusal: { code, message } }) as const;
  const event = claims.event_name;
  const refused = REFUSED_EVENTS[event];
  if (refused) return refuse("RUN_EVENT", refused);

  switch (event) {
    case "pull_request": {
      const match = MERGE_REF.exec(claims.ref);
      if (!match?.[1]) {
        return refuse(
          "RUN_REF",
          `a pull_request run must be on its merge ref refs/pull/<N>/merge, not ${clip(claims.ref)}`,
        );
      }
      const number = Number(match[1]);
      if (named !== undefined && named !== number) {
        return refuse(
          "RUN_TICKET",
          `this run is of pull request #${number}: it can only use that ticket's grant, not #${named}'s`,
        );
      }
      return { ok: true, route: { kind: "pull_request", number } };
    }
    case "workflow_dispatch": {
      if (named === undefined) {
        return refuse(
          "RUN_TICKET",
          'a workflow_dispatch run must name its ticket: send {"ticket": <issue number>}',
        );
      }
      const match = BRANCH_REF.exec(claims.ref);
      if (!match?.[1]) {
        return refuse(
          "RUN_REF",
          `a workflow_dispatch run must be on the default branch, not ${clip(claims.ref)}`,
        );
      }
      return { ok: true, route: { kind: "dispatch", number: named, branch: match[1] } };
    }
    case "pull_request_target": {
      if (named === undefined) {
        return refuse(
          "RUN_TICKET",
          'a pull_request_target run must name its ticket: send {"ticket": <pull request number>}',
        );
      }
      return { ok: true, route: { kind: "pull_request_target", number: named } };
    }
    default:
      return refuse(
        "RUN_EVENT",
        `${clip(event)} runs are refused: use a pull_request run of the ticket's pull request, or a workflow_dispatch run naming the issue`,
      );
  }
}

const constraintsSchema = z.object({
  environments: z.array(z.string()).nullable().default(null),
  jobWorkflowRefs: z.array(z.string()).nullable().default(null),
  runnerEnvironment: z.enum(["github-hosted", "self-hosted"]).nullable().default(null),
  allowForks: z.boolean().default(false),
  allowPullRequestTarget: z.boolean().default(false),
  /** Only `true` is ever recorded (see `ActionsConstraints.people`). */
  people: z.literal(true).optional().catch(undefined),
});

/**
 * A grant's `constraints` as stored (`{}` for grants that recorded none:
 * no allow-lists, no forks, no `pull_request_target`); null when the record
 * does not parse, which the caller must treat as a refusal.
 */
export function parseConstraints(stored: unknown): ActionsConstraints | null {
  const parsed = constraintsSchema.safeParse(stored ?? {});
  return parsed.success ? parsed.data : null;
}

/**
 * The policy's `actions` rules that the run's claims must meet, when set:
 * the job's environment (GitHub compares environment names without regard to
 * case, and so does this), the job's workflow file at its ref (exact), and the
 * runner environment (exact).
 */
export function checkConstraints(
  constraints: ActionsConstraints,
  claims: RunClaims,
): RunRefusal | null {
  const { environments, jobWorkflowRefs, runnerEnvironment } = constraints;
  if (environments) {
    const env = claims.environment?.toLowerCase();
    if (env === undefined || !environments.some((e) => e.toLowerCase() === env)) {
      return {
        code: "RUN_ENVIRONMENT",
        message: `the job must run in one of the environments ${environments.join(", ")}; it ${
          claims.environment === undefined
            ? "has no environment"
            : `runs in ${clip(claims.environment)}`
        }`,
      };
    }
  }
  if (jobWorkflowRefs && !jobWorkflowRefs.includes(claims.job_workflow_ref)) {
    return {
      code: "RUN_WORKFLOW",
      message: `the job's workflow ${clip(claims.job_workflow_ref)} is not one the policy allows (${jobWorkflowRefs.join(", ")})`,
    };
  }
  if (runnerEnvironment && claims.runner_environment !== runnerEnvironment) {
    return {
      code: "RUN_RUNNER",
      message: `the job must run on a ${runnerEnvironment} runner, not ${clip(claims.runner_environment)}`,
    };
  }
  return null;
}

/** Claims are GitHub's, verified, but still bounded before they are echoed. */
function clip(text: string): string {
  return JSON.stringify(text.length > 200 ? `${text.slice(0, 200)}…` : text);
}
