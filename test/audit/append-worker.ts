// A separate process appending audit events, for the cross-process test.
import { appendAudit } from "#src/audit/append.js";
import { openPostgres } from "#src/store/postgres.js";

const url = process.env.AUDIT_WORKER_URL;
if (!url) throw new Error("AUDIT_WORKER_URL is not set");
const db = openPostgres(url, { max: 4 });
const count = Number(process.env.AUDIT_WORKER_COUNT ?? "100");
await Promise.all(
  Array.from({ length: 4 }, async (_, w) => {
    for (let i = 0; i < count / 4; i++) {
      await db.transaction((tx) =>
        appendAudit(tx, { kind: "test.process", actor: `pid:${process.pid}:${w}`, data: { i } }),
      );
    }
  }),
);
await db.close();
