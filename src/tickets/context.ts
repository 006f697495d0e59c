import type { AppMetrics } from "#src/app-metrics.js";
import type { GitHub } from "#src/github/api.js";
import type { Logger } from "#src/log.js";
import type { OperatorConfig } from "#src/rules/operator.js";
import type { Db } from "#src/store/db.js";

/** What the ticket lifecycle needs from the server. */
export interface LifecycleDeps {
  readonly db: Db;
  readonly log: Logger;
  readonly operator: OperatorConfig;
  /** The hallpass server's public URL (shown in token instructions). */
  readonly serverUrl: string;
  /** How long before the end the requester is warned, seconds. */
  readonly warnBeforeS: number;
  readonly now: () => Date;
  /** Counts approvals and commands (see `AppMetrics`). */
  readonly metrics?: AppMetrics;
}

/** One repository as a webhook names it, with the client of its installation. */
export interface RepoContext {
  readonly gh: GitHub;
  readonly installation: {
    readonly id: number;
    readonly account: { readonly id: number; readonly login: string };
  };
  readonly repo: {
    readonly id: number;
    readonly ownerId: number;
    readonly owner: string;
    readonly name: string;
    readonly defaultBranch: string;
  };
}

/** Why a ticket is being looked at; decides whether a new request may be opened. */
export type Trigger =
  | "opened"
  | "edited"
  | "labeled"
  | "unlabeled"
  | "closed"
  | "reopened"
  | "synchronize"
  | "approval"
  | "reapproval"
  | "review_dismissed"
  | "rules_changed"
  | "command"
  | "member_removed";

/**
 * Events after which a ticket with no open grant may (re)open a request
 * (an edit only by the requester; a reapproval only after new commits
 * ended the last grant).
 */
export const OPENS_REQUESTS: ReadonlySet<Trigger> = new Set([
  "opened",
  "edited",
  "labeled",
  "reopened",
  "reapproval",
]);
