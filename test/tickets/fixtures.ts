import type { Issue, IssueComment, PullRequest, Review } from "../support/github/model.js";
import type { GitHubSimulator } from "../support/github/simulator.js";
import {
  issueCommentEvent,
  issuesEvent,
  pullRequestEvent,
  pullRequestReviewEvent,
  type Webhook,
} from "../support/github/webhooks.js";
import type { Hallpass } from "../support/hallpass.js";

export const POLICY = `label: hallpass
resources:
  payments-api:
    path: services/payments/
    scopes:
      read: ["GET /v1/**"]
      refund: ["POST /v1/refunds", "GET /v1/charges/*"]
    default_ttl: 1h
    max_ttl: 4h
    approvals: 1
    token_ttl: 15m
    request_ttl: 24h
    auto_approve:
      - scopes: [read]
        max_ttl: 30m
        requesters: ["@acme/sre"]
        quota: 2/7d
    break_glass:
      requesters: ["@acme/oncall"]
      max_ttl: 30m
      review_within: 24h
`;

export const CODEOWNERS = `# owners
* @acme/platform
/services/payments/ @bob @acme/payments-owners
`;

export const operatorYaml = ({
  repoId,
  ownerId,
}: {
  repoId: number;
  ownerId: number;
}) => `resources:
  payments-api:
    repository: { id: ${repoId}, owner_id: ${ownerId}, name: acme/payments }
    max_ttl: 8h
    scopes: ["GET /v1/**", "POST /v1/refunds", "GET /v1/charges/*"]
`;

/** acme/payments with its policy; alice requests, bob and carol (team) own, mallory does not. */
export function seedAcme(sim: GitHubSimulator): { repoId: number; ownerId: number } {
  const org = sim.addOrg("acme", {
    members: ["alice", "bob", "carol", "dave", "mallory", "olga", "sam"],
  });
  sim.addTeam("acme", "payments-owners", { members: ["carol"] });
  sim.addTeam("acme", "platform", { members: ["pat"] });
  sim.addTeam("acme", "sre", { members: ["sam"] });
  sim.addTeam("acme", "oncall", { members: ["olga"] });
  const repo = sim.addRepo("acme/payments", {
    files: {
      ".github/hallpass.yml": POLICY,
      CODEOWNERS,
      "services/payments/api.ts": "export {};\n",
    },
  });
  for (const login of ["alice", "bob", "carol", "dave", "mallory", "olga", "sam"])
    sim.setPermission("acme/payments", login, "write");
  sim.addInstallation("acme");
  return { repoId: repo.id, ownerId: org.user.id };
}

export const requestBody = (
  fields: { scopes?: string; duration?: string; reason?: string; resource?: string } = {},
) =>
  [
    "I need to look at refunds.",
    "",
    "```hallpass",
    `resource: ${fields.resource ?? "payments-api"}`,
    `scopes: [${fields.scopes ?? "read"}]`,
    `duration: ${fields.duration ?? "2h"}`,
    `reason: ${fields.reason ?? "Investigate refund failures for INC-42"}`,
    "```",
  ].join("\n");

/** The same request as an issue form renders it (`### Resource` sections). */
export const issueFormBody = (
  fields: { scopes?: string; duration?: string; reason?: string; resource?: string } = {},
) =>
  [
    "### Resource",
    "",
    fields.resource ?? "payments-api",
    "",
    "### Scopes",
    "",
    fields.scopes ?? "read",
    "",
    "### Duration",
    "",
    fields.duration ?? "2h",
    "",
    "### Reason",
    "",
    fields.reason ?? "Investigate refund failures for INC-42",
  ].join("\n");

/** An issue or pull request of the simulator, by repository id and number. */
export interface TicketRef {
  readonly repoId: number;
  readonly number: number;
}

/**
 * Moves the test clock ahead of the wall clock. The simulator stamps
 * comments and reviews with the wall clock, and a decision does not count an
 * approval dated after it: tests sharing one server call this first so the
 * clock is never behind what GitHub says happened.
 */
export function syncClock(h: Hallpass, aheadMs = 120_000): void {
  const behind = Date.now() + aheadMs - h.clock.now().getTime();
  if (behind > 0) h.clock.advance(behind);
}

async function ticketIdOf(h: Hallpass, ref: TicketRef): Promise<string | null> {
  const { rows } = await h.db.query<{ id: string }>(
    "SELECT id FROM tickets WHERE repo_id = $1::bigint AND number = $2::int",
    [ref.repoId, ref.number],
  );
  return rows[0]?.id ?? null;
}

/** The ticket's grants, newest first (any repository). */
export async function grantsOf(h: Hallpass, ref: TicketRef): Promise<Record<string, unknown>[]> {
  const { rows } = await h.db.query<Record<string, unknown>>(
    "SELECT * FROM grants WHERE ticket_id = $1::uuid ORDER BY created_at DESC",
    [await ticketIdOf(h, ref)],
  );
  return rows;
}

export type Effect = {
  kind: string;
  notice: { kind: string } & Record<string, unknown>;
  payload: Record<string, unknown>;
};

/** Outbox rows of the ticket, oldest first (any repository). */
export async function effectsOf(h: Hallpass, ref: TicketRef): Promise<Effect[]> {
  const { rows } = await h.db.query<{ kind: string; payload: Record<string, unknown> }>(
    "SELECT kind, payload FROM outbox WHERE ticket_id = $1::uuid ORDER BY id",
    [await ticketIdOf(h, ref)],
  );
  return rows.map((r) => ({
    kind: r.kind,
    payload: r.payload,
    notice: (r.payload.notice ?? { kind: "-" }) as Effect["notice"],
  }));
}

/** The comment notices of the ticket, oldest first. */
export async function noticesOf(h: Hallpass, ref: TicketRef): Promise<Effect["notice"][]> {
  return (await effectsOf(h, ref)).filter((e) => e.kind === "comment").map((e) => e.notice);
}

/** The ticket's newest grant. */
export async function stateOf(
  h: Hallpass,
  ref: TicketRef,
): Promise<Record<string, unknown> | undefined> {
  return (await grantsOf(h, ref))[0];
}

/** The last comment notice queued for the ticket. */
export async function lastNotice(
  h: Hallpass,
  ref: TicketRef,
): Promise<Effect["notice"] | undefined> {
  return (await noticesOf(h, ref)).at(-1);
}

/** The check-run side effects of the ticket, oldest first. */
export async function checkRunsOf(
  h: Hallpass,
  ref: TicketRef,
): Promise<{ status: string; conclusion: string | null; headSha: string }[]> {
  return (await effectsOf(h, ref))
    .filter((e) => e.kind === "check_run")
    .map((e) => ({
      status: e.payload.status as string,
      conclusion: e.payload.conclusion as string | null,
      headSha: e.payload.headSha as string,
    }));
}

export interface AuditRow {
  readonly kind: string;
  readonly actor: string | null;
  readonly grantId: string | null;
  readonly data: Record<string, unknown>;
}

/** The ticket's audit events in chain order (any repository). */
export async function auditOf(h: Hallpass, ref: TicketRef): Promise<AuditRow[]> {
  const { rows } = await h.db.query<{
    kind: string;
    actor: string | null;
    grant_id: string | null;
    body: string;
  }>(
    "SELECT kind, actor, grant_id, body FROM audit_events WHERE ticket_id = $1::uuid ORDER BY seq",
    [await ticketIdOf(h, ref)],
  );
  return rows.map((r) => ({
    kind: r.kind,
    actor: r.actor,
    grantId: r.grant_id,
    data: ((JSON.parse(r.body) as { data?: Record<string, unknown> }).data ?? {}) as Record<
      string,
      unknown
    >,
  }));
}

export async function auditKindsOf(h: Hallpass, ref: TicketRef): Promise<string[]> {
  return (await auditOf(h, ref)).map((e) => e.kind);
}

/** Approvals recorded for the ticket (voided ones included), oldest first. */
export async function approvalsOf(
  h: Hallpass,
  ref: TicketRef,
): Promise<{ approver_login: string; channel: string; voided_at: Date | null }[]> {
  const { rows } = await h.db.query<{
    approver_login: string;
    channel: string;
    voided_at: Date | null;
  }>(
    "SELECT approver_login, channel, voided_at FROM approvals WHERE ticket_id = $1::uuid ORDER BY created_at, source_id",
    [await ticketIdOf(h, ref)],
  );
  return rows;
}

/**
 * Delivers a webhook with a chosen `X-GitHub-Delivery` and waits until the
 * server has processed it (a delivery id it has seen before is answered and
 * dropped: then this returns at once).
 */
export async function deliverAs(h: Hallpass, webhook: Webhook, deliveryId: string): Promise<void> {
  const { response } = await h.sim.deliver(webhook, { deliveryId });
  if (!response || response.status >= 300) throw new Error(`delivery refused: ${response?.status}`);
  for (let i = 0; i < 500; i++) {
    const { rows } = await h.db.query<{ state: string; last_error: string | null }>(
      "SELECT state, last_error FROM webhook_deliveries WHERE id = $1::text",
      [deliveryId],
    );
    if (rows[0]?.state === "done") return;
    if (rows[0]?.state === "failed") throw new Error(`delivery failed: ${rows[0].last_error}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  throw new Error(`delivery ${deliveryId} was not processed in time`);
}

/** A new comment on a ticket, delivered; returns the comment. */
export async function commentOn(
  h: Hallpass,
  ref: TicketRef,
  author: string,
  body: string,
): Promise<IssueComment> {
  const comment = h.sim.comment(ref.repoId, ref.number, { author, body });
  await h.deliver(issueCommentEvent(h.sim, "created", comment));
  return comment;
}

/** Opens a labeled issue ticket with `body` by `author`, delivered. */
export async function openIssueTicket(
  h: Hallpass,
  author: string,
  body: string = requestBody(),
  repo: string | number = "acme/payments",
): Promise<Issue> {
  const issue = h.sim.openIssue(repo, { author, body, labels: ["hallpass"] });
  await h.deliver(issuesEvent(h.sim, "opened", issue));
  return issue;
}

/**
 * Opens a labeled pull request by `author` from a new branch that touches
 * the payments service, delivered.
 */
export async function openPrTicket(
  h: Hallpass,
  author: string,
  branch: string,
  options: { body?: string; labels?: string[]; files?: Record<string, string | null> } = {},
): Promise<PullRequest> {
  const pr = h.sim.openPullRequest("acme/payments", {
    author,
    head: branch,
    files: options.files ?? { [`services/payments/${branch}.ts`]: "export {};\n" },
    body: options.body ?? requestBody(),
    labels: options.labels ?? ["hallpass"],
  });
  await h.deliver(pullRequestEvent(h.sim, "opened", pr));
  return pr;
}

/** A review by `user` on the PR's head (or `commitId`), submitted and delivered. */
export async function reviewPr(
  h: Hallpass,
  pr: TicketRef,
  user: string,
  state: "APPROVED" | "CHANGES_REQUESTED" | "COMMENTED" = "APPROVED",
  commitId?: string,
): Promise<Review> {
  const review = h.sim.review(pr.repoId, pr.number, {
    user,
    state,
    ...(commitId ? { commitId } : {}),
  });
  await h.deliver(pullRequestReviewEvent(h.sim, "submitted", review));
  return review;
}

/** A timestamp column as ISO 8601 (null when absent). */
export const isoOf = (value: unknown): string | null =>
  value instanceof Date ? value.toISOString() : null;

/** A timestamp column in milliseconds; throws when it is not set. */
export function msOf(value: unknown): number {
  if (!(value instanceof Date)) throw new Error(`not a timestamp: ${String(value)}`);
  return value.getTime();
}
