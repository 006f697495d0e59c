import { appendAudit } from "#src/audit/append.js";
import type { Logger } from "#src/log.js";
import type { Db } from "#src/store/db.js";
import { enqueue, isQueued } from "#src/store/outbox.js";
import { getComment, markTampered, sha256Hex } from "#src/store/ticket-comments.js";
import { lockTicket } from "#src/store/tickets.js";

/** An `issue_comment` edited or deleted webhook, in the fields that matter here. */
export interface CommentChange {
  readonly action: "edited" | "deleted";
  readonly commentId: number;
  /** The body after the edit (`comment.body`); absent or null for a deletion. */
  readonly body?: string | null;
  readonly sender: { readonly login: string; readonly type: string };
  /** hallpass's own bot login (`<slug>[bot]`), whose changes are not tampering. */
  readonly botLogin?: string;
  /** Or the App's slug, from which the bot login follows. */
  readonly appSlug?: string;
}

/**
 * Notices an edit or deletion of one of hallpass's audit comments by anyone
 * but hallpass: in one transaction (the ticket row locked, as transitions
 * do) it marks the comment tampered, appends a `comment.tampered` audit event
 * and queues a `tamper` notice re-posting the original. Each distinct change
 * is recorded once, however often its webhook is delivered.
 *
 * @returns whether a tampering was recorded
 */
export async function handleCommentChange(
  deps: { db: Db; log: Logger },
  event: CommentChange,
): Promise<boolean> {
  const log = deps.log.child({ commentId: event.commentId, action: event.action });
  const ours = await getComment(deps.db, event.commentId);
  if (!ours) {
    log.debug("not one of hallpass's comments");
    return false;
  }
  const botLogin = event.botLogin ?? (event.appSlug ? `${event.appSlug}[bot]` : null);
  if (botLogin && event.sender.login.toLowerCase() === botLogin.toLowerCase()) {
    log.debug("changed by hallpass itself");
    return false;
  }
  const newSha = event.action === "edited" ? sha256Hex(event.body ?? "") : null;
  if (newSha === ours.bodySha256) {
    log.debug("edited to the same text");
    return false;
  }
  const dedupeKey = `tamper/${ours.commentId}/${newSha ?? "deleted"}`;
  const recorded = await deps.db.transaction(async (tx) => {
    const ticket = await lockTicket(tx, ours.ticketId);
    if (!ticket || (await isQueued(tx, dedupeKey))) return false;
    await markTampered(tx, ours.commentId);
    const [owner = "", name = ""] = ticket.repoFullName.split("/");
    const audited = await appendAudit(tx, {
      kind: "comment.tampered",
      actor: `github:${event.sender.login}`,
      ticketId: ticket.id,
      data: {
        ticket: `${ticket.repoFullName}#${ticket.number}`,
        action: event.action,
        comment_id: ours.commentId,
        sender_type: event.sender.type,
        original_sha256: ours.bodySha256,
        new_sha256: newSha,
        original_event: ours.auditEventId,
      },
    });
    await enqueue(tx, {
      installationId: ticket.installationId,
      ticketId: ticket.id,
      dedupeKey,
      auditEventId: audited.id,
      effect: {
        kind: "comment",
        repo: { id: ticket.repoId, owner, name },
        number: ticket.number,
        notice: {
          kind: "tamper",
          action: event.action,
          by: event.sender.login,
          originalBody: ours.body,
        },
      },
    });
    return true;
  });
  if (recorded)
    log.warn({ by: event.sender.login }, "hallpass comment tampered with; original re-posted");
  return recorded;
}
