import type { ApprovalRefusal } from "#src/app-metrics.js";
import { accessOf, commitPeople, teamMembers } from "#src/github/api.js";
import type { BoundResource } from "#src/rules/bind.js";
import type { Ownership } from "#src/rules/codeowners.js";
import {
  type Approval,
  type CommitPerson,
  type Decision,
  decide,
  type Person,
} from "#src/rules/decide.js";
import { isBotAccount, teamKey } from "#src/rules/principal.js";
import type { AccessRequest } from "#src/rules/request.js";
import { approvalsOf } from "#src/store/approvals.js";
import { autoApprovalUses, type Grant } from "#src/store/grant-lifecycle.js";
import type { LifecycleDeps, RepoContext } from "#src/tickets/context.js";
import type { TicketView } from "#src/tickets/evaluate.js";

/** What every decision about one ticket starts from: the server, the repository, GitHub's view now. */
export interface DecisionEnv {
  readonly deps: LifecycleDeps;
  readonly ctx: RepoContext;
  readonly view: TicketView;
}

/** What is being decided: a grant's request, or an extension of it. */
export interface DecisionSubject {
  /** The grant whose approvals count (a pending request, or the active grant being extended). */
  readonly grant: Grant;
  readonly request: AccessRequest;
  /** The hash approvals must carry to count. */
  readonly requestHash: string;
  readonly resource: BoundResource;
  readonly ownership: Ownership;
  readonly breakGlass?: { readonly reason: string } | null;
}

/**
 * The one way hallpass decides: gathers everything `decide()` needs from
 * GitHub as it is now and from the grant's own approvals, then runs it.
 *
 * Approvals counted are those given to this grant and still in force; a
 * review counts only on the commit it reviewed being the PR's head. Write
 * access is asked of GitHub for each approver, team members are resolved,
 * and a PR's commit authors, committers and co-authors are read (with who
 * among them cannot be identified).
 */
export async function decideTicket(env: DecisionEnv, subject: DecisionSubject): Promise<Decision> {
  const { deps, ctx, view } = env;
  const { grant, resource, ownership } = subject;
  const stored = await approvalsOf(deps.db, grant.id);
  const current = stored.filter((a) => a.channel === "comment" || a.commitId === view.live.headSha);
  const logins = [...new Map(current.map((a) => [a.approverId, a.approverLogin])).entries()];
  const [access, teams, people, uses] = await Promise.all([
    Promise.all(
      logins.map(async ([id, login]) => [id, await accessOf(ctx.gh, ctx.repo, login)] as const),
    ),
    resolveTeams(ctx, ownership, resource),
    view.live.kind === "pull_request"
      ? commitPeople(ctx.gh, ctx.repo, view.live.number)
      : Promise.resolve({ people: [] as CommitPerson[], unidentified: [] as string[] }),
    autoApprovalUses(deps.db, grant.requesterId, grant.resource, grant.audience),
  ]);
  const writers = new Map(access);
  const approvals: Approval[] = current.map((a) => ({
    approverId: a.approverId,
    login: a.approverLogin,
    isBot: isBotAccount({ login: a.approverLogin }),
    requestHash: a.requestHash,
    at: a.at,
    hasWriteAccess: writers.get(a.approverId) === "write",
  }));
  return decide({
    resource,
    request: subject.request,
    requestHash: subject.requestHash,
    ownership,
    requester: requesterOf(view, grant),
    ticketKind: view.live.kind,
    commitPeople: people.people,
    unidentified: people.unidentified,
    approvals,
    teams,
    autoApprovalUses: uses,
    breakGlass: subject.breakGlass ?? null,
    now: deps.now(),
  });
}

/** The grant's requester, with whether GitHub calls them a bot (the ticket's author when it is them). */
function requesterOf(view: TicketView, grant: Grant): Person {
  const author = view.live.author;
  if (author.id === grant.requesterId) return author;
  return {
    id: grant.requesterId,
    login: grant.requesterLogin,
    isBot: isBotAccount({ login: grant.requesterLogin }),
  };
}

/** Members of every team a decision may need: owners of the path, auto-approve and break-glass requesters. */
export async function resolveTeams(
  ctx: RepoContext,
  ownership: Ownership,
  resource: BoundResource,
): Promise<Map<string, Set<string>>> {
  const wanted = new Map<string, { org: string; slug: string }>();
  if (ownership.status === "owned") {
    for (const o of ownership.owners) if (o.kind === "team") wanted.set(teamKey(o.org, o.slug), o);
  }
  const principals = [
    ...resource.policy.autoApprove.flatMap((r) => r.requesters),
    ...(resource.policy.breakGlass?.requesters ?? []),
  ];
  for (const p of principals) if (p.kind === "team") wanted.set(teamKey(p.org, p.slug), p);
  const teams = new Map<string, Set<string>>();
  await Promise.all(
    [...wanted.entries()].map(async ([key, t]) => {
      teams.set(key, await teamMembers(ctx.gh, t.org, t.slug));
    }),
  );
  return teams;
}

/** The logins among `logins` that own the path, as CODEOWNERS of the default branch says now. */
export async function ownersAmong(
  ctx: RepoContext,
  resource: BoundResource,
  ownership: Ownership,
  logins: readonly string[],
): Promise<string[]> {
  if (ownership.status !== "owned") return [];
  const lower = (l: string) => l.toLowerCase();
  const direct = (l: string) =>
    ownership.owners.some((o) => o.kind === "user" && o.login === lower(l));
  if (logins.every(direct)) return [...logins];
  const teams = await resolveTeams(ctx, ownership, resource);
  return logins.filter(
    (l) =>
      direct(l) ||
      ownership.owners.some(
        (o) => o.kind === "team" && teams.get(teamKey(o.org, o.slug))?.has(lower(l)),
      ),
  );
}

/** Whether `login` is a code owner of the resource's path. */
export async function isOwner(
  ctx: RepoContext,
  resource: BoundResource,
  ownership: Ownership,
  login: string,
): Promise<boolean> {
  return (await ownersAmong(ctx, resource, ownership, [login])).length > 0;
}

/**
 * Why `login` may not approve on this ticket (null when they may): they
 * must be a code owner of the path with write access, not a bot, and on a
 * PR none of its commits' authors, committers or co-authors, all of whom
 * must be known. The same rules `decide()` counts approvals by. The
 * refusal has a reason code (for the metrics) and a sentence (for the reply).
 */
export async function mayApprove(
  env: DecisionEnv,
  resource: BoundResource,
  ownership: Ownership,
  login: string,
): Promise<{ readonly reason: ApprovalRefusal; readonly why: string } | null> {
  const { ctx, view } = env;
  if (isBotAccount({ login })) return { reason: "bot", why: "bots never approve" };
  if (!(await isOwner(ctx, resource, ownership, login)))
    return {
      reason: "not_code_owner",
      why: `only code owners of ${resource.policy.path} can approve`,
    };
  if ((await accessOf(ctx.gh, ctx.repo, login)) !== "write")
    return { reason: "no_write_access", why: "approvers need write access to this repository" };
  if (view.live.kind !== "pull_request") return null;
  const { people, unidentified } = await commitPeople(ctx.gh, ctx.repo, view.live.number);
  if (unidentified.length > 0)
    return { reason: "commit_unidentified", why: unidentified.join("; ") };
  if (people.some((p) => p.login.toLowerCase() === login.toLowerCase()))
    return { reason: "commit_author", why: "they wrote or committed code on this pull request" };
  return null;
}
