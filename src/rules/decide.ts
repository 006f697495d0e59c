import type { BoundResource } from "#src/rules/bind.js";
import type { Owner, Ownership } from "#src/rules/codeowners.js";
import { formatDuration } from "#src/rules/duration.js";
import type { AutoApproveRule } from "#src/rules/policy.js";
import {
  isBotAccount,
  normaliseTeams,
  type Principal,
  principalIncludes,
  type TeamMemberships,
  teamKey,
} from "#src/rules/principal.js";
import type { AccessRequest } from "#src/rules/request.js";
import { patternWithin } from "#src/rules/scopes.js";

export interface Person {
  readonly id: number;
  readonly login: string;
  readonly isBot: boolean;
}

/**
 * A person behind a commit of the PR, as an account: its author, its
 * committer, or a `Co-authored-by:` trailer. Only people GitHub links to an
 * account are here; the others are in `DecisionInput.unidentified`.
 */
export interface CommitPerson {
  readonly role: "author" | "committer" | "co-author";
  readonly id: number | null;
  readonly login: string;
  /** The commit's sha. */
  readonly commit: string;
}

/** An approval as recorded: a PR review `approved` or an issue `/approve` comment. */
export interface Approval {
  readonly approverId: number;
  readonly login: string;
  readonly isBot: boolean;
  /** `requestHash` of the request as it was when approved. */
  readonly requestHash: string;
  readonly at: Date;
  /** Whether the approver has write access to the repository. */
  readonly hasWriteAccess: boolean;
}

/** One earlier auto-approval of this requester under rule `rule` (its index). */
export interface AutoApprovalUse {
  readonly rule: number;
  readonly at: Date;
}

export interface DecisionInput {
  readonly resource: BoundResource;
  readonly request: AccessRequest;
  /** `requestHash(request)`. */
  readonly requestHash: string;
  /** CODEOWNERS of the default branch for `resource.policy.path`. */
  readonly ownership: Ownership;
  readonly requester: Person;
  readonly ticketKind: "issue" | "pull_request";
  /** Every author, committer and co-author of the PR's commits; empty for an issue. */
  readonly commitPeople: readonly CommitPerson[];
  /**
   * Why some of the PR's people cannot be known (an author or committer
   * e-mail linked to no account, a co-author GitHub cannot name, more commits
   * than GitHub lists). Any: no approval counts, and no auto-approval or
   * break-glass holds, since none can be shown not to come from them.
   */
  readonly unidentified: readonly string[];
  readonly approvals: readonly Approval[];
  /** Members of the teams that CODEOWNERS and the policy's rules name: `"org/slug"` → logins. */
  readonly teams: TeamMemberships;
  /** This requester's earlier auto-approvals; uses outside a rule's quota window are ignored. */
  readonly autoApprovalUses: readonly AutoApprovalUse[];
  /** Set when `/break-glass <reason>` was invoked. */
  readonly breakGlass: { readonly reason: string } | null;
  /** The time of the decision (for an approval event, when the approval arrived). */
  readonly now: Date;
}

export interface GrantWindow {
  readonly start: Date;
  readonly end: Date;
  readonly seconds: number;
}

/** What a grant allows. */
export interface GrantTerms {
  readonly window: GrantWindow;
  readonly scopes: readonly string[];
  /** The scopes' patterns (`METHOD /path`), unique, in policy order. */
  readonly permissions: readonly string[];
}

export type Decision =
  | ({
      readonly kind: "grant";
      /** The approvals that counted, in time order. */
      readonly approvers: readonly { readonly id: number; readonly login: string }[];
      readonly trace: readonly string[];
    } & GrantTerms)
  | ({
      readonly kind: "auto_approved";
      /** Index of the rule in `auto_approve`. */
      readonly rule: number;
      /** Uses before this one within the window, and the limit; `null` when the rule has no quota. */
      readonly quota: {
        readonly used: number;
        readonly limit: number;
        readonly windowSeconds: number;
      } | null;
      readonly trace: readonly string[];
    } & GrantTerms)
  | ({
      readonly kind: "break_glass";
      readonly allowed: true;
      readonly reason: string;
      /** A code owner must approve by then, or the grant is flagged. */
      readonly reviewBy: Date;
      readonly trace: readonly string[];
    } & GrantTerms)
  | {
      readonly kind: "break_glass";
      readonly allowed: false;
      readonly why: string;
      readonly trace: readonly string[];
    }
  | {
      readonly kind: "needs_approval";
      /** How many more distinct approvals are needed. */
      readonly needed: number;
      /** The owners who can approve, as CODEOWNERS writes them (e-mail owners left out). */
      readonly from: readonly string[];
      readonly counted: readonly { readonly id: number; readonly login: string }[];
      readonly trace: readonly string[];
    }
  | { readonly kind: "denied"; readonly why: string; readonly trace: readonly string[] };

/**
 * Decides a request, purely. In order:
 * 1. Refuse what no approval can fix: a request for another resource, a
 *    scope or permission outside the policy or the operator's ceiling, a path
 *    CODEOWNERS leaves unowned or blocks.
 * 2. Count approvals: distinct persons (by id) who are code owners of the
 *    path (a user by login; a team through its resolved members; e-mail owners
 *    cannot be verified and never count), have write access, approved this
 *    exact request (`requestHash`), and are not the requester, a bot, or an
 *    author, committer or co-author of the PR's commits. None counts while
 *    any of those people cannot be identified. Enough of them: `grant`.
 * 3. Otherwise the first `auto_approve` rule the request lies inside (scopes,
 *    duration, requester) with quota left: `auto_approved`.
 * 4. Otherwise, if break-glass was invoked: `break_glass`, allowed or refused.
 *    On a PR, 3 and 4 hold only when every author, committer and co-author
 *    of its commits is a known account inside the rule's requesters: nobody
 *    gets code of someone else's approved by their own membership.
 * 5. Otherwise `needs_approval` (or `denied` when no owner could ever approve).
 *
 * Windows start at `now` (the decision) or the scheduled start, whichever is
 * later, never at the request; a break-glass window starts at `now`. Every
 * window is capped at the policy's `max_ttl` and the operator's ceiling (and a
 * break-glass window at `break_glass.max_ttl`).
 */
export function decide(input: DecisionInput): Decision {
  const { resource, request, ownership, now } = input;
  const trace: string[] = [];
  const deny = (why: string): Decision => ({ kind: "denied", why, trace: [...trace, why] });
  const cap = Math.min(resource.maxTtl, resource.policy.maxTtl, resource.operator.maxTtl);
  const path = resource.policy.path;

  // 1. What no approval can fix.
  if (request.resource !== resource.name) {
    return deny(`the request is for ${request.resource}, not ${resource.name}`);
  }
  const permissions = permissionsOf(input);
  if (typeof permissions === "string") return deny(permissions);
  if (ownership.status === "blocked") {
    return deny(
      `CODEOWNERS blocks approvals for ${path}: ${ownership.reason}` +
        (ownership.lines.length > 0 ? ` (line ${ownership.lines.join(", ")})` : ""),
    );
  }
  if (ownership.status === "unowned") {
    return deny(
      `${path} has no code owners in CODEOWNERS${ownership.line === null ? "" : ` (line ${ownership.line} names none)`}, so nobody can approve`,
    );
  }
  const seconds = Math.min(request.durationSeconds, cap);
  if (seconds < request.durationSeconds) {
    trace.push(
      `duration ${formatDuration(request.durationSeconds)} is capped at the maximum ${formatDuration(cap)}`,
    );
  }
  const terms = (startAt: Date, length: number): GrantTerms => ({
    window: { start: startAt, end: new Date(startAt.getTime() + length * 1000), seconds: length },
    scopes: request.scopes,
    permissions,
  });
  const scheduled =
    request.start !== null && request.start.getTime() > now.getTime() ? request.start : now;

  // 2. Human approvals.
  const teams = normaliseTeams(input.teams);
  const approvable = ownership.owners.filter((o) => o.kind !== "email").map((o) => o.text);
  const emails = ownership.owners.filter((o) => o.kind === "email").map((o) => o.text);
  const needed = resource.policy.approvals;
  trace.push(
    `needs ${needed} approval${needed === 1 ? "" : "s"} from code owners of ${path} ` +
      `(CODEOWNERS line ${ownership.line}: ${ownership.owners.map((o) => o.text).join(" ") || "none"}), ` +
      "never the requester, a bot or a commit's author, committer or co-author",
  );
  if (emails.length > 0) {
    trace.push(`e-mail owners (${emails.join(", ")}) cannot be verified on GitHub and never count`);
  }
  const counted = countApprovals(input, ownership.owners, teams, trace);
  if (counted.length >= needed) {
    trace.push(`approved by ${counted.map((a) => `@${a.login}`).join(", ")}`);
    return {
      kind: "grant",
      approvers: counted.map((a) => ({ id: a.approverId, login: a.login })),
      ...terms(scheduled, seconds),
      trace,
    };
  }

  // 3. Auto-approval.
  const auto = autoApprove(input, teams, trace);
  if (auto !== null) {
    return {
      kind: "auto_approved",
      rule: auto.rule.index,
      quota: auto.quota,
      ...terms(scheduled, Math.min(seconds, auto.rule.maxTtl)),
      trace,
    };
  }

  // 4. Break-glass.
  if (input.breakGlass !== null) {
    const rule = resource.policy.breakGlass;
    const refuse = (why: string): Decision => ({
      kind: "break_glass",
      allowed: false,
      why,
      trace: [...trace, `break-glass refused: ${why}`],
    });
    if (rule === null) return refuse(`${resource.name} has no break_glass rule`);
    if (isBotAccount(input.requester)) return refuse("bots cannot break glass");
    if (input.breakGlass.reason.trim() === "")
      return refuse("a reason is required: /break-glass <reason>");
    const member = rule.requesters.some(
      (p) => principalIncludes(p, input.requester.login, teams) === "yes",
    );
    if (!member) {
      return refuse(
        `@${input.requester.login} is not in break_glass.requesters (${principals(rule.requesters)})`,
      );
    }
    const foreign = foreignCode(input, rule.requesters, teams);
    if (foreign !== null) return refuse(`${foreign}; a code owner approves instead`);
    const length = Math.min(seconds, rule.maxTtl);
    const reviewBy = new Date(now.getTime() + rule.reviewWithin * 1000);
    trace.push(
      `break-glass by @${input.requester.login} for ${formatDuration(length)}; ` +
        `a code owner must approve by ${reviewBy.toISOString()} or the grant is flagged`,
    );
    return {
      kind: "break_glass",
      allowed: true,
      reason: input.breakGlass.reason.trim(),
      reviewBy,
      ...terms(now, length),
      trace,
    };
  }

  // 5. Waiting for people, if any can come.
  if (approvable.length === 0) {
    return deny(`no code owner of ${path} can approve: it is owned by e-mail addresses only`);
  }
  const more = needed - counted.length;
  trace.push(
    `waiting for ${more} more approval${more === 1 ? "" : "s"} from ${approvable.join(", ")}`,
  );
  return {
    kind: "needs_approval",
    needed: more,
    from: approvable,
    counted: counted.map((a) => ({ id: a.approverId, login: a.login })),
    trace,
  };
}

function permissionsOf(input: DecisionInput): string[] | string {
  const { resource, request } = input;
  if (request.scopes.length === 0) return "the request names no scope";
  const out: string[] = [];
  for (const scope of request.scopes) {
    const patterns = resource.policy.scopes.get(scope);
    if (patterns === undefined) return `scope ${scope} is not defined for ${resource.name}`;
    for (const pattern of patterns) {
      if (!resource.operator.scopes.some((ceiling) => patternWithin(pattern, ceiling))) {
        return `${pattern.text} is outside the operator's ceiling for ${resource.name}`;
      }
      if (!out.includes(pattern.text)) out.push(pattern.text);
    }
  }
  return out;
}

function countApprovals(
  input: DecisionInput,
  owners: readonly Owner[],
  teams: ReadonlyMap<string, ReadonlySet<string>>,
  trace: string[],
): Approval[] {
  const { requester, now } = input;
  if (input.unidentified.length > 0) {
    trace.push(`no approval can count: ${input.unidentified.join("; ")}`);
    return [];
  }
  const committed = new Map<string, CommitPerson["role"]>();
  for (const p of input.commitPeople) {
    const login = p.login.toLowerCase();
    if (!committed.has(login) || p.role === "author") committed.set(login, p.role);
  }
  const committedIds = new Set(input.commitPeople.flatMap((p) => (p.id === null ? [] : [p.id])));
  const counted: Approval[] = [];
  const sorted = [...input.approvals].sort((a, b) => a.at.getTime() - b.at.getTime());
  for (const approval of sorted) {
    const who = `@${approval.login}`;
    const login = approval.login.toLowerCase();
    const no = (why: string): void => {
      trace.push(`${who} approved: does not count, ${why}`);
    };
    const role = committed.get(login);
    if (approval.requestHash !== input.requestHash) {
      no("it was given to an earlier version of the request");
    } else if (approval.at.getTime() > now.getTime()) {
      no("it is dated after the decision");
    } else if (approval.approverId === requester.id || login === requester.login.toLowerCase()) {
      no("the requester never approves their own request");
    } else if (isBotAccount(approval)) {
      no("bots never count");
    } else if (role !== undefined || committedIds.has(approval.approverId)) {
      no(
        role === "committer"
          ? "they committed on this pull request"
          : role === "co-author"
            ? "they co-authored commits on this pull request"
            : "they authored commits on this pull request",
      );
    } else if (counted.some((a) => a.approverId === approval.approverId)) {
      trace.push(`${who} approved again: counted once`);
    } else if (!approval.hasWriteAccess) {
      no("they have no write access to the repository");
    } else {
      const via = ownerVia(login, owners, teams);
      if (typeof via !== "string") {
        no(via.why);
      } else {
        counted.push(approval);
        trace.push(`${who} approved: counts (code owner${via === who ? "" : ` through ${via}`})`);
      }
    }
  }
  return counted;
}

/**
 * On a PR, why its code is not all from `requesters` (someone outside them,
 * or someone unknown, wrote or committed it); null when it is, and always
 * for an issue.
 */
function foreignCode(
  input: DecisionInput,
  requesters: readonly Principal[],
  teams: ReadonlyMap<string, ReadonlySet<string>>,
): string | null {
  if (input.ticketKind !== "pull_request") return null;
  if (input.unidentified.length > 0) return input.unidentified.join("; ");
  // Each person once, as their first commit names them.
  const outside = new Map<string, string>();
  for (const p of input.commitPeople) {
    const key = p.login.toLowerCase();
    if (outside.has(key) || requesters.some((r) => principalIncludes(r, p.login, teams) === "yes"))
      continue;
    outside.set(key, `@${p.login} (${p.role} of ${p.commit.slice(0, 7)})`);
  }
  if (outside.size === 0) return null;
  return `the pull request has commits by people outside ${principals(requesters)}: ${[...outside.values()].join(", ")}`;
}

/** The owner text through which `login` owns the path, or why not. */
function ownerVia(
  login: string,
  owners: readonly Owner[],
  teams: ReadonlyMap<string, ReadonlySet<string>>,
): string | { why: string } {
  const unresolved: string[] = [];
  for (const owner of owners) {
    if (owner.kind === "user" && owner.login.toLowerCase() === login) return owner.text;
    if (owner.kind === "team") {
      const members = teams.get(teamKey(owner.org, owner.slug));
      if (members === undefined) unresolved.push(owner.text);
      else if (members.has(login)) return owner.text;
    }
  }
  return {
    why:
      "they are not a code owner of the path" +
      (unresolved.length > 0 ? ` (members of ${unresolved.join(", ")} were not resolved)` : ""),
  };
}

function autoApprove(
  input: DecisionInput,
  teams: ReadonlyMap<string, ReadonlySet<string>>,
  trace: string[],
): {
  rule: AutoApproveRule;
  quota: { used: number; limit: number; windowSeconds: number } | null;
} | null {
  const { request, requester, now } = input;
  const rules = input.resource.policy.autoApprove;
  if (rules.length === 0) return null;
  if (isBotAccount(requester)) {
    trace.push("auto-approval: never for bots");
    return null;
  }
  for (const rule of rules) {
    const name = `auto_approve rule ${rule.index + 1}`;
    const outside = request.scopes.filter((s) => !rule.scopes.includes(s));
    if (outside.length > 0) {
      trace.push(
        `${name} does not apply: scope ${outside.join(", ")} is not in ${rule.scopes.join(", ")}`,
      );
      continue;
    }
    if (request.durationSeconds > rule.maxTtl) {
      trace.push(
        `${name} does not apply: duration ${formatDuration(request.durationSeconds)} is over its max ${formatDuration(rule.maxTtl)}`,
      );
      continue;
    }
    if (!rule.requesters.some((p) => principalIncludes(p, requester.login, teams) === "yes")) {
      trace.push(
        `${name} does not apply: @${requester.login} is not one of ${principals(rule.requesters)}`,
      );
      continue;
    }
    const foreign = foreignCode(input, rule.requesters, teams);
    if (foreign !== null) {
      trace.push(`${name} does not apply: ${foreign}`);
      continue;
    }
    if (rule.quota === null) {
      trace.push(`${name} approves this request`);
      return { rule, quota: null };
    }
    const since = now.getTime() - rule.quota.windowSeconds * 1000;
    const used = input.autoApprovalUses.filter(
      (u) => u.rule === rule.index && u.at.getTime() > since && u.at.getTime() <= now.getTime(),
    ).length;
    const quota = { used, limit: rule.quota.count, windowSeconds: rule.quota.windowSeconds };
    const window = formatDuration(rule.quota.windowSeconds);
    if (used >= rule.quota.count) {
      trace.push(
        `${name} quota is used up (${used} of ${rule.quota.count} in ${window}); a code owner approves instead`,
      );
      continue;
    }
    trace.push(
      `${name} approves this request (use ${used + 1} of ${rule.quota.count} in ${window})`,
    );
    return { rule, quota };
  }
  return null;
}

function principals(list: readonly Principal[]): string {
  return list.map((p) => p.text).join(", ");
}
