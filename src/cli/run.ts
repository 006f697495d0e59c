import { parseArgs } from "node:util";
import { auditExport, auditVerify, type Output } from "#src/cli/audit.js";
import { KEYS_USAGE, keysRotate } from "#src/cli/keys.js";
import { policyCheck } from "#src/cli/policy-check.js";
import { revokeCommand } from "#src/cli/revoke.js";
import { serve } from "#src/cli/serve.js";
import { tokenCommand } from "#src/cli/token.js";
import { type Config, ConfigError, loadConfig } from "#src/config.js";
import { isHallpassError } from "#src/errors.js";
import { createLogger } from "#src/log.js";
import type { Db } from "#src/store/db.js";
import { migrate } from "#src/store/migrate.js";
import { openDb } from "#src/store/open.js";
import { loadMasterKey } from "#src/tokens/master-key.js";

const USAGE = `usage: hallpass <command>

  serve                          run the GitHub App, token service and proxy
  migrate                        apply database migrations and exit
  audit verify [--json]          check the hash chain of the audit log
  audit export [--ticket o/r#N]  write the audit log (or one ticket's) as JSON lines
  policy check [--repo DIR] [--json]
                                 check .github/hallpass.yml and CODEOWNERS in a checkout
  keys rotate [--now]            publish a new signing key (see hallpass keys --help)
  revoke owner/repo#N | --grant ID [--reason TEXT]
                                 end a ticket's pending or active grant
  token owner/repo#N [--scope S]... [--url URL] [-- command args...]
                                 an access token for your own grant (see hallpass token --help)

Configuration comes from the environment (and .env); see README.md.
`;

/**
 * Runs one CLI command.
 *
 * @returns the exit code: 0 success, 1 failure (or a broken audit chain), 2 usage error
 */
export async function runCli(
  argv: readonly string[],
  out: Output = { stdout: process.stdout, stderr: process.stderr },
  env: NodeJS.ProcessEnv = process.env,
): Promise<number> {
  const [command, ...rest] = argv;
  try {
    switch (command) {
      case "serve": {
        const config = loadConfig(env);
        return await serve(config, createLogger(config.logLevel));
      }
      case "migrate":
        return await withDb(loadConfig(env), async (db) => {
          const applied = await migrate(db);
          out.stdout.write(
            applied.length === 0
              ? "database is up to date\n"
              : `applied ${applied.map((m) => `${m.version}_${m.name}`).join(", ")}\n`,
          );
          return 0;
        });
      case "audit":
        return await audit(rest, out, env);
      case "policy":
        return await policy(rest, out);
      case "keys":
        return await keys(rest, out, env);
      case "revoke":
        return await revoke(rest, out, env);
      case "token":
        return await tokenCommand(rest, out, { env });
      case undefined:
      case "help":
      case "--help":
      case "-h":
        out.stdout.write(USAGE);
        return command === undefined ? 2 : 0;
      default:
        out.stderr.write(`hallpass: unknown command ${JSON.stringify(command)}\n${USAGE}`);
        return 2;
    }
  } catch (error) {
    if (error instanceof ConfigError) {
      for (const problem of error.problems) out.stderr.write(`hallpass: ${problem}\n`);
      return 1;
    }
    if (isHallpassError(error)) {
      out.stderr.write(`hallpass: ${error.message}\n`);
      return error.code === "BAD_REQUEST" ? 2 : 1;
    }
    if (
      error instanceof TypeError &&
      (error as { code?: string }).code?.startsWith("ERR_PARSE_ARGS")
    ) {
      out.stderr.write(`hallpass: ${error.message}\n`);
      return 2;
    }
    throw error;
  }
}

async function audit(
  args: readonly string[],
  out: Output,
  env: NodeJS.ProcessEnv,
): Promise<number> {
  const [sub, ...rest] = args;
  const { values } = parseArgs({
    args: [...rest],
    options: { json: { type: "boolean" }, ticket: { type: "string" } },
    strict: true,
  });
  if (sub !== "verify" && sub !== "export") {
    out.stderr.write(
      "usage: hallpass audit verify [--json] | audit export [--ticket owner/repo#N]\n",
    );
    return 2;
  }
  return withDb(loadConfig(env), async (db) => {
    await migrate(db);
    return sub === "verify"
      ? auditVerify(db, out, values.json === true)
      : auditExport(db, out, values.ticket);
  });
}

async function policy(args: readonly string[], out: Output): Promise<number> {
  const [sub, ...rest] = args;
  const { values } = parseArgs({
    args: [...rest],
    options: { json: { type: "boolean" }, repo: { type: "string" } },
    strict: true,
    allowPositionals: false,
  });
  if (sub !== "check") {
    out.stderr.write("usage: hallpass policy check [--repo DIR] [--json]\n");
    return 2;
  }
  return policyCheck(values.repo ?? ".", values.json === true, out);
}

async function keys(args: readonly string[], out: Output, env: NodeJS.ProcessEnv): Promise<number> {
  const [sub, ...rest] = args;
  if (sub !== "rotate") {
    (sub === "--help" || sub === "help" ? out.stdout : out.stderr).write(KEYS_USAGE);
    return sub === "--help" || sub === "help" ? 0 : 2;
  }
  const config = loadConfig(env);
  const masterKey = await loadMasterKey(config);
  return withDb(config, async (db) => {
    await migrate(db);
    return keysRotate(db, masterKey, rest, out);
  });
}

async function revoke(
  args: readonly string[],
  out: Output,
  env: NodeJS.ProcessEnv,
): Promise<number> {
  const { values, positionals } = parseArgs({
    args: [...args],
    options: { grant: { type: "string" }, reason: { type: "string" } },
    strict: true,
    allowPositionals: true,
  });
  if ((positionals.length === 1) === (values.grant !== undefined) || positionals.length > 1) {
    out.stderr.write("usage: hallpass revoke owner/repo#N | --grant ID [--reason TEXT]\n");
    return 2;
  }
  const target = values.grant ? { grant: values.grant } : { ticket: positionals[0] ?? "" };
  return withDb(loadConfig(env), async (db) => {
    await migrate(db);
    return revokeCommand(db, out, target, values.reason ?? "no reason given");
  });
}

async function withDb<T>(config: Config, fn: (db: Db) => Promise<T>): Promise<T> {
  const db = await openDb(config.database);
  try {
    return await fn(db);
  } finally {
    await db.close();
  }
}
