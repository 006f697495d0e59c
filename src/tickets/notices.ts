/**
 * What hallpass tells a ticket, as data. Transitions write notices into the
 * outbox in the transaction of the state change; the outbox worker renders
 * them (with the hash of the audit event, known once committed) and posts
 * them. Every string here that came from a person (reasons, problems quoting
 * the body) is raw: rendering escapes it.
 */

import type { Usage } from "#src/store/usage.js";

export type { Usage };

/** A GitHub repository, by id and by its name when the notice was written. */
export interface RepoRef {
  readonly id: number;
  readonly owner: string;
  readonly name: string;
}

/** The terms of a request or grant, for display. */
export interface Terms {
  readonly resource: string;
  readonly scopes: readonly string[];
  /** `METHOD /pattern`, as the scopes mean them. */
  readonly permissions: readonly string[];
  readonly durationSeconds: number;
  /** ISO 8601, or null for "from approval". */
  readonly start: string | null;
  readonly reason: string;
}

export type Notice =
  /** A valid request arrived (or was edited): what, for how long, who can approve. */
  | {
      readonly kind: "request_received";
      readonly terms: Terms;
      readonly requester: string;
      readonly approvalsNeeded: number;
      /** Owners as CODEOWNERS writes them (`@org/team`, `@user`). */
      readonly approvers: readonly string[];
      readonly edited: boolean;
    }
  /** The ticket asks for access but the request cannot be read or is not allowed. */
  | { readonly kind: "request_invalid"; readonly problems: readonly string[] }
  /** Access was granted. */
  | {
      readonly kind: "granted";
      readonly terms: Terms;
      readonly requester: string;
      readonly approvers: readonly string[];
      readonly decision: "approvals" | "auto" | "break_glass";
      /** Auto-approval: which rule; break-glass: the review deadline (ISO). */
      readonly rule: number | null;
      readonly reviewBy: string | null;
      readonly startsAt: string;
      readonly endsAt: string;
      /** `owner/repo#N`, for the CLI instructions. */
      readonly ticketRef: string;
      readonly ticketKind: "issue" | "pull_request";
      /** The hallpass server's public URL, for the Action instructions. */
      readonly serverUrl: string;
    }
  | { readonly kind: "denied"; readonly by: string; readonly reason: string }
  /** Shortly before the end; mentions the requester. */
  | { readonly kind: "expiry_warning"; readonly requester: string; readonly endsAt: string }
  | {
      readonly kind: "extended";
      readonly by: readonly string[];
      readonly previousEndsAt: string;
      readonly endsAt: string;
    }
  /** An extension was asked for and needs approval. */
  | {
      readonly kind: "extension_requested";
      readonly requester: string;
      readonly extendBySeconds: number;
      readonly approvers: readonly string[];
    }
  | {
      readonly kind: "ended";
      readonly state: "revoked" | "expired" | "cancelled";
      readonly reason: string;
      /** Who ended it (a login, `operator`, or `hallpass`). */
      readonly by: string;
      /**
       * What the grant was used for, as of the transition; null for a grant
       * that never was active. The comment shows it as of its posting (see
       * the outbox worker): the proxies' last reads are written by then.
       */
      readonly usage: Usage | null;
      /** The grant, to read its usage again when posting. */
      readonly grantId?: string;
    }
  /** The active grant keeps its approved terms; the ticket's edit changed nothing. */
  | { readonly kind: "terms_kept"; readonly terms: Terms }
  /** A command was not carried out. */
  | {
      readonly kind: "command_refused";
      readonly command: string;
      readonly actor: string;
      readonly why: string;
    }
  | { readonly kind: "status"; readonly state: string; readonly trace: readonly string[] }
  /** A break-glass grant was not approved by a code owner in time. */
  | { readonly kind: "review_overdue"; readonly reviewBy: string }
  /** One of hallpass's comments was edited or deleted: the original, again. */
  | {
      readonly kind: "tamper";
      readonly action: "edited" | "deleted";
      readonly by: string;
      readonly originalBody: string;
    };

/** What an outbox row asks the worker to do on GitHub. */
export type SideEffect =
  | {
      readonly kind: "comment";
      readonly repo: RepoRef;
      readonly number: number;
      readonly notice: Notice;
    }
  | {
      readonly kind: "check_run";
      readonly repo: RepoRef;
      readonly number: number;
      readonly headSha: string;
      readonly status: "queued" | "in_progress" | "completed";
      readonly conclusion: "success" | "failure" | "neutral" | "cancelled" | null;
      readonly title: string;
      readonly summary: string;
    }
  | {
      readonly kind: "close_issue";
      readonly repo: RepoRef;
      readonly number: number;
      readonly reason: "not_planned" | "completed";
    };
