import { once } from "node:events";
import { ticketEvidence } from "#src/audit/evidence.js";
import { exportAudit } from "#src/audit/export.js";
import { verifyAudit } from "#src/audit/verify.js";
import { HallpassError } from "#src/errors.js";
import type { Db } from "#src/store/db.js";

export interface Output {
  readonly stdout: NodeJS.WritableStream;
  readonly stderr: NodeJS.WritableStream;
}

/** `hallpass audit verify`: 0 when the chain holds, 1 at the first broken link. */
export async function auditVerify(db: Db, out: Output, json: boolean): Promise<number> {
  const result = await verifyAudit(db);
  if (json) {
    out.stdout.write(`${JSON.stringify(result)}\n`);
  } else if (result.ok) {
    out.stdout.write(`audit chain intact: ${result.checked} events, tip ${result.tip.hash}\n`);
  } else if (result.break) {
    out.stdout.write(
      `audit chain BROKEN at row ${result.break.seq} (${result.break.kind}): ${result.break.detail}\n` +
        `${result.checked} events verified before it\n`,
    );
  }
  return result.ok ? 0 : 1;
}

/**
 * `hallpass audit export [--ticket owner/repo#N]`: the whole log as JSON
 * lines, or one ticket's evidence bundle (see `ticketEvidence`).
 */
export async function auditExport(
  db: Db,
  out: Output,
  ticket: string | undefined,
): Promise<number> {
  let ticketId: string | undefined;
  if (ticket !== undefined) {
    const match = /^([\w.-]+\/[\w.-]+)#(\d+)$/.exec(ticket);
    if (!match)
      throw new HallpassError("BAD_REQUEST", `--ticket: expected owner/repo#N, got ${ticket}`);
    const { rows } = await db.query<{ id: string }>(
      "SELECT id FROM tickets WHERE lower(repo_full_name) = lower($1::text) AND number = $2::int",
      [match[1], Number(match[2])],
    );
    if (!rows[0]) throw new HallpassError("NOT_FOUND", `no ticket ${ticket}`);
    ticketId = rows[0].id;
  }
  const lines = ticketId ? ticketEvidence(db, ticketId) : exportAudit(db);
  for await (const line of lines) {
    if (!out.stdout.write(`${JSON.stringify(line)}\n`)) await once(out.stdout, "drain");
  }
  return 0;
}
