import pg from "pg";

/**
 * Before the run: when TEST_DATABASE_URL is set, make sure it answers (a
 * clear failure beats every test timing out) and drop test schemas that runs
 * which crashed more than an hour ago left behind.
 */
export default async function setup(): Promise<void> {
  const url = process.env.TEST_DATABASE_URL;
  if (!url) return;
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5_000 });
  try {
    await client.connect();
  } catch (error) {
    throw new Error(`TEST_DATABASE_URL does not answer: ${(error as Error).message}`);
  }
  try {
    const { rows } = await client.query<{ nspname: string }>(
      "SELECT nspname FROM pg_namespace WHERE nspname LIKE 'hallpass\\_test\\_%'",
    );
    const cutoff = Date.now() - 60 * 60 * 1000;
    for (const { nspname } of rows) {
      const created = Number(nspname.split("_")[2]);
      if (Number.isFinite(created) && created < cutoff) {
        await client.query(`DROP SCHEMA IF EXISTS ${nspname} CASCADE`);
      }
    }
  } finally {
    await client.end();
  }
}
