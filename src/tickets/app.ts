import type { ApplicationFunction, Context } from "probot";
import { commitAuthors, type GitHub, hasWriteAccess } from "#src/github/api.js";
import { CODEOWNERS_PATHS, ownersOf } from "#src/rules/codeowners.js";
import { POLICY_FILE } from "#src/rules/policy.js";
import { teamKey } from "#src/rules/principal.js";
import { requestHash } from "#src/rules/request.js";
import { recordApproval, voidApprovalsBy, voidReviewApproval } from "#src/store/approvals.js";
import { pendingExtension } from "#src/store/extensions.js";
import {
  type Grant,
  getGrant,
  markReviewed,
  openGrant,
  openGrantIds,
} from "#src/store/grant-lifecycle.js";
import {
  getTicketById,
  markInstallationDeleted,
  ticketsWithOpenGrants,
} from "#src/store/tickets.js";
import { approveExtensionByReview, handleComment, notAfter } from "#src/tickets/commands.js";
import type { LifecycleDeps, RepoContext, Trigger } from "#src/tickets/context.js";
import {
  evaluateTicket,
  readRequest,
  resolveTeams,
  type TicketView,
  viewTicket,
} from "#src/tickets/evaluate.js";
import { handleCommentChange } from "#src/tickets/tamper.js";
import { endOpenGrant, record, type TicketScope } from "#src/tickets/transitions.js";

type RepoPayload = {
  repository: {
    id: number;
    name: string;
    default_branch: string;
    owner: { id: number; login: string };
  };
  installation?: { id: number };
};

/** The repository and installation an event is about, with its installation client. */
function repoContext(
  context: Context<"issues" | "pull_request" | "issue_comment" | "pull_request_review" | "push">,
): RepoContext | null {
  const payload = context.payload as RepoPayload;
  if (!payload.installation) return null;
  return {
    gh: context.octokit as unknown as GitHub,
    installation: {
      id: payload.installation.id,
      account: { id: payload.repository.owner.id, login: payload.repository.owner.login },
    },
    repo: {
      id: payload.repository.id,
      ownerId: payload.repository.owner.id,
      owner: payload.repository.owner.login,
      name: payload.repository.name,
      defaultBranch: payload.repository.default_branch,
    },
  };
}

/**
 * The ticket lifecycle as a Probot app: each handler reads what it needs
 * from the payload and hands over to one lifecycle function. Decisions are
 * taken on GitHub's current state (see `evaluateTicket`), so handlers stay
 * correct whatever order events arrive in.
 */
export function ticketsApp(deps: LifecycleDeps): ApplicationFunction {
  return (app) => {
    app.on(
      [
        "issues.opened",
        "issues.edited",
        "issues.labeled",
        "issues.unlabeled",
        "issues.closed",
        "issues.reopened",
      ],
      async (context) => {
        const ctx = repoContext(context);
        if (!ctx) return;
        await evaluateTicket(deps, ctx, context.payload.issue.number, {
          kind: context.payload.action as Trigger,
          actor: context.payload.sender.login,
        });
      },
    );

    app.on(
      [
        "pull_request.opened",
        "pull_request.edited",
        "pull_request.labeled",
        "pull_request.unlabeled",
        "pull_request.synchronize",
        "pull_request.closed",
        "pull_request.reopened",
      ],
      async (context) => {
        const ctx = repoContext(context);
        if (!ctx) return;
        await evaluateTicket(deps, ctx, context.payload.pull_request.number, {
          kind: context.payload.action as Trigger,
          actor: context.payload.sender?.login ?? "ghost",
        });
      },
    );

    app.on("issue_comment.created", async (context) => {
      const ctx = repoContext(context);
      if (!ctx) return;
      const { comment, issue } = context.payload;
      const user = comment.user;
      if (!user) return;
      await handleComment(deps, ctx, {
        id: comment.id,
        body: comment.body ?? "",
        author: {
          id: user.id,
          login: user.login,
          isBot: user.type === "Bot" || user.login.endsWith("[bot]"),
        },
        createdAt: new Date(comment.created_at),
        issue: {
          number: issue.number,
          body: issue.body ?? "",
          isPullRequest: issue.pull_request !== undefined,
        },
      });
    });

    // Edits and deletions never act; on hallpass's own comments they are tampering.
    app.on(["issue_comment.edited", "issue_comment.deleted"], async (context) => {
      const { comment, sender } = context.payload;
      await handleCommentChange(deps, {
        action: context.payload.action,
        commentId: comment.id,
        body: comment.body ?? "",
        sender: { login: sender.login, type: sender.type },
        ...(comment.performed_via_github_app?.slug
          ? { appSlug: comment.performed_via_github_app.slug }
          : {}),
      });
    });

    app.on("pull_request_review.submitted", async (context) => {
      const ctx = repoContext(context);
      if (!ctx) return;
      const { review, pull_request: pr } = context.payload;
      const state = review.state.toLowerCase();
      if (!review.user || (state !== "approved" && state !== "changes_requested")) return;
      const reviewer = review.user;
      if (reviewer.type === "Bot" || reviewer.login.endsWith("[bot]")) return;
      const view = await viewTicket(deps, ctx, pr.number);
      const grant = await openGrant(deps.db, view.ticket.id);
      const at = notAfter(new Date(review.submitted_at ?? Date.now()), deps.now());
      if (state === "changes_requested") {
        await withdrawApproval(deps, ctx, view, grant, reviewer.login, review.id);
        return;
      }
      const extension =
        grant?.state === "active" ? await pendingExtension(deps.db, grant.id) : null;
      if (grant && extension && grant.requesterId !== reviewer.id) {
        await approveExtensionByReview({ deps, ctx, view }, grant, extension, {
          id: review.id,
          reviewer: { id: reviewer.id, login: reviewer.login },
          commitId: review.commit_id,
          at,
        });
        return;
      }
      // Bound to the request as the PR body read when the review was given.
      const seen = readRequest(
        pr.body ?? "",
        view,
        new Date(review.submitted_at ?? Date.now()),
        grant,
      );
      if (!seen.ok)
        return deps.log.debug(
          { pr: pr.number },
          "approving review on a PR with no readable request",
        );
      // An approving review of an active break-glass grant by a code owner is its post-hoc review.
      const reviews =
        grant?.state === "active" &&
        grant.breakGlass &&
        grant.requesterId !== reviewer.id &&
        (await mayReview(ctx, view, grant.resource, pr.number, reviewer.login));
      await deps.db.transaction(async (tx) => {
        const isNew = await recordApproval(tx, {
          ticketId: view.ticket.id,
          approverId: reviewer.id,
          approverLogin: reviewer.login,
          channel: "review",
          sourceId: review.id,
          requestHash: requestHash(seen.request),
          commitId: review.commit_id,
          at,
        });
        if (!isNew) return;
        await record(tx, view.scope, {
          kind: "approval.recorded",
          actor: `github:${reviewer.login}`,
          grantId: grant?.id ?? null,
          data: {
            channel: "review",
            review_id: review.id,
            commit_id: review.commit_id,
            request_hash: requestHash(seen.request),
          },
        });
        if (grant && reviews && (await markReviewed(tx, grant.id))) {
          await record(tx, view.scope, {
            kind: "grant.reviewed",
            actor: `github:${reviewer.login}`,
            grantId: grant.id,
            data: { review_id: review.id },
          });
        }
      });
      await evaluateTicket(deps, ctx, pr.number, { kind: "approval", actor: reviewer.login });
    });

    app.on("pull_request_review.dismissed", async (context) => {
      const ctx = repoContext(context);
      if (!ctx) return;
      const { review, pull_request: pr, sender } = context.payload;
      const voided = await voidReviewApproval(deps.db, review.id, `dismissed by ${sender.login}`);
      const view = await viewTicket(deps, ctx, pr.number);
      const grant = await openGrant(deps.db, view.ticket.id);
      if (
        voided &&
        grant?.state === "active" &&
        grant.approvers.some((a) => a.toLowerCase() === voided.approverLogin.toLowerCase())
      ) {
        await endOpenGrant(deps.db, view.scope, {
          grantId: grant.id,
          whenActive: "revoked",
          whenPending: "cancelled",
          reason: `the approving review by ${voided.approverLogin} was dismissed`,
          by: sender.login,
        });
        return;
      }
      await evaluateTicket(deps, ctx, pr.number, { kind: "review_dismissed", actor: sender.login });
    });

    app.on("push", async (context) => {
      const ctx = repoContext(context);
      if (!ctx) return;
      const { ref, commits, repository } = context.payload;
      if (ref !== `refs/heads/${repository.default_branch}`) return;
      const ruleFiles = new Set<string>([POLICY_FILE, ...CODEOWNERS_PATHS]);
      const touched = commits.some((c) =>
        [...(c.added ?? []), ...(c.modified ?? []), ...(c.removed ?? [])].some((f) =>
          ruleFiles.has(f),
        ),
      );
      // A commit list can be truncated (GitHub sends at most 20); re-evaluate then too.
      if (!touched && commits.length < 20) return;
      const tickets = await ticketsWithOpenGrants(deps.db, repository.id);
      for (const ticket of tickets) {
        await evaluateTicket(deps, ctx, ticket.number, {
          kind: "rules_changed",
          actor: context.payload.sender?.login ?? "hallpass",
        });
      }
    });

    app.on("organization.member_removed", async (context) => {
      const { membership, organization } = context.payload;
      const user = membership.user;
      if (!user) return;
      await revokeWhere(
        deps,
        { requesterId: user.id, repoOwnerId: organization.id },
        `${user.login} was removed from ${organization.login}`,
        "hallpass",
      );
    });

    app.on("membership.removed", async (context) => {
      const { member, organization, team, sender } = context.payload;
      if (!member) return;
      await revokeWhere(
        deps,
        { requesterId: member.id, repoOwnerId: organization.id },
        `${member.login} was removed from the team ${organization.login}/${team.slug}`,
        sender?.login ?? "hallpass",
      );
    });

    app.on("installation.deleted", async (context) => {
      const installationId = context.payload.installation.id;
      await markInstallationDeleted(deps.db, installationId);
      await revokeWhere(
        deps,
        { installationId },
        "the hallpass GitHub App was uninstalled",
        "hallpass",
        true,
      );
    });
  };
}

/**
 * Whether `login` may review a break-glass grant on this PR: a code owner of
 * the resource's path on the default branch, with write access, who
 * authored none of its commits (the rules an approval must meet).
 */
async function mayReview(
  ctx: RepoContext,
  view: TicketView,
  resourceName: string,
  number: number,
  login: string,
): Promise<boolean> {
  const resource = view.bound.get(resourceName);
  if (!resource) return false;
  const ownership = ownersOf(view.rules.codeowners, resource.policy.path);
  if (ownership.status !== "owned") return false;
  const lower = login.toLowerCase();
  const teams = await resolveTeams(ctx, ownership, resource);
  const owner = ownership.owners.some(
    (o) =>
      (o.kind === "user" && o.login === lower) ||
      (o.kind === "team" && teams.get(teamKey(o.org, o.slug))?.has(lower)),
  );
  if (!owner || !(await hasWriteAccess(ctx.gh, ctx.repo, login))) return false;
  const authors = await commitAuthors(ctx.gh, ctx.repo, number);
  return authors !== null && !authors.some((a) => a.login?.toLowerCase() === lower);
}

/**
 * A reviewer who approved now requests changes: as on GitHub, their latest
 * review is what stands, so their approvals of this ticket no longer count,
 * and an active grant they approved is revoked.
 */
async function withdrawApproval(
  deps: LifecycleDeps,
  ctx: RepoContext,
  view: TicketView,
  grant: Grant | null,
  login: string,
  reviewId: number,
): Promise<void> {
  const withdrawn = await voidApprovalsBy(
    deps.db,
    view.ticket.id,
    login,
    `changes requested (review ${reviewId})`,
  );
  if (withdrawn === 0) return;
  if (
    grant?.state === "active" &&
    grant.approvers.some((a) => a.toLowerCase() === login.toLowerCase())
  ) {
    await endOpenGrant(deps.db, view.scope, {
      grantId: grant.id,
      whenActive: "revoked",
      whenPending: "cancelled",
      reason: `${login}, who approved it, now requests changes`,
      by: login,
    });
    return;
  }
  await evaluateTicket(deps, ctx, view.ticket.number, { kind: "review_dismissed", actor: login });
}

/** Ends every open grant matching `where` (fail closed: active → revoked, pending → cancelled). */
async function revokeWhere(
  deps: LifecycleDeps,
  where: Parameters<typeof openGrantIds>[1],
  reason: string,
  by: string,
  quiet = false,
): Promise<void> {
  for (const { grantId, ticketId } of await openGrantIds(deps.db, where)) {
    const ticket = await getTicketById(deps.db, ticketId);
    if (!ticket || !(await getGrant(deps.db, grantId))) continue;
    const [owner = "", name = ""] = ticket.repoFullName.split("/");
    const scope: TicketScope = { ticket, repo: { id: ticket.repoId, owner, name }, quiet };
    await endOpenGrant(deps.db, scope, {
      grantId,
      whenActive: "revoked",
      whenPending: "cancelled",
      reason,
      by,
    });
  }
}
