import type { ApplicationFunction, Context } from "probot";
import { type GitHub, isNotFound } from "#src/github/api.js";
import { ownersOf } from "#src/rules/codeowners.js";
import { isBotAccount } from "#src/rules/principal.js";
import { requestHash } from "#src/rules/request.js";
import { voidApprovalsBy, voidReviewApproval } from "#src/store/approvals.js";
import { pendingExtension } from "#src/store/extensions.js";
import {
  type Grant,
  getGrant,
  latestGrant,
  openGrant,
  openGrantIds,
} from "#src/store/grant-lifecycle.js";
import { policyDependents } from "#src/store/policy-sources.js";
import { bumpRulesGeneration } from "#src/store/rules-generations.js";
import {
  getTicketById,
  markInstallationDeleted,
  markInstallationSuspended,
  ticketsWithOpenGrants,
} from "#src/store/tickets.js";
import { bodySetBy } from "#src/tickets/body-set.js";
import { approveExtensionByReview, handleComment, notAfter } from "#src/tickets/commands.js";
import type { LifecycleDeps, RepoContext, Trigger } from "#src/tickets/context.js";
import { mayApprove } from "#src/tickets/decision.js";
import { evaluateTicket, readRequest, type TicketView, viewTicket } from "#src/tickets/evaluate.js";
import { changesRules, pushedFiles } from "#src/tickets/push.js";
import { answered, refuse } from "#src/tickets/refusals.js";
import { handleCommentChange } from "#src/tickets/tamper.js";
import { endOpenGrant, recordApproval, type TicketScope } from "#src/tickets/transitions.js";

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
          bodySet: bodySetBy({ ...context.payload, item: context.payload.issue }),
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
          bodySet: bodySetBy({ ...context.payload, item: context.payload.pull_request }),
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
        author: { id: user.id, login: user.login, isBot: isBotAccount(user) },
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
      if (!(await answered(ctx, reviewer)))
        return deps.log.debug(
          { pr: pr.number, actor: reviewer.login },
          "review from a bot or someone without access to the repository; ignored",
        );
      const view = await viewTicket(deps, ctx, pr.number);
      let grant = await openGrant(deps.db, view.ticket.id);
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
      const last = grant ? null : await latestGrant(deps.db, view.ticket.id);
      if (
        last?.endCause === "new_commits" &&
        review.commit_id === view.live.headSha &&
        last.requesterId !== reviewer.id
      ) {
        // New commits ended the last grant: approving the new head asks again for it.
        await evaluateTicket(deps, ctx, pr.number, {
          kind: "reapproval",
          actor: reviewer.login,
          view,
        });
        grant = await openGrant(deps.db, view.ticket.id);
      }
      if (!grant && last) {
        // Nothing pending: an approval is never kept for a later request.
        await refuse(
          deps,
          view.scope,
          reviewer,
          {
            command: "approving review",
            why: "there is no pending request on this pull request, so this review approves nothing; ask again (edit the request, relabel or reopen) and review again",
          },
          { kind: "approval.refused", grantId: last.id, data: { review_id: review.id } },
        );
        deps.metrics?.approvalRefused("no_pending_request");
        return;
      }
      // Bound to the request as the PR body read when the review was given.
      const seen = readRequest(
        pr.body ?? "",
        view,
        new Date(review.submitted_at ?? Date.now()),
        grant,
      );
      const resource = seen.ok ? view.bound.get(seen.request.resource) : undefined;
      if (!seen.ok || !resource)
        return deps.log.debug(
          { pr: pr.number },
          "approving review on a PR with no readable request",
        );
      // An approving review of an active break-glass grant by one who may approve is its post-hoc review.
      const reviews =
        grant?.state === "active" &&
        grant.breakGlass &&
        grant.requesterId !== reviewer.id &&
        (await mayApprove(
          { deps, ctx, view },
          resource,
          ownersOf(view.rules.codeowners, resource.policy.path),
          reviewer.login,
        )) === null;
      const hash = requestHash(seen.request, resource);
      await recordApproval(
        deps.db,
        view.scope,
        {
          grantId: grant?.id ?? null,
          approverId: reviewer.id,
          approverLogin: reviewer.login,
          channel: "review",
          sourceId: review.id,
          requestHash: hash,
          commitId: review.commit_id,
          at,
        },
        { review_id: review.id, commit_id: review.commit_id, request_hash: hash },
        { reviewed: reviews === true, ...(deps.metrics ? { metrics: deps.metrics } : {}) },
      );
      await evaluateTicket(deps, ctx, pr.number, { kind: "approval", actor: reviewer.login, view });
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
      await evaluateTicket(deps, ctx, pr.number, {
        kind: "review_dismissed",
        actor: sender.login,
        view,
      });
    });

    // A push may change this repository's rules, and a policy other
    // repositories read (their organization's, an `_extends` target).
    app.on("push", async (context) => {
      const ctx = repoContext(context);
      if (!ctx) return;
      const { ref, repository } = context.payload;
      if (ref !== `refs/heads/${repository.default_branch}`) return;
      const files = await pushedFiles(ctx, context.payload, deps.log);
      const own = changesRules(files);
      const actor = context.payload.sender?.login ?? "hallpass";
      if (own) await rulesChanged(deps, ctx, actor);
      await policyDependentsChanged(deps, ctx, own ? null : files, actor, async (id) =>
        id === ctx.installation.id ? ctx.gh : ((await app.auth(id)) as unknown as GitHub),
      );
    });

    app.on("repository.edited", async (context) => {
      const ctx = repoContext(context as unknown as Context<"push">);
      const changes = context.payload.changes as { default_branch?: { from: string } };
      if (!ctx || !changes.default_branch) return;
      // Another default branch is other rules.
      await rulesChanged(deps, ctx, context.payload.sender.login);
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

    // What ends a ticket on GitHub's side. No comment: the ticket is gone, or
    // hallpass can no longer write there (suspended, removed, archived).
    app.on("installation.suspend", async (context) => {
      const { installation, sender } = context.payload;
      await markInstallationSuspended(deps.db, installation.id, true);
      await revokeWhere(
        deps,
        { installationId: installation.id },
        "the hallpass GitHub App was suspended",
        sender.login,
        true,
      );
    });

    // Grants ended by the suspension stay ended.
    app.on("installation.unsuspend", async (context) => {
      await markInstallationSuspended(deps.db, context.payload.installation.id, false);
    });

    app.on("installation_repositories.removed", async (context) => {
      const { installation, repositories_removed: removed, sender } = context.payload;
      for (const repo of removed) {
        await revokeWhere(
          deps,
          { installationId: installation.id, repoId: repo.id },
          `the hallpass GitHub App no longer has access to ${repo.full_name}`,
          sender.login,
          true,
        );
      }
    });

    app.on("issues.transferred", async (context) => {
      const { issue, repository, changes, sender } = context.payload;
      await revokeWhere(
        deps,
        { repoId: repository.id, number: issue.number },
        `the issue was transferred to ${changes.new_repository.full_name}`,
        sender.login,
        true,
      );
    });

    app.on("issues.deleted", async (context) => {
      const { issue, repository, sender } = context.payload;
      await revokeWhere(
        deps,
        { repoId: repository.id, number: issue.number },
        "the issue was deleted",
        sender.login,
        true,
      );
    });

    app.on(["repository.deleted", "repository.archived"], async (context) => {
      const { repository, sender } = context.payload;
      await revokeWhere(
        deps,
        { repoId: repository.id },
        `the repository ${repository.full_name} was ${context.payload.action}`,
        sender.login,
        true,
      );
    });

    app.on("repository.transferred", async (context) => {
      const { repository, changes, sender } = context.payload;
      const from = changes.owner.from as {
        user?: { login: string };
        organization?: { login: string };
      };
      const old = from.user?.login ?? from.organization?.login;
      await revokeWhere(
        deps,
        { repoId: repository.id },
        old
          ? `the repository ${old}/${repository.name} was transferred to ${repository.owner.login}`
          : `the repository was transferred to ${repository.full_name}`,
        sender.login,
        true,
      );
    });
  };
}

/**
 * The repository's rules changed: every decision in flight on the old ones
 * is void (their activation checks the generation), and every ticket with an
 * open grant is taken again on the new ones.
 */
async function rulesChanged(deps: LifecycleDeps, ctx: RepoContext, actor: string): Promise<void> {
  await bumpRulesGeneration(deps.db, ctx.repo.id);
  for (const ticket of await ticketsWithOpenGrants(deps.db, ctx.repo.id)) {
    await evaluateTicket(deps, ctx, ticket.number, { kind: "rules_changed", actor });
  }
}

/**
 * A push to the default branch of a repository other repositories' policies
 * are read from (`policy_sources`): each repository that read one of the
 * files it changed (`paths`; null: any of its files, when the push may not
 * say them all or changed its own rules, which the caller has re-decided)
 * has had its rules changed.
 */
async function policyDependentsChanged(
  deps: LifecycleDeps,
  ctx: RepoContext,
  paths: readonly string[] | null,
  actor: string,
  clientOf: (installationId: number) => Promise<GitHub>,
): Promise<void> {
  const own = paths === null;
  const repo = `${ctx.repo.owner}/${ctx.repo.name}`;
  for (const dependent of await policyDependents(deps.db, repo, paths)) {
    if (dependent.repoId === ctx.repo.id && own) continue;
    const gh = await clientOf(dependent.installationId);
    const found = await gh
      .request("GET /repositories/{repository_id}", { repository_id: dependent.repoId })
      .catch((error: unknown) => {
        if (isNotFound(error)) return null;
        throw error;
      });
    if (!found) {
      deps.log.debug({ repoId: dependent.repoId }, "a repository reading this policy is gone");
      continue;
    }
    const { data } = found;
    await rulesChanged(
      deps,
      {
        gh,
        installation: {
          id: dependent.installationId,
          account: { id: data.owner.id, login: data.owner.login },
        },
        repo: {
          id: data.id,
          ownerId: data.owner.id,
          owner: data.owner.login,
          name: data.name,
          defaultBranch: data.default_branch,
        },
      },
      actor,
    );
  }
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
  await evaluateTicket(deps, ctx, view.ticket.number, {
    kind: "review_dismissed",
    actor: login,
    view,
  });
}

/**
 * Ends every open grant matching `where` (fail closed: active → revoked,
 * pending → cancelled); `quiet` when hallpass can no longer write to the
 * tickets: audited, nothing queued for GitHub.
 */
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
