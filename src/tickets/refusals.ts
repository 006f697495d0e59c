import type { Json } from "#src/audit/event.js";
import { accessOf } from "#src/github/api.js";
import { isBotAccount } from "#src/rules/principal.js";
import type { LifecycleDeps, RepoContext } from "#src/tickets/context.js";
import { say, type TicketScope } from "#src/tickets/transitions.js";

/** Someone who wrote a command or submitted a review. */
export interface Actor {
  readonly id: number;
  readonly login: string;
  readonly type?: string | null;
  readonly isBot?: boolean;
}

/**
 * Whether hallpass answers this person on the repository at all: not a bot,
 * and with at least read access (the permission API: on a public repository
 * GitHub gives everyone read). No one is exempt, the ticket's author
 * included: a requester who lost access to the repository no longer acts on
 * it. Costs one API call, made before anything else is read.
 */
export async function answered(ctx: RepoContext, actor: Actor): Promise<boolean> {
  if (isBotAccount(actor)) return false;
  return (await accessOf(ctx.gh, ctx.repo, actor.login)) !== "none";
}

/** Refusals are answered at most once per person and ticket in this window. */
const REFUSAL_WINDOW_MS = 60_000;

/**
 * Says why `command` (a command, or an approving review) was refused, with
 * its audit event, at most once per person and ticket a minute, whatever
 * the channel: a refusal costs hallpass a comment and an audit row.
 */
export async function refuse(
  deps: LifecycleDeps,
  scope: TicketScope,
  actor: Actor,
  refusal: { readonly command: string; readonly why: string },
  audit: {
    readonly kind: string;
    readonly grantId?: string | null;
    readonly data: { readonly [key: string]: Json | undefined };
  },
): Promise<void> {
  const window = Math.floor(deps.now().getTime() / REFUSAL_WINDOW_MS);
  await say(
    deps.db,
    scope,
    `refused/${scope.ticket.id}/${actor.id}/${window}`,
    { kind: "command_refused", command: refusal.command, actor: actor.login, why: refusal.why },
    {
      kind: audit.kind,
      actor: `github:${actor.login}`,
      grantId: audit.grantId ?? null,
      data: { ...audit.data, command: refusal.command, why: refusal.why },
    },
  );
}
