import type { AuditEventBody } from "#src/audit/event.js";
import type { Sql } from "#src/store/db.js";

/** One line of a ticket's evidence bundle. */
export type EvidenceLine =
  | { readonly type: "ticket"; readonly [key: string]: unknown }
  | { readonly type: "grant"; readonly [key: string]: unknown }
  | { readonly type: "approval"; readonly [key: string]: unknown }
  | { readonly type: "token"; readonly [key: string]: unknown }
  | { readonly type: "usage"; readonly [key: string]: unknown }
  | {
      readonly type: "event";
      readonly seq: number;
      readonly prev_hash: string;
      readonly hash: string;
      readonly event: AuditEventBody;
    }
  | {
      readonly type: "link";
      readonly seq: number;
      readonly prev_hash: string;
      readonly hash: string;
    }
  | { readonly type: "tip"; readonly seq: number; readonly hash: string };

/**
 * The evidence of one ticket for an auditor, as JSON lines: the ticket, its
 * grants (terms as approved, policy commit, approvers, window, how each
 * ended), the approvals given, the tokens minted (by `jti`, never the
 * token), proxy usage by endpoint, and its audit events with a chain proof.
 *
 * The proof: every event carries its `prev_hash` and `hash`, recomputable
 * from its body; `link` lines give (seq, prev_hash, hash) of every row from
 * the ticket's first event to the tip, so the events are shown to sit, in
 * order, in the one chain whose tip is the last line.
 */
export async function* ticketEvidence(sql: Sql, ticketId: string): AsyncGenerator<EvidenceLine> {
  const ticket = await sql.query(
    `SELECT repo_id, repo_full_name AS repository, number, kind, author_login AS author, created_at
       FROM tickets WHERE id = $1::uuid`,
    [ticketId],
  );
  yield { type: "ticket", id: ticketId, ...ticket.rows[0] };
  const grants = await sql.query(
    `SELECT id, state, resource, audience, scopes, permissions, duration_s, reason, requested_start,
            request_hash, requester_login AS requester, decision, auto_rule, break_glass, approvers,
            policy_sha AS policy_commit, approved_commit, starts_at, ends_at, review_due_at, reviewed_at,
            ended_at, end_reason, ended_by, created_at
       FROM grants WHERE ticket_id = $1::uuid ORDER BY created_at`,
    [ticketId],
  );
  for (const g of grants.rows) yield { type: "grant", ...g };
  const approvals = await sql.query(
    `SELECT approver_login AS approver, channel, source_id, request_hash, commit_id, created_at, voided_at, void_reason
       FROM approvals WHERE ticket_id = $1::uuid ORDER BY created_at`,
    [ticketId],
  );
  for (const a of approvals.rows) yield { type: "approval", ...a };
  const tokens = await sql.query(
    `SELECT t.jti, t.grant_id AS grant, t.kid, t.channel, t.subject, t.actor, t.scopes, t.run_id, t.run_attempt,
            t.workflow_ref, t.sha, t.issued_at, t.expires_at, t.released_at
       FROM tokens t JOIN grants g ON g.id = t.grant_id WHERE g.ticket_id = $1::uuid ORDER BY t.issued_at`,
    [ticketId],
  );
  for (const t of tokens.rows) yield { type: "token", ...t };
  // Every proxied request, summed by what it asked, what let it through (or
  // why nothing did), how it ended and the status class the caller got.
  const usage = await sql.query(
    `SELECT p.grant_id AS grant, p.method, p.scope, p.reason, p.outcome,
            CASE WHEN p.status IS NULL THEN NULL ELSE (p.status / 100) || 'xx' END AS status_class,
            count(*)::int AS requests, sum(p.bytes_in)::bigint AS bytes_in,
            sum(p.bytes_out)::bigint AS bytes_out, min(p.started_at) AS first, max(p.started_at) AS last
       FROM proxy_requests p JOIN grants g ON g.id = p.grant_id
      WHERE g.ticket_id = $1::uuid
      GROUP BY 1, 2, 3, 4, 5, 6 ORDER BY first, 2, 3`,
    [ticketId],
  );
  for (const u of usage.rows) yield { type: "usage", ...u };

  const events = await sql.query<{ seq: number; body: string; prev_hash: string; hash: string }>(
    "SELECT seq, body, prev_hash, hash FROM audit_events WHERE ticket_id = $1::uuid AND seq > 0 ORDER BY seq",
    [ticketId],
  );
  for (const e of events.rows) {
    yield {
      type: "event",
      seq: e.seq,
      prev_hash: e.prev_hash,
      hash: e.hash,
      event: JSON.parse(e.body) as AuditEventBody,
    };
  }
  const first = events.rows[0]?.seq;
  if (first === undefined) return;
  let after = first - 1;
  for (;;) {
    const links = await sql.query<{ seq: number; prev_hash: string; hash: string }>(
      "SELECT seq, prev_hash, hash FROM audit_events WHERE seq > $1::bigint ORDER BY seq LIMIT 5000",
      [after],
    );
    for (const l of links.rows)
      yield { type: "link", seq: l.seq, prev_hash: l.prev_hash, hash: l.hash };
    if (links.rows.length < 5000) break;
    after = links.rows.at(-1)?.seq ?? after;
  }
  const tip = await sql.query<{ seq: number; hash: string }>(
    "SELECT seq, hash FROM audit_head WHERE id = 1",
  );
  if (tip.rows[0]) yield { type: "tip", seq: tip.rows[0].seq, hash: tip.rows[0].hash };
}
