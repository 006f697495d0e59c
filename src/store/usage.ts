import type { Sql } from "#src/store/db.js";
import type { Usage } from "#src/tickets/notices.js";

/** What a grant was used for: tokens by holder, proxy requests by endpoint. */
export async function usageOf(sql: Sql, grantId: string): Promise<Usage> {
  const tokens = await sql.query<{
    channel: "actions" | "cli";
    subject: string;
    actor: string | null;
    run_id: number | null;
    count: number;
  }>(
    `SELECT channel, subject, actor, run_id, count(*)::int AS count
       FROM tokens WHERE grant_id = $1::uuid
      GROUP BY channel, subject, actor, run_id
      ORDER BY min(issued_at)
      LIMIT 50`,
    [grantId],
  );
  const requests = await sql.query<{ method: string; path: string; count: number; errors: number }>(
    `SELECT method, path, count(*)::int AS count,
            count(*) FILTER (WHERE outcome <> 'forwarded' OR status >= 500)::int AS errors
       FROM proxy_requests WHERE grant_id = $1::uuid
      GROUP BY method, path
      ORDER BY count(*) DESC, method, path
      LIMIT 50`,
    [grantId],
  );
  return {
    tokens: tokens.rows.map((t) => ({
      channel: t.channel,
      subject: t.subject,
      actor: t.actor,
      runId: t.run_id,
      count: t.count,
    })),
    requests: requests.rows,
  };
}
