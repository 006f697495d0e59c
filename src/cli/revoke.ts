import type { Output } from "#src/cli/audit.js";
import { HallpassError } from "#src/errors.js";
import type { Db } from "#src/store/db.js";
import { getGrant, openGrant } from "#src/store/grant-lifecycle.js";
import { getTicketById, type Ticket } from "#src/store/tickets.js";
import { endOpenGrant } from "#src/tickets/transitions.js";

/**
 * `hallpass revoke owner/repo#N | --grant ID [--reason TEXT]`: the operator
 * ends a ticket's open grant (active → revoked, pending → cancelled). The
 * ticket's comment is posted by the server's outbox, like any transition.
 */
export async function revokeCommand(
  db: Db,
  out: Output,
  target: { ticket?: string; grant?: string },
  reason: string,
): Promise<number> {
  const ticket = target.grant
    ? await ticketOfGrant(db, target.grant)
    : await findTicket(db, target.ticket ?? "");
  const open = await openGrant(db, ticket.id);
  if (!open || (target.grant && open.id !== target.grant)) {
    throw new HallpassError(
      "NOT_FOUND",
      `${ticket.repoFullName}#${ticket.number} has no pending or active grant`,
    );
  }
  const [owner = "", name = ""] = ticket.repoFullName.split("/");
  const ended = await endOpenGrant(
    db,
    { ticket, repo: { id: ticket.repoId, owner, name } },
    {
      grantId: open.id,
      whenActive: "revoked",
      whenPending: "cancelled",
      reason: `revoked by the operator: ${reason}`,
      by: "operator",
    },
  );
  if (!ended) throw new HallpassError("CONFLICT", "the grant changed meanwhile; look again");
  out.stdout.write(`${ended.state} grant ${ended.id} on ${ticket.repoFullName}#${ticket.number}\n`);
  return 0;
}

async function findTicket(db: Db, ref: string): Promise<Ticket> {
  const match = /^([\w.-]+\/[\w.-]+)#(\d+)$/.exec(ref);
  if (!match)
    throw new HallpassError(
      "BAD_REQUEST",
      `expected owner/repo#N or --grant ID, got ${JSON.stringify(ref)}`,
    );
  const { rows } = await db.query<{ id: string }>(
    "SELECT id FROM tickets WHERE lower(repo_full_name) = lower($1::text) AND number = $2::int",
    [match[1], Number(match[2])],
  );
  const ticket = rows[0] ? await getTicketById(db, rows[0].id) : null;
  if (!ticket) throw new HallpassError("NOT_FOUND", `no ticket ${ref}`);
  return ticket;
}

async function ticketOfGrant(db: Db, grantId: string): Promise<Ticket> {
  if (!/^[0-9a-f-]{36}$/i.test(grantId))
    throw new HallpassError("BAD_REQUEST", `--grant: not a grant id: ${grantId}`);
  const grant = await getGrant(db, grantId);
  const ticket = grant ? await getTicketById(db, grant.ticketId) : null;
  if (!ticket) throw new HallpassError("NOT_FOUND", `no grant ${grantId}`);
  return ticket;
}
